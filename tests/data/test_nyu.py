import io
import zipfile

import h5py
import numpy as np
import pytest

from pyapprox.data.nyu import NyuEigenTest, NyuH5Folder, open_nyu
from pyapprox.errors import PyapproxError

H, W = 480, 640


def _images(n):
    rgb = np.zeros((n, H, W, 3), np.uint8)
    depth = np.zeros((n, H, W), np.float32)
    for i in range(n):
        rgb[i, :, :, 0] = i + 1
        rgb[i, 0, 0] = (10 * i, 20, 30)
        depth[i] = 0.5 + i
        depth[i, 5, 7] = 9.0
    return rgb, depth


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _eigen_members(n=2, crop=(20, 459, 24, 615)):
    rgb, depth = _images(n)
    return rgb, depth, {
        "eigen_test_rgb.npy": _npy(rgb),
        "eigen_test_depth.npy": _npy(depth),
        "eigen_test_crop.npy": _npy(np.array(crop, dtype=np.int64)),
    }


def test_zip_roundtrip(tmp_path):
    rgb, depth, members = _eigen_members()
    z = tmp_path / "nyu_test.zip"
    _write_zip(z, members)
    cache = tmp_path / "cache"
    ds = open_nyu(z, cache_dir=cache)
    assert isinstance(ds, NyuEigenTest)
    assert len(ds) == 2 and ds.source == str(z) and ds.name
    assert ds.crop == (20, 460, 24, 616)
    for i in range(2):
        r, d = ds[i]
        assert r.dtype == np.uint8 and r.shape == (H, W, 3)
        assert d.dtype == np.float32 and d.shape == (H, W)
        assert np.array_equal(r, rgb[i]) and np.array_equal(d, depth[i])
    assert np.array_equal(ds[-1][0], rgb[1])
    with pytest.raises(IndexError):
        ds[2]
    assert len(list(ds)) == 2
    # a second open reuses the extracted cache
    extracted = sorted(p.name for p in cache.rglob("*.npy"))
    assert extracted == ["eigen_test_depth.npy", "eigen_test_rgb.npy"]
    assert np.array_equal(open_nyu(z, cache_dir=cache)[1][1], depth[1])


def test_dir_roundtrip_and_dir_with_zip(tmp_path):
    rgb, depth, members = _eigen_members()
    d = tmp_path / "eigen"
    d.mkdir()
    for name, data in members.items():
        (d / name).write_bytes(data)
    ds = open_nyu(d)
    assert isinstance(ds, NyuEigenTest) and len(ds) == 2
    assert np.array_equal(ds[0][0], rgb[0]) and np.array_equal(ds[1][1], depth[1])
    zdir = tmp_path / "z"
    zdir.mkdir()
    _write_zip(zdir / "nyu_test.zip", members)
    assert len(open_nyu(zdir, cache_dir=tmp_path / "c")) == 2


