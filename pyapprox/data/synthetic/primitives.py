"""Scene primitives and the :class:`Scene` that holds them.

Rays are structure-of-arrays: ``d`` is (3, N) with rows x, y, z.  Every primitive has

* ``intersect(o (3,), d (3, N)) -> t (N,)``, inf where missed; the hit point is ``o + t * d``.
  ``d`` is NOT normalised: camera rays have unit z in camera coordinates, so t is the z-depth.
* ``surface(p (3, N), d (3, N)) -> normals (3, N), u (N,), v (N,)`` in metres, material index (N,)
  into its ``materials`` list.
* ``bounds() -> (lo, hi)`` world AABB or None (unbounded); ``distance(point)`` -> signed distance.
* ``casts_shadow``: whether it can block the light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pyapprox.data.synthetic.camera import Camera, Light
from pyapprox.data.synthetic.textures import Material

_EPS = 1e-9


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
