"""Procedural indoor RGB-D scenes: the project's embedded stand-in for NYU Depth v2.

NYU Depth v2 cannot be downloaded here, so this module ray-casts random furnished rooms with
numpy and returns NYU-like pairs: ``rgb`` uint8 ``[H, W, 3]`` and ``depth`` float32 ``[H, W]`` in
metres, where depth is the z-distance along the camera's optical axis (as in NYU/Kinect), not
the ray length.

Scenes
    A room (floor, four walls, ceiling) of random size (width 3-7 m, length 4-9 m, height
    2.4-3.2 m) with 4-12 pieces of furniture standing on the floor (tables, desks, chairs,
    shelves full of books, cabinets, beds, sofas, bins, stools, pillars, plant pots, balls), some
    with small items on top.  Boxes may be rotated about the vertical axis; cylinders are
    vertical.  Walls carry decals: framed posters, windows, doors, whiteboards, skirting boards.
    One hanging point lamp lights the room (Lambertian shading, hard cast shadows traced against
    the same primitives) plus a hemispherical ambient term; each image gets its own exposure,
    white balance, vignetting and sensor noise.

Camera
    Pinhole with NYU Depth v2 intrinsics at 640x480 (fx=518.8579, fy=519.4696, cx=325.5824,
    cy=253.7362), scaled proportionally for other resolutions (see :func:`intrinsics`).  Pixel
    ``(row v, column u)`` looks along camera direction ``((u - cx) / fx, (v - cy) / fy, 1)``
    (x right, y down, z forward), i.e. integer pixel coordinates are pixel centres.  Like NYU's
    hand-held Kinect, the camera is at chest height (1.3-1.5 m), pitched 0-8.6 degrees down with a
    small roll, anywhere in the room, looking at furniture or into the room.  The pose is
    chosen, never clipped, so that every visible depth lies in [0.5, 10] m: the camera keeps
    >= 0.7 m from every surface (the near frustum up to z = 0.5 m fits in a 0.64 m ball) and
    every room corner is at most 9.85 m deep (the room is convex, so nothing is deeper).

Textures
    Procedural (value-noise fBm, wood grain, floor planks, tiles/checker, carpet, wallpaper
    stripes, book spines, drawer fronts, doors, windows), all in metres of surface so scale is
    physically consistent, band-limited by the pixel footprint (octave fading, filtered
    lines, mip-mapped images).  Photographs shipped *inside* scikit-image are used as texture
    maps, read straight from ``skimage/data`` on disk (never through the fetcher, so nothing is
    ever downloaded): ``brick``, ``gravel`` and ``grass`` tile walls/floors/rugs; ``astronaut``,
    ``coffee``, ``chelsea``, ``rocket``, ``hubble_deep_field``, ``ihc``, ``motorcycle_left``,
    ``camera``, ``moon``, ``coins``, ``clock_motion``, ``page`` and ``text`` hang as posters,
    prints and documents.  A missing file falls back to a procedural pattern.

Speed (measured on this project's 2-core CPU machine under load, one process, numpy 2.4,
float64 geometry, 30 test-split scenes): 0.25 s per 480x640 image on average (0.20-0.42 s
depending on the scene), 56 ms at 240x320, 24 ms at 120x160.  Only the primitive's projected
screen rectangle is intersected for camera rays, and shadow rays are culled on a light-space
grid.  ``load_split`` renders with a pool of 2 processes and caches the result.

API
    :func:`render` ``(seed, height, width)`` = :func:`render_scene` ``(random_scene(seed))``;
    :class:`Scene`, :class:`Camera`, :class:`Light`, :class:`Material`, :class:`Room`,
    :class:`Box`, :class:`Cylinder`, :class:`Sphere`, :class:`Plane`, :class:`Decal` build
    scenes by hand; :func:`trace` returns depth and the index of the primitive seen at each
    pixel; :data:`SPLITS` and :func:`load_split` give the disjoint train/val/test seed ranges
    and the cached data sets.
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.io import load_npy, save_npy

__all__ = [
    "RENDERER_VERSION",
    "NYU_INTRINSICS",
    "MIN_DEPTH",
    "MAX_DEPTH",
    "SPLITS",
    "DEFAULT_SIZES",
    "DEFAULT_TEST_SIZE",
    "IMAGE_TEXTURES",
    "Material",
    "Decal",
    "Room",
    "Box",
    "Cylinder",
    "Sphere",
    "Plane",
    "Camera",
    "Light",
    "Scene",
    "intrinsics",
    "camera_rotation",
    "look_at",
    "random_scene",
    "trace",
    "render_scene",
    "render",
    "load_split",
    "cache_path",
    "available_images",
]

#: Bump whenever rendered pixels change for a given seed: it is part of every cache key.
RENDERER_VERSION = 2

#: NYU Depth v2 colour-camera intrinsics at 640x480: fx, fy, cx, cy.
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
_NYU_SIZE = (480, 640)

MIN_DEPTH = 0.5
MAX_DEPTH = 10.0

#: Disjoint seed ranges of the three splits; the i-th image of a split is ``render(SPLITS[s][i])``.
SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 2_000_000),
    "test": range(2_000_000, 3_000_000),
}
DEFAULT_TEST_SIZE = 200
DEFAULT_SIZES = {"train": 1000, "val": 200, "test": DEFAULT_TEST_SIZE}

_EPS = 1e-9
#: A hand-held Kinect at chest height, as in NYU Depth v2: height (m) and pitch (rad, negative = down).
#: (Version 1 drew 1.0-1.7 m and -0.33..0.1 rad; that spread made absolute scale too ambiguous to learn
#: from 1,500 images on a CPU budget.)
CAMERA_HEIGHT = (1.3, 1.5)
CAMERA_PITCH = (-0.15, 0.0)
_CAMERA_CLEARANCE = 0.7  # metres from any surface; the near frustum (z <= 0.5 m) fits in 0.64 m
_MAX_CORNER_DEPTH = 9.85


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------


def intrinsics(height: int = 480, width: int = 640) -> tuple[float, float, float, float]:
    """NYU intrinsics (fx, fy, cx, cy) scaled proportionally to ``height`` x ``width``."""
    sx, sy = width / _NYU_SIZE[1], height / _NYU_SIZE[0]
    fx, fy, cx, cy = NYU_INTRINSICS
    return fx * sx, fy * sy, cx * sx, cy * sy


def camera_rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (columns: camera right, down, forward in world coordinates).

    World: y is up, the floor is y = 0.  ``yaw`` turns the view from +z towards +x, ``pitch``
    > 0 looks up, ``roll`` rotates about the optical axis.
    """
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    forward = np.array([sy_, 0.0, cy_])
    right = np.array([-cy_, 0.0, sy_])
    down = np.array([0.0, -1.0, 0.0])
    base = np.stack([right, down, forward], axis=1)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rp = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    cr, sr = math.cos(roll), math.sin(roll)
    rr = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return base @ rp @ rr


def look_at(position: Sequence[float], target: Sequence[float], roll: float = 0.0) -> "Camera":
    """A camera at ``position`` whose optical axis passes through ``target``."""
    p, t = np.asarray(position, float), np.asarray(target, float)
    d = t - p
    yaw = math.atan2(d[0], d[2])
    pitch = math.atan2(d[1], math.hypot(d[0], d[2]))
    return Camera(p, camera_rotation(yaw, pitch, roll))


@dataclass
class Camera:
    position: np.ndarray
    rotation: np.ndarray  # camera-to-world, see camera_rotation

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)


@dataclass
class Light:
    position: np.ndarray
    intensity: float = 4.0  # radiance at 1 m (linear units; ~1 is a well-lit white surface)
    color: tuple = (1.0, 0.92, 0.8)

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=np.float64).reshape(3)


# --------------------------------------------------------------------------------------------
# Textures
# --------------------------------------------------------------------------------------------

#: scikit-image photographs used as texture maps (file names inside ``skimage/data``).
IMAGE_TEXTURES = {
    "brick": "brick.png",
    "gravel": "gravel.png",
    "grass": "grass.png",
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "motorcycle_left": "motorcycle_left.png",
    "camera": "camera.png",
    "moon": "moon.png",
    "coins": "coins.png",
    "clock_motion": "clock_motion.png",
    "page": "page.png",
    "text": "text.png",
}
_POSTER_IMAGES = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "ihc", "motorcycle_left",
    "camera", "moon", "coins", "clock_motion",
)
_DOCUMENT_IMAGES = ("page", "text")


def _skimage_data_dir() -> Path | None:
    try:
        import skimage.data
    except ImportError:  # pragma: no cover - scikit-image is a project requirement
        return None
    return Path(skimage.data.__file__).parent


def available_images() -> list[str]:
    """Names in :data:`IMAGE_TEXTURES` whose files ship with the installed scikit-image."""
    d = _skimage_data_dir()
    if d is None:
        return []
    return [k for k, f in IMAGE_TEXTURES.items() if (d / f).is_file()]


@functools.lru_cache(maxsize=None)
def _image_pyramid(name: str) -> tuple[np.ndarray, ...] | None:
    """Linear-light float32 mip pyramid [rows, cols, 3] of a bundled image, or None if absent."""
    d = _skimage_data_dir()
    if d is None or name not in IMAGE_TEXTURES or not (d / IMAGE_TEXTURES[name]).is_file():
        return None
    from skimage.io import imread

    img = np.asarray(imread(d / IMAGE_TEXTURES[name]))
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.float32) / 255.0
    img = img ** 2.2
    levels = [img]
    while min(levels[-1].shape[:2]) >= 4:
        a = levels[-1]
        r, c = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:r, :c]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return tuple(np.ascontiguousarray(x) for x in levels)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray, wrap: bool) -> np.ndarray:
    rows, cols = img.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    if wrap:
        x0 %= cols
        y0 %= rows
        x1 = (x0 + 1) % cols
        y1 = (y0 + 1) % rows
    else:
        x1 = np.clip(x0 + 1, 0, cols - 1)
        y1 = np.clip(y0 + 1, 0, rows - 1)
        x0 = np.clip(x0, 0, cols - 1)
        y0 = np.clip(y0, 0, rows - 1)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def _sample_image(pyr, x, y, texel_fp, wrap):
    """Trilinear lookup; ``x, y`` in level-0 pixels, ``texel_fp`` = pixel footprint in texels."""
    lev = np.clip(np.log2(np.maximum(texel_fp, 1e-6)), 0.0, len(pyr) - 1.0)
    lo = np.floor(lev).astype(np.int64)
    frac = (lev - lo)[:, None]
    out = np.zeros((x.shape[0], 3))
    for k in np.unique(lo):
        sel = np.nonzero(lo == k)[0]
        s = 2.0 ** -k
        a = _bilinear(pyr[k], (x[sel] + 0.5) * s - 0.5, (y[sel] + 0.5) * s - 0.5, wrap)
        if k + 1 < len(pyr):
            s2 = s * 0.5
            b = _bilinear(pyr[k + 1], (x[sel] + 0.5) * s2 - 0.5, (y[sel] + 0.5) * s2 - 0.5, wrap)
            a = a + (b - a) * frac[sel]
        out[sel] = a
    return out


