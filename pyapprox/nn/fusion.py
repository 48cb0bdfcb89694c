"""Which layers fold a BatchNorm and fuse an activation: declared by the model, or found generically.

A model may declare its own groups with a method ``fusion_groups(self)`` returning, in forward order,
``(layer, batchnorm or None, activation module or None, activation kind or None)`` for every ``nn.Conv2d``
and ``nn.Linear`` (module names). Otherwise :func:`find_fusion_groups` finds them the way torch.ao finds
fusion patterns: the model is traced with ``torch.fx`` and the chain layer -> [BatchNorm] -> [activation] is
matched where every node of the chain has exactly one user and every module in it is called exactly once
(a module that is called twice, like the ReLU torchvision's ResNet shares between two places, stays a float
operation). A model that cannot be traced falls back to module order inside ``nn.Sequential`` containers.

Activation kinds fused in the integer domain (:data:`FUSABLE`): ``relu``, ``relu6`` and ``leaky<slope>``
(LeakyReLU with that negative slope, e.g. ``leaky0.2``). Any other activation (Hardswish, GELU, ...) and any
functional call (``F.relu(x)``) stays a float operation after the layer, which is exact to the float model's
meaning and is how residual adds, concatenations and pooling are treated too.
"""

from __future__ import annotations

import re

import torch.fx as fx
import torch.nn as nn

from pyapprox.errors import PyapproxError

LAYER_TYPES = (nn.Conv2d, nn.Linear)
_LEAKY = re.compile(r"^leaky(\d+(?:\.\d+)?(?:e-?\d+)?)$")


def activation_kind(module: nn.Module) -> str | None:
    """The fusable kind of an activation module, or None when it is not one the integer domain computes."""
    if isinstance(module, nn.ReLU6):
        return "relu6"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Hardtanh) and (module.min_val, module.max_val) == (0.0, 6.0):
        return "relu6"
    if isinstance(module, nn.LeakyReLU) and 0 < module.negative_slope < 1:
        return f"leaky{module.negative_slope:g}"
    return None


def leaky_slope(kind: str | None) -> float | None:
    """The negative slope of a ``leaky<slope>`` kind; None for other kinds."""
    m = _LEAKY.match(kind or "")
    return float(m.group(1)) if m else None


def check_kind(kind: str | None, where: str) -> None:
    if kind not in (None, "relu", "relu6") and leaky_slope(kind) is None:
        raise PyapproxError(f"{where}: activation kind {kind!r} cannot be fused; valid: relu, relu6, leaky<slope>, "
                            f"or none")


def fusion_groups(model: nn.Module) -> list[tuple[str, str | None, str | None, str | None]]:
    """The model's declared groups (method ``fusion_groups``) or :func:`find_fusion_groups`; validated."""
    declared = getattr(model, "fusion_groups", None)
    groups = list(declared()) if callable(declared) else find_fusion_groups(model)
    mods = dict(model.named_modules())
    for layer, bn, act, kind in groups:
        if not isinstance(mods.get(layer), LAYER_TYPES):
            raise PyapproxError(f"fusion group {layer!r}: not an nn.Conv2d or nn.Linear of the model")
        if bn is not None and not isinstance(mods.get(bn), (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise PyapproxError(f"fusion group {layer!r}: {bn!r} is not a BatchNorm module of the model")
        if act is not None and act not in mods:
            raise PyapproxError(f"fusion group {layer!r}: {act!r} is not a module of the model")
        check_kind(kind, f"fusion group {layer!r}")
    return groups


def find_fusion_groups(model: nn.Module) -> list[tuple[str, str | None, str | None, str | None]]:
    """Fusion groups found by tracing (see the module docstring); every Conv2d/Linear appears once."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001  (any tracing failure: data-dependent control flow, unsupported ops)
        return _sequential_groups(model)
    mods = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1

    def single_module_user(node, types):
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or calls.get(users[0].target) != 1:
            return None
        return users[0] if isinstance(mods[users[0].target], types) else None

    groups, seen = [], set()
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods[node.target], LAYER_TYPES) or node.target in seen:
            continue
        seen.add(node.target)
        layer = mods[node.target]
        bn_types = nn.BatchNorm2d if isinstance(layer, nn.Conv2d) else nn.BatchNorm1d
        bn_node = single_module_user(node, bn_types) if calls[node.target] == 1 else None
        tail = bn_node or (node if calls[node.target] == 1 else None)
        act_node = single_module_user(tail, nn.Module) if tail is not None else None
        kind = activation_kind(mods[act_node.target]) if act_node is not None else None
        groups.append((node.target, bn_node.target if bn_node is not None else None,
                       act_node.target if kind is not None else None, kind))
    missing = [n for n, m in model.named_modules() if isinstance(m, LAYER_TYPES) and n not in seen]
    return groups + [(n, None, None, None) for n in missing]


def _sequential_groups(model: nn.Module):
    """Fallback for untraceable models: layer, BatchNorm, activation adjacent in an ``nn.Sequential``."""
    groups = []
    for name, layer in model.named_modules():
        if not isinstance(layer, LAYER_TYPES):
            continue
        parent, _, leaf = name.rpartition(".")
        container = model.get_submodule(parent) if parent else model
        bn = act = kind = None
        if isinstance(container, nn.Sequential) and leaf.isdigit():
            items = list(container.named_children())
            pos = [k for k, _ in items].index(leaf)
            nxt = items[pos + 1:pos + 3]
            bn_types = nn.BatchNorm2d if isinstance(layer, nn.Conv2d) else nn.BatchNorm1d
            if nxt and isinstance(nxt[0][1], bn_types):
                bn = f"{parent}.{nxt[0][0]}"
                nxt = nxt[1:]
            if nxt and activation_kind(nxt[0][1]) is not None:
                act, kind = f"{parent}.{nxt[0][0]}", activation_kind(nxt[0][1])
        groups.append((name, bn, act, kind))
    return groups