def test_zip_corrupt_member(tmp_path):
    _, _, members = _eigen_members()
    z = tmp_path / "nyu_test.zip"
    _write_zip(z, members, compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("eigen_test_depth.npy")
    raw = bytearray(z.read_bytes())
    header = 30 + len(info.filename) + len(info.extra)
    raw[info.header_offset + header + info.file_size // 2] ^= 0xFF
    z.write_bytes(bytes(raw))
    with pytest.raises(PyapproxError, match=r"nyu_test\.zip:eigen_test_depth\.npy: corrupt zip member"):
        open_nyu(z, cache_dir=tmp_path / "c")


def test_zip_member_not_npy(tmp_path):
    _, _, members = _eigen_members()
    members["eigen_test_rgb.npy"] = b"garbage" * 10
    z = tmp_path / "nyu_test.zip"
    _write_zip(z, members)
    with pytest.raises(PyapproxError, match=r"eigen_test_rgb\.npy: member is not a readable \.npy"):
        open_nyu(z, cache_dir=tmp_path / "c")


def test_zip_wrong_shapes_and_lengths(tmp_path):
    rgb, depth, members = _eigen_members()
    cases = {
        "depth_shape": ({"eigen_test_depth.npy": _npy(np.zeros((2, 240, 320), np.float32))}, r"eigen_test_depth\.npy: expected shape"),
        "rgb_dtype": ({"eigen_test_rgb.npy": _npy(rgb.astype(np.float32))}, r"eigen_test_rgb\.npy: expected dtype uint8"),
        "length": ({"eigen_test_depth.npy": _npy(depth[:1])}, "2 images but .* 1 depth maps"),
        "crop": ({"eigen_test_crop.npy": _npy(np.array([20, 459, 24], np.int64))}, r"eigen_test_crop\.npy: expected 4 integers"),
    }
    for label, (override, pattern) in cases.items():
        z = tmp_path / f"{label}.zip"
        _write_zip(z, {**members, **override})
        with pytest.raises(PyapproxError, match=pattern):
            open_nyu(z, cache_dir=tmp_path / "c")
    z = tmp_path / "missing.zip"
    _write_zip(z, {"eigen_test_rgb.npy": members["eigen_test_rgb.npy"]})
    with pytest.raises(PyapproxError, match="no member eigen_test_depth.npy"):
        open_nyu(z, cache_dir=tmp_path / "c")


def _write_h5(path, rgb_chw, depth, rgb_key="rgb"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h:
        h.create_dataset(rgb_key, data=rgb_chw)
        h.create_dataset("depth", data=depth)


def test_h5_folder_roundtrip(tmp_path):
    rgb, depth = _images(3)
    root = tmp_path / "val"
    # recursive and sorted by path: official/00001.h5 < official/00002.h5 < zz/00000.h5
    order = [root / "official" / "00001.h5", root / "official" / "00002.h5", root / "zz" / "00000.h5"]
    for i, p in enumerate(order):
        _write_h5(p, rgb[i].transpose(2, 0, 1), depth[i])
    ds = open_nyu(root)
    assert isinstance(ds, NyuH5Folder) and len(ds) == 3 and ds.source == str(root) and ds.name
    for i in range(3):
        r, d = ds[i]
        assert r.shape == (H, W, 3) and r.dtype == np.uint8 and r.flags.c_contiguous
        assert d.shape == (H, W) and d.dtype == np.float32
        assert np.array_equal(r, rgb[i]) and np.array_equal(d, depth[i])


def test_h5_errors(tmp_path):
    rgb, depth = _images(2)
    root = tmp_path / "val"
    _write_h5(root / "a.h5", rgb[0].transpose(2, 0, 1), depth[0], rgb_key="image")
    (root / "b.h5").write_bytes(b"not hdf5")
    _write_h5(root / "c.h5", rgb[1], depth[1])  # HWC instead of CHW
    ds = open_nyu(root)
    with pytest.raises(PyapproxError, match=r"a\.h5 \(index 0\): no dataset 'rgb' \(found: depth, image\)"):
        ds[0]
    with pytest.raises(PyapproxError, match=r"b\.h5 \(index 1\): cannot read as HDF5"):
        ds[1]
    with pytest.raises(PyapproxError, match=r"c\.h5 \(index 2\): dataset 'rgb' is \(480, 640, 3\)"):
        ds[2]


def test_open_nyu_refuses_other_things(tmp_path):
    with pytest.raises(PyapproxError, match="no such file"):
        open_nyu(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PyapproxError, match="expected DenseDepth's nyu_test.zip"):
        open_nyu(tmp_path / "empty")
    f = tmp_path / "x.txt"
    f.write_text("hi")
    with pytest.raises(PyapproxError, match="not a zip archive"):
        open_nyu(f)
    half = tmp_path / "half"
    half.mkdir()
    (half / "eigen_test_rgb.npy").write_bytes(_npy(np.zeros((1, H, W, 3), np.uint8)))
    with pytest.raises(PyapproxError, match="missing eigen_test_depth.npy"):
        open_nyu(half)
