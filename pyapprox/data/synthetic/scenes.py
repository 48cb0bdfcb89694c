"""Random furnished rooms: :func:`random_scene` ``(seed)`` draws everything from
``numpy.random.default_rng(seed)``, so a seed always gives the same :class:`Scene`.

A room with floor, ceiling and wall materials, wall decals (door, windows, whiteboard, framed
pictures, skirting boards), an optional rug, 4-12 non-overlapping pieces of furniture (some
with small items on top), a hanging lamp, and a camera pose chosen (never clipped) so that it
keeps :data:`_CAMERA_CLEARANCE` from every surface and every room corner is at most
:data:`_MAX_CORNER_DEPTH` deep, i.e. every visible depth lies in [MIN_DEPTH, MAX_DEPTH].
"""

from __future__ import annotations

import math

import numpy as np

from pyapprox.data.synthetic.camera import Camera, Light, camera_rotation, intrinsics
from pyapprox.data.synthetic.primitives import Box, Cylinder, Decal, Room, Scene, Sphere, _yaw_matrix
from pyapprox.data.synthetic.textures import _DOCUMENT_IMAGES, _POSTER_IMAGES, Material, _image_pyramid

#: A hand-held Kinect at chest height, as in NYU Depth v2: height (m) and pitch (rad, negative = down).
#: (Version 1 drew 1.0-1.7 m and -0.33..0.1 rad; that spread made absolute scale too ambiguous to learn
#: from 1,500 images on a CPU budget.)
CAMERA_HEIGHT = (1.3, 1.5)
CAMERA_PITCH = (-0.15, 0.0)
_CAMERA_CLEARANCE = 0.7  # metres from any surface; the near frustum (z <= 0.5 m) fits in 0.64 m
_MAX_CORNER_DEPTH = 9.85


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
