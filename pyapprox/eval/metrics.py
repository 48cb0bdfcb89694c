"""Depth-estimation metrics and the DenseDepth NYU evaluation protocol.

Protocol (DenseDepth, ``utils.evaluate``):

1. the network output p (DenseDepth "depth-norm", half resolution) becomes metres with
   :func:`prediction_to_depth`: ``clip(1000 / p, 10, 1000) / 1000 * 10``, then 2x bilinear upscaling;
2. ground truth and prediction are cropped to the Eigen et al. region (:data:`EIGEN_CROP`,
   :func:`eigen_crop`);
3. :func:`compute_errors` gives a1/a2/a3, rel, rms, log10 per image; :func:`evaluate_depth`
   averages them over images.

Differences from DenseDepth's script, on purpose: upscaling uses torch's bilinear interpolation
(``align_corners=False``) instead of skimage ``resize(..., anti_aliasing=True)``; no flip
test-time augmentation is applied here; and metrics are averaged per image (DenseDepth pooled
all pixels of the test set, which gives the same a1..a3/rel/log10 when every image has the same
number of valid pixels, but a different rms: mean of per-image RMS vs RMS over all pixels).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox.errors import PyapproxError

__all__ = [
    "MIN_DEPTH_NORM",
    "MAX_DEPTH_NORM",
    "MAX_DEPTH_M",
    "EIGEN_CROP",
    "EIGEN_REFERENCE_SIZE",
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "prediction_to_depth",
    "eigen_crop_box",
    "eigen_crop",
    "compute_errors",
    "evaluate_depth",
]

MIN_DEPTH_NORM = 10.0  # DenseDepth minDepth (in its 0..1000 units)
MAX_DEPTH_NORM = 1000.0  # DenseDepth maxDepth
MAX_DEPTH_M = 10.0  # metres corresponding to MAX_DEPTH_NORM

# Eigen crop for 480x640 images, half-open: rows 20:460, cols 24:616 (DenseDepth's
# eigen_test_crop.npy holds the inclusive [20, 459, 24, 615]).
EIGEN_CROP = (20, 460, 24, 616)
EIGEN_REFERENCE_SIZE = (480, 640)

METRIC_NAMES = ("a1", "a2", "a3", "rel", "rms", "log10")
HIGHER_IS_BETTER = {"a1": True, "a2": True, "a3": True, "rel": False, "rms": False, "log10": False}


def prediction_to_depth(p: Any) -> np.ndarray:
    """Network output p [N, h, w] (or [N, 1, h, w]) -> depth in metres [N, 2h, 2w], float32.

    depth = clip(1000 / p, 10, 1000) / 1000 * 10, i.e. within [0.1, 10] m. Non-positive p
    (including -inf) maps to the maximum depth 10 m; +inf maps to 0.1 m. The result is then
    upscaled x2 with ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``
    (DenseDepth used skimage's resize; values differ slightly at edges). NaN input is refused.
    """
    if isinstance(p, torch.Tensor):
        p = p.detach().cpu().numpy()
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 4 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 3:
        raise PyapproxError(f"prediction_to_depth: expected predictions of shape [N, h, w] or [N, 1, h, w], got {tuple(p.shape)}")
    if p.size == 0:
        raise PyapproxError(f"prediction_to_depth: empty predictions (shape {tuple(p.shape)})")
    if np.isnan(p).any():
        idx = int(np.argwhere(np.isnan(p).reshape(p.shape[0], -1).any(axis=1))[0, 0])
        raise PyapproxError(f"prediction_to_depth: prediction {idx} contains NaN; the network output must be finite")
    positive = p > 0
    norm = np.full(p.shape, MAX_DEPTH_NORM)
    np.divide(MAX_DEPTH_NORM, p, out=norm, where=positive)  # +inf -> 0 -> clipped to 10
    depth = np.clip(norm, MIN_DEPTH_NORM, MAX_DEPTH_NORM) / MAX_DEPTH_NORM * MAX_DEPTH_M
    t = torch.from_numpy(depth.astype(np.float32))[:, None]
    up = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
    return up[:, 0].numpy()


def eigen_crop_box(height: int, width: int, crop: Sequence[int] = EIGEN_CROP) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), half-open, of ``crop`` (given for 480x640) scaled to height x width.

    Bounds scale proportionally and are rounded to the nearest pixel: 480x640 -> (20, 460, 24, 616),
    240x320 -> (10, 230, 12, 308).
    """
    rh, rw = EIGEN_REFERENCE_SIZE
    if (height, width) == (rh, rw):
        return tuple(int(c) for c in crop)  # type: ignore[return-value]
    t, b, l, r = crop
    return (
        int(round(t * height / rh)),
        int(round(b * height / rh)),
        int(round(l * width / rw)),
        int(round(r * width / rw)),
    )


def eigen_crop(arr: Any, crop: Sequence[int] = EIGEN_CROP) -> np.ndarray:
    """Crop the last two axes of ``arr`` ([..., H, W]) to the Eigen region (see :func:`eigen_crop_box`)."""
    arr = np.asarray(arr)
    if arr.ndim < 2:
        raise PyapproxError(f"eigen_crop: expected an array [..., H, W], got shape {tuple(arr.shape)}")
    t, b, l, r = eigen_crop_box(arr.shape[-2], arr.shape[-1], crop)
    return arr[..., t:b, l:r]


def _check_pair(gt: Any, pred: Any, what: str, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    try:
        gt = np.asarray(gt, dtype=dtype)
        pred = np.asarray(pred, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise PyapproxError(f"{what}: inputs must be numeric arrays of equal shape ({e})") from None
    if gt.shape != pred.shape:
        raise PyapproxError(f"{what}: ground truth shape {tuple(gt.shape)} != prediction shape {tuple(pred.shape)}")
    if gt.size == 0:
        raise PyapproxError(f"{what}: empty input (shape {tuple(gt.shape)})")
    return gt, pred


def compute_errors(gt: Any, pred: Any, *, _where: str = "compute_errors") -> dict[str, float]:
    """Metrics for one depth map (metres), over pixels whose ground truth is finite and > 0.

    a_n = fraction with max(gt/pred, pred/gt) < 1.25**n; rel = mean |gt - pred| / gt;
    rms = sqrt(mean (gt - pred)^2); log10 = mean |log10 gt - log10 pred|.
    Predictions at valid pixels must be finite and > 0 (NaN is refused).
    """
    gt, pred = _check_pair(gt, pred, _where)
    if np.isnan(pred).any():
        raise PyapproxError(f"{_where}: prediction contains NaN")
    valid = np.isfinite(gt) & (gt > 0)
    if not valid.any():
        raise PyapproxError(f"{_where}: no valid ground-truth pixels (need finite depth > 0)")
    g = gt[valid]
    q = pred[valid]
    if not (np.isfinite(q).all() and (q > 0).all()):
        raise PyapproxError(f"{_where}: prediction must be finite and > 0 metres at every valid pixel (min {q.min()}, max {q.max()})")
    thresh = np.maximum(g / q, q / g)
    return {
        "a1": float((thresh < 1.25).mean()),
        "a2": float((thresh < 1.25**2).mean()),
        "a3": float((thresh < 1.25**3).mean()),
        "rel": float(np.mean(np.abs(g - q) / g)),
        "rms": float(np.sqrt(np.mean((g - q) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(g) - np.log10(q)))),
    }


def evaluate_depth(gt_batch: Any, pred_batch: Any, *, crop: bool = False) -> dict[str, Any]:
    """Metrics per image, averaged over images: {a1, a2, a3, rel, rms, log10, 'per_image': [dict, ...]}.

    ``gt_batch`` and ``pred_batch`` are [N, H, W] metres (or sequences of [H, W] maps of equal
    shape). With ``crop=True`` both are first cropped with :func:`eigen_crop`.
    """
    if isinstance(pred_batch, torch.Tensor):
        pred_batch = pred_batch.detach().cpu().numpy()
    if isinstance(gt_batch, torch.Tensor):
        gt_batch = gt_batch.detach().cpu().numpy()
    # keep the caller's float dtype here (the full test set in float64 would be ~2.7 GB);
    # compute_errors converts one image at a time
    gt, pred = _check_pair(gt_batch, pred_batch, "evaluate_depth", dtype=None)
    if not (np.issubdtype(gt.dtype, np.number) and np.issubdtype(pred.dtype, np.number)):
        raise PyapproxError(f"evaluate_depth: inputs must be numeric, got {gt.dtype} and {pred.dtype}")
    if gt.ndim != 3:
        raise PyapproxError(f"evaluate_depth: expected [N, H, W] depth maps, got shape {tuple(gt.shape)}")
    if crop:
        gt, pred = eigen_crop(gt), eigen_crop(pred)
    per_image = [compute_errors(gt[i], pred[i], _where=f"evaluate_depth: image {i}") for i in range(gt.shape[0])]
    out: dict[str, Any] = {name: float(np.mean([m[name] for m in per_image])) for name in METRIC_NAMES}
    out["per_image"] = per_image
    return out
