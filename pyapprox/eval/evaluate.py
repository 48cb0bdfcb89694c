"""Score float, exact-quantized and approximate variants of the depth network side by side."""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import METRIC_NAMES, compute_errors, eigen_crop, prediction_to_depth
from pyapprox.nn.config import AccelConfig


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
    from pyapprox.data import open_dataset
    from pyapprox.models.densedepth_mbv2 import preprocess

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
    from pyapprox.nn.plan import approximate
    from pyapprox.nn.quant import quantize_model

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
def predict_depth(model, rgb: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Depth in metres at the input resolution for one uint8 image [H, W, 3]."""
    from pyapprox.models.densedepth_mbv2 import preprocess

    x = preprocess(rgb)
    if device is not None:
        x = x.to(device)
    p = model(x).cpu().numpy()
    if not np.isfinite(p).all():
        raise PyapproxError("the network produced NaN/inf predictions")
    return prediction_to_depth(p)[0]


def evaluate(variants: list[Variant], data, progress: bool = True, keep: int = 0) -> dict:
    """Metrics per variant (per image, then averaged) with the Eigen crop; ``keep`` predictions are kept
    for the first images (for panels)."""
    from tqdm import tqdm

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
        per_image = []
        t0 = time.perf_counter()
        for i in tqdm(range(len(data)), desc=f"eval {v.name}", unit="img", disable=not progress, leave=False):
            rgb, gt = data[i]
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or gt.shape != rgb.shape[:2]:
                raise PyapproxError(f"{data.name} image {i}: expected uint8 [H, W, 3] RGB and [H, W] depth, "
                                    f"got {rgb.dtype} {rgb.shape} and {gt.shape}")
            pred = predict_depth(v.model, rgb, device)
            per_image.append(compute_errors(eigen_crop(np.asarray(gt, np.float32)), eigen_crop(pred),
                                            _where=f"{data.name} image {i}"))
            if i < keep:
                kept.setdefault(v.name, []).append(pred)
        seconds = time.perf_counter() - t0
        overflows = {}
        from pyapprox.nn.quant import qconv_layers

        for n, m in qconv_layers(v.model):
            if m.conv.overflows:
                overflows[n] = int(m.conv.overflows)
        out[v.name] = {
            "metrics": {k: float(np.mean([r[k] for r in per_image])) for k in METRIC_NAMES},
            "per_image": per_image,
            "images": len(per_image),
            "seconds": round(seconds, 3),
            "images_per_s": round(len(per_image) / seconds, 3) if seconds > 0 else None,
            "overflows": overflows,
            "device": str(device),
            "plan": {"rules": v.rules, "assignment": v.assignment} if v.rules else None,
        }
    return {"variants": out, "predictions": kept}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def format_table(results: dict) -> str:
    lines = [f"{'variant':<22}" + "".join(f"{k:>9}" for k in METRIC_NAMES) + f"{'img/s':>9}"]
    for name, r in results["variants"].items():
        m = r["metrics"]
        lines.append(f"{name:<22}" + "".join(f"{m[k]:>9.4f}" for k in METRIC_NAMES)
                     + f"{(r['images_per_s'] or 0):>9.2f}")
    return "\n".join(lines)