@functools.lru_cache(maxsize=1)
def _lattice() -> np.ndarray:
    return np.random.default_rng(0x5EED).random((256, 256))


def _vnoise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] with unit lattice spacing (periodic every 256 units)."""
    g = _lattice()
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    xi = x0.astype(np.int64) & 255
    yi = y0.astype(np.int64) & 255
    x1 = (xi + 1) & 255
    y1 = (yi + 1) & 255
    sx = fx * fx * (3 - 2 * fx)
    sy = fy * fy * (3 - 2 * fy)
    a = g[yi, xi]
    b = g[yi, x1]
    c = g[y1, xi]
    d = g[y1, x1]
    return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy


def _hash(i: np.ndarray, j: np.ndarray | int = 0) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell."""
    g = _lattice()
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    return g[(i * 17 + j * 3) & 255, (j * 29 + i * 7 + 11) & 255]


def _fbm(u, v, fp, freq, octaves=4, gain=0.5, ax=1.0, ay=1.0, off=0.0):
    """Band-limited fBm around 0 (roughly in [-0.5, 0.5]); octaves finer than ~2 px fade out.

    ``ax``/``ay`` stretch the noise anisotropically (streaks), ``off`` decorrelates materials.
    """
    total = np.zeros_like(u)
    norm = 0.0
    amp = 1.0
    f = freq
    for k in range(octaves):
        fmax = f * max(ax, ay)
        w = np.clip(2.0 - 4.0 * fp * fmax, 0.0, 1.0)
        if np.any(w > 0):
            n = _vnoise(u * f * ax + off + 37.1 * k, v * f * ay + 0.61 * off + 11.3 * k)
            total += amp * w * (n - 0.5)
        norm += amp
        amp *= gain
        f *= 2.0
    return total / norm * 1.6


def _lines(x, width, fw):
    """Coverage of lines of ``width`` (in periods) centred on integers, box-filtered by ``fw``."""
    fw = np.maximum(fw, 1e-4)
    x = x + width * 0.5

    def integral(t):
        fl = np.floor(t)
        return fl * width + np.minimum(t - fl, width)

    return np.clip((integral(x + fw * 0.5) - integral(x - fw * 0.5)) / fw, 0.0, 1.0)


def _mix(a, b, t):
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    t = np.asarray(t, float)[..., None]
    return a + (b - a) * t


def _lin(c) -> np.ndarray:
    return np.asarray(c, float) ** 2.2


@dataclass
class Material:
    """Surface appearance.  Colours are sRGB in [0, 1]; ``scale`` is metres per pattern unit.

    kinds: ``paint``, ``noise``, ``wood``, ``planks``, ``tiles``, ``checker``, ``carpet``,
    ``stripes``, ``books``, ``drawers``, ``door``, ``window``, ``image`` (a bundled photograph:
    tiled every ``scale`` metres, or stretched over ``size`` (w, h) metres when ``size`` is set),
    ``emissive`` (unlit ``color`` times ``emission``).
    """

    kind: str = "paint"
    color: tuple = (0.7, 0.7, 0.7)
    color2: tuple = (0.4, 0.4, 0.4)
    scale: float = 1.0
    contrast: float = 0.3
    image: str | None = None
    size: tuple | None = None
    emission: float = 0.0
    seed: int = 0

    def albedo(self, u: np.ndarray, v: np.ndarray, fp: np.ndarray) -> np.ndarray:
        """Linear albedo (emitted radiance for emissive kinds) [N, 3] at surface coords (u, v)
        in metres; ``fp`` is the pixel footprint in metres, used to band-limit the texture."""
        return _MATERIAL_FUNCS[self.kind](self, u, v, fp)


def _off(m: Material) -> float:
    return float((m.seed * 0.6180339887) % 1.0) * 200.0


def _m_paint(m, u, v, fp):
    n = _fbm(u, v, fp, 1.5, octaves=5, off=_off(m))
    fine = _fbm(u, v, fp, 60.0, octaves=2, off=_off(m) + 5)
    return _lin(m.color) * (1.0 + m.contrast * 0.25 * n + 0.05 * fine)[:, None]


def _m_noise(m, u, v, fp):
    n = _fbm(u, v, fp, 1.0 / m.scale, octaves=6, off=_off(m))
    return _mix(_lin(m.color), _lin(m.color2), np.clip(0.5 + n * 1.8 * m.contrast / 0.3, 0, 1))


def _m_wood(m, u, v, fp):
    # grain runs along u: long streaks (stretched noise) plus growth rings
    o = _off(m)
    streak = _fbm(u, v, fp, 1.0 / m.scale, octaves=4, ax=0.15, ay=6.0, off=o)
    warp = _fbm(u, v, fp, 0.8, octaves=2, off=o + 3)
    ring_f = 25.0 / m.scale
    rings = 0.5 + 0.5 * np.sin((v + 0.15 * warp) * ring_f * 2 * np.pi)
    ring_w = np.clip(2.0 - 4.0 * fp * ring_f, 0.0, 1.0)
    rings = 0.5 + (rings - 0.5) * ring_w
    t = np.clip(0.5 + 1.6 * streak + 0.35 * (rings - 0.5), 0, 1)
    return _mix(_lin(m.color), _lin(m.color2), t)


def _m_planks(m, u, v, fp):
    o = _off(m)
    pw, pl = 0.14 * m.scale, 1.2 * m.scale
    row = np.floor(v / pw).astype(np.int64)
    uu = u + _hash(row, 3) * pl
    seg = np.floor(uu / pl).astype(np.int64)
    tone = _hash(row * 13 + 7, seg)
    grain = _fbm(uu, v, fp, 1.5, octaves=4, ax=0.3, ay=12.0, off=o + (row % 7) * 13.0)
    t = np.clip(0.25 + 0.6 * tone + 1.4 * grain, 0, 1)
    col = _mix(_lin(m.color), _lin(m.color2), t)
    gap = np.maximum(_lines(v / pw, 0.004 / pw, fp / pw), _lines(uu / pl, 0.004 / pl, fp / pl))
    return col * (1.0 - 0.65 * gap)[:, None]


def _m_tiles(m, u, v, fp, checker=False):
    s = m.scale
    i = np.floor(u / s).astype(np.int64)
    j = np.floor(v / s).astype(np.int64)
    if checker:
        cw = 1.0 - np.clip(fp / s * 2, 0, 1)  # fade to the mean colour when tiles are sub-pixel
        par = ((i + j) & 1).astype(float)
        col = _mix(_lin(m.color), _lin(m.color2), 0.5 + (par - 0.5) * cw)
        grout_col = _lin(m.color2) * 0.6
    else:
        tone = _hash(i + 101, j) - 0.5
        col = _lin(m.color) * (1.0 + 0.12 * tone)[:, None]
        grout_col = _lin(m.color2)
    col = col * (1.0 + 0.5 * _fbm(u, v, fp, 8.0 / s, octaves=3, off=_off(m)))[:, None]
    gw = 0.006 / s
    grout = np.maximum(_lines(u / s, gw, fp / s), _lines(v / s, gw, fp / s))
    return _mix(col, np.broadcast_to(grout_col, col.shape), grout)


def _m_checker(m, u, v, fp):
    return _m_tiles(m, u, v, fp, checker=True)


def _m_carpet(m, u, v, fp):
    o = _off(m)
    fine = _fbm(u, v, fp, 80.0, octaves=3, off=o)
    blotch = _fbm(u, v, fp, 1.2, octaves=3, off=o + 9)
    t = np.clip(0.5 + 2.2 * fine * m.contrast / 0.3, 0, 1)
    col = _mix(_lin(m.color), _lin(m.color2), t)
    return col * (1.0 + 0.4 * blotch)[:, None]


def _m_stripes(m, u, v, fp):
    p = m.scale
    cov = _lines(u / p, 0.35, fp / p)
    col = _mix(_lin(m.color), _lin(m.color2), cov)
    return col * (1.0 + 0.15 * _fbm(u, v, fp, 2.0, octaves=4, off=_off(m)))[:, None]


_BOOK_COLOURS = np.array(
    [
        (0.55, 0.12, 0.10), (0.10, 0.20, 0.45), (0.12, 0.35, 0.18), (0.80, 0.70, 0.45),
        (0.85, 0.85, 0.80), (0.15, 0.15, 0.15), (0.65, 0.35, 0.10), (0.40, 0.15, 0.35),
        (0.20, 0.45, 0.55), (0.75, 0.55, 0.20), (0.50, 0.50, 0.55), (0.70, 0.20, 0.25),
    ]
) ** 2.2


