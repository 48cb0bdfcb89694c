"""Plots of sweeps: per-layer metric change bars and the accuracy-vs-cost scatter with its Pareto front."""

from __future__ import annotations

from pathlib import Path

from pyapprox import io as pio
from pyapprox.eval.metrics import HIGHER_IS_BETTER


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


def annotate_points(ax, points, fontsize: int = 7) -> None:
    """Label scatter points ``(x, y, text)``, each at the first of a few nearby offsets where its label
    overlaps no label placed before it (call after the axes limits and layout are final)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    offsets = [(3, 3), (3, -10), (-3, 3), (-3, -10), (3, 12), (3, -19), (-3, 12), (-3, -19), (3, 21), (3, -28)]
    placed = []
    for x, y, text in sorted(points, key=lambda p: (p[0], p[1])):
        for dx, dy in offsets:
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha="left" if dx > 0 else "right")
            box = t.get_window_extent(renderer)
            if (dx, dy) == offsets[-1] or not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            t.remove()


def layer_sweep_chart(rec: dict, path: Path, metric: str = "a1") -> Path:
    """Bars of each layer's change of ``metric``, red where the change is a degradation."""
    plt = _plt()
    rows = rec["rows"]
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(rows) + 2), 4))
    vals = [r["delta"][metric] for r in rows]
    worse = [(v < 0) if HIGHER_IS_BETTER[metric] else (v > 0) for v in vals]
    ax.bar(range(len(rows)), vals, color=["#c0392b" if w else "#2e86c1" for w in worse])
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
    front = sorted((r["cost"], r["metrics"][acc]) for r in rows if r.get("pareto"))
    if front:
        ax.plot([c for c, _ in front], [a for _, a in front], color="#c0392b", lw=1, label="Pareto front")
        ax.legend()
    ax.set_xlabel(f"network cost: {rec['cost_metric']} x MACs")
    ax.set_ylabel(acc)
    ax.set_title("multipliers: accuracy vs hardware cost")
    fig.tight_layout()
    annotate_points(ax, [(r["cost"], r["metrics"][acc], r["multiplier"]) for r in rows])
    return _save(fig, path)


def finetune_curve(rec: dict, path: Path) -> Path:
    """Training loss (smoothed) and validation a1 against the step of one fine-tuning run."""
    plt = _plt()
    curve = rec["curve"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    losses = [e for e in curve if e["loss"] is not None]
    ax.plot([e["step"] for e in losses], [e["loss"] for e in losses], color="#2e86c1", lw=1, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving average)", color="#2e86c1")
    val = [(e["step"], e["val_a1"]) for e in curve if "val_a1" in e]
    if val:
        ax2 = ax.twinx()
        ax2.plot([s for s, _ in val], [a for _, a in val], "o-", color="#c0392b", label="validation a1")
        ax2.set_ylabel("validation a1", color="#c0392b")
    ax.set_title(f"fine-tuning ({rec['gradient']} gradients)")
    fig.tight_layout()
    return _save(fig, path)
