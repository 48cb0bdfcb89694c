"""Property: every reader of untrusted data returns a valid object or raises PyapproxError with a one-line
message; never another exception, and never a file written beside its input (issue 11).

Readers covered: LUT files (.npy + sidecar, .bin, .csv, .txt), plans, accelerator configs, NYU zip/.npy folders
and .h5 folders. (Results stores: tests/experiments/test_inputs_store_property.py.) Examples are bounded so the
file runs in well under a minute.
"""

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyapprox.data.nyu import CROP_MEMBER, DEPTH_MEMBER, RGB_MEMBER, open_nyu
from pyapprox.errors import PyapproxError
from pyapprox.lut.sidecar import sidecar_digest
from pyapprox.lut.table import LUT
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import load_plan

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def _check(fn, folder: Path):
    """Run a reader; its result or a PyapproxError with a one-line message. Nothing new may appear in folder."""
    before = {p: p.stat().st_size for p in folder.rglob("*")}
    try:
        result = fn()
    except PyapproxError as exc:
        assert exc.message and "\n" not in exc.message, repr(exc.message)
        result = None
    after = {p: p.stat().st_size for p in folder.rglob("*")}
    assert after == before, f"files changed: {set(after) ^ set(before)}"
    return result


def _fresh(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prop")


# -- LUTs ---------------------------------------------------------------------------------------------------
_REF = LUT(np.outer(np.arange(256), np.arange(256)), "unsigned", 16, {"name": "exact", "top": "m"})


def _valid_sidecar(tmp: Path) -> dict:
    _REF.save(tmp / "ref.npy")
    return json.loads((tmp / "ref.json").read_text())


@SETTINGS
@given(data=st.data())
def test_npy_with_any_sidecar(tmp_path_factory, data):
    tmp = _fresh(tmp_path_factory)
    side = _valid_sidecar(tmp)
    table = data.draw(st.sampled_from(["exact", "negative", "huge", "uint8", "float", "shape"]))
    arr = {"exact": _REF.table, "negative": -_REF.table, "huge": _REF.table * 2**40,
           "uint8": _REF.table.astype(np.uint8), "float": _REF.table.astype(float),
           "shape": _REF.table[:100]}[table]
    np.save(tmp / "t.npy", arr)
    kind = data.draw(st.sampled_from(["none", "edit", "edit-redigest", "random", "drop"]))
    if kind != "none":
        if kind == "random":
            side = data.draw(json_values)
        elif kind == "drop":
            side.pop(data.draw(st.sampled_from(sorted(side))))
        else:
            side[data.draw(st.sampled_from(sorted(side) + ["extra"]))] = data.draw(json_values)
            if kind == "edit-redigest":
                side["sidecar_digest"] = sidecar_digest(side)
        (tmp / "t.json").write_text(json.dumps(side))
    lut = _check(lambda: LUT.load(tmp / "t.npy"), tmp)
    if lut is not None:
        lo, hi = (-(1 << (lut.out_width - 1)), (1 << (lut.out_width - 1)) - 1) if lut.signed else (0, 2**lut.out_width - 1)
        assert lut.table.min() >= lo and lut.table.max() <= hi
        assert lut.operands in ("unsigned", "signed", "sign-magnitude")


@SETTINGS
@given(raw=st.binary(max_size=300) | st.integers(0, 2**16 - 1).map(lambda v: np.full(65536, v, "<u2").tobytes()),
       suffix=st.sampled_from([".npy", ".bin", ".csv", ".txt"]))
def test_any_bytes_as_a_lut_file(tmp_path_factory, raw, suffix):
    tmp = _fresh(tmp_path_factory)
    (tmp / f"t{suffix}").write_bytes(raw)
    _check(lambda: LUT.load(tmp / f"t{suffix}"), tmp)


_BASE_CSV = {(a, b): f"{a},{b},{a * b}" for a in range(256) for b in range(256)}
_BASE_TXT = [str(v) for v in np.outer(np.arange(256), np.arange(256)).ravel()]
FEW = settings(SETTINGS, max_examples=12)


@FEW
@given(rows=st.lists(st.tuples(st.integers(-300, 300), st.integers(-300, 300), st.integers(-2**40, 2**40)),
                     max_size=20),
       fill=st.booleans(), junk=st.sampled_from(["", "x,y", "1,2,3,4", "1,,2", "\ufeff", "1.5,2,3"]))
def test_csv_rows(tmp_path_factory, rows, fill, junk):
    """Complete tables (65,536 rows) with random overrides, and short ones, with or without a junk line."""
    tmp = _fresh(tmp_path_factory)
    lines = ["A,B,P"]
    if fill:
        base = dict(_BASE_CSV)
        for a, b, p in rows:
            if (a, b) in base:
                base[(a, b)] = f"{a},{b},{p}"
        lines += list(base.values())
    else:
        lines += [f"{a},{b},{p}" for a, b, p in rows]
    if junk:
        lines.insert(len(lines) // 2, junk)
    (tmp / "t.csv").write_text("\n".join(lines) + "\n")
    lut = _check(lambda: LUT.load(tmp / "t.csv"), tmp)
    if lut is not None:
        assert lut.out_width <= 32
        if lut.operands == "unsigned":
            assert lut.table.min() >= 0


@FEW
@given(values=st.lists(st.integers(-2**70, 2**70) | st.sampled_from(["1.5", "+3", "1_0", "\u0663", "", "x y"]),
                       min_size=1, max_size=5), pos=st.integers(0, 65535))
def test_txt_values(tmp_path_factory, values, pos):
    tmp = _fresh(tmp_path_factory)
    t = list(_BASE_TXT)
    for i, v in enumerate(values):
        t[(pos + i) % 65536] = str(v)
    (tmp / "t.txt").write_text("\n".join(t) + "\n")
    _check(lambda: LUT.load(tmp / "t.txt"), tmp)


# -- plans and accelerator configs -------------------------------------------------------------------------
plan_like = st.one_of(
    json_values,
    st.fixed_dictionaries({"rules": st.lists(st.dictionaries(st.sampled_from(["layers", "multiplier", "mutliplier"]),
                                                             json_values, max_size=3), max_size=3)}),
    st.dictionaries(st.sampled_from(["pw", "dw", "rules", "meta", "encoder"]), json_values, max_size=3))


@SETTINGS
@given(obj=plan_like, raw=st.none() | st.binary(max_size=40))
def test_plan_files(tmp_path_factory, obj, raw):
    tmp = _fresh(tmp_path_factory)
    (tmp / "p.json").write_bytes(raw if raw is not None else json.dumps(obj).encode())
    rules = _check(lambda: load_plan(tmp / "p.json"), tmp)
    if rules is not None:
        assert all(isinstance(s, str) and isinstance(m, str) and m for s, m in rules)


config_like = st.dictionaries(
    st.sampled_from(["operand_format", "weight_port", "acc_bits", "acc_mode", "requant_bits", "calibration",
                     "percentile", "calib_images", "calib_seed", "bogus"]), json_values, max_size=4)


@SETTINGS
@given(obj=config_like | json_values)
def test_accelerator_configs(tmp_path_factory, obj):
    tmp = _fresh(tmp_path_factory)
    (tmp / "c.json").write_text(json.dumps(obj))
    cfg = _check(lambda: AccelConfig.load(tmp / "c.json"), tmp)
    if cfg is not None:
        assert 17 <= cfg.acc_bits <= 62 and cfg.calib_images >= 1


# -- NYU: zip / .npy folder, and .h5 folders -----------------------------------------------------------------
def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


member_arrays = st.sampled_from([
    np.zeros((1, 480, 640, 3), np.uint8), np.zeros((1, 480, 640), np.float32) + 2, np.array([20, 459, 24, 615]),
    np.zeros((1, 480, 640, 3), np.float32), np.zeros((2, 4), np.uint8), np.array([5, 1, 600, 2]),
    np.array(["a"]), np.zeros(0, np.float32)])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(members=st.dictionaries(st.sampled_from([RGB_MEMBER, DEPTH_MEMBER, CROP_MEMBER, "x/" + RGB_MEMBER, "other"]),
                               member_arrays.map(_npy_bytes) | st.binary(max_size=64), max_size=4),
       flip=st.none() | st.integers(0, 10**6))
def test_nyu_zip(tmp_path_factory, members, flip):
    tmp = _fresh(tmp_path_factory)
    user = tmp / "user"
    user.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if flip is not None and raw:
        raw[flip % len(raw)] ^= 0x5A
    (user / "nyu_test.zip").write_bytes(bytes(raw))
    cache = tmp / "cache"

    def read():
        ds = open_nyu(user / "nyu_test.zip", cache_dir=cache)
        rgb, depth = ds[0]
        assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640)
        return ds

    _check(read, user)
    # the cache holds only complete, readable arrays: no temporary or torn files
    for p in cache.rglob("*") if cache.exists() else []:
        assert not p.name.startswith(".") and not p.name.endswith(".tmp"), p
        if p.is_file():
            np.load(p, allow_pickle=False)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(datasets=st.dictionaries(st.sampled_from(["rgb", "depth", "other"]),
                                st.sampled_from([np.zeros((3, 480, 640), np.uint8), np.ones((480, 640), np.float32),
                                                 np.zeros((480, 640, 3), np.uint8), np.zeros(3, np.int64)]),
                                max_size=3),
       garbage=st.none() | st.binary(max_size=64))
def test_nyu_h5_folder(tmp_path_factory, datasets, garbage):
    tmp = _fresh(tmp_path_factory)
    if garbage is not None:
        (tmp / "0001.h5").write_bytes(garbage)
    else:
        with h5py.File(tmp / "0001.h5", "w") as f:
            for k, v in datasets.items():
                f[k] = v

    def read():
        ds = open_nyu(tmp)
        ds[0]
        return ds

    _check(read, tmp)
