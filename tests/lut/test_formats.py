"""LUT file formats round-trip exactly; corrupt or wrong-sized files give clear errors and no output."""

import json

import numpy as np
import pytest

from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT, code_values

rng = np.random.default_rng(7)
UNSIGNED = LUT(rng.integers(0, 65536, (256, 256)), "unsigned", 16, {"name": "rand_u"})
SIGNED = LUT(rng.integers(-32768, 32768, (256, 256)), "signed", 16, {"name": "rand_s"})


@pytest.mark.parametrize("ext", [".npy", ".bin", ".csv", ".txt"])
@pytest.mark.parametrize("lut", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
def test_round_trip(tmp_path, ext, lut):
    path = lut.save(tmp_path / f"t{ext}")
    back = LUT.load(path, operands=None if ext == ".npy" else lut.operands)
    assert np.array_equal(back.table, lut.table)
    assert back.operands == lut.operands
    assert not list(tmp_path.glob(".*tmp"))


def test_bin_layout_is_a_major_little_endian(tmp_path):
    path = UNSIGNED.save(tmp_path / "t.bin")
    raw = np.frombuffer(path.read_bytes(), dtype="<u2")
    assert raw[3 * 256 + 5] == UNSIGNED.table[3, 5]


def test_csv_layout(tmp_path):
    path = SIGNED.save(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "A,B,P" and len(lines) == 65537
    v = code_values("signed")
    assert lines[1 + 2 * 256 + 200] == f"{v[2]},{v[200]},{SIGNED.table[2, 200]}"


def test_npy_sidecar_and_digest(tmp_path):
    path = UNSIGNED.save(tmp_path / "t.npy")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["name"] == "rand_u" and meta["digest"] == UNSIGNED.digest()
    t = np.load(path)
    t[0, 0] += 1
    np.save(path, t)
    with pytest.raises(PyapproxError, match="does not match the digest"):
        LUT.load(path)


def test_bad_files(tmp_path):
    (tmp_path / "short.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(PyapproxError, match=r"short.bin: 1000 bytes, expected 131072"):
        LUT.load(tmp_path / "short.bin")
    np.save(tmp_path / "shape.npy", np.zeros((16, 16), np.int64))
    with pytest.raises(PyapproxError, match=r"expected a 256x256 integer array"):
        LUT.load(tmp_path / "shape.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(PyapproxError, match="not a readable .npy"):
        LUT.load(tmp_path / "junk.npy")
    (tmp_path / "count.txt").write_text("1\n2\n3\n")
    with pytest.raises(PyapproxError, match="3 values, expected 65,536"):
        LUT.load(tmp_path / "count.txt")
    with pytest.raises(PyapproxError, match="no such file"):
        LUT.load(tmp_path / "missing.csv")
    with pytest.raises(PyapproxError, match="unknown format"):
        (tmp_path / "x.xyz").write_text("")
        LUT.load(tmp_path / "x.xyz")



def test_csv_missing_duplicate_and_malformed_rows(tmp_path):
    good = UNSIGNED.save(tmp_path / "good.csv").read_text().splitlines()
    dup = good[:]
    dup[10] = dup[9]  # pair of row 9 twice, pair of row 10 missing
    (tmp_path / "dup.csv").write_text("\n".join(dup) + "\n")
    with pytest.raises(PyapproxError, match=r"duplicate pair \(A=0, B=8\) in rows 10 and 11"):
        LUT.load(tmp_path / "dup.csv")
    (tmp_path / "miss.csv").write_text("\n".join(good[:-1]) + "\n")
    with pytest.raises(PyapproxError, match=r"1 of 65,536 pairs missing, first \(A=255, B=255\)"):
        LUT.load(tmp_path / "miss.csv")
    (tmp_path / "hdr.csv").write_text("x,y,z\n" + "\n".join(good[1:]))
    with pytest.raises(PyapproxError, match="header A,B,P"):
        LUT.load(tmp_path / "hdr.csv")
    bad = good[:]
    bad[5] = "1,2,three"
    (tmp_path / "bad.csv").write_text("\n".join(bad))
    with pytest.raises(PyapproxError, match="line 6 is not three integers"):
        LUT.load(tmp_path / "bad.csv")
    rng_ = good[:]
    rng_[1] = "300,0,0"
    (tmp_path / "range.csv").write_text("\n".join(rng_))
    with pytest.raises(PyapproxError, match=r"row 2 has operand pair \(300, 0\) outside 0..255"):
        LUT.load(tmp_path / "range.csv")


def test_unwritable_values_leave_no_file(tmp_path):
    big = LUT(np.full((256, 256), 70000), "unsigned", 17)
    with pytest.raises(PyapproxError, match="outside 16 bits"):
        big.save(tmp_path / "big.bin")
    assert list(tmp_path.iterdir()) == []


def test_wrong_shapes_refused():
    with pytest.raises(PyapproxError, match="256x256"):
        LUT(np.zeros((255, 256), np.int64))
    with pytest.raises(PyapproxError, match="integers"):
        LUT(np.zeros((256, 256), np.float32))
