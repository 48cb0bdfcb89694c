"""Score float, exact-quantized and approximate variants of the depth network side by side."""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pyapprox.data import open_dataset
from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import (
    METRIC_NAMES,
    PROTOCOL_TEXT,
    MetricAccumulator,
    check_protocol,
    eigen_crop,
    flip_average,
    prediction_to_depth,
)
from pyapprox.models.densedepth_mbv2 import preprocess
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate
from pyapprox.nn.quant import qconv_layers, quantize_model


@dataclass
class Variant:
    """One network to score: ``float``, ``exact`` (quantized, exact multiplier) or a plan's name."""

    name: str
    model: torch.nn.Module
    rules: list = field(default_factory=list)
    assignment: dict = field(default_factory=dict)


def calibration_images(data, cfg: AccelConfig, calib_spec: str | None, progress: bool) -> list[torch.Tensor]:
    """Calibration inputs: ``calib_spec`` if given, else the synthetic val split for synthetic data, else the
    first images of ``data`` itself."""
    if calib_spec is None:
        name = str(getattr(data, "name", ""))
        calib_spec = ("synthetic:val" + ("@" + name.split("@")[1] if "@" in name else "")
                      if name.startswith("synthetic") else None)
    src = open_dataset(calib_spec, limit=cfg.calib_images, progress=progress) if calib_spec else data
    n = min(cfg.calib_images, len(src))
    return [preprocess(src[i][0]) for i in range(n)]


def build_variants(model, data, cfg: AccelConfig, plans: dict[str, list], calib_spec=None, backend="auto",
                   include_float=True, include_exact=True, progress=True) -> list[Variant]:
    """Float model, its exact-quantized version, and one approximate copy per named plan."""
    variants = [Variant("float", model)] if include_float else []
    if not (include_exact or plans):
        return variants
    with torch.no_grad():
        qmodel = quantize_model(model, calibration_images(data, cfg, calib_spec, progress), cfg, backend)
    if include_exact:
        variants.append(Variant("exact", qmodel))
    for name, rules in plans.items():
        m = copy.deepcopy(qmodel)
        assignment = approximate(m, rules)
        variants.append(Variant(name, m, rules, assignment))
    return variants


def default_device() -> torch.device:
    """The GPU when one is present (the LUT convolutions then run as PyTorch ops on it), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict_depth(model, rgb: np.ndarray, device: torch.device | None = None, flip: bool = False) -> np.ndarray:
    """Depth in metres at the input resolution for one uint8 image [H, W, 3] (float32; float64 with ``flip``).

    With ``flip`` the image mirrored left-right is predicted too, and the result is :func:`flip_average` of
    the two depth maps (after the clip(1000 / p) mapping and upscaling, as in DenseDepth's evaluate).
    """
    images = np.stack([rgb, rgb[:, ::-1]]) if flip else rgb
    x = preprocess(images)
    if device is not None:
        x = x.to(device)
    p = torch.cat([model(x[i:i + 1]) for i in range(x.shape[0])]).cpu().numpy()
    if not np.isfinite(p).all():
        raise PyapproxError("the network produced NaN/inf predictions")
    depth = prediction_to_depth(p)
    return flip_average(depth[0], depth[1]) if flip else depth[0]


def evaluate(variants: list[Variant], data, progress: bool = True, keep: int = 0, protocol: str = "per-image",
             flip: bool = False) -> dict:
    """Metrics per variant with the Eigen crop under ``protocol`` (see :data:`pyapprox.eval.metrics.PROTOCOLS`),
    optionally with flip averaging (:func:`predict_depth`); each variant's result records ``protocol`` and
    ``flip``, and ``per_image`` holds every image's standard per-image metrics. ``keep`` predictions are kept
    for the first images (for panels)."""
    check_protocol(protocol)
    if len(data) == 0:
        raise PyapproxError(f"data set {getattr(data, 'name', '')} is empty")
    out = {}
    kept = {}
    device = default_device()
    for v in variants:
        v.model.to(device)
        for m in v.model.modules():
            if hasattr(m, "overflows"):
                m.overflows = 0
        acc = MetricAccumulator(protocol)
        t0 = time.perf_counter()
        for i in tqdm(range(len(data)), desc=f"eval {v.name}", unit="img", disable=not progress, leave=False):
            rgb, gt = data[i]
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or gt.shape != rgb.shape[:2]:
                raise PyapproxError(f"{data.name} image {i}: expected uint8 [H, W, 3] RGB and [H, W] depth, "
                                    f"got {rgb.dtype} {rgb.shape} and {gt.shape}")
            pred = predict_depth(v.model, rgb, device, flip=flip)
            acc.add(eigen_crop(np.asarray(gt, np.float32)), eigen_crop(pred), where=f"{data.name} image {i}")
            if i < keep:
                kept.setdefault(v.name, []).append(pred)
        seconds = time.perf_counter() - t0
        overflows = {}
        for n, m in qconv_layers(v.model):
            if m.conv.overflows:
                overflows[n] = int(m.conv.overflows)
        out[v.name] = {
            "metrics": acc.result(),
            "protocol": protocol,
            "flip": bool(flip),
            "per_image": acc.per_image,
            "images": acc.images,
            "seconds": round(seconds, 3),
            "images_per_s": round(acc.images / seconds, 3) if seconds > 0 else None,
            "overflows": overflows,
            "device": str(device),
            "plan": {"rules": v.rules, "assignment": v.assignment} if v.rules else None,
        }
    return {"variants": out, "predictions": kept}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def protocol_line(protocol: str, flip: bool) -> str:
    """One line naming an evaluation protocol and whether flip averaging was on."""
    return f"protocol: {PROTOCOL_TEXT[check_protocol(protocol)]}; " + ("flip averaged" if flip else "no flip")


def format_table(results: dict) -> str:
    """Metrics table of ``evaluate``'s result, headed by the protocol line (a column when variants differ).

    A variant result without ``protocol`` / ``flip`` (written before they were recorded) was per-image, no flip.
    """
    rows = results["variants"]
    labels = {name: (r.get("protocol", "per-image"), bool(r.get("flip", False))) for name, r in rows.items()}
    mixed = len(set(labels.values())) > 1
    lines = [] if mixed or not labels else [protocol_line(*next(iter(labels.values())))]
    lines.append(f"{'variant':<22}" + "".join(f"{k:>9}" for k in METRIC_NAMES) + f"{'img/s':>9}"
                 + ("  protocol" if mixed else ""))
    for name, r in rows.items():
        m = r["metrics"]
        proto, flip = labels[name]
        lines.append(f"{name:<22}" + "".join(f"{m[k]:>9.4f}" for k in METRIC_NAMES)
                     + f"{(r['images_per_s'] or 0):>9.2f}" + (f"  {proto}{' +flip' if flip else ''}" if mixed else ""))
    return "\n".join(lines)
