"""Seeded splits and their on-disk cache.

:func:`render` ``(seed)`` is ``render_scene(random_scene(seed))``.  :data:`SPLITS` gives the
disjoint seed ranges of train/val/test; :func:`load_split` renders (or reads from the cache)
the first n images of a split.  :data:`RENDERER_VERSION` is part of every cache key
(:func:`cache_path`), so it must change whenever rendered pixels change for a given seed.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import warnings
from pathlib import Path

import numpy as np

from pyapprox.cache import cache_root
from pyapprox.data.synthetic.raycast import render_scene
from pyapprox.data.synthetic.scenes import random_scene
from pyapprox.data.synthetic.textures import IMAGE_TEXTURES, _image_pyramid
from pyapprox.errors import PyapproxError
from pyapprox.io import load_npy, save_npy

#: Bump whenever rendered pixels change for a given seed: it is part of every cache key.
RENDERER_VERSION = 2

#: Disjoint seed ranges of the three splits; the i-th image of a split is ``render(SPLITS[s][i])``.
SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 2_000_000),
    "test": range(2_000_000, 3_000_000),
}
DEFAULT_TEST_SIZE = 200
DEFAULT_SIZES = {"train": 1000, "val": 200, "test": DEFAULT_TEST_SIZE}


def render(seed: int, height: int = 480, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3] and depth float32 [H, W] (metres) of the random scene of ``seed``."""
    return render_scene(random_scene(int(seed)), height, width)


def _cache_root(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return cache_root() / "synthetic"


def cache_path(split: str, n: int, height: int = 480, width: int = 640, cache_dir=None) -> tuple[Path, Path]:
    """(rgb, depth) .npy paths of a cached split."""
    stem = f"{split}_v{RENDERER_VERSION}_{height}x{width}_n{n}"
    root = _cache_root(cache_dir)
    return root / f"{stem}_rgb.npy", root / f"{stem}_depth.npy"


def _render_one(args):
    seed, height, width = args
    return render(seed, height, width)


def _load_cached(rgb_path: Path, depth_path: Path, n_min: int, height: int, width: int):
    try:
        rgb = load_npy(rgb_path, mmap_mode="r")
        depth = load_npy(depth_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (rgb.dtype != np.uint8 or depth.dtype != np.float32 or rgb.shape[1:] != (height, width, 3)
            or depth.shape[1:] != (height, width) or rgb.shape[0] != depth.shape[0] or rgb.shape[0] < n_min):
        return None
    return rgb, depth


def load_split(split: str, n: int | None = None, height: int = 480, width: int = 640, cache_dir=None,
               progress: bool = True, workers: int = 2, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of ``split``: rgb uint8 [n, H, W, 3] and depth float32 [n, H, W].

    ``n`` defaults to :data:`DEFAULT_SIZES` (200 for "test").  Images are rendered on demand
    (a pool of ``workers`` processes, or in-process inside a daemonic process such as a Dask worker; the
    result does not depend on either) and cached as .npy files
    under ``cache_dir`` (default ``$PYAPPROX_CACHE/synthetic``, else
    ``${XDG_CACHE_HOME:-~/.cache}/pyapprox/synthetic``),
    keyed by renderer version, split, resolution and n; a cache of a larger n is sliced, and a
    smaller one is extended by rendering only the missing images (the smaller file is kept).
    ``cache_dir`` given explicitly is used as is (no ``synthetic`` subfolder); ``cache=False``
    neither reads nor writes the cache.  Cache files are written atomically (depth, then rgb, which is
    what readers look for), so processes rendering the same split at once are safe.
    """
    if split not in SPLITS:
        raise PyapproxError(f"unknown synthetic split {split!r}; valid splits: {', '.join(SPLITS)}")
    if n is None:
        n = DEFAULT_SIZES[split]
    seeds = SPLITS[split]
    if not (isinstance(n, (int, np.integer)) and 1 <= n <= len(seeds)):
        raise PyapproxError(f"synthetic split {split!r}: n must be an integer in 1..{len(seeds)}, got {n!r}")
    if height < 8 or width < 8:
        raise PyapproxError(f"synthetic split {split!r}: resolution {height}x{width} is too small (min 8x8)")
    n = int(n)
    rgb_path, depth_path = cache_path(split, n, height, width, cache_dir)
    root = rgb_path.parent
    have = 0
    prefix = None
    if cache and root.is_dir():
        pat = re.compile(rf"^{re.escape(split)}_v{RENDERER_VERSION}_{height}x{width}_n(\d+)_rgb\.npy$")
        found = sorted(int(m.group(1)) for f in root.iterdir() if (m := pat.match(f.name)))
        bigger = [k for k in found if k >= n]
        smaller = [k for k in found if k < n]
        for k in bigger[:1] + smaller[::-1][:1]:
            got = _load_cached(*cache_path(split, k, height, width, cache_dir), min(k, n), height, width)
            if got is None:
                continue
            if k >= n:
                return np.array(got[0][:n]), np.array(got[1][:n])
            prefix, have = got, k
            break

    rgb = np.empty((n, height, width, 3), np.uint8)
    depth = np.empty((n, height, width), np.float32)
    if prefix is not None:
        rgb[:have] = prefix[0][:have]
        depth[:have] = prefix[1][:have]
    todo = [(seeds[i], height, width) for i in range(have, n)]
    from tqdm import tqdm

    bar = tqdm(total=n, initial=have, desc=f"rendering synthetic/{split}", unit="img", disable=not progress)
    try:
        # below 8 images starting the pool costs more than it saves; a daemonic process (a Dask worker, a
        # pool worker) may not start children, so it renders in-process (same pixels: one image per seed)
        if workers > 1 and len(todo) >= 8 and not mp.current_process().daemon:
            fork = "fork" in mp.get_all_start_methods()
            if fork:  # load the textures once here; forked workers share them
                for name in IMAGE_TEXTURES:
                    _image_pyramid(name)
            ctx = mp.get_context("fork" if fork else "spawn")
            with ctx.Pool(min(workers, len(todo))) as pool:
                for i, (r, d) in enumerate(pool.imap(_render_one, todo, chunksize=1)):
                    rgb[have + i], depth[have + i] = r, d
                    bar.update(1)
        else:
            for i, args in enumerate(todo):
                rgb[have + i], depth[have + i] = _render_one(args)
                bar.update(1)
    finally:
        bar.close()
    if cache:
        try:
            save_npy(depth_path, depth)
            save_npy(rgb_path, rgb)
        except OSError as e:  # a read-only or full cache must not lose the rendered images
            warnings.warn(f"could not cache synthetic/{split} in {root}: {e}", stacklevel=2)
    return rgb, depth