def _m_books(m, u, v, fp):
    """Front of a bookcase: shelf boards every ``scale`` metres, book spines in between."""
    rh = m.scale
    row = np.floor(v / rh).astype(np.int64)
    fv = v / rh - row
    board = 0.06
    bw = 0.035
    x = u / bw + 3.7 * _hash(row, 5)
    cell = np.floor(x).astype(np.int64)
    h = _hash(cell, row * 31 + m.seed)
    height = 0.55 + 0.38 * _hash(cell * 3 + 1, row + m.seed)
    col = _BOOK_COLOURS[(h * len(_BOOK_COLOURS)).astype(np.int64) % len(_BOOK_COLOURS)]
    col = col * (0.75 + 0.5 * _hash(cell + 5, row * 7))[:, None]
    # dark gaps between spines, empty dark back above the books
    gap = _lines(x, 0.08, fp / bw)
    col = col * (1.0 - 0.6 * gap)[:, None]
    ow = np.clip(2.0 - 4.0 * fp / bw, 0, 1)  # books far away blur into their average colour
    col = _mix(np.broadcast_to(_BOOK_COLOURS.mean(0) * 0.8, col.shape), col, ow)
    empty = np.clip((fv - board - height * (1 - board)) / np.maximum(fp / rh, 1e-4) + 0.5, 0, 1)
    back = np.broadcast_to(_lin(m.color) * 0.25, col.shape)
    col = _mix(col, back, empty)
    is_board = np.clip((board - fv) / np.maximum(fp / rh, 1e-4) + 0.5, 0, 1)
    wood = _m_wood(Material("wood", m.color, m.color2, 0.5, seed=m.seed), u, v, fp)
    return _mix(col, wood, is_board)


def _m_drawers(m, u, v, fp):
    """Cabinet front: a grid of drawers (``scale`` m high) with gaps and knobs."""
    wood = _m_wood(Material("wood", m.color, m.color2, 0.6, seed=m.seed), u, v, fp)
    dh = m.scale
    dw = 0.5
    gap = np.maximum(_lines(v / dh, 0.008 / dh, fp / dh), _lines(u / dw, 0.008 / dw, fp / dw))
    ku = (u / dw - np.floor(u / dw) - 0.5) * dw
    kv = (v / dh - np.floor(v / dh) - 0.75) * dh
    r = np.hypot(ku, kv)
    knob = np.clip((0.018 - r) / np.maximum(fp, 1e-4) + 0.5, 0, 1)
    col = wood * (1.0 - 0.7 * gap)[:, None]
    return _mix(col, np.broadcast_to(_lin((0.75, 0.72, 0.65)) * 0.6, col.shape), knob)


def _m_door(m, u, v, fp):
    w, h = m.size
    wood = _m_wood(Material("wood", m.color, m.color2, 0.8, seed=m.seed), v, u, fp)
    # two inset panels outlined by grooves, and a handle
    lines = np.zeros_like(u)
    for (a0, a1, b0, b1) in ((0.15, 0.85, 0.55, 0.92), (0.15, 0.85, 0.08, 0.45)):
        x0, x1, y0, y1 = a0 * w, a1 * w, b0 * h, b1 * h
        inside_v = (v > y0) & (v < y1)
        inside_u = (u > x0) & (u < x1)
        lu = np.maximum(_lines((u - x0) / 0.02, 0.5, fp / 0.02) * ((u - x0) ** 2 < 4e-4),
                        _lines((u - x1) / 0.02, 0.5, fp / 0.02) * ((u - x1) ** 2 < 4e-4))
        lv = np.maximum(_lines((v - y0) / 0.02, 0.5, fp / 0.02) * ((v - y0) ** 2 < 4e-4),
                        _lines((v - y1) / 0.02, 0.5, fp / 0.02) * ((v - y1) ** 2 < 4e-4))
        lines = np.maximum(lines, np.maximum(lu * inside_v, lv * inside_u))
    col = wood * (1.0 - 0.5 * lines)[:, None]
    r = np.hypot(u - 0.88 * w, v - 1.0)
    handle = np.clip((0.03 - r) / np.maximum(fp, 1e-4) + 0.5, 0, 1)
    return _mix(col, np.broadcast_to(_lin((0.8, 0.78, 0.7)), col.shape), handle)


def _m_window(m, u, v, fp):
    """Daylight window (emissive): bright sky gradient, blurred greenery, white mullions."""
    w, h = m.size
    t = np.clip(v / h, 0, 1)
    sky = _mix(_lin((0.80, 0.86, 0.92)), _lin((0.55, 0.70, 0.90)), t)
    green = _lin((0.35, 0.45, 0.30)) * (1.0 + 1.2 * _fbm(u, v, fp, 2.0, octaves=4, off=_off(m)))[:, None]
    horizon = 0.35 * h + 0.15 * h * _fbm(u, u, fp, 1.0, octaves=3, off=_off(m) + 4)
    outside = _mix(sky, green, np.clip((horizon - v) / 0.05 + 0.5, 0, 1))
    fw = 0.05
    edge = np.minimum(np.minimum(u, w - u), np.minimum(v, h - v))
    frame = np.clip((fw - edge) / np.maximum(fp, 1e-4) + 0.5, 0, 1)
    mull = np.maximum(_lines((u - w / 2) / w, fw * 0.6 / w, fp / w), _lines((v - h / 2) / h, fw * 0.6 / h, fp / h))
    frame = np.maximum(frame, mull)
    lum = np.where(frame[:, None] > 0.5, 0.35, 1.0)  # frame is lit from outside only dimly
    col = _mix(outside * m.emission, np.broadcast_to(_lin(m.color) * 0.9, outside.shape) * lum, frame)
    return col


def _m_image(m, u, v, fp):
    pyr = _image_pyramid(m.image) if m.image else None
    if pyr is None:  # image not bundled with this scikit-image: procedural stand-in
        return _m_noise(Material("noise", m.color, m.color2, 0.1, 0.6, seed=m.seed), u, v, fp)
    rows, cols = pyr[0].shape[:2]
    if m.size is not None:  # stretched over a w x h metre rectangle (poster)
        w, h = m.size
        x = u / w * cols - 0.5
        y = (1.0 - v / h) * rows - 0.5
        img = _sample_image(pyr, x, y, fp / (w / cols), wrap=False)
        return img
    # tiled: one image width every `scale` metres, tinted by `color` (grey photos)
    texel = m.scale / cols
    x = u / texel
    y = -v / texel
    img = _sample_image(pyr, x, y, fp / texel, wrap=True)
    g = img.mean(axis=1, keepdims=True)
    tint = _lin(m.color)
    gray_src = np.allclose(pyr[-1][..., 0], pyr[-1][..., 1])
    base = g if gray_src else img
    return np.clip(tint * (0.25 + m.contrast * 4.0 * base), 0, None)


def _m_emissive(m, u, v, fp):
    return np.broadcast_to(_lin(m.color) * m.emission, (u.shape[0], 3)).copy()


_MATERIAL_FUNCS = {
    "paint": _m_paint,
    "noise": _m_noise,
    "wood": _m_wood,
    "planks": _m_planks,
    "tiles": _m_tiles,
    "checker": _m_checker,
    "carpet": _m_carpet,
    "stripes": _m_stripes,
    "books": _m_books,
    "drawers": _m_drawers,
    "door": _m_door,
    "window": _m_window,
    "image": _m_image,
    "emissive": _m_emissive,
}
_EMISSIVE_KINDS = ("window", "emissive")


