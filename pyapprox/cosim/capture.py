"""Capturing a quantized layer's actual input codes and accumulators from one forward pass."""

from __future__ import annotations

import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn.plan import model_layers, select
from pyapprox.nn.quant import qconv_layers


class _Done(Exception):
    pass


def capture_layers(qmodel, names: list[str], image) -> dict:
    """Run ``image`` [1, 3, H, W] through ``qmodel`` and capture each named layer's input codes (via
    ``QConv2d.quantize_input``) and its own accumulators (the ``ApproxConv2d`` output)."""
    mods = dict(qmodel.named_modules())
    got: dict[str, dict] = {}
    handles = []

    def conv_hook(name):
        def hook(module, inputs, output):
            got[name]["codes"] = inputs[0].detach().clone()
            got[name]["acc"] = output.detach().to(torch.int64).clone()
            if len([n for n in names if "acc" in got.get(n, {})]) == len(names):
                raise _Done()
        return hook

    def q_hook(name):
        def hook(module, inputs):
            got.setdefault(name, {})["quantized"] = module.quantize_input(
                module.as_conv_input(inputs[0])).detach().clone()
        return hook

    for n in names:
        handles.append(mods[n].register_forward_pre_hook(q_hook(n)))
        handles.append(mods[n].conv.register_forward_hook(conv_hook(n)))
    try:
        with torch.no_grad():
            qmodel(image)
    except _Done:
        pass
    finally:
        for h in handles:
            h.remove()
    for n in names:
        if n not in got or "acc" not in got[n]:
            raise PyapproxError(f"layer {n} did not run on this image")
        if image.shape[0] != 1:
            raise PyapproxError("co-simulation takes one image")
        if not torch.equal(got[n]["quantized"].to(torch.int64), got[n]["codes"].to(torch.int64)):
            raise PyapproxError(f"layer {n}: the conv's input codes differ from QConv2d.quantize_input of its input")
    return got


def resolve_layers(qmodel, selectors) -> list[str]:
    """Names of the quantized convs matched by the selectors, in forward order."""
    layers = model_layers(qmodel)
    if not qconv_layers(qmodel):
        raise PyapproxError("the model has no quantized convolutions; quantize it first")
    out: list[str] = []
    for sel in ([selectors] if isinstance(selectors, str) else list(selectors)):
        for n in select(sel, layers):
            if n not in out:
                out.append(n)
    return [n for n in layers if n in out]  # forward order
