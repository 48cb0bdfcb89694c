"""How far the exact-quantized and approximate versions of any network deviate from its float version, layer by
layer and at the output, on the user's own inputs (no labels needed).

Per layer, the quantized layer's output (dequantized) is compared with the same layer of the fused float
network (BatchNorm folded, activation fused: what the layer computes in float), both fed by their own
network's previous layers, so the deviation accumulates as it does in the accelerator. Figures: relative RMS
error (RMS of the difference / RMS of the float output), largest absolute difference, and at the output, for
a [N, classes] output, the share of inputs whose top-1 class agrees with the float network's.
"""

from __future__ import annotations

import copy

import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate
from pyapprox.nn.quant import FusedConv, QConv2d, fuse, qconv_layers, quantize_model


class _Sums:
    def __init__(self):
        self.sq_diff = self.sq_ref = 0.0
        self.max_abs = 0.0
        self.values = 0

    def add(self, ref: torch.Tensor, got: torch.Tensor) -> None:
        d = (got.double() - ref.double())
        self.sq_diff += float((d * d).sum())
        self.sq_ref += float((ref.double() ** 2).sum())
        self.max_abs = max(self.max_abs, float(d.abs().max()) if d.numel() else 0.0)
        self.values += d.numel()

    def result(self) -> dict:
        rel = (self.sq_diff / self.sq_ref) ** 0.5 if self.sq_ref > 0 else (0.0 if self.sq_diff == 0 else float("inf"))
        return {"rel_rms": rel, "max_abs": self.max_abs, "values": self.values}


def _run_recording(model: torch.nn.Module, kind, inputs: list) -> tuple[list, dict]:
    """``model``'s outputs on ``inputs`` and, per module of type ``kind``, its outputs (forward hooks)."""
    outs: dict[str, list] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: outs.setdefault(n, []).append(o.detach()))
               for n, m in model.named_modules() if isinstance(m, kind)]
    try:
        return [model(x) for x in inputs], outs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def compare_variants(model: torch.nn.Module, inputs: list[torch.Tensor], cfg: AccelConfig,
                     plans: dict[str, list], calib: list[torch.Tensor] | None = None, backend: str = "auto") -> dict:
    """Deviation of ``exact`` and of each named plan from the float network, per layer and at the output.

    ``inputs`` are the model's own input tensors (each [1, ...]); ``calib`` the calibration inputs (default:
    the first ``cfg.calib_images`` of ``inputs``). Returns ``{"layers": [names], "variants": {name: {"layers":
    {layer: figures}, "output": figures}}}``.
    """
    if not inputs:
        raise PyapproxError("no inputs to compare on")
    calib = calib or inputs[: cfg.calib_images]
    fused = fuse(model)
    qmodel = quantize_model(model, calib, cfg, backend)
    variants = {"exact": qmodel}
    for name, rules in plans.items():
        variants[name] = copy.deepcopy(qmodel)
        approximate(variants[name], rules)
    names = [n for n, _ in qconv_layers(qmodel)]
    ref, ref_outs = _run_recording(fused, FusedConv, inputs)
    result = {"layers": names, "variants": {}}
    for vname, vmodel in variants.items():
        got, outs = _run_recording(vmodel, QConv2d, inputs)
        per_layer = {}
        for n in names:
            s = _Sums()
            for r, g in zip(ref_outs.get(n, []), outs.get(n, [])):
                s.add(r, g)
            per_layer[n] = s.result()
        out = _Sums()
        agree = []
        for r, g in zip(ref, got):
            if not isinstance(r, torch.Tensor):
                raise PyapproxError(f"the model returns {type(r).__name__}, not a tensor; compare needs one output")
            out.add(r, g)
            if r.dim() == 2 and r.shape[1] > 1:
                agree.append((r.argmax(1) == g.argmax(1)).double().mean().item())
        figures = out.result()
        if agree:
            figures["top1_agreement"] = sum(agree) / len(agree)
        result["variants"][vname] = {"layers": per_layer, "output": figures,
                                     "assignment": {n: m.multiplier for n, m in qconv_layers(vmodel)}}
    return result


def format_deviation(res: dict, short=lambda n: n, top: int = 12) -> str:
    """The output row of every variant, then the layers with the largest deviation of the last variant."""
    lines = [f"{'variant':<22} {'output rel. RMS':>16} {'max |diff|':>11} {'top-1 agree':>12}"]
    for name, v in res["variants"].items():
        o = v["output"]
        agree = f"{100 * o['top1_agreement']:.1f}%" if "top1_agreement" in o else "-"
        lines.append(f"{name:<22} {o['rel_rms']:>16.4%} {o['max_abs']:>11.4g} {agree:>12}")
    names = list(res["variants"])
    lines.append("\nper layer (relative RMS error of each layer's output against float):")
    lines.append(f"{'layer':<28} " + " ".join(f"{n[:14]:>14}" for n in names))
    order = res["layers"]
    if len(order) > top:
        last = res["variants"][names[-1]]["layers"]
        order = sorted(order, key=lambda n: -last[n]["rel_rms"])[:top]
        lines[-1] += f"   ({top} largest of {len(res['layers'])}, by {names[-1]})"
    for n in order:
        lines.append(f"{short(n)[:28]:<28} " + " ".join(f"{res['variants'][v]['layers'][n]['rel_rms']:>14.4%}"
                                                       for v in names))
    return "\n".join(lines)
