"""Depth-map panels: input, ground truth, predictions and absolute errors side by side (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyapprox import io as pio


def write_panel(path: Path, rgb: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray], title: str = "",
                error_of: list[str] | None = None) -> Path:
    """One row: RGB, ground truth, each prediction, and |prediction - gt| for the names in ``error_of``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    error_of = list(error_of or [])
    n = 2 + len(preds) + len(error_of)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.5))
    vmax = float(np.percentile(gt[gt > 0], 99.5)) if (gt > 0).any() else 10.0
    axes[0].imshow(rgb)
    axes[0].set_title("input", fontsize=8)
    axes[1].imshow(gt, cmap="plasma_r", vmin=0, vmax=vmax)
    axes[1].set_title("ground truth", fontsize=8)
    for ax, (name, d) in zip(axes[2:], preds.items()):
        ax.imshow(d, cmap="plasma_r", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=8)
    emax = max([float(np.percentile(np.abs(preds[k] - gt), 99)) for k in error_of] + [1e-3])
    for ax, name in zip(axes[2 + len(preds):], error_of):
        im = ax.imshow(np.abs(preds[name] - gt), cmap="magma", vmin=0, vmax=emax)
        ax.set_title(f"|{name} - gt| (m)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    if error_of:
        fig.colorbar(im, ax=axes[-1], fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with pio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
