"""Plots of sweeps: per-layer metric change bars and the accuracy-vs-cost scatter with its Pareto front."""

from __future__ import annotations

from pathlib import Path

from pyapprox import io as pio


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    with pio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def layer_sweep_chart(rec: dict, path: Path, metric: str = "a1") -> Path:
    plt = _plt()
    rows = rec["rows"]
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(rows) + 2), 4))
    vals = [r["delta"][metric] for r in rows]
    ax.bar(range(len(rows)), vals, color=["#c0392b" if v < 0 else "#2e86c1" for v in vals])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["short"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel(f"change of {metric} vs exact-quantized")
    ax.set_title(f"{rec['multiplier']}: one layer at a time (ranked)")
    ax.axhline(0, color="black", lw=0.5)
    fig.tight_layout()
    return _save(fig, path)


def pareto_chart(rec: dict, path: Path) -> Path:
    plt = _plt()
    acc = rec["accuracy"]
    rows = [r for r in rec["rows"] if r["cost"] is not None]
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in rows:
        ax.scatter(r["cost"], r["metrics"][acc], color="#c0392b" if r.get("pareto") else "#7f8c8d", s=24, zorder=3)
        ax.annotate(r["multiplier"], (r["cost"], r["metrics"][acc]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    front = sorted((r["cost"], r["metrics"][acc]) for r in rows if r.get("pareto"))
    if front:
        ax.plot([c for c, _ in front], [a for _, a in front], color="#c0392b", lw=1, label="Pareto front")
        ax.legend()
    ax.set_xlabel(f"network cost: {rec['cost_metric']} x MACs")
    ax.set_ylabel(acc)
    ax.set_title("multipliers: accuracy vs hardware cost")
    fig.tight_layout()
    return _save(fig, path)
