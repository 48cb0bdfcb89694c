"""Surface appearance: band-limited procedural textures and scikit-image photographs.

:class:`Material` ``.albedo(u, v, fp)`` gives linear albedo [N, 3] at surface coordinates in
metres, band-limited by the pixel footprint ``fp`` (metres); each ``kind`` is one ``_m_*``
function in :data:`_MATERIAL_FUNCS`.  Kinds in :data:`_EMISSIVE_KINDS` return emitted radiance
instead (unlit).  Photographs (:data:`IMAGE_TEXTURES`) are read from ``skimage/data`` on disk,
never through scikit-image's fetcher, into cached mip pyramids (:func:`_image_pyramid`); a
missing file falls back to a procedural pattern.  Everything is deterministic: the noise
lattice has a fixed seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
