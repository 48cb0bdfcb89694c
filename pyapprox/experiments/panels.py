"""Depth-map panels (PNG): the input and ground truth, then each prediction beside its absolute error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyapprox import io as pio
from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import compute_errors, eigen_crop

IMAGE_INCHES = 4.4  # width of each depth map; at DPI this is 440 pixels
DPI = 100
DEPTH_CMAP = "plasma_r"
ERROR_CMAP = "magma"


def image_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float] | None:
    """a1..log10 of one prediction as the evaluation computes them (Eigen crop); None without valid pixels."""
    try:
        return compute_errors(eigen_crop(np.asarray(gt, np.float32)), eigen_crop(pred))
    except PyapproxError:
        return None


def write_panel(path: Path, rgb: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray], title: str = "",
                error_of: list[str] | None = None) -> Path:
    """Write a grid PNG of one image: input and ground truth on the first row, then a row per prediction
    with ``|prediction - gt|`` beside it (for the names in ``error_of``; every prediction when None).

    Ground truth and predictions share one depth colour scale in metres (the ground truth's 0.5-99.5th
    percentiles), the error maps another from 0; pixels without valid ground truth are grey. Each
    prediction's title gives its a1 and rel on this image. Each map is IMAGE_INCHES x DPI (440) pixels
    wide. Written atomically; returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not preds:
        raise PyapproxError("write_panel: no predictions to show")
    gt = np.asarray(gt, np.float32)
    for name, pred in preds.items():
        if np.shape(pred) != gt.shape:
            raise PyapproxError(f"write_panel: prediction {name!r} has shape {np.shape(pred)}, the ground truth "
                                f"{gt.shape}; they must match")
    valid = np.isfinite(gt) & (gt > 0)
    error_of = list(preds) if error_of is None else [n for n in error_of if n in preds]
    vmin, vmax = (float(v) for v in np.percentile(gt[valid], [0.5, 99.5])) if valid.any() else (0.0, 10.0)
    vmax = max(vmax, vmin + 1e-3)
    errors = {n: np.ma.masked_where(~valid, np.abs(np.asarray(preds[n], np.float32) - gt)) for n in error_of}
    emax = max([float(np.percentile(e.compressed(), 99)) for e in errors.values() if e.count()] + [1e-3])
    depth_cmap = plt.get_cmap(DEPTH_CMAP).with_extremes(bad="#bbbbbb")
    error_cmap = plt.get_cmap(ERROR_CMAP).with_extremes(bad="#bbbbbb")

    # fixed layout in inches: per cell a title line, the map, a colour bar and its labels to the right
    height, width = gt.shape
    img_w = IMAGE_INCHES
    img_h = img_w * height / width
    title_h, gap_h, top_h = 0.35, 0.15, 0.75
    cell_w = 0.15 + img_w + 0.1 + 0.18 + 0.85
    nrows = 1 + len(preds)
    fig_w, fig_h = 2 * cell_w, top_h + nrows * (title_h + img_h + gap_h)
    fig = plt.figure(figsize=(fig_w, fig_h))

    def axes_at(row, col):
        x = col * cell_w + 0.15
        y = fig_h - top_h - row * (title_h + img_h + gap_h) - title_h - img_h
        ax = fig.add_axes((x / fig_w, y / fig_h, img_w / fig_w, img_h / fig_h))
        cax = fig.add_axes(((x + img_w + 0.1) / fig_w, y / fig_h, 0.18 / fig_w, img_h / fig_h))
        ax.set_xticks([])
        ax.set_yticks([])
        return ax, cax

    def show(row, col, img, cmap, lo, hi, label, name):
        ax, cax = axes_at(row, col)
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="antialiased")
        ax.set_title(name, fontsize=11)
        bar = fig.colorbar(im, cax=cax, extend="both" if lo > 0 else "max")
        bar.set_label(label, fontsize=10)
        bar.ax.tick_params(labelsize=9)

    ax, cax = axes_at(0, 0)
    ax.imshow(rgb)
    ax.set_title("input", fontsize=11)
    cax.set_visible(False)
    show(0, 1, np.ma.masked_where(~valid, gt), depth_cmap, vmin, vmax, "depth (m)", "ground truth")
    for row, (name, pred) in enumerate(preds.items(), start=1):
        m = image_metrics(gt, pred)
        label = f"{name}: a1 {m['a1']:.3f}, rel {m['rel']:.3f}" if m else name
        show(row, 0, pred, depth_cmap, vmin, vmax, "depth (m)", label)
        if name in errors:
            show(row, 1, errors[name], error_cmap, 0, emax, "|error| (m)", f"|{name} - ground truth|")
    head = title + ("\n" if title else "") + "a1 and rel of this image (Eigen crop); grey: no ground truth"
    fig.suptitle(head, fontsize=12, y=1 - 0.12 / fig_h, va="top")
    with pio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return Path(path)
