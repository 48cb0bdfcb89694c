"""A user's own network inputs: an ``.npy`` array or a folder of images, as tensors [1, ...] ready for the model.

* ``.npy`` holding float values [N, ...]: used as they are, one input per leading index (the model's own
  input format); uint8 [N, H, W, 3] or [H, W, 3]: RGB images, preprocessed as below.
* a folder of ``.png`` / ``.jpg`` / ``.jpeg`` / ``.bmp`` images (sorted by name), RGB, preprocessed as below.

Preprocessing of images (:data:`PREPROCESS`): ``imagenet`` (values in [0, 1], then ImageNet mean/std, as
torchvision's models expect; the default), ``unit`` (values in [0, 1]) or ``none`` (0..255 as float).
Files are untrusted: arrays load without pickle, sizes are bounded, values must be finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pyapprox.errors import PyapproxError
from pyapprox.io import load_npy
from pyapprox.models.densedepth_mbv2 import IMAGENET_MEAN, IMAGENET_STD

PREPROCESS = ("imagenet", "unit", "none")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MAX_INPUTS = 10_000
MAX_VALUES = 1 << 28  # values in all inputs together (1 GiB of float32)
_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)


def _images_to_tensors(rgb: np.ndarray, preprocess: str) -> list[torch.Tensor]:
    x = rgb.astype(np.float32)
    if preprocess != "none":
        x = x / 255.0
    if preprocess == "imagenet":
        x = (x - _MEAN) / _STD
    return [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None] for im in x]


def load_inputs(spec: str | Path, preprocess: str = "imagenet", limit: int | None = None) -> list[torch.Tensor]:
    """Inputs from ``spec`` (see the module docstring), at most ``limit`` of them."""
    if preprocess not in PREPROCESS:
        raise PyapproxError(f"--preprocess {preprocess!r}: expected one of {', '.join(PREPROCESS)}")
    if limit is not None and limit < 1:
        raise PyapproxError(f"--limit must be at least 1, got {limit}")
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise PyapproxError(f"inputs {path}: no {', '.join(IMAGE_SUFFIXES)} images in this folder")
        files = files[:limit] if limit else files[:MAX_INPUTS]
        images = []
        for f in files:
            try:
                with Image.open(f) as im:
                    if im.width * im.height > 1 << 26:
                        raise PyapproxError(f"input image {f}: {im.width}x{im.height} pixels is too large")
                    images.append(np.asarray(im.convert("RGB")))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise PyapproxError(f"input image {f}: not a readable image ({exc})") from None
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise PyapproxError(f"inputs {path}: images of different sizes {sorted(shapes)[:3]}; resize them to one")
        return _images_to_tensors(np.stack(images), preprocess)
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise PyapproxError(f"inputs {spec}: expected an .npy array or a folder of images")
    try:
        arr = load_npy(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise PyapproxError(f"inputs {path}: not a readable .npy array ({exc})") from None
    if arr.dtype == np.uint8 and arr.ndim in (3, 4) and arr.shape[-1] == 3:
        rgb = np.asarray(arr if arr.ndim == 4 else arr[None])
        return _images_to_tensors(rgb[:limit] if limit else rgb, preprocess)
    if not np.issubdtype(arr.dtype, np.floating) or arr.ndim < 2:
        raise PyapproxError(f"inputs {path}: expected float values [N, ...] (the model's input) or uint8 RGB "
                            f"images [N, H, W, 3]; got {arr.dtype} {tuple(arr.shape)}")
    arr = arr[:limit] if limit else arr[:MAX_INPUTS]
    if arr.size > MAX_VALUES:
        raise PyapproxError(f"inputs {path}: {arr.size:,} values, more than {MAX_VALUES:,}; use --limit")
    data = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(data).all():
        raise PyapproxError(f"inputs {path}: holds NaN or infinite values")
    return [torch.from_numpy(np.array(x, copy=True))[None] for x in data]
