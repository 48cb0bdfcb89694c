"""Per-layer approximation plans: which multiplier each convolution or linear layer uses.

A plan is an ordered list of rules ``(selector, multiplier)``; later rules override earlier ones.
Selectors (see :func:`select`): full module names (``encoder.original_model.features.0.0``), names the model
offers (``densedepth_mbv2``: the research's short names ``0.0``, ``9.conv.1.0``, ``encoder.0.0``), module
prefixes (``encoder``, ``decoder``, ``layer3``: every layer under it), glob patterns over any of these forms
(``decoder.up*``, ``*.conv.1.0``), layer kinds (``pw``, ``dw``, ``full``, ``grouped``, ``linear``) and ``all``. A multiplier is a library name (``mbm``, ``trunc4``), a LUT file, or
``exact``. Plan files are JSON: ``{"rules": [{"layers": "pw", "multiplier": "mbm"}, ...]}`` or simply
``{"pw": "mbm", "0.0": "exact"}``.
"""

from __future__ import annotations

import difflib
import fnmatch
from pathlib import Path

import torch.nn as nn

from pyapprox import io as pio
from pyapprox.errors import PyapproxError
from pyapprox.lut.library import get_lut
from pyapprox.nn.approx_conv import conv_kind
from pyapprox.nn.quant import qconv_layers

KINDS = ("pw", "dw", "full", "grouped", "linear")


class LayerSet(dict):
    """``{name: kind}`` of a model's layers in forward order, with every name each layer answers to
    (``aliases[name]``, the full module name first). A model offers short names with a method
    ``layer_aliases(self, name) -> list[str]``; see :func:`model_layers`."""

    def __init__(self, kinds: dict[str, str], aliases: dict[str, list[str]] | None = None):
        super().__init__(kinds)
        self.aliases = {n: [n] + [a for a in (aliases or {}).get(n, []) if a != n] for n in kinds}

    def short(self, name: str) -> str:
        """The layer's shortest name (its full name when the model offers none)."""
        return min(self.aliases[name], key=len)


def model_layers(model) -> LayerSet:
    """The layers a plan can address: the quantized layers of a quantized model, else every ``nn.Conv2d`` and
    ``nn.Linear`` (only those of its declared ``fusion_groups`` when the model declares them); names as the
    model offers them (``layer_aliases``)."""
    q = qconv_layers(model)
    if q:
        kinds = {n: m.conv.kind for n, m in q}
    else:
        declared = getattr(model, "fusion_groups", None)
        wanted = {g[0] for g in declared()} if callable(declared) else None
        kinds = {n: ("linear" if isinstance(m, nn.Linear) else
                     conv_kind(m.groups, m.in_channels, m.out_channels, m.kernel_size))
                 for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                 and (wanted is None or n in wanted)}
    hook = getattr(model, "layer_aliases", None)
    return LayerSet(kinds, {n: list(hook(n)) for n in kinds} if callable(hook) else None)


def aliases(name: str, layers: dict | None = None) -> list[str]:
    """Every name a layer answers to (its full name first)."""
    return list(layers.aliases[name]) if isinstance(layers, LayerSet) else [name]


def select(selector: str, layers: dict[str, str]) -> list[str]:
    """Names of the layers (a :class:`LayerSet`, or plain ``{name: kind}``, in forward order) matched by one
    selector: a kind, ``all``, a layer name or alias, a module prefix (``encoder``, ``layer3.0``: every layer
    under it; ``/`` separates module names in ONNX imports as ``.`` does in PyTorch), or a glob pattern over all
    names."""
    sel = selector.strip()
    if not sel:
        raise PyapproxError("empty layer selector")
    names = {n: aliases(n, layers) for n in layers}
    if sel in KINDS:
        hits = [n for n, k in layers.items() if k == sel]
    elif sel == "all":
        hits = list(layers)
    elif any(c in sel for c in "*?["):
        hits = [n for n in layers if any(fnmatch.fnmatchcase(a, sel) for a in names[n])]
        if not hits:
            raise PyapproxError(f"layer selector {sel!r} matches no layer; run `pyapprox layers` for the names")
    else:
        hits = [n for n in layers if sel in names[n]] or [n for n in layers if n.startswith((sel + ".", sel + "/"))]
        if not hits:
            valid = ", ".join(min(names[n], key=len) for n in layers)
            raise PyapproxError(f"unknown layer {sel!r}; valid names: {valid}; kinds: {', '.join(KINDS)}; "
                                f"groups: all or any module prefix; or a glob pattern")
    if not hits:
        raise PyapproxError(f"layer selector {sel!r} matches no layer in this model")
    return hits


