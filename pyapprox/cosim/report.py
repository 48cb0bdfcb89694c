"""Comparing the RTL's outputs with pyapprox's, and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pyapprox.sim.mac_array import Tile


@dataclass
class CosimReport:
    multiplier: str
    rtl: dict
    simulator: str
    array: dict
    layers: list = field(default_factory=list)
    tiles: int = 0
    outputs: int = 0
    mismatches: int = 0
    field_mismatches: dict = field(default_factory=dict)
    first_mismatches: list = field(default_factory=list)
    overflows: int = 0
    sim: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def compare(tiles: list[Tile], res: dict, keep: int = 10) -> tuple[dict, list, dict]:
    """Per-layer counts and the first ``keep`` mismatches (tile, row, col, field, expected, got)."""
    per_layer: dict[str, dict] = {}
    first = []
    unknown = res.get("unknown")
    for ti, t in enumerate(tiles):
        nr, nc = t.shape
        got_acc = res["acc"][ti, :nr, :nc]
        got_ovf = res["ovf"][ti, :nr, :nc].astype(bool)
        got_q = res["q"][ti, :nr, :nc]
        stats = per_layer.setdefault(t.layer, {"tiles": 0, "outputs": 0, "mismatches": 0, "overflows": 0,
                                               "acc": 0, "ovf": 0, "q": 0, "unknown": 0})
        stats["tiles"] += 1
        stats["outputs"] += nr * nc
        stats["overflows"] += int(t.exp_ovf.sum())
        bad_acc = got_acc != t.exp_acc
        bad_ovf = got_ovf != t.exp_ovf
        bad_q = (got_q != t.exp_q) if t.exp_q is not None else np.zeros_like(bad_acc)
        bad_x = unknown[ti, :nr, :nc].astype(bool) if unknown is not None else np.zeros_like(bad_acc)
        bad = bad_acc | bad_ovf | bad_q | bad_x
        stats["acc"] += int(bad_acc.sum())
        stats["ovf"] += int(bad_ovf.sum())
        stats["q"] += int(bad_q.sum())
        stats["unknown"] += int(bad_x.sum())
        stats["mismatches"] += int(bad.sum())
        for r, c in np.argwhere(bad)[: max(0, keep - len(first))]:
            exp = {"acc": int(t.exp_acc[r, c]), "ovf": bool(t.exp_ovf[r, c])}
            got = {"acc": int(got_acc[r, c]), "ovf": bool(got_ovf[r, c])}
            if t.exp_q is not None:
                exp["q"] = int(t.exp_q[r, c])
                got["q"] = int(got_q[r, c])
            if bad_x[r, c]:
                got["unknown"] = True
            first.append({"layer": t.layer, "tile": int(t.index), "row": int(r), "col": int(c),
                          "channel": int(t.channels[r]), "pixel": int(t.pixels[c]), "expected": exp, "got": got})
    fields = {f: sum(s[f] for s in per_layer.values()) for f in ("acc", "ovf", "q", "unknown")}
    return per_layer, first, fields


def format_report(rep: CosimReport) -> str:
    rtl_text = (f"{rep.rtl['top']} from {', '.join(Path(s).name for s in rep.rtl['sources'])}"
                + (" (generated adapter)" if rep.rtl["adapter"] else ""))
    if str(rep.rtl.get("origin", "")).startswith("--rtl"):
        head = f"multiplier: the network multiplies with {rep.multiplier}'s table; the array runs --rtl {rtl_text}"
    else:
        head = f"multiplier: {rep.multiplier} = {rtl_text}"
    lines = [f"{head}; simulator: {rep.simulator}"]
    a = rep.array
    lines.append(f"array: {a['rows']}x{a['cols']} PEs, {a['operand_format']} operands, weight on port "
                 f"{a['weight_port']}, {a['acc_bits']}-bit {a['acc_mode']} accumulator, {a['m_bits']}-bit "
                 f"requantization multiplier")
    timed = bool(rep.layers) and "seconds" in rep.layers[0]
    lines.append(f"{'layer':<20} {'kind':<5} {'shape':<22} {'K':>5} {'tiles':>13} {'outputs':>9} {'ovf':>6} "
                 f"{'mismatch':>8}" + (f" {'MACs':>14} {'MAC/s':>8}" if timed else ""))
    for li in rep.layers:
        shape = (f"{li['in_channels']}->{li['out_channels']} {li['kernel'][0]}x{li['kernel'][1]}"
                 f" s{li['stride'][0]}" + (f" g{li['groups']}" if li["groups"] > 1 else ""))
        line = (f"{li['short']:<20} {li['kind']:<5} {shape:<22} {li['k']:>5} "
                f"{str(li['tiles']) + '/' + str(li['total_tiles']):>13} {li['outputs']:>9} "
                f"{li['overflows']:>6} {li['mismatches']:>8}")
        if timed:
            rate = li["beats"] * a["rows"] * a["cols"] / li["seconds"] if li["seconds"] > 0 else 0
            line += f" {li['macs']:>14,} {rate / 1e6:>7.1f}M"
        lines.append(line)
    f = rep.field_mismatches
    lines.append(f"compared {rep.outputs:,} outputs in {rep.tiles} tiles (accumulator, overflow flag, output code): "
                 f"{rep.mismatches} mismatches (acc {f.get('acc', 0)}, ovf {f.get('ovf', 0)}, code {f.get('q', 0)}"
                 + (f", X/Z {f['unknown']}" if f.get("unknown") else "") + f"); {rep.overflows} outputs overflowed")
    for m in rep.first_mismatches[:5]:
        lines.append(f"  mismatch: layer {m['layer']} tile {m['tile']} row {m['row']} col {m['col']} "
                     f"(channel {m['channel']}, pixel {m['pixel']}): expected {m['expected']}, got {m['got']}")
    s = rep.sim
    lines.append(f"simulated: {s['beats']:,} beats in {s['cycles']:,} cycles, {s['array_macs']:,} array MACs "
                 f"({s['macs']:,} on real outputs) in {s['seconds']:.2f} s = {s['macs_per_s'] or 0:,.0f} MAC/s "
                 f"({s['cycles_per_s'] or 0:,.0f} cycles/s)" + (f" on {s['threads']} thread(s)" if "threads" in s else "")
                 + f"; build and start-up {s['build_seconds']:.1f} s"
                 + (f"; whole run {s['wall_seconds']:.1f} s" if "wall_seconds" in s else ""))
    if rep.extra.get("wave"):
        lines.append(f"waveform of the first failing tile: {rep.extra['wave']}")
    return "\n".join(lines)