# --------------------------------------------------------------------------------------------
# Primitives.  Rays are structure-of-arrays: ``d`` is (3, N) with rows x, y, z.
#   intersect(o (3,), d (3, N)) -> t (N,), inf where missed; the hit point is o + t * d.  d is
#       NOT normalised: camera rays have unit z in camera coordinates, so t is the z-depth.
#   surface(p (3, N), d (3, N)) -> normals (3, N), u (N,), v (N,) in metres, material index (N,)
#   bounds() -> (lo, hi) world AABB or None (unbounded);  distance(point) -> signed distance
# --------------------------------------------------------------------------------------------


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about +y taking local +z to (sin yaw, 0, cos yaw)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class Plane:
    """Infinite plane through ``point`` with normal ``normal`` (mostly for tests)."""

    point: np.ndarray
    normal: np.ndarray
    material: Material = field(default_factory=Material)
    casts_shadow: bool = True

    def __post_init__(self):
        self.point = np.asarray(self.point, float).reshape(3)
        n = np.asarray(self.normal, float).reshape(3)
        self.normal = n / np.linalg.norm(n)
        a = np.array([0.0, 1.0, 0.0]) if abs(self.normal[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        self._t1 = np.cross(a, self.normal)
        self._t1 /= np.linalg.norm(self._t1)
        self._t2 = np.cross(self.normal, self._t1)

    @property
    def materials(self):
        return [self.material]

    def bounds(self):
        return None

    def intersect(self, o, d):
        n = self.normal
        den = n[0] * d[0] + n[1] * d[1] + n[2] * d[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = float(n @ (self.point - o)) / den
        return np.where(t > _EPS, t, np.inf)

    def surface(self, p, d):
        q = p - self.point[:, None]
        n = self.normal
        flip = np.where(n @ d > 0, -1.0, 1.0)
        return n[:, None] * flip, self._t1 @ q, self._t2 @ q, np.zeros(p.shape[1], np.int64)

    def distance(self, p):
        return abs(float(self.normal @ (np.asarray(p, float) - self.point)))


@dataclass
class Decal:
    """A rectangle on room wall ``wall`` (0: z=0, 1: x=W, 2: z=L, 3: x=0) painted with ``material``.

    ``u0`` runs to the right as seen from inside the room, ``v0`` is the height of the lower
    edge; the material sees uv relative to the decal's lower-left corner.  Later decals cover
    earlier ones.
    """

    wall: int
    u0: float
    v0: float
    width: float
    height: float
    material: Material


_ROOM_NORMALS = np.array([[0, 1, 0], [0, -1, 0], [0, 0, 1], [-1, 0, 0], [0, 0, -1], [1, 0, 0]], float).T


@dataclass
class Room:
    """The inside of the box [0, W] x [0, H] x [0, L] (x, y = up, z), seen from inside.

    Material indices: 0 floor, 1 ceiling, 2-5 walls 0-3, 6+ decals.
    """

    size: tuple  # (W, H, L)
    floor: Material = field(default_factory=lambda: Material("planks", (0.6, 0.45, 0.3), (0.4, 0.28, 0.17)))
    ceiling: Material = field(default_factory=lambda: Material("paint", (0.9, 0.9, 0.88)))
    walls: list = field(default_factory=lambda: [Material("paint", (0.8, 0.78, 0.72))] * 4)
    decals: list = field(default_factory=list)
    casts_shadow: bool = False  # convex: it cannot shadow itself

    def __post_init__(self):
        self.size = tuple(float(s) for s in self.size)
        if len(self.walls) == 1:
            self.walls = list(self.walls) * 4

    @property
    def materials(self):
        return [self.floor, self.ceiling, *self.walls, *(d.material for d in self.decals)]

    def bounds(self):
        return None

    def wall_length(self, wall: int) -> float:
        w, _, l = self.size
        return w if wall in (0, 2) else l

    def intersect(self, o, d):
        t = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(3):
                ti = np.where(d[i] > 0, self.size[i] - o[i], o[i]) / np.abs(d[i])
                t = ti if t is None else np.minimum(t, ti)
        return np.where(t > _EPS, t, np.inf)

    def surface(self, p, d):
        w, h, l = self.size
        x, y, z = p
        dist = np.abs(np.stack([y, h - y, z, w - x, l - z, x]))
        face = np.argmin(dist, axis=0)  # 0 floor, 1 ceiling, 2.. walls 0..3
        normals = _ROOM_NORMALS[:, face]
        u = np.choose(face, [x, x, x, z, w - x, l - z])
        v = np.where(face < 2, z, y)
        mat = face.astype(np.int64)
        for k, dec in enumerate(self.decals):
            inside = ((face == dec.wall + 2) & (u >= dec.u0) & (u < dec.u0 + dec.width)
                      & (v >= dec.v0) & (v < dec.v0 + dec.height))
            mat[inside] = 6 + k
        if self.decals:
            is_dec = mat >= 6
            k = mat[is_dec] - 6
            u[is_dec] -= np.array([dd.u0 for dd in self.decals])[k]
            v[is_dec] -= np.array([dd.v0 for dd in self.decals])[k]
        return normals, u, v, mat

    def distance(self, p):
        w, h, l = self.size
        return float(min(p[0], w - p[0], p[1], h - p[1], p[2], l - p[2]))


@dataclass
class Box:
    """Box of full extents ``size`` (sx, sy, sz) centred at ``center``, turned by ``yaw`` about y.

    ``face_materials`` overrides ``material`` per face: 0 +x, 1 -x, 2 +y (top), 3 -y, 4 +z
    (front), 5 -z, in the box's own frame.  uv: on x faces (z, y), top/bottom (x, z), z faces
    (x, y), measured from the box corner; on x and y faces u and v are swapped where needed so
    that u runs along the longer side.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: float = 0.0
    material: Material = field(default_factory=Material)
    face_materials: dict = field(default_factory=dict)
    casts_shadow: bool = True

    def __post_init__(self):
        self.center = np.asarray(self.center, float).reshape(3)
        self.size = np.asarray(self.size, float).reshape(3)
        self.yaw = float(self.yaw)
        self._r = _yaw_matrix(self.yaw)
        self._cs = (math.cos(self.yaw), math.sin(self.yaw))
        self._h = self.size / 2
        keys = sorted(self.face_materials)
        self._mats = [self.material] + [self.face_materials[k] for k in keys]
        sx, sy, sz = self.size
        self._swap = np.array([sy > sz, sz > sx, False])
        self._face_mat = np.zeros(6, np.int64)
        for i, k in enumerate(keys):
            self._face_mat[k] = i + 1

    @property
    def materials(self):
        return self._mats

    def corners(self):
        s = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        return (s * self._h) @ self._r.T + self.center

    def bounds(self):
        c = self.corners()
        return c.min(0), c.max(0)

    def _to_local(self, q):
        c, s = self._cs
        return (c * q[0] - s * q[2], q[1], s * q[0] + c * q[2])

    def intersect(self, o, d):
        ol = self._to_local(o - self.center)
        dl = self._to_local(d)
        tn = tf = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(3):
                hh = np.copysign(self._h[i], dl[i])
                inv = 1.0 / dl[i]
                a = (-hh - ol[i]) * inv
                b = (hh - ol[i]) * inv
                tn = a if tn is None else np.maximum(tn, a)
                tf = b if tf is None else np.minimum(tf, b)
        return np.where((tn <= tf) & (tn > _EPS), tn, np.inf)

    def surface(self, p, d):
        q = p - self.center[:, None]
        pl = np.stack(self._to_local(q))
        axis = np.argmax(np.abs(pl) / self._h[:, None], axis=0)
        cols = np.arange(p.shape[1])
        sign = np.where(pl[axis, cols] >= 0, 1.0, -1.0)
        c, s = self._cs
        nx = np.where(axis == 0, sign, 0.0)
        ny = np.where(axis == 1, sign, 0.0)
        nz = np.where(axis == 2, sign, 0.0)
        n = np.stack([c * nx + s * nz, ny, -s * nx + c * nz])
        face = axis * 2 + (sign < 0)
        hx, hy, hz = self._h
        x, y, z = pl[0] + hx, pl[1] + hy, pl[2] + hz
        u = np.choose(axis, [z, x, x])
        v = np.choose(axis, [y, z, y])
        # u runs along the longer side of x and top faces (wood grain follows the long side);
        # front/back faces keep (x, y) so that book spines and drawers stand upright
        swap = self._swap[axis]
        if swap.any():
            u, v = np.where(swap, v, u), np.where(swap, u, v)
        return n, u, v, self._face_mat[face]

    def distance(self, p):
        q = np.abs(np.array(self._to_local(np.asarray(p, float) - self.center))) - self._h
        return float(np.linalg.norm(np.maximum(q, 0)) + min(q.max(), 0))


@dataclass
class Cylinder:
    """Vertical cylinder with axis through (x, z) = ``center_xz`` from height ``y0`` to ``y1``.

    Material indices: 0 side (uv = height, arc length), 1 caps (uv = x, z from the axis).
    """

    center_xz: tuple
    radius: float
    y0: float
    y1: float
    material: Material = field(default_factory=Material)
    cap_material: Material | None = None
    casts_shadow: bool = True

    def __post_init__(self):
        self.center_xz = (float(self.center_xz[0]), float(self.center_xz[1]))
        self.radius, self.y0, self.y1 = float(self.radius), float(self.y0), float(self.y1)

    @property
    def materials(self):
        return [self.material, self.cap_material or self.material]

    def bounds(self):
        cx, cz = self.center_xz
        r = self.radius
        return np.array([cx - r, self.y0, cz - r]), np.array([cx + r, self.y1, cz + r])

    def intersect(self, o, d):
        cx, cz = self.center_xz
        ox, oy, oz = o[0] - cx, o[1], o[2] - cz
        dx, dy, dz = d
        r2 = self.radius ** 2
        a = dx * dx + dz * dz
        b = ox * dx + oz * dz
        c = ox * ox + oz * oz - r2
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = b * b - a * c
            ts = (-b - np.sqrt(disc)) / a
            ys = oy + ts * dy
            t = np.where((ts > _EPS) & (ys >= self.y0) & (ys <= self.y1), ts, np.inf)  # NaN -> miss
            for yc in (self.y0, self.y1):
                tc = (yc - oy) / dy
                px = ox + tc * dx
                pz = oz + tc * dz
                ok = (tc > _EPS) & (tc < t) & (px * px + pz * pz <= r2)
                t = np.where(ok, tc, t)
        return t

    def surface(self, p, d):
        cx, cz = self.center_xz
        x, y, z = p[0] - cx, p[1], p[2] - cz
        rho = np.hypot(x, z)
        dcap = np.minimum(np.abs(y - self.y0), np.abs(y - self.y1))
        cap = dcap < np.abs(rho - self.radius)
        top = np.abs(y - self.y1) < np.abs(y - self.y0)
        rs = np.maximum(rho, 1e-12)
        n = np.stack([np.where(cap, 0.0, x / rs), np.where(cap, np.where(top, 1.0, -1.0), 0.0),
                      np.where(cap, 0.0, z / rs)])
        u = np.where(cap, x, y - self.y0)
        v = np.where(cap, z, (np.arctan2(x, z) + np.pi) * self.radius)
        return n, u, v, cap.astype(np.int64)

    def distance(self, p):
        cx, cz = self.center_xz
        rho = math.hypot(p[0] - cx, p[2] - cz) - self.radius
        hh = (self.y1 - self.y0) / 2
        dy = abs(p[1] - (self.y0 + hh)) - hh
        return float(math.hypot(max(rho, 0), max(dy, 0)) + min(max(rho, dy), 0))


@dataclass
class Sphere:
    """Sphere; uv = (longitude, latitude) arc lengths in metres."""

    center: np.ndarray
    radius: float
    material: Material = field(default_factory=Material)
    casts_shadow: bool = True

    def __post_init__(self):
        self.center = np.asarray(self.center, float).reshape(3)
        self.radius = float(self.radius)

    @property
    def materials(self):
        return [self.material]

    def bounds(self):
        return self.center - self.radius, self.center + self.radius

    def intersect(self, o, d):
        oc = o - self.center
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
        c = float(oc @ oc) - self.radius ** 2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        return np.where(t > _EPS, t, np.inf)  # NaN (no root) compares False -> miss

    def surface(self, p, d):
        q = (p - self.center[:, None]) / self.radius
        lon = np.arctan2(q[0], q[2])
        lat = np.arcsin(np.clip(q[1], -1, 1))
        return q, (lon + np.pi) * self.radius, (lat + np.pi / 2) * self.radius, np.zeros(p.shape[1], np.int64)

    def distance(self, p):
        return float(np.linalg.norm(np.asarray(p, float) - self.center) - self.radius)


@dataclass
class Scene:
    """Everything :func:`render_scene` needs.  The appearance fields only affect the RGB image."""

    camera: Camera
    primitives: list
    light: Light | None = None
    ambient: float = 0.25
    exposure: float = 1.0
    white_balance: tuple = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    vignette: float = 0.0
    noise_sigma: float = 0.0  # sensor noise, in 8-bit levels
    blur: bool = False  # mild [1 2 1] lens blur of the RGB image
    noise_seed: int = 0


# --------------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------------


def _camera_dirs(height: int, width: int, rotation: np.ndarray) -> np.ndarray:
    """World-space ray directions (3, H, W) with unit z in camera coordinates."""
    fx, fy, cx, cy = intrinsics(height, width)
    u = ((np.arange(width) - cx) / fx)[None, :]
    v = ((np.arange(height) - cy) / fy)[:, None]
    r = rotation
    out = np.empty((3, height, width))
    for i in range(3):
        out[i] = r[i, 0] * u + r[i, 1] * v + r[i, 2]
    return out


def _box_corners(lo, hi):
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _screen_rect(prim, cam: Camera, height: int, width: int):
    """Conservative pixel rectangle (r0, r1, c0, c1) covering ``prim``; None if off-screen."""
    b = prim.bounds()
    if b is None:
        return 0, height, 0, width
    pc = (_box_corners(*b) - cam.position) @ cam.rotation
    if np.all(pc[:, 2] <= 0):
        return None
    if np.any(pc[:, 2] < 1e-3):
        return 0, height, 0, width
    fx, fy, cx, cy = intrinsics(height, width)
    us = fx * pc[:, 0] / pc[:, 2] + cx
    vs = fy * pc[:, 1] / pc[:, 2] + cy
    c0 = max(int(math.floor(us.min())) - 1, 0)
    c1 = min(int(math.ceil(us.max())) + 2, width)
    r0 = max(int(math.floor(vs.min())) - 1, 0)
    r1 = min(int(math.ceil(vs.max())) + 2, height)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _trace(scene: Scene, height: int, width: int):
    cam = scene.camera
    dirs = _camera_dirs(height, width, cam.rotation)
    t_best = np.full((height, width), np.inf)
    idx = np.full((height, width), -1, np.int64)
    for k, prim in enumerate(scene.primitives):
        rect = _screen_rect(prim, cam, height, width)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        sub = dirs[:, r0:r1, c0:c1].reshape(3, -1)
        t = prim.intersect(cam.position, sub).reshape(r1 - r0, c1 - c0)
        tb = t_best[r0:r1, c0:c1]
        closer = t < tb
        tb[closer] = t[closer]
        idx[r0:r1, c0:c1][closer] = k
    return dirs, t_best, idx


def trace(scene: Scene, height: int = 480, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """Depth (float64 [H, W], z-distance, inf where nothing is hit) and, per pixel, the index
    into ``scene.primitives`` of the surface seen there (-1 where nothing is hit)."""
    _, t, idx = _trace(scene, height, width)
    return t, idx


_SHADOW_GRID = 96
_SHADOW_Q = 6.0


def _shadow_mask(scene: Scene, pts: np.ndarray) -> np.ndarray:
    """True where the segment from the light to ``pts`` (3, N) is blocked by a primitive.

    Candidates are culled in light space: a point below the light is projected through the light
    onto the plane one metre below it, q = (x, z) offset / height; a primitive entirely below the
    light can only block points whose q falls inside the q-rectangle of its 8 corners.  Points
    are bucketed on a grid of q once, so each primitive only tests the buckets it covers.
    """
    L = scene.light.position
    d = pts - L[:, None]
    n = pts.shape[1]
    blocked = np.zeros(n, bool)
    G, Q = _SHADOW_GRID, _SHADOW_Q
    below = np.nonzero(d[1] < -1e-6)[0]
    hgt = -d[1, below]
    ix = np.clip(((d[0, below] / hgt + Q) * (G / (2 * Q))).astype(np.int64), 0, G - 1)
    iz = np.clip(((d[2, below] / hgt + Q) * (G / (2 * Q))).astype(np.int64), 0, G - 1)
    key = ix * G + iz
    order = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[order], np.arange(G * G + 1))
    sorted_idx = below[order]

    def cell(q):
        return min(max(int((q + Q) * (G / (2 * Q))), 0), G - 1)

    for prim in scene.primitives:
        if not getattr(prim, "casts_shadow", True):
            continue
        b = prim.bounds()
        if b is None or b[1][1] >= L[1] - 1e-6:
            cand = np.nonzero(~blocked)[0]
        else:
            c = _box_corners(*b) - L
            qx = c[:, 0] / -c[:, 1]
            qz = c[:, 2] / -c[:, 1]
            x0, x1, z0, z1 = cell(qx.min()), cell(qx.max()), cell(qz.min()), cell(qz.max())
            parts = [sorted_idx[starts[i * G + z0]:starts[i * G + z1 + 1]] for i in range(x0, x1 + 1)]
            cand = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            cand = cand[~blocked[cand]]
        if cand.size == 0:
            continue
        t = prim.intersect(L, d[:, cand])
        blocked[cand[t < 1.0 - 1e-4]] = True
    return blocked


def _blur121(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[1:-1] = 0.25 * img[:-2] + 0.5 * img[1:-1] + 0.25 * img[2:]
    img = out
    out = img.copy()
    out[:, 1:-1] = 0.25 * img[:, :-2] + 0.5 * img[:, 1:-1] + 0.25 * img[:, 2:]
    return out


def render_scene(scene: Scene, height: int = 480, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast ``scene``: rgb uint8 [H, W, 3] and depth float32 [H, W] (metres, z-distance).

    Pixels that see nothing (only possible in hand-built scenes without a room) get depth 0 and
    black, the Kinect convention for a missing measurement.
    """
    dirs, t, idx = _trace(scene, height, width)
    fx, fy, _, _ = intrinsics(height, width)
    f = 0.5 * (fx + fy)
    npx = height * width
    dirs = dirs.reshape(3, npx)
    t = t.reshape(npx)
    idx = idx.reshape(npx)
    hit = np.nonzero(idx >= 0)[0]
    if hit.size < npx:
        dirs, t, idx = dirs[:, hit], t[hit], idx[hit]
    pts = scene.camera.position[:, None] + t * dirs
    nh = t.size

    normals = np.zeros((3, nh))
    albedo = np.zeros((nh, 3))
    emissive = np.zeros(nh, bool)
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(len(scene.primitives) + 1))
    dlen = np.sqrt(dirs[0] ** 2 + dirs[1] ** 2 + dirs[2] ** 2)
    for k, prim in enumerate(scene.primitives):
        sel = order[bounds[k]:bounds[k + 1]]
        if sel.size == 0:
            continue
        ds = dirs[:, sel]
        n, u, v, mat = prim.surface(pts[:, sel], ds)
        normals[:, sel] = n
        cosi = np.abs(n[0] * ds[0] + n[1] * ds[1] + n[2] * ds[2]) / dlen[sel]
        # pixel footprint on the surface (metres): z / f, stretched (partly) by the incidence angle
        fp = t[sel] / f / np.sqrt(np.maximum(cosi, 0.05))
        mats = prim.materials
        for mi in np.unique(mat):
            m = mats[mi]
            w = mat == mi
            s2 = sel[w]
            albedo[s2] = m.albedo(u[w], v[w], fp[w])
            if m.kind in _EMISSIVE_KINDS:
                emissive[s2] = True

    # lighting (linear radiance)
    hemi = 0.75 + 0.25 * normals[1]  # bounce light from the ceiling reaches up-facing surfaces more
    irr = np.repeat((scene.ambient * hemi)[:, None], 3, axis=1)
    if scene.light is not None:
        ld = scene.light.position[:, None] - pts
        dist2 = ld[0] ** 2 + ld[1] ** 2 + ld[2] ** 2
        ndotl = (normals[0] * ld[0] + normals[1] * ld[1] + normals[2] * ld[2]) / np.sqrt(np.maximum(dist2, 1e-12))
        lit = np.nonzero((ndotl > 0) & ~emissive)[0]
        if lit.size:
            vis = ~_shadow_mask(scene, pts[:, lit])
            e = scene.light.intensity * ndotl[lit] * vis / (dist2[lit] + 0.6)
            irr[lit] += e[:, None] * np.asarray(scene.light.color, float)
    rad = albedo * irr
    rad[emissive] = albedo[emissive]

    if hit.size < npx:
        img = np.zeros((npx, 3))
        img[hit] = rad
    else:
        img = rad
    img = img.reshape(height, width, 3).astype(np.float32)
    img *= (scene.exposure * np.asarray(scene.white_balance, float)).astype(np.float32)
    if scene.saturation != 1.0:
        lum = img.mean(axis=2, keepdims=True)
        img = np.maximum(lum + (img - lum) * np.float32(scene.saturation), 0)
    if scene.vignette:
        fx_, fy_, cx_, cy_ = intrinsics(height, width)
        xx = ((np.arange(width) - cx_) / fx_)[None, :]
        yy = ((np.arange(height) - cy_) / fy_)[:, None]
        img *= (1.0 - scene.vignette * (xx * xx + yy * yy)).astype(np.float32)[:, :, None]
    img = (1.0 - np.exp(np.float32(-1.35) * np.maximum(img, 0))) ** np.float32(1 / 2.2)  # shoulder, gamma
    if scene.blur:
        img = _blur121(img)
    img *= 255.0
    if scene.noise_sigma > 0:
        rng = np.random.default_rng(scene.noise_seed)
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(scene.noise_sigma)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    depth = np.zeros(npx, np.float32)
    depth[hit] = t
    return rgb, depth.reshape(height, width)


# --------------------------------------------------------------------------------------------
# Random scenes
# --------------------------------------------------------------------------------------------

_WALL_COLOURS = [
    (0.86, 0.84, 0.79), (0.82, 0.77, 0.67), (0.74, 0.75, 0.76), (0.68, 0.75, 0.80),
    (0.73, 0.79, 0.68), (0.87, 0.81, 0.62), (0.82, 0.70, 0.64), (0.90, 0.90, 0.88),
    (0.60, 0.62, 0.66), (0.78, 0.72, 0.78),
]
_WOODS = [
    ((0.76, 0.60, 0.40), (0.58, 0.40, 0.24)),  # oak
    ((0.45, 0.30, 0.19), (0.30, 0.19, 0.11)),  # walnut
    ((0.85, 0.74, 0.56), (0.72, 0.58, 0.40)),  # birch
    ((0.60, 0.33, 0.20), (0.42, 0.21, 0.12)),  # cherry
    ((0.88, 0.88, 0.86), (0.80, 0.80, 0.78)),  # white laminate
    ((0.22, 0.22, 0.23), (0.14, 0.14, 0.15)),  # black laminate
    ((0.55, 0.55, 0.52), (0.45, 0.45, 0.43)),  # grey laminate
]
_FABRICS = [
    (0.55, 0.15, 0.12), (0.20, 0.28, 0.45), (0.35, 0.40, 0.30), (0.70, 0.65, 0.55),
    (0.35, 0.35, 0.38), (0.85, 0.85, 0.82), (0.55, 0.45, 0.30), (0.30, 0.20, 0.30),
    (0.15, 0.35, 0.40),
]
_PLASTICS = [
    (0.80, 0.20, 0.15), (0.15, 0.40, 0.75), (0.90, 0.80, 0.20), (0.20, 0.60, 0.30),
    (0.92, 0.92, 0.90), (0.12, 0.12, 0.12), (0.60, 0.60, 0.62), (0.90, 0.50, 0.15),
]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _jitter(rng, c, amount=0.06):
    return tuple(float(np.clip(x * (1 + rng.uniform(-amount, amount)), 0, 1)) for x in c)


def _wood_mat(rng, kind="wood", scale=None):
    a, b = _pick(rng, _WOODS)
    return Material(kind, _jitter(rng, a), _jitter(rng, b), scale or float(rng.uniform(0.3, 0.8)),
                    seed=int(rng.integers(1 << 30)))


def _fabric_mat(rng):
    c = _jitter(rng, _pick(rng, _FABRICS), 0.1)
    c2 = tuple(x * 0.7 for x in c)
    return Material("carpet", c, c2, contrast=float(rng.uniform(0.15, 0.35)), seed=int(rng.integers(1 << 30)))


def _plastic_mat(rng):
    c = _jitter(rng, _pick(rng, _PLASTICS), 0.08)
    return Material("paint", c, contrast=0.15, seed=int(rng.integers(1 << 30)))


def _floor_mat(rng):
    r = rng.random()
    s = int(rng.integers(1 << 30))
    if r < 0.35:
        a, b = _pick(rng, _WOODS[:4])
        return Material("planks", _jitter(rng, a), _jitter(rng, b), float(rng.uniform(0.8, 1.3)), seed=s)
    if r < 0.55:
        c = _jitter(rng, _pick(rng, [(0.85, 0.83, 0.78), (0.65, 0.62, 0.58), (0.75, 0.70, 0.62), (0.45, 0.45, 0.47)]))
        return Material("tiles", c, tuple(x * 0.6 for x in c), float(rng.uniform(0.3, 0.6)), seed=s)
    if r < 0.62:
        a = _jitter(rng, _pick(rng, [(0.9, 0.9, 0.88), (0.85, 0.8, 0.7)]))
        b = _jitter(rng, _pick(rng, [(0.15, 0.15, 0.15), (0.35, 0.3, 0.25), (0.5, 0.2, 0.15)]))
        return Material("checker", a, b, float(rng.uniform(0.25, 0.5)), seed=s)
    if r < 0.82:
        c = _jitter(rng, _pick(rng, [(0.45, 0.40, 0.35), (0.35, 0.38, 0.45), (0.55, 0.50, 0.42), (0.40, 0.25, 0.22), (0.50, 0.52, 0.50)]), 0.1)
        return Material("carpet", c, tuple(x * 0.65 for x in c), contrast=float(rng.uniform(0.2, 0.4)), seed=s)
    img = "gravel" if rng.random() < 0.6 else "grass"
    c = _jitter(rng, (0.62, 0.60, 0.57) if img == "gravel" else (0.45, 0.52, 0.40), 0.1)
    return Material("image", c, image=img, scale=float(rng.uniform(1.0, 2.2)), contrast=0.25, seed=s)


def _wall_mats(rng):
    base = _jitter(rng, _pick(rng, _WALL_COLOURS), 0.04)
    s = int(rng.integers(1 << 30))
    walls = [Material("paint", base, contrast=float(rng.uniform(0.1, 0.4)), seed=s + k) for k in range(4)]
    r = rng.random()
    if r < 0.25:  # a brick feature wall
        k = int(rng.integers(4))
        c = _jitter(rng, _pick(rng, [(0.72, 0.45, 0.35), (0.80, 0.78, 0.74), (0.62, 0.50, 0.42)]))
        walls[k] = Material("image", c, image="brick", scale=float(rng.uniform(1.0, 1.6)), contrast=0.22, seed=s)
    elif r < 0.45:  # wallpaper
        c2 = _jitter(rng, tuple(x * rng.uniform(0.75, 0.9) for x in base))
        p = float(rng.uniform(0.08, 0.3))
        ks = range(4) if rng.random() < 0.5 else [int(rng.integers(4))]
        for k in ks:
            walls[k] = Material("stripes", base, c2, p, seed=s + k)
    return walls


def _rects_overlap(a, b, pad=0.05):
    return not (a[0] + a[2] + pad <= b[0] or b[0] + b[2] + pad <= a[0] or a[1] + a[3] + pad <= b[1] or b[1] + b[3] + pad <= a[1])


def _decals(rng, room_size):
    w, h, l = room_size
    lengths = [w, l, w, l]
    decals: list[Decal] = []
    used: list[list] = [[], [], [], []]

    def place(wall, width, height, v0, mat, frame=None, tries=20):
        L = lengths[wall]
        if width + 0.2 > L:
            return False
        for _ in range(tries):
            u0 = float(rng.uniform(0.1, L - width - 0.1))
            rect = (u0, v0, width, height)
            if any(_rects_overlap(rect, r) for r in used[wall]):
                continue
            used[wall].append(rect)
            if frame:
                fw, fmat = frame
                decals.append(Decal(wall, u0 - fw, v0 - fw, width + 2 * fw, height + 2 * fw, fmat))
            decals.append(Decal(wall, u0, v0, width, height, mat))
            return True
        return False

    s = lambda: int(rng.integers(1 << 30))  # noqa: E731
    if rng.random() < 0.6:  # door
        dw, dh = float(rng.uniform(0.8, 0.95)), float(rng.uniform(2.0, min(2.15, h - 0.15)))
        a, b = _pick(rng, _WOODS)
        place(int(rng.integers(4)), dw, dh, 0.0, Material("door", a, b, size=(dw, dh), seed=s()),
              frame=(0.06, Material("paint", (0.9, 0.9, 0.88), seed=s())))
    for _ in range(int(rng.integers(0, 3))):  # windows
        ww, wh = float(rng.uniform(0.8, 1.8)), float(rng.uniform(0.9, min(1.5, h - 1.2)))
        v0 = float(rng.uniform(0.8, h - wh - 0.2))
        place(int(rng.integers(4)), ww, wh, v0,
              Material("window", (0.92, 0.92, 0.9), size=(ww, wh), emission=float(rng.uniform(1.2, 2.2)), seed=s()))
    if rng.random() < 0.2:  # whiteboard
        bw, bh = float(rng.uniform(1.2, 2.0)), float(rng.uniform(0.8, 1.1))
        place(int(rng.integers(4)), bw, bh, float(rng.uniform(0.9, 1.1)),
              Material("noise", (0.93, 0.93, 0.92), (0.85, 0.86, 0.88), 0.3, 0.1, seed=s()),
              frame=(0.03, Material("paint", (0.7, 0.7, 0.72), seed=s())))
    for _ in range(int(rng.integers(1, 5))):  # posters, paintings, prints and documents
        name = _pick(rng, _POSTER_IMAGES + _DOCUMENT_IMAGES)
        pyr = _image_pyramid(name)
        aspect = (pyr[0].shape[1] / pyr[0].shape[0]) if pyr is not None else 1.3
        width = float(rng.uniform(0.3, 1.1)) if name not in _DOCUMENT_IMAGES else float(rng.uniform(0.25, 0.45))
        height = width / aspect
        v0 = float(rng.uniform(1.1, max(1.15, h - height - 0.4)))
        frame_col = _pick(rng, [(0.1, 0.1, 0.1), (0.85, 0.85, 0.82), (0.5, 0.35, 0.2), (0.7, 0.6, 0.3)])
        fw = float(rng.uniform(0.015, 0.06)) if rng.random() < 0.8 else 0.0
        frame = (fw, Material("paint", frame_col, contrast=0.1, seed=s())) if fw else None
        place(int(rng.integers(4)), width, height, v0,
              Material("image", size=(width, height), image=name, seed=s()), frame=frame)
    # skirting boards along the floor (added last so they sit in front of door frames)
    sk_col = _pick(rng, [(0.92, 0.92, 0.9), (0.45, 0.32, 0.2), (0.3, 0.3, 0.3)])
    sk_h = float(rng.uniform(0.05, 0.12))
    sk = Material("paint", sk_col, contrast=0.1, seed=s())
    for wall in range(4):
        doors = [r for r in used[wall] if r[1] == 0.0]
        u = 0.0
        for r in sorted(doors):
            if r[0] - 0.06 > u:
                decals.append(Decal(wall, u, 0.0, r[0] - 0.06 - u, sk_h, sk))
            u = r[0] + r[2] + 0.06
        if lengths[wall] > u:
            decals.append(Decal(wall, u, 0.0, lengths[wall] - u, sk_h, sk))
    return decals


# An object is (footprint (cx, cz, half_w, half_d, yaw), height, primitives)


def _place(center_xz, yaw, parts):
    """Move parts given in object-local coords (x right, z front) to the world."""
    r = _yaw_matrix(yaw)
    out = []
    cx, cz = center_xz
    for p in parts:
        if isinstance(p, Box):
            c = r @ p.center + np.array([cx, 0, cz])
            out.append(Box(c, p.size, p.yaw + yaw, p.material, p.face_materials))
        elif isinstance(p, Cylinder):
            c = r @ np.array([p.center_xz[0], 0, p.center_xz[1]])
            out.append(Cylinder((c[0] + cx, c[2] + cz), p.radius, p.y0, p.y1, p.material, p.cap_material))
        elif isinstance(p, Sphere):
            out.append(Sphere(r @ p.center + np.array([cx, 0, cz]), p.radius, p.material))
    return out


def _table(rng, desk=False):
    w = float(rng.uniform(0.9, 1.8))
    d = float(rng.uniform(0.6, 1.0)) if not desk else float(rng.uniform(0.55, 0.8))
    h = float(rng.uniform(0.7, 0.78))
    th = float(rng.uniform(0.025, 0.05))
    top = _wood_mat(rng)
    leg_mat = top if rng.random() < 0.6 else _plastic_mat(rng)
    lw = float(rng.uniform(0.04, 0.07))
    parts = [Box((0, h - th / 2, 0), (w, th, d), 0, top)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(Box((sx * (w / 2 - lw), (h - th) / 2, sz * (d / 2 - lw)), (lw, h - th, lw), 0, leg_mat))
    if desk and rng.random() < 0.7:  # drawer pedestal
        pw = float(rng.uniform(0.35, 0.45))
        ped = Material("drawers", top.color, top.color2, float(rng.uniform(0.15, 0.25)), seed=top.seed)
        parts.append(Box((w / 2 - pw / 2 - 0.02, (h - th) / 2, 0), (pw, h - th, d - 0.06), 0, top, {4: ped}))
    return w / 2, d / 2, h, parts, ("top", h, w / 2 - 0.1, d / 2 - 0.1)


def _chair(rng):
    s = float(rng.uniform(0.4, 0.5))
    sh = float(rng.uniform(0.42, 0.48))
    mat = _wood_mat(rng) if rng.random() < 0.6 else _plastic_mat(rng)
    seat = _fabric_mat(rng) if rng.random() < 0.5 else mat
    lw = 0.035
    parts = [Box((0, sh - 0.025, 0), (s, 0.05, s), 0, seat)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(Box((sx * (s / 2 - lw), (sh - 0.05) / 2, sz * (s / 2 - lw)), (lw, sh - 0.05, lw), 0, mat))
    bh = float(rng.uniform(0.35, 0.5))
    parts.append(Box((0, sh + bh / 2, -s / 2 + 0.02), (s, bh, 0.04), 0, mat))
    return s / 2, s / 2, sh + bh, parts, None


def _shelf(rng, room_h):
    w = float(rng.uniform(0.6, 1.4))
    d = float(rng.uniform(0.28, 0.4))
    h = float(rng.uniform(1.2, min(2.2, room_h - 0.6)))
    m = _wood_mat(rng)
    front = Material("books", m.color, m.color2, float(rng.uniform(0.3, 0.4)), seed=int(rng.integers(1 << 30)))
    parts = [Box((0, h / 2, 0), (w, h, d), 0, m, {4: front})]
    return w / 2, d / 2, h, parts, ("top", h, w / 2 - 0.05, d / 2 - 0.05) if h < 1.5 else None


def _cabinet(rng):
    w = float(rng.uniform(0.6, 1.6))
    d = float(rng.uniform(0.4, 0.6))
    h = float(rng.uniform(0.6, 1.3))
    m = _wood_mat(rng)
    front = Material("drawers", m.color, m.color2, float(rng.uniform(0.15, 0.35)), seed=m.seed)
    return w / 2, d / 2, h, [Box((0, h / 2, 0), (w, h, d), 0, m, {4: front})], ("top", h, w / 2 - 0.08, d / 2 - 0.08)


def _bed(rng):
    w = float(rng.uniform(0.9, 1.8))
    ln = float(rng.uniform(1.9, 2.1))
    h = float(rng.uniform(0.4, 0.6))
    frame = _wood_mat(rng)
    sheet = _fabric_mat(rng)
    parts = [
        Box((0, h * 0.3, 0), (w, h * 0.6, ln), 0, frame),
        Box((0, h * 0.8, 0.02), (w - 0.04, h * 0.4, ln - 0.04), 0, sheet),
        Box((0, h + 0.06, -ln / 2 + 0.3), (w * 0.8, 0.12, 0.4), 0, _fabric_mat(rng)),
    ]
    hb = float(rng.uniform(0.8, 1.2))
    parts.append(Box((0, hb / 2, -ln / 2 - 0.03), (w + 0.04, hb, 0.06), 0, frame))
    return w / 2 + 0.02, ln / 2 + 0.06, hb, parts, None


def _sofa(rng):
    w = float(rng.uniform(1.4, 2.4))
    d = float(rng.uniform(0.8, 1.0))
    sh = float(rng.uniform(0.4, 0.48))
    bh = float(rng.uniform(0.75, 0.95))
    m = _fabric_mat(rng)
    aw = 0.18
    parts = [
        Box((0, sh / 2, 0.05), (w - 2 * aw, sh, d - 0.1), 0, m),
        Box((0, bh / 2, -d / 2 + 0.1), (w, bh, 0.2), 0, m),
        Box((-w / 2 + aw / 2, 0.3, 0), (aw, 0.6, d), 0, m),
        Box((w / 2 - aw / 2, 0.3, 0), (aw, 0.6, d), 0, m),
    ]
    return w / 2, d / 2, bh, parts, None


def _small_round(rng):
    """Floor-standing cylinder or sphere: bin, stool, pillar-ish pot with a plant, ball."""
    r = rng.random()
    if r < 0.3:  # bin / stool
        rad = float(rng.uniform(0.15, 0.25))
        h = float(rng.uniform(0.3, 0.65))
        m = _plastic_mat(rng) if rng.random() < 0.6 else _wood_mat(rng)
        return rad, rad, h, [Cylinder((0, 0), rad, 0.0, h, m)], ("top", h, rad * 0.5, rad * 0.5)
    if r < 0.55:  # plant: pot + foliage ball
        rad = float(rng.uniform(0.12, 0.22))
        h = float(rng.uniform(0.25, 0.5))
        pot = Material("paint", _jitter(rng, _pick(rng, [(0.6, 0.3, 0.2), (0.85, 0.85, 0.82), (0.2, 0.2, 0.2)])), seed=int(rng.integers(1 << 30)))
        fr = float(rng.uniform(0.2, 0.4))
        leaves = Material("noise", _jitter(rng, (0.22, 0.42, 0.16), 0.15), (0.08, 0.2, 0.06), 0.05, 0.6, seed=int(rng.integers(1 << 30)))
        parts = [Cylinder((0, 0), rad, 0.0, h, pot), Sphere((0, h + fr * 0.8, 0), fr, leaves)]
        return max(rad, fr), max(rad, fr), h + 1.8 * fr, parts, None
    if r < 0.75:  # ball
        rad = float(rng.uniform(0.1, 0.35))
        m = _plastic_mat(rng) if rng.random() < 0.6 else Material("checker", (0.9, 0.9, 0.9), (0.1, 0.1, 0.1), rad * 0.8)
        return rad, rad, 2 * rad, [Sphere((0, rad, 0), rad, m)], None
    # tall round column / floor lamp pole / big drum
    rad = float(rng.uniform(0.15, 0.35))
    h = float(rng.uniform(0.8, 1.4))
    m = _wood_mat(rng) if rng.random() < 0.5 else _plastic_mat(rng)
    return rad, rad, h, [Cylinder((0, 0), rad, 0.0, h, m)], None


def _items_on_top(rng, top):
    """Small things standing on a surface: (local x range, z range, height) -> local parts."""
    _, h, hx, hz = top
    parts = []
    taken = []
    for _ in range(int(rng.integers(0, 4))):
        r = rng.random()
        x = float(rng.uniform(-hx, hx))
        z = float(rng.uniform(-hz, hz))
        if any(math.hypot(x - a, z - b) < 0.25 for a, b in taken):
            continue
        taken.append((x, z))
        if r < 0.35:
            rad = float(rng.uniform(0.03, 0.09))
            ih = float(rng.uniform(0.08, 0.35))
            parts.append(Cylinder((x, z), rad, h, h + ih, _plastic_mat(rng)))
        elif r < 0.6:
            rad = float(rng.uniform(0.05, 0.13))
            parts.append(Sphere((x, h + rad, z), rad, _plastic_mat(rng) if rng.random() < 0.5 else _fabric_mat(rng)))
        else:
            bw, bd, bh = (float(rng.uniform(0.12, 0.35)), float(rng.uniform(0.12, 0.3)), float(rng.uniform(0.03, 0.25)))
            mat = _plastic_mat(rng) if rng.random() < 0.5 else _wood_mat(rng)
            parts.append(Box((x, h + bh / 2, z), (bw, bh, bd), float(rng.uniform(-0.5, 0.5)), mat))
    return parts


def _obb_overlap(a, b, pad=0.05):
    """2-D separating-axis test for footprints (cx, cz, hw, hd, yaw)."""
    def axes(f):
        c, s = math.cos(f[4]), math.sin(f[4])
        return np.array([c, -s]), np.array([s, c])  # local x and z axes in (x, z)

    ca = np.array(a[:2])
    cb = np.array(b[:2])
    ax_a, ax_b = axes(a), axes(b)
    for ax in (*ax_a, *ax_b):
        ra = (a[2] + pad) * abs(ax @ ax_a[0]) + (a[3] + pad) * abs(ax @ ax_a[1])
        rb = b[2] * abs(ax @ ax_b[0]) + b[3] * abs(ax @ ax_b[1])
        if abs(ax @ (cb - ca)) > ra + rb:
            return False
    return True


def _footprint_inside(f, room_w, room_l, margin=0.0):
    c, s = math.cos(f[4]), math.sin(f[4])
    ex = abs(c) * f[2] + abs(s) * f[3]
    ez = abs(s) * f[2] + abs(c) * f[3]
    return (f[0] - ex >= margin and f[0] + ex <= room_w - margin and f[1] - ez >= margin and f[1] + ez <= room_l - margin)


_WALL_YAW = (0.0, -math.pi / 2, math.pi, math.pi / 2)  # local +z points into the room


def _furniture(rng, room_size):
    w, h, l = room_size
    n = int(rng.integers(4, 13))
    placed = []  # footprints
    prims = []
    kinds = ["table", "desk", "chair", "shelf", "cabinet", "bed", "sofa", "round", "round"]
    weights = np.array([1.0, 0.8, 1.4, 1.2, 1.0, 0.4, 0.5, 1.2, 1.0])
    weights /= weights.sum()
    attempts = 0
    while len(placed) < n and attempts < 200:
        attempts += 1
        # crowded room: fall back to small round things so that at least 4 objects fit
        kind = kinds[int(rng.choice(len(kinds), p=weights))] if attempts <= 60 else "round"
        if kind in ("table", "desk"):
            hw, hd, oh, parts, top = _table(rng, desk=kind == "desk")
        elif kind == "chair":
            hw, hd, oh, parts, top = _chair(rng)
        elif kind == "shelf":
            hw, hd, oh, parts, top = _shelf(rng, h)
        elif kind == "cabinet":
            hw, hd, oh, parts, top = _cabinet(rng)
        elif kind == "bed":
            hw, hd, oh, parts, top = _bed(rng)
        elif kind == "sofa":
            hw, hd, oh, parts, top = _sofa(rng)
        else:
            hw, hd, oh, parts, top = _small_round(rng)
        against_wall = kind in ("shelf", "cabinet", "bed", "sofa", "desk") and rng.random() < 0.85
        if against_wall:
            wall = int(rng.integers(4))
            jit = float(rng.uniform(-0.03, 0.03))
            yaw = _WALL_YAW[wall] + jit
            along = w if wall in (0, 2) else l
            if 2 * hw + 0.1 > along:
                continue
            s = float(rng.uniform(hw + 0.05, along - hw - 0.05))
            off = hd * math.cos(jit) + hw * abs(math.sin(jit)) + 0.02
            cx, cz = [(s, off), (w - off, s), (w - s, l - off), (off, l - s)][wall]
        else:
            yaw = float(rng.uniform(-math.pi, math.pi)) if rng.random() < 0.6 else float(rng.integers(4)) * math.pi / 2 + float(rng.uniform(-0.1, 0.1))
            cx = float(rng.uniform(0, w))
            cz = float(rng.uniform(0, l))
        fp = (cx, cz, hw, hd, yaw)
        if not _footprint_inside(fp, w, l, 0.01) or any(_obb_overlap(fp, q) for q in placed):
            continue
        if top is not None and rng.random() < 0.7:
            parts = parts + _items_on_top(rng, top)
        placed.append(fp)
        prims.extend(_place((cx, cz), yaw, parts))
    return prims, placed


def _rug(rng, room_size):
    """A 1 cm thick rug lying on the floor (furniture may stand on it)."""
    w, _, l = room_size
    rw = float(rng.uniform(1.2, min(3.0, w - 0.6)))
    rl = float(rng.uniform(1.6, min(4.0, l - 0.6)))
    yaw = float(rng.integers(2)) * math.pi / 2 + float(rng.uniform(-0.2, 0.2))
    fp = (0.0, 0.0, rw / 2, rl / 2, yaw)
    for _ in range(20):
        fp = (float(rng.uniform(0, w)), float(rng.uniform(0, l)), rw / 2, rl / 2, yaw)
        if _footprint_inside(fp, w, l, 0.2):
            break
    else:
        return []
    r = rng.random()
    seed = int(rng.integers(1 << 30))
    if r < 0.5:
        c = _jitter(rng, _pick(rng, _FABRICS), 0.1)
        mat = Material("carpet", c, tuple(x * 0.55 for x in c), contrast=0.4, seed=seed)
    elif r < 0.75:
        a, b = _pick(rng, _FABRICS), _pick(rng, _FABRICS)
        mat = Material("stripes", a, b, float(rng.uniform(0.1, 0.4)), seed=seed)
    else:
        mat = Material("image", _jitter(rng, _pick(rng, _FABRICS), 0.1), image="grass",
                       scale=float(rng.uniform(0.8, 1.5)), contrast=0.3, seed=seed)
    return [Box((fp[0], 0.005, fp[1]), (rw, 0.01, rl), yaw, mat, casts_shadow=False)]


def _corner_depths(cam: Camera, room_size) -> np.ndarray:
    w, h, l = room_size
    c = np.array([[x, y, z] for x in (0, w) for y in (0, h) for z in (0, l)], float)
    return ((c - cam.position) @ cam.rotation)[:, 2]


def _probe_view(cam: Camera, prims, room) -> tuple[float, float]:
    """Median depth and the fraction of rays that see furniture, over a coarse 5x5 grid of view
    rays (used to avoid staring at a bare wall)."""
    fx, fy, cx, cy = intrinsics(480, 640)
    us = np.linspace(60, 580, 5)
    vs = np.linspace(60, 420, 5)
    uu, vv = np.meshgrid(us, vs)
    dc = np.stack([(uu.ravel() - cx) / fx, (vv.ravel() - cy) / fy, np.ones(25)])
    d = cam.rotation @ dc
    t = room.intersect(cam.position, d)
    t_room = t
    for p in prims:
        t = np.minimum(t, p.intersect(cam.position, d))
    return float(np.median(t)), float(np.mean(t < t_room))


def random_scene(seed: int) -> Scene:
    """The random room of ``seed`` (deterministic: everything is drawn from default_rng(seed))."""
    rng = np.random.default_rng(seed)
    while True:
        W = float(rng.uniform(3.0, 7.0))
        L = float(rng.uniform(4.0, 9.0))
        H = float(rng.uniform(2.4, 3.2))
        size = (W, H, L)
        room = Room(size, floor=_floor_mat(rng),
                    ceiling=Material("paint", _jitter(rng, (0.9, 0.9, 0.88), 0.03), contrast=0.1, seed=int(rng.integers(1 << 30))),
                    walls=_wall_mats(rng), decals=[])
        room.decals = _decals(rng, size)
        rug = _rug(rng, size) if rng.random() < 0.35 else []
        prims, footprints = _furniture(rng, size)
        prims = rug + prims
        # ceiling lamp: an emissive bulb shade hanging from a cord
        top_obj = max([p.bounds()[1][1] for p in prims], default=0.0)
        ly = float(rng.uniform(max(H - 0.6, top_obj + 0.2), H - 0.25)) if top_obj + 0.2 < H - 0.25 else H - 0.2
        lx, lz = float(rng.uniform(0.3 * W, 0.7 * W)), float(rng.uniform(0.3 * L, 0.7 * L))
        light = Light((lx, ly, lz), float(rng.uniform(2.5, 5.0)),
                      _jitter(rng, (1.0, 0.9, 0.75), 0.05))
        shade_r = float(rng.uniform(0.08, 0.16))
        lamp = [
            Sphere((lx, ly, lz), shade_r, Material("emissive", (1.0, 0.95, 0.85), emission=4.0), casts_shadow=False),
            Cylinder((lx, lz), 0.006, ly, H, Material("paint", (0.2, 0.2, 0.2)), casts_shadow=False),
        ]
        # camera: keep >= 0.7 m from everything, look into the room, every corner <= 9.85 m deep
        for attempt in range(300):
            cy_max = min(CAMERA_HEIGHT[1], H - _CAMERA_CLEARANCE)
            pos = np.array([rng.uniform(0.7, W - 0.7), rng.uniform(CAMERA_HEIGHT[0], cy_max), rng.uniform(0.7, L - 0.7)])
            if footprints and rng.random() < 0.7:  # look at a piece of furniture...
                f = footprints[int(rng.integers(len(footprints)))]
                target = np.array([f[0], 0.0, f[1]])
            else:  # ...or anywhere into the room
                target = np.array([rng.uniform(0.5, W - 0.5), 0.0, rng.uniform(0.5, L - 0.5)])
            dxz = math.hypot(target[0] - pos[0], target[2] - pos[2])
            if dxz < 1.5:
                continue
            yaw = math.atan2(target[0] - pos[0], target[2] - pos[2]) + float(rng.uniform(-0.3, 0.3))
            pitch = float(rng.uniform(*CAMERA_PITCH))
            roll = float(rng.uniform(-0.03, 0.03))
            cam = Camera(pos, camera_rotation(yaw, pitch, roll))
            if min((p.distance(pos) for p in prims + lamp), default=9.0) < _CAMERA_CLEARANCE:
                continue
            if _corner_depths(cam, size).max() > _MAX_CORNER_DEPTH:
                continue
            if attempt < 200:
                med, on_objects = _probe_view(cam, prims, room)
                if med < 1.6 or (attempt < 150 and on_objects < 0.12):
                    continue
            break
        else:
            continue  # no valid pose in this layout: draw a new room
        return Scene(
            camera=cam,
            primitives=[room, *prims, *lamp],
            light=light,
            ambient=float(rng.uniform(0.12, 0.3)),
            exposure=float(rng.uniform(0.75, 1.25)),
            white_balance=(float(rng.uniform(1.0, 1.12)), 1.0, float(rng.uniform(0.82, 0.98))),
            saturation=float(rng.uniform(0.8, 1.1)),
            vignette=float(rng.uniform(0.1, 0.35)),
            noise_sigma=float(rng.uniform(0.8, 2.5)),
            blur=True,
            noise_seed=int(rng.integers(1 << 62)),
        )


def render(seed: int, height: int = 480, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3] and depth float32 [H, W] (metres) of the random scene of ``seed``."""
    return render_scene(random_scene(int(seed)), height, width)


# --------------------------------------------------------------------------------------------
# Splits and cache
# --------------------------------------------------------------------------------------------


def _cache_root(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    # same default as pyapprox.data.nyu.default_cache_dir
    env = os.environ.get("PYAPPROX_CACHE")
    if env:
        return Path(env) / "synthetic"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pyapprox" / "synthetic"


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
