"""The network a command works on: ``densedepth_mbv2`` (the default, with the committed or given weights) or
any network saved as ONNX (``--model FILE.onnx``)."""

from __future__ import annotations

import torch.nn as nn

from pyapprox.errors import PyapproxError
from pyapprox.models.weights import load_model

DEFAULT_NETWORK = "densedepth_mbv2"


def load_network(model: str | None = None, weights: str | None = None) -> nn.Module:
    """The float network in eval mode; raises :class:`PyapproxError` naming what would be valid."""
    if model is None or model == DEFAULT_NETWORK:
        return load_model(weights)
    if is_onnx_file(model):
        if weights:
            raise PyapproxError(f"--weights applies to {DEFAULT_NETWORK}; the ONNX model {model} holds its own")
        from pyapprox.models.onnx import load_onnx  # onnx2torch imports torchvision: only when ONNX is used

        return load_onnx(model)
    raise PyapproxError(f"--model {model!r}: expected {DEFAULT_NETWORK} or an .onnx file")


def is_onnx_file(spec: str | None) -> bool:
    return str(spec or "").lower().endswith(".onnx")


def is_default(model: str | None) -> bool:
    return model is None or model == DEFAULT_NETWORK
