"""Tests of the procedural RGB-D renderer (pyapprox.data.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyapprox.data import synthetic as syn
from pyapprox.errors import PyapproxError


def _ray_cam(height, width):
    """Camera-frame ray directions (H, W, 3) with unit z, as the renderer defines them."""
    fx, fy, cx, cy = syn.intrinsics(height, width)
    u = (np.arange(width) - cx) / fx
    v = (np.arange(height) - cy) / fy
    d = np.ones((height, width, 3))
    d[:, :, 0] = u[None, :]
    d[:, :, 1] = v[:, None]
    return d


# ------------------------------------------------------------------------------ determinism


def test_same_seed_is_bit_identical():
    a_rgb, a_d = syn.render(7, 60, 80)
    b_rgb, b_d = syn.render(7, 60, 80)
    assert a_rgb.dtype == np.uint8 and a_rgb.shape == (60, 80, 3)
    assert a_d.dtype == np.float32 and a_d.shape == (60, 80)
    np.testing.assert_array_equal(a_rgb, b_rgb)
    np.testing.assert_array_equal(a_d, b_d)


def test_different_seeds_differ():
    a_rgb, a_d = syn.render(7, 60, 80)
    b_rgb, b_d = syn.render(8, 60, 80)
    assert not np.array_equal(a_d, b_d)
    assert not np.array_equal(a_rgb, b_rgb)


# ------------------------------------------------------------------------------ depth range


def test_depth_in_range_and_finite_for_many_seeds():
    seeds = list(range(25)) + [syn.SPLITS["val"][0], syn.SPLITS["test"][0], syn.SPLITS["test"][199],
                               123_456, 999_999]
    for seed in seeds:
        rgb, depth = syn.render(seed, 120, 160)
        assert np.all(np.isfinite(depth)), seed
        assert depth.min() > syn.MIN_DEPTH, (seed, depth.min())
        assert depth.max() <= syn.MAX_DEPTH, (seed, depth.max())
        assert depth.max() - depth.min() > 0.5, seed  # a real scene, not a flat wall
        assert rgb.std() > 10, seed


def test_random_scene_respects_its_constraints():
    for seed in range(10):
        sc = syn.random_scene(seed)
        room = sc.primitives[0]
        assert isinstance(room, syn.Room)
        w, h, l = room.size
        assert 3 <= w <= 7 and 4 <= l <= 9 and 2.4 <= h <= 3.2
        assert 1.0 <= sc.camera.position[1] <= 1.7
        for p in sc.primitives[1:]:
            assert p.distance(sc.camera.position) >= 0.7
        # camera rotation is orthonormal and right-handed
        r = sc.camera.rotation
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ geometry


def test_intrinsics_nyu_and_scaled():
    assert syn.intrinsics(480, 640) == pytest.approx((518.8579, 519.4696, 325.5824, 253.7362))
    fx, fy, cx, cy = syn.intrinsics(240, 320)
    assert (fx, fy, cx, cy) == pytest.approx((518.8579 / 2, 519.4696 / 2, 325.5824 / 2, 253.7362 / 2))


@pytest.mark.parametrize("yaw", [0.0, math.pi / 2, -2.0])
def test_camera_facing_wall_squarely(yaw):
    """Camera level and square to a wall at distance d: depth == d wherever the wall is seen."""
    H, W = 60, 80
    w, h, l = 5.0, 3.0, 8.0
    room = syn.Room((w, h, l))
    # camera at the room centre, so each wall is square-on for the yaws we face
    pos = np.array([w / 2, 1.4, l / 2])
    if yaw == 0.0:
        d_wall = l - pos[2]
    elif yaw == math.pi / 2:
        d_wall = w - pos[0]
    else:  # facing no wall squarely: use a free plane in front of the camera instead
        d_wall = 2.5
    cam = syn.Camera(pos, syn.camera_rotation(yaw, 0.0, 0.0))
    prims = [room]
    if yaw == -2.0:
        fwd = cam.rotation[:, 2]
        prims = [syn.Plane(pos + d_wall * fwd, -fwd)]
    scene = syn.Scene(cam, prims, light=syn.Light(pos + [0.3, 1.0, 0.2]))
    rgb, depth = syn.render_scene(scene, H, W)
    # which pixels see the wall: the ray's hit with the wall plane lies inside the wall rectangle
    d_world = _ray_cam(H, W) @ cam.rotation.T
    p = pos + d_wall * d_world
    if yaw == 0.0:
        on_wall = (p[..., 0] >= 0) & (p[..., 0] <= w) & (p[..., 1] >= 0) & (p[..., 1] <= h)
    elif yaw == math.pi / 2:
        on_wall = (p[..., 2] >= 0) & (p[..., 2] <= l) & (p[..., 1] >= 0) & (p[..., 1] <= h)
    else:
        on_wall = np.ones((H, W), bool)
    assert on_wall.sum() > 0.3 * H * W
    np.testing.assert_allclose(depth[on_wall], d_wall, atol=1e-4)
    # everything else (floor, ceiling, side walls) is nearer than the wall
    assert np.all(depth[~on_wall] < d_wall + 1e-4)


def test_camera_roll_keeps_plane_depth():
    """Rolling about the optical axis does not change the z-depth of a fronto-parallel plane."""
    cam = syn.Camera([0.0, 1.0, 0.0], syn.camera_rotation(0.3, 0.0, 0.4))
    fwd = cam.rotation[:, 2]
    scene = syn.Scene(cam, [syn.Plane(cam.position + 3.25 * fwd, fwd)])
    _, depth = syn.render_scene(scene, 48, 64)
    np.testing.assert_allclose(depth, 3.25, atol=1e-5)


@pytest.mark.parametrize("size", [(480, 640), (120, 160)])
def test_floor_plane_depth_is_analytic(size):
    H, W = size
    h = 1.3
    cam = syn.Camera([0.0, h, 0.0], syn.camera_rotation(0.7, 0.0, 0.0))
    scene = syn.Scene(cam, [syn.Plane([0, 0, 0], [0, 1, 0])], light=syn.Light([0, 2.5, 1]))
    _, depth = syn.render_scene(scene, H, W)
    fx, fy, cx, cy = syn.intrinsics(H, W)
    v = np.arange(H, dtype=float)
    below = v > cy
    expected = h * fy / (v[below] - cy)
    np.testing.assert_allclose(depth[below], np.broadcast_to(expected[:, None], (below.sum(), W)), rtol=1e-6)
    # rows above the horizon see nothing: depth 0, the "no measurement" convention
    assert np.all(depth[~below] == 0)


def test_sphere_centre_pixel_depth_is_analytic():
    H, W = 120, 160
    pos = np.array([0.2, 1.5, -0.4])
    rot = syn.camera_rotation(0.4, -0.2, 0.1)
    cam = syn.Camera(pos, rot)
    row, col = 30, 110
    d_cam = _ray_cam(H, W)[row, col]
    s, r = 4.0, 0.6  # distance of the centre along the ray, radius
    centre = pos + s * (rot @ d_cam) / np.linalg.norm(d_cam)
    scene = syn.Scene(cam, [syn.Sphere(centre, r)])
    depth, idx = syn.trace(scene, H, W)
    # the ray through the centre first hits the sphere at ray length s - r; depth is its z part
    assert depth[row, col] == pytest.approx((s - r) / np.linalg.norm(d_cam), abs=1e-9)
    _, depth32 = syn.render_scene(scene, H, W)
    assert depth32[row, col] == pytest.approx((s - r) / np.linalg.norm(d_cam), abs=1e-4)
    # z-depth, not ray length: off-centre pixels on the sphere are still within [s-r, s+r] / |d|
    assert idx[row, col] == 0 and (idx == 0).sum() > 50
    assert depth32[idx == 0].min() >= (s - r) * 0.8 and depth32[idx == 0].max() <= s


def test_box_and_cylinder_depth():
    cam = syn.Camera([0.0, 1.0, 0.0], syn.camera_rotation(0.0))
    H, W = 96, 128
    fx, fy, cx, cy = syn.intrinsics(H, W)
    r0, c0 = int(round(cy)), int(round(cx))
    # square-on cube: front face at z = 5 - 1
    depth, _ = syn.trace(syn.Scene(cam, [syn.Box([0, 1, 5], [2, 2, 2])]), H, W)
    assert depth[r0, c0] == pytest.approx(4.0)
    # the same cube turned by 45 degrees about y shows its vertical edge at z = 5 - sqrt(2)
    depth, _ = syn.trace(syn.Scene(cam, [syn.Box([0, 1, 5], [2, 2, 2], yaw=math.pi / 4)]), H, W)
    ray_x = (c0 - cx) / fx  # the centre column is slightly off the axis: compute exactly
    # the two front faces meet at the edge x = 0, z = 5 - sqrt(2): z = 5 - sqrt(2) + |x|, x = t * ray_x
    z = (5 - math.sqrt(2)) / (1 - abs(ray_x))
    assert depth[r0, c0] == pytest.approx(z, abs=1e-9)
    # vertical cylinder of radius 0.5 whose axis passes through x = 0, z = 4
    depth, _ = syn.trace(syn.Scene(cam, [syn.Cylinder((0.0, 4.0), 0.5, 0.0, 2.0)]), H, W)
    # along the horizontal ray through column c0: solve (t*ax)^2 + (t - 4)^2 = 0.25
    a = ray_x ** 2 + 1
    t = (4 - math.sqrt(16 - a * (16 - 0.25))) / a
    assert depth[r0, c0] == pytest.approx(t, abs=1e-9)


def test_occlusion_nearest_surface_wins():
    cam = syn.Camera([0.0, 1.0, 0.0], syn.camera_rotation(0.0))
    wall = syn.Plane([0, 0, 6], [0, 0, -1])
    ball = syn.Sphere([0, 1, 3], 0.5)
    depth, idx = syn.trace(syn.Scene(cam, [wall, ball]), 60, 80)
    assert set(np.unique(idx)) == {0, 1}
    assert np.all(depth[idx == 1] < 3.0) and np.allclose(depth[idx == 0], 6.0)


# ------------------------------------------------------------------------------ appearance


def test_rgb_has_texture():
    rgb, _ = syn.render(3, 120, 160)
    g = rgb.astype(float).mean(axis=2)
    assert rgb.std() > 15
    # local detail, not just smooth shading: mean absolute horizontal gradient
    assert np.abs(np.diff(g, axis=1)).mean() > 1.0
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000


@pytest.mark.parametrize("kind", ["planks", "tiles", "checker", "carpet", "wood", "stripes", "books", "paint"])
def test_procedural_materials_are_textured(kind):
    m = syn.Material(kind, (0.7, 0.5, 0.3), (0.3, 0.2, 0.1), scale=0.3, contrast=0.4, seed=3)
    u, v = np.meshgrid(np.linspace(0, 2, 200), np.linspace(0, 2, 200))
    a = m.albedo(u.ravel(), v.ravel(), np.full(u.size, 0.002))
    assert a.shape == (u.size, 3) and np.all(np.isfinite(a)) and a.min() >= 0
    assert a.std(axis=0).max() > 0.003, kind
    # seen from far away (large footprint) the pattern is band-limited: less variance
    far = m.albedo(u.ravel(), v.ravel(), np.full(u.size, 0.5))
    assert far.std() <= a.std() + 1e-9


def test_bundled_images_load_without_network(monkeypatch):
    names = syn.available_images()
    assert {"brick", "astronaut", "coffee"} <= set(names)
    # the renderer must never go through skimage's fetcher (which may download)
    import skimage.data._fetchers as fetchers

    def no_fetch(*a, **k):
        raise AssertionError("skimage fetcher called")

    monkeypatch.setattr(fetchers, "_fetch", no_fetch)
    syn._image_pyramid.cache_clear()
    try:
        for name in ("brick", "coffee"):
            pyr = syn._image_pyramid(name)
            assert pyr[0].ndim == 3 and pyr[0].shape[2] == 3 and len(pyr) > 3
        m = syn.Material("image", image="coffee", size=(0.6, 0.4))
        a = m.albedo(np.array([0.1, 0.3, 0.5]), np.array([0.1, 0.2, 0.3]), np.full(3, 0.001))
        assert a.shape == (3, 3) and a.std() > 0
    finally:
        syn._image_pyramid.cache_clear()


# ------------------------------------------------------------------------------ splits & cache


def test_splits_are_disjoint():
    ranges = list(syn.SPLITS.values())
    assert set(syn.SPLITS) == {"train", "val", "test"}
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.stop <= b.start or b.stop <= a.start
    assert syn.DEFAULT_TEST_SIZE == 200


def test_unknown_split_names_valid_ones(tmp_path):
    with pytest.raises(PyapproxError) as e:
        syn.load_split("training", 2, 16, 16, cache_dir=tmp_path, progress=False)
    assert "train" in str(e.value) and "val" in str(e.value) and "test" in str(e.value)
    with pytest.raises(PyapproxError):
        syn.load_split("val", 0, 16, 16, cache_dir=tmp_path, progress=False)


def test_cache_round_trip_prefix_and_extension(tmp_path, monkeypatch):
    H, W = 24, 32
    rgb, depth = syn.load_split("val", 3, H, W, cache_dir=tmp_path, progress=False, workers=1)
    assert rgb.shape == (3, H, W, 3) and rgb.dtype == np.uint8
    assert depth.shape == (3, H, W) and depth.dtype == np.float32
    for i in range(3):
        r, d = syn.render(syn.SPLITS["val"][i], H, W)
        np.testing.assert_array_equal(rgb[i], r)
        np.testing.assert_array_equal(depth[i], d)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"val_v{syn.RENDERER_VERSION}_{H}x{W}_n3_depth.npy", f"val_v{syn.RENDERER_VERSION}_{H}x{W}_n3_rgb.npy"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    calls = []
    real_render = syn.render

    def counting_render(seed, height=480, width=640):
        calls.append(seed)
        return real_render(seed, height, width)

    monkeypatch.setattr(syn.splits, "render", counting_render)  # load_split renders through splits.render
    # same n and a smaller n: served from the cache, nothing rendered
    rgb2, depth2 = syn.load_split("val", 3, H, W, cache_dir=tmp_path, progress=False, workers=1)
    rgb1, depth1 = syn.load_split("val", 2, H, W, cache_dir=tmp_path, progress=False, workers=1)
    assert calls == []
    np.testing.assert_array_equal(rgb2, rgb)
    np.testing.assert_array_equal(depth1, depth[:2])
    assert rgb1.shape[0] == 2 and rgb1.flags.writeable
    # a larger n renders only the missing images
    rgb4, depth4 = syn.load_split("val", 4, H, W, cache_dir=tmp_path, progress=False, workers=1)
    assert calls == [syn.SPLITS["val"][3]]
    np.testing.assert_array_equal(rgb4[:3], rgb)
    # other resolutions and splits have their own keys
    assert not syn.cache_path("test", 3, H, W, tmp_path)[0].exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_failed_render_leaves_no_cache_files(tmp_path, monkeypatch):
    def boom(seed, height=480, width=640):
        raise RuntimeError("render failed")

    monkeypatch.setattr(syn.splits, "render", boom)
    with pytest.raises(RuntimeError):
        syn.load_split("test", 2, 16, 16, cache_dir=tmp_path, progress=False, workers=1)
    assert list(tmp_path.rglob("*")) == []


def test_corrupt_cache_is_ignored(tmp_path):
    H, W = 16, 24
    rgb_path, depth_path = syn.cache_path("test", 2, H, W, tmp_path)
    tmp_path.mkdir(exist_ok=True)
    rgb_path.write_bytes(b"not a npy file")
    depth_path.write_bytes(b"nor this")
    rgb, depth = syn.load_split("test", 2, H, W, cache_dir=tmp_path, progress=False, workers=1)
    np.testing.assert_array_equal(depth[1], syn.render(syn.SPLITS["test"][1], H, W)[1])
    assert syn._load_cached(rgb_path, depth_path, 2, H, W) is not None  # rewritten, valid now


def test_default_cache_dir_and_pool_are_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("PYAPPROX_CACHE", str(tmp_path))
    H, W = 16, 24
    rgb_pool, depth_pool = syn.load_split("train", 8, H, W, progress=False, workers=2)
    assert (tmp_path / "synthetic" / f"train_v{syn.RENDERER_VERSION}_{H}x{W}_n8_rgb.npy").is_file()
    rgb_one, depth_one = syn.load_split("train", 8, H, W, progress=False, workers=1, cache=False)
    np.testing.assert_array_equal(rgb_pool, rgb_one)
    np.testing.assert_array_equal(depth_pool, depth_one)
