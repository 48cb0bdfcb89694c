"""ONNX networks as PyTorch modules, through onnx2torch, for every command that takes ``--model FILE.onnx``.

An ONNX file is untrusted input: it is parsed as protobuf only (no code runs), its size is bounded, tensors
stored outside the file (external data, which could name any file on this machine) are refused, and the
graph is checked with ``onnx.checker`` before conversion. Initializers that an exporter shares between
several users through ``Identity`` nodes (``torch.onnx`` de-duplicates equal constants, e.g. the zero biases
left by BatchNorm folding) are given back to each user, which onnx2torch needs to build plain ``nn.Conv2d``,
``nn.BatchNorm2d`` and ``nn.Linear`` modules. An operator onnx2torch cannot convert is named in a one-line
error. The result is a ``torch.fx.GraphModule`` in eval mode, whose layers pyapprox quantizes like any other
``nn.Module``.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import onnx2torch
import torch.nn as nn
from onnx import numpy_helper

from pyapprox.errors import PyapproxError

MAX_BYTES = 2 << 30  # protobuf's own limit for a single file
_MISSING_OP = re.compile(r"operation_type='([^']+)', version=(\d+)")


def load_onnx(path: str | Path) -> nn.Module:
    """The ONNX model at ``path`` as an ``nn.Module`` (eval mode); raises :class:`PyapproxError` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise PyapproxError(f"ONNX model {path}: no such file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise PyapproxError(f"ONNX model {path}: {size:,} bytes, more than the {MAX_BYTES:,} a single file may hold")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  (protobuf raises DecodeError, RuntimeWarning, ...)
        raise PyapproxError(f"ONNX model {path}: not a readable ONNX file ({str(exc)[:120]})") from None
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise PyapproxError(f"ONNX model {path}: tensor {external[0]!r} is stored in an external file; only "
                            f"self-contained models are read (save with all tensors inside the .onnx file)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001  (onnx.checker.ValidationError and friends)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PyapproxError(f"ONNX model {path}: invalid graph ({first[:160]})") from None
    _inline_shared_initializers(model)
    try:
        module = onnx2torch.convert(model)
    except NotImplementedError as exc:
        m = _MISSING_OP.search(str(exc))
        op = f"{m.group(1)} (opset {m.group(2)})" if m else str(exc)[:120]
        raise PyapproxError(f"ONNX model {path}: operator {op} is not supported by the ONNX importer "
                            f"(onnx2torch); export the model without it or with another opset") from None
    except Exception as exc:  # noqa: BLE001  (a converter failing on an unusual graph)
        raise PyapproxError(f"ONNX model {path}: cannot be converted ({type(exc).__name__}: {str(exc)[:120]})") \
            from None
    module.input_shape = _input_shape(model)
    return module.eval()


def _input_shape(model) -> tuple[int, ...] | None:
    """The first graph input's shape, a dynamic dimension (batch) read as 1; None when unknown."""
    inits = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims) or None
    return None


def _inline_shared_initializers(model) -> None:
    """Replace ``Identity`` nodes whose input is an initializer by a copy of it under the node's output name."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in inits:
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
