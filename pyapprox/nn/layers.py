"""The convolution and linear layers of a network with their shapes and MAC counts at a given input size."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn.plan import LayerSet, model_layers


@dataclass
class LayerInfo:
    index: int
    name: str
    short: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: tuple
    stride: tuple
    padding: tuple
    groups: int
    out_hw: tuple
    macs: int
    aliases: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def layer_table(model: torch.nn.Module, height: int = 480, width: int = 640,
                input_shape: tuple | None = None) -> list[LayerInfo]:
    """Every nn.Conv2d and nn.Linear in forward order, with output size and MACs for one input of
    ``input_shape`` (default [1, 3, height, width]); shapes are traced on the meta device, so nothing is
    computed. A linear layer's MACs count every row it is applied to."""
    shape = tuple(input_shape) if input_shape is not None else (1, 3, height, width)
    layers = model_layers(model)
    shapes = _output_shapes(model, list(layers), shape)
    mods = dict(model.named_modules())
    rows = []
    for n in layers:
        m = mods[n]
        if n not in shapes:
            continue  # not run on this input
        if isinstance(m, torch.nn.Linear):
            out = shapes[n]
            rows_in = 1
            for d in out[:-1]:
                rows_in *= d
            info = (m.in_features, m.out_features, (1, 1), (1, 1), (0, 0), 1, (rows_in, 1),
                    rows_in * m.in_features * m.out_features)
        else:
            _, o, ho, wo = shapes[n]
            kh, kw = m.kernel_size
            info = (m.in_channels, m.out_channels, (kh, kw), tuple(m.stride), tuple(m.padding), m.groups, (ho, wo),
                    ho * wo * o * (m.in_channels // m.groups) * kh * kw)
        rows.append(LayerInfo(len(rows), n, layers.short(n), layers[n], *info, tuple(layers.aliases[n])))
    return rows


def _output_shapes(model: torch.nn.Module, names: list[str], shape: tuple) -> dict[str, tuple]:
    """Each named layer's output shape for one input: traced on the meta device (nothing computed) when the
    model allows it, else run once on zeros on the CPU."""
    def run(m, device):
        mods = dict(m.named_modules())
        shapes: dict[str, tuple] = {}
        handles = [mods[n].register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
                   for n in names]
        try:
            m(torch.zeros(*shape, device=device))
        finally:
            for h in handles:
                h.remove()
        return shapes

    try:
        return run(copy.deepcopy(model).to("meta"), "meta")
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        try:
            return run(copy.deepcopy(model).to("cpu"), "cpu")
        except (RuntimeError, TypeError, ValueError) as exc:
            raise PyapproxError(f"the model does not run on an input of shape {list(shape)} "
                                f"({type(exc).__name__}: {str(exc)[:120]}); give the input shape") from None


def rows_layer_set(rows: list[LayerInfo]) -> LayerSet:
    """The :class:`LayerSet` of a layer table (names, kinds, aliases), for selecting layers without the model."""
    return LayerSet({r.name: r.kind for r in rows}, {r.name: list(r.aliases) for r in rows})


def format_layer_table(rows: list[LayerInfo], height: int, width: int) -> str:
    lines = [f"{'#':>3} {'short name':<20} {'kind':<5} {'in':>5} {'out':>5} {'k':>5} {'s':>2} {'groups':>6} "
             f"{'output':>9} {'MACs':>14}  full name"]
    for r in rows:
        lines.append(f"{r.index:>3} {r.short:<20} {r.kind:<5} {r.in_channels:>5} {r.out_channels:>5} "
                     f"{r.kernel[0]}x{r.kernel[1]:<3} {r.stride[0]:>2} {r.groups:>6} {r.out_hw[0]:>4}x{r.out_hw[1]:<4} "
                     f"{r.macs:>14,}  {r.name}")
    groups: dict[str, list[LayerInfo]] = {}
    for r in rows:  # by top-level module, in forward order (densedepth_mbv2: encoder, decoder)
        groups.setdefault(r.name.split(".")[0] if "." in r.name else r.name, []).append(r)

    def count(rs):
        kinds = {}
        for r in rs:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        return ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))

    noun = "convs" if all(r.kind != "linear" for r in rows) else "layers"
    parts = [f"{g}: {len(rs)} {noun} ({count(rs)}), {sum(r.macs for r in rs):,} MACs" for g, rs in groups.items()]
    lines.append("; ".join(parts) + f"; total {sum(r.macs for r in rows):,} MACs at {height}x{width}")
    return "\n".join(lines)
