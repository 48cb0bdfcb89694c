"""The multiplier library at a glance: error metrics from simulated tables, hardware cost from Yosys."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from pyapprox import io as pio
from pyapprox.experiments.plots import annotate_points
from pyapprox.hw.cost import hardware_cost
from pyapprox.lut.library import library_lut
from pyapprox.lut.metrics import error_metrics
from pyapprox.rtl import library
from pyapprox.sim.hdl import HdlDesign


def library_rows(names=None, with_hw: bool = False, progress: bool = True) -> list[dict]:
    names = list(names or library.library_names())
    rows = []
    for name in tqdm(names, desc="library", unit="design", disable=not progress, leave=False):
        d = library.resolve(name)
        lut = library_lut(name)
        row = {"name": name, "top": d.top, "params": dict(d.params), "operands": lut.operands,
               **error_metrics(lut)}
        if with_hw:
            hd = HdlDesign.create(d.files, d.top, dict(d.params), dict(d.defines))
            row.update(hardware_cost(hd))
        rows.append(row)
    return rows


def _params(row) -> str:
    return ",".join(f"{k}={v}" for k, v in row["params"].items()) or "-"


def print_library_table(names=None) -> None:
    rows = library_rows(names)
    print(f"{'name':<13} {'parameters':<14} {'MAE':>10} {'WCE':>8} {'MRE%':>8} {'EP%':>8}")
    for r in rows:
        print(f"{r['name']:<13} {_params(r):<14} {r['MAE']:>10.2f} {r['WCE']:>8.0f} {r['MRE%']:>8.3f} {r['EP%']:>8.2f}")


def write_library_table(outdir: Path, names=None, with_hw: bool = True) -> tuple[Path, Path | None]:
    """``library.md`` (metrics and cost side by side) and ``mae_vs_cost.png`` in ``outdir``."""
    rows = library_rows(names, with_hw)
    cols = ["MAE", "WCE", "MRE%", "EP%", "bias", "MAE%", "WCE%"]
    hw = ["gates", "depth", "transistors", "ice40_lut4", "xilinx_lut", "xilinx_carry"] if with_hw else []
    lines = ["| name | parameters | operands | " + " | ".join(cols + hw) + " |",
             "|" + "---|" * (3 + len(cols) + len(hw))]
    for r in rows:
        vals = [f"{r[c]:.4g}" for c in cols] + [str(r[c]) for c in hw]
        lines.append(f"| {r['name']} | {_params(r)} | {r['operands']} | " + " | ".join(vals) + " |")
    md = outdir / "library.md"
    pio.write_text(md, "# Multiplier library\n\nMetrics from exhaustive simulation (Verilator and Icarus agree); "
                       "cost from Yosys 0.23 (see pyapprox.hw.cost).\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    png = None
    if with_hw:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 5))
        for r in rows:
            ax.scatter(r["transistors"], max(r["MAE"], 0.1), s=18)
        ax.set_yscale("log")
        ax.set_xlabel("transistors (Yosys CMOS estimate)")
        ax.set_ylabel("MAE (log; exact designs shown at 0.1)")
        ax.set_title("multiplier library: error vs hardware cost")
        fig.tight_layout()
        annotate_points(ax, [(r["transistors"], max(r["MAE"], 0.1), r["name"]) for r in rows])
        png = outdir / "mae_vs_cost.png"
        with pio.atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
    print(f"wrote {md}" + (f" and {png}" if png else ""))
    return md, png
