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
        from pyapprox.models.onnx import load_onnx  # onnx2torch imports torchvision: only when ONNX is used

        net = load_onnx(model)
        if weights:  # e.g. from `pyapprox finetune --model FILE.onnx`: the converted network's own state_dict
            load_state_dict_file(net, weights, f"the network converted from {model}")
        return net
    raise PyapproxError(f"--model {model!r}: expected {DEFAULT_NETWORK} or an .onnx file")


def is_onnx_file(spec: str | None) -> bool:
    return str(spec or "").lower().endswith(".onnx")


def is_default(model: str | None) -> bool:
    return model is None or model == DEFAULT_NETWORK


def load_state_dict_file(net: nn.Module, path: str, what: str) -> nn.Module:
    """Strictly load a state_dict file (read with ``weights_only=True``) into ``net``; errors name the file."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PyapproxError(f"weights file {path}: no such file") from None
    except Exception as exc:
        raise PyapproxError(f"weights file {path}: cannot be read as a torch state_dict (weights_only=True)",
                            detail=f"{type(exc).__name__}: {exc}") from None
    expected = net.state_dict()
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise PyapproxError(f"weights file {path}: expected a state_dict (names -> tensors) of {what}")
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k in sd if k in expected and tuple(sd[k].shape) != tuple(expected[k].shape)]
    bad = [k for k in sd if k in expected and sd[k].is_floating_point()
           and (expected[k].is_floating_point() is False or not bool(torch.isfinite(sd[k]).all()))]
    if missing or unexpected or shapes or bad:
        parts = [f"{label}: {', '.join(keys[:3])}" + (f" ({len(keys)} in all)" if len(keys) > 3 else "")
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes),
                                     ("not finite or wrong type", bad)) if keys]
        raise PyapproxError(f"weights file {path}: does not match {what}; " + "; ".join(parts))
    net.load_state_dict(sd, strict=True)
    return net
