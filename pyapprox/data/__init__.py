"""Data sets: the embedded synthetic indoor scenes and the real NYU Depth v2 test formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError

SYNTHETIC_NAMES = ("synthetic", "synthetic:test", "synthetic:val", "synthetic:train")
#: Rendered resolutions accepted (each side, pixels): the network needs at least 32; beyond 2048 a single
#: image's quantized activations no longer fit a worker's memory.
MIN_SIDE, MAX_SIDE = 32, 2048


def check_resolution(height: int, width: int, what: str) -> None:
    """Refuse a synthetic rendering resolution outside :data:`MIN_SIDE`..:data:`MAX_SIDE`, before any work."""
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or not MIN_SIDE <= v <= MAX_SIDE:
            raise PyapproxError(f"{what}: {name} {v!r} is outside {MIN_SIDE}..{MAX_SIDE} pixels")


class ArrayDataset:
    """In-memory images: ``ds[i] -> (rgb uint8 [H, W, 3], depth float32 [H, W])``."""

    def __init__(self, rgb: np.ndarray, depth: np.ndarray, name: str, source: str):
        self.rgb, self.depth, self.name, self.source = rgb, depth, name, source

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, i: int):
        return self.rgb[i], self.depth[i]


class Subset:
    def __init__(self, base, n: int):
        self.base, self.n = base, min(n, len(base))
        self.name, self.source = base.name, getattr(base, "source", "")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.base[i]


def open_dataset(spec: str, limit: int | None = None, progress: bool = True):
    """A data set by name (``synthetic``, ``synthetic:val``, ``synthetic:test@240x320`` for another resolution...) or path (NYU ``nyu_test.zip``, a folder of the
    eigen ``.npy`` files, or a folder of FastDepth ``.h5`` files); ``limit`` keeps the first N images."""
    if limit is not None and limit < 1:
        raise PyapproxError(f"--limit must be at least 1, got {limit}")
    m = re.fullmatch(r"(synthetic(?::\w+)?)(?:@(\d+)x(\d+))?", spec)
    if m and m.group(1) in SYNTHETIC_NAMES:
        from pyapprox.data.synthetic import DEFAULT_SIZES, load_split

        base = m.group(1)
        h, w = (int(m.group(2)), int(m.group(3))) if m.group(2) else (480, 640)
        check_resolution(h, w, f"data set {spec}")
        split = base.split(":")[1] if ":" in base else "test"
        n = DEFAULT_SIZES[split] if limit is None else min(limit, DEFAULT_SIZES[split]) if split == "test" else limit
        rgb, depth = load_split(split, n, height=h, width=w, progress=progress)
        size = "" if (h, w) == (480, 640) else f"@{h}x{w}"
        return ArrayDataset(rgb, depth, f"synthetic:{split}{size}", f"pyapprox.data.synthetic ({split} split, {h}x{w})")
    path = Path(spec)
    if not path.exists():
        raise PyapproxError(f"unknown data set {spec!r}: expected one of {', '.join(SYNTHETIC_NAMES)} (optionally "
                            f"with @HEIGHTxWIDTH), or a path to "
                            f"NYU Depth v2 test data (nyu_test.zip, a folder of eigen_test_*.npy, or a folder of .h5 files)")
    from pyapprox.data.nyu import open_nyu

    ds = open_nyu(path)
    return Subset(ds, limit) if limit is not None else ds