def parse_rules(obj, source: str = "plan") -> list[tuple[str, str]]:
    """Rules from a decoded plan file (see module docstring)."""
    if isinstance(obj, dict) and "rules" in obj:
        _no_unknown_keys(obj, PLAN_KEYS, f"{source}: top-level")
        if "meta" in obj and not isinstance(obj["meta"], dict):
            raise PyapproxError(f"{source}: \"meta\" must be a JSON object")
        obj = obj["rules"]
    if isinstance(obj, dict):
        rules = list(obj.items())
    elif isinstance(obj, list):
        rules = []
        for i, r in enumerate(obj):
            if isinstance(r, dict):
                _no_unknown_keys(r, RULE_KEYS, f"{source}: rule {i}")
            if isinstance(r, dict) and set(r) == set(RULE_KEYS):
                rules.append((r["layers"], r["multiplier"]))
            elif isinstance(r, (list, tuple)) and len(r) == 2:
                rules.append((r[0], r[1]))
            else:
                raise PyapproxError(f"{source}: rule {i} must be {{\"layers\": ..., \"multiplier\": ...}}, got {r!r}")
    else:
        raise PyapproxError(f"{source}: expected a JSON object or list of rules")
    for sel, mult in rules:
        if not isinstance(sel, str) or not isinstance(mult, str) or not mult.strip():
            raise PyapproxError(f"{source}: rule {sel!r} -> {mult!r}: selector and multiplier must be strings")
    return [(s, m.strip()) for s, m in rules]


PLAN_KEYS = ("rules", "meta")
RULE_KEYS = ("layers", "multiplier")


def _no_unknown_keys(obj: dict, valid: tuple, where: str) -> None:
    for key in obj:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PyapproxError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


def load_plan(path: str | Path) -> list[tuple[str, str]]:
    return parse_rules(pio.read_json(path, "plan file"), str(path))


def parse_flag(text: str) -> tuple[str, str]:
    """``SELECTOR=MULTIPLIER`` from the command line."""
    if "=" not in text:
        raise PyapproxError(f"--approx {text!r}: expected SELECTOR=MULTIPLIER, e.g. pw=mbm or 0.0=trunc4")
    sel, mult = text.rsplit("=", 1)
    return sel.strip(), mult.strip()


def resolve_plan(rules: list[tuple[str, str]], layers: dict[str, str]) -> dict[str, str]:
    """``{layer name: multiplier}`` for the layers the plan touches (later rules win)."""
    out: dict[str, str] = {}
    for sel, mult in rules:
        for name in select(sel, layers):
            out[name] = mult
    return out


def write_plan(path: str | Path, assignment: dict[str, str], meta: dict | None = None) -> None:
    rules = [{"layers": n, "multiplier": m} for n, m in assignment.items()]
    pio.write_json(path, {"rules": rules, **({"meta": meta} if meta else {})})


def approximate(qmodel, rules: list[tuple[str, str]], get_lut=get_lut) -> dict[str, str]:
    """Apply a plan to a quantized model in place; returns the full assignment {layer: multiplier}."""
    layers = model_layers(qmodel)
    if not qconv_layers(qmodel):
        raise PyapproxError("the model has no quantized convolutions; quantize it first")
    assignment = resolve_plan(rules, layers)
    luts = {}
    for mult in sorted(set(assignment.values())):
        luts[mult] = None if mult == "exact" else get_lut(mult)
    mods = dict(qconv_layers(qmodel))
    for name, mult in assignment.items():
        mods[name].set_lut(luts[mult])
    return {n: mods[n].multiplier for n in layers}
