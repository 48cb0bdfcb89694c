"""Ray casting of a :class:`~pyapprox.data.synthetic.primitives.Scene`.

:func:`trace` gives z-depth and the primitive index seen at each pixel; :func:`render_scene`
shades the hits (materials, hemispherical ambient, one point light with hard shadows traced
against the same primitives, then exposure, white balance, saturation, vignetting, tone curve,
lens blur and sensor noise) into rgb uint8 [H, W, 3] and depth float32 [H, W].  Only each
primitive's projected screen rectangle is intersected with camera rays; shadow rays are culled
on a light-space grid.  Deterministic: the sensor noise comes from ``scene.noise_seed``.
"""

from __future__ import annotations

import math

import numpy as np

from pyapprox.data.synthetic.camera import Camera, intrinsics
from pyapprox.data.synthetic.primitives import Scene
from pyapprox.data.synthetic.textures import _EMISSIVE_KINDS

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
