"""Depth-estimation metrics and the two NYU evaluation protocols of DenseDepth's code.

Steps shared by both protocols:

1. the network output p (DenseDepth "depth-norm", half resolution) becomes metres with
   :func:`prediction_to_depth`: ``clip(1000 / p, 10, 1000) / 1000 * 10`` with numpy's division
   semantics, exactly as DenseDepth's ``predict`` (p < 0, -0.0 and +-inf give 0.1 m, +0.0 gives 10 m),
   then 2x bilinear upscaling;
2. optionally (``flip``, off by default) the prediction for the horizontally mirrored image is mirrored
   back and averaged in (:func:`flip_average`);
3. ground truth and prediction are cropped to the Eigen et al. region (:data:`EIGEN_CROP`, :func:`eigen_crop`);
4. metrics over the pixels whose ground truth is finite and > 0, under one of :data:`PROTOCOLS`:

   * ``per-image`` (default): :func:`compute_errors` per image, averaged over images, with the standard
     rel = mean |gt - pred| / gt, as DenseDepth's ``Tensorflow/evaluate.py`` computes (it always flips).
   * ``densedepth``: DenseDepth's current ``utils.evaluate``: all pixels of the set pooled, and its
     ``compute_errors(gt, pred)`` called as ``compute_errors(predictions, testSetDepths)``, arguments
     swapped, so rel = mean |gt - pred| / pred over all pixels (divided by the *prediction*);
     rms = sqrt(mean (gt - pred)^2 over all pixels); a1..a3 and log10 are symmetric in the two.

   With equal numbers of valid pixels per image the two protocols give the same a1..a3 and log10, but
   not the same rel (other denominator) nor rms (RMS over all pixels vs mean of per-image RMS).
   :class:`MetricAccumulator` computes either one image at a time (running sums for ``densedepth``).

Differences from DenseDepth's code, on purpose: upscaling uses torch's bilinear interpolation
(``align_corners=False``) instead of skimage ``resize(..., anti_aliasing=True)``; flip averaging is
opt-in (DenseDepth's scripts always flip); pixels whose ground truth is not finite > 0 are skipped
(DenseDepth's code masks nothing: on its dense test depths that is the same, elsewhere it would return
inf/NaN); and every image counts (DenseDepth evaluates ``len // 6`` batches of 6, dropping up to 5
trailing images; none of the 654 NYU test images).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox.data.crop import EIGEN_CROP, EIGEN_REFERENCE_SIZE
from pyapprox.errors import PyapproxError

__all__ = [
    "MIN_DEPTH_NORM",
    "MAX_DEPTH_NORM",
    "MAX_DEPTH_M",
    "EIGEN_CROP",
    "EIGEN_REFERENCE_SIZE",
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "PROTOCOLS",
    "PROTOCOL_TEXT",
    "check_protocol",
    "prediction_to_depth",
    "flip_average",
    "eigen_crop_box",
    "eigen_crop",
    "compute_errors",
    "MetricAccumulator",
    "evaluate_depth",
]

MIN_DEPTH_NORM = 10.0  # DenseDepth minDepth (in its 0..1000 units)
MAX_DEPTH_NORM = 1000.0  # DenseDepth maxDepth
MAX_DEPTH_M = 10.0  # metres corresponding to MAX_DEPTH_NORM


METRIC_NAMES = ("a1", "a2", "a3", "rel", "rms", "log10")
HIGHER_IS_BETTER = {"a1": True, "a2": True, "a3": True, "rel": False, "rms": False, "log10": False}

PROTOCOLS = ("per-image", "densedepth")
# one line per protocol, for tables and reports
PROTOCOL_TEXT = {
    "per-image": "per-image (metrics per image, averaged over images; rel = |gt-pred|/gt; DenseDepth Tensorflow/evaluate.py)",
    "densedepth": "densedepth (all pixels of the set pooled; rel = |gt-pred|/pred; DenseDepth utils.evaluate)",
}


def check_protocol(protocol: Any, what: str = "protocol") -> str:
    """Return ``protocol`` if it is one of :data:`PROTOCOLS`, else raise a one-line PyapproxError."""
    if protocol not in PROTOCOLS:
        raise PyapproxError(f"{what} {protocol!r}: unknown evaluation protocol; valid: {', '.join(PROTOCOLS)}")
    return protocol


def prediction_to_depth(p: Any) -> np.ndarray:
    """Network output p [N, h, w] (or [N, 1, h, w]) -> depth in metres [N, 2h, 2w], float32.

    depth = clip(1000 / p, 10, 1000) / 1000 * 10, i.e. within [0.1, 10] m, with numpy's division
    semantics as in DenseDepth's ``predict``: p < 0 (including -0.0 and -inf) gives a negative or -0
    quotient, clipped to 0.1 m; +0.0 gives +inf, i.e. 10 m; +inf gives 0.1 m. The result is then upscaled
    x2 with ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)`` (DenseDepth used
    skimage's resize; values differ slightly at edges). NaN input is refused.
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
    with np.errstate(divide="ignore", over="ignore"):
        norm = MAX_DEPTH_NORM / p  # +0 -> +inf, -0 -> -inf, +-inf -> +-0, tiny p -> +-inf
    depth = np.clip(norm, MIN_DEPTH_NORM, MAX_DEPTH_NORM) / MAX_DEPTH_NORM * MAX_DEPTH_M
    t = torch.from_numpy(depth.astype(np.float32))[:, None]
    up = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
    return up[:, 0].numpy()


def flip_average(pred: Any, pred_of_mirrored: Any) -> np.ndarray:
    """Flip test-time augmentation, float64: ``0.5 * pred + 0.5 * pred_of_mirrored`` mirrored back (last axis).

    Both are depths in metres after :func:`prediction_to_depth` (clipped, upscaled), as in DenseDepth's
    evaluate: ``0.5 * pred_y + 0.5 * fliplr(pred_y_flip)``. The upscaling is linear and mirror-symmetric,
    so this equals averaging the clipped depths before upscaling.
    """
    a = np.asarray(pred, dtype=np.float64)
    b = np.asarray(pred_of_mirrored, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise PyapproxError(f"flip_average: expected two depth maps [..., H, W] of equal shape, got {a.shape} and {b.shape}")
    return 0.5 * a + 0.5 * b[..., ::-1]


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


def _valid_pixels(gt: Any, pred: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) float64 at the pixels whose ground truth is finite and > 0; refuses bad predictions there."""
    gt, pred = _check_pair(gt, pred, where)
    if np.isnan(pred).any():
        raise PyapproxError(f"{where}: prediction contains NaN")
    valid = np.isfinite(gt) & (gt > 0)
    if not valid.any():
        raise PyapproxError(f"{where}: no valid ground-truth pixels (need finite depth > 0)")
    g = gt[valid]
    q = pred[valid]
    if not (np.isfinite(q).all() and (q > 0).all()):
        raise PyapproxError(f"{where}: prediction must be finite and > 0 metres at every valid pixel (min {q.min()}, max {q.max()})")
    return g, q


def _errors(g: np.ndarray, q: np.ndarray, pooled: dict[str, float] | None = None) -> dict[str, float]:
    """Per-image metrics of valid pixels g, q; with ``pooled``, also add this image's densedepth sums to it."""
    thresh = np.maximum(g / q, q / g)
    below = [thresh < 1.25**n for n in (1, 2, 3)]
    diff = np.abs(g - q)
    sq = (g - q) ** 2
    dlog = np.abs(np.log10(g) - np.log10(q))
    if pooled is not None:
        pooled["pixels"] += g.size
        for n, b in enumerate(below, 1):
            pooled[f"a{n}"] += int(np.count_nonzero(b))
        pooled["rel"] += float(np.sum(diff / q))
        pooled["sq"] += float(np.sum(sq))
        pooled["log10"] += float(np.sum(dlog))
    return {
        "a1": float(below[0].mean()),
        "a2": float(below[1].mean()),
        "a3": float(below[2].mean()),
        "rel": float(np.mean(diff / g)),
        "rms": float(np.sqrt(np.mean(sq))),
        "log10": float(np.mean(dlog)),
    }


def compute_errors(gt: Any, pred: Any, *, _where: str = "compute_errors") -> dict[str, float]:
    """Metrics for one depth map (metres), over pixels whose ground truth is finite and > 0.

    a_n = fraction with max(gt/pred, pred/gt) < 1.25**n; rel = mean |gt - pred| / gt;
    rms = sqrt(mean (gt - pred)^2); log10 = mean |log10 gt - log10 pred|.
    Predictions at valid pixels must be finite and > 0 (NaN is refused).
    """
    return _errors(*_valid_pixels(gt, pred, _where))


class MetricAccumulator:
    """Metrics of a set of depth maps fed one image at a time, under one of :data:`PROTOCOLS`.

    :meth:`add` validates an image like :func:`compute_errors` and returns (and keeps in ``per_image``)
    its per-image metrics, which use the standard definitions whatever the protocol. :meth:`result`
    gives the set's metrics: the mean of ``per_image`` for ``per-image``; for ``densedepth`` the pooled
    values from running sums (threshold counts, sum |gt-pred|/pred, sum (gt-pred)^2, sum |log10 gt -
    log10 pred|, pixel count), so no image is kept.
    """

    def __init__(self, protocol: str = "per-image"):
        self.protocol = check_protocol(protocol)
        self.per_image: list[dict[str, float]] = []
        self._sums = {"pixels": 0, "a1": 0, "a2": 0, "a3": 0, "rel": 0.0, "sq": 0.0, "log10": 0.0}

    @property
    def images(self) -> int:
        return len(self.per_image)

    def add(self, gt: Any, pred: Any, *, where: str = "MetricAccumulator.add") -> dict[str, float]:
        """Add one ground-truth / prediction pair (metres, equal shapes); returns its per-image metrics."""
        g, q = _valid_pixels(gt, pred, where)
        m = _errors(g, q, self._sums if self.protocol == "densedepth" else None)
        self.per_image.append(m)
        return m

    def result(self) -> dict[str, float]:
        """{a1, a2, a3, rel, rms, log10} of all images added so far under ``self.protocol``."""
        if not self.per_image:
            raise PyapproxError("MetricAccumulator: no images were added; nothing to average")
        if self.protocol == "per-image":
            return {k: float(np.mean([m[k] for m in self.per_image])) for k in METRIC_NAMES}
        s = self._sums
        n = s["pixels"]
        return {"a1": s["a1"] / n, "a2": s["a2"] / n, "a3": s["a3"] / n, "rel": s["rel"] / n,
                "rms": float(np.sqrt(s["sq"] / n)), "log10": s["log10"] / n}


def evaluate_depth(gt_batch: Any, pred_batch: Any, *, crop: bool = False, protocol: str = "per-image") -> dict[str, Any]:
    """Metrics of a batch: {a1, a2, a3, rel, rms, log10, 'per_image': [dict, ...], 'protocol': str}.

    ``gt_batch`` and ``pred_batch`` are [N, H, W] metres (or sequences of [H, W] maps of equal
    shape). With ``crop=True`` both are first cropped with :func:`eigen_crop`. ``protocol`` (one of
    :data:`PROTOCOLS`, default ``per-image``) decides how images are combined; ``per_image`` always
    holds each image's standard metrics.
    """
    acc = MetricAccumulator(check_protocol(protocol, "evaluate_depth: protocol"))
    if isinstance(pred_batch, torch.Tensor):
        pred_batch = pred_batch.detach().cpu().numpy()
    if isinstance(gt_batch, torch.Tensor):
        gt_batch = gt_batch.detach().cpu().numpy()
    # keep the caller's float dtype here (the full test set in float64 would be ~2.7 GB);
    # the accumulator converts one image at a time
    gt, pred = _check_pair(gt_batch, pred_batch, "evaluate_depth", dtype=None)
    if not (np.issubdtype(gt.dtype, np.number) and np.issubdtype(pred.dtype, np.number)):
        raise PyapproxError(f"evaluate_depth: inputs must be numeric, got {gt.dtype} and {pred.dtype}")
    if gt.ndim != 3:
        raise PyapproxError(f"evaluate_depth: expected [N, H, W] depth maps, got shape {tuple(gt.shape)}")
    if crop:
        gt, pred = eigen_crop(gt), eigen_crop(pred)
    for i in range(gt.shape[0]):
        acc.add(gt[i], pred[i], where=f"evaluate_depth: image {i}")
    out: dict[str, Any] = acc.result()
    out["per_image"] = acc.per_image
    out["protocol"] = acc.protocol
    return out
