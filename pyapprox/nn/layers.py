"""The convolution layers of a network with their shapes and MAC counts at a given input size."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from pyapprox.nn.approx_conv import conv_kind
from pyapprox.nn.plan import aliases


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

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def layer_table(model: torch.nn.Module, height: int = 480, width: int = 640) -> list[LayerInfo]:
    """Every nn.Conv2d in forward order, with output size and MACs for one [1, 3, height, width] input
    (shapes are traced on the meta device, so nothing is computed)."""
    model = model.to("meta") if next(model.parameters()).device.type != "meta" else model
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    shapes = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
               for n, m in convs]
    try:
        model(torch.empty(1, 3, height, width, device="meta"))
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, (n, m) in enumerate(convs):
        _, o, ho, wo = shapes[n]
        kh, kw = m.kernel_size
        macs = ho * wo * o * (m.in_channels // m.groups) * kh * kw
        short = aliases(n)[1] if len(aliases(n)) > 1 else n
        rows.append(LayerInfo(i, n, short, conv_kind(m.groups, m.in_channels, m.out_channels, m.kernel_size),
                              m.in_channels, m.out_channels, (kh, kw), tuple(m.stride), tuple(m.padding), m.groups,
                              (ho, wo), macs))
    return rows


def format_layer_table(rows: list[LayerInfo], height: int, width: int) -> str:
    lines = [f"{'#':>3} {'short name':<20} {'kind':<5} {'in':>5} {'out':>5} {'k':>5} {'s':>2} {'groups':>6} "
             f"{'output':>9} {'MACs':>14}  full name"]
    for r in rows:
        lines.append(f"{r.index:>3} {r.short:<20} {r.kind:<5} {r.in_channels:>5} {r.out_channels:>5} "
                     f"{r.kernel[0]}x{r.kernel[1]:<3} {r.stride[0]:>2} {r.groups:>6} {r.out_hw[0]:>4}x{r.out_hw[1]:<4} "
                     f"{r.macs:>14,}  {r.name}")
    enc = [r for r in rows if r.name.startswith("encoder.")]
    dec = [r for r in rows if not r.name.startswith("encoder.")]

    def count(rs):
        kinds = {}
        for r in rs:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        return ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))

    lines.append(f"encoder: {len(enc)} convs ({count(enc)}), {sum(r.macs for r in enc):,} MACs; "
                 f"decoder: {len(dec)} convs ({count(dec)}), {sum(r.macs for r in dec):,} MACs; "
                 f"total {sum(r.macs for r in rows):,} MACs at {height}x{width}")
    return "\n".join(lines)
