"""Golden models of the RTL library (no simulators needed); the registry is in test_registry.py."""

import numpy as np
import pytest

from pyapprox.rtl import golden
from pyapprox.rtl.library import resolve

CODES = np.arange(256, dtype=np.int64)
A = CODES[:, None]
B = CODES[None, :]
EXACT = A * B


def table(fn, **params):
    t = golden.golden_table(fn, **params)
    assert t.shape == (256, 256) and t.dtype == np.int64
    return t


# ----------------------------------------------------------------------------- exact


def test_exact_designs_equal_product():
    for name in ("exact", "exact_behav"):
        np.testing.assert_array_equal(resolve(name).golden_table(), EXACT)


def test_signed_equals_int8_product():
    s = CODES.astype(np.uint8).view(np.int8).astype(np.int64)
    np.testing.assert_array_equal(resolve("exact_signed").golden_table(), s[:, None] * s[None, :])
    assert golden.exact_signed(255, 255) == 1
    assert golden.exact_signed(128, 128) == 16384
    assert golden.exact_signed(128, 127) == -16256
    assert golden.exact_signed(0x80, 1) == -128


@pytest.mark.parametrize(
    "fn, params",
    [
        (golden.trunc, {"K": 0}),
        (golden.trunc, {"K": 0, "COMP": 1}),
        (golden.bam, {"HBL": 0, "VBL": 0}),
        (golden.drum, {"K": 8}),
        (golden.comp42, {"K": 0}),
    ],
)
def test_exact_parameterisations(fn, params):
    np.testing.assert_array_equal(table(fn, **params), EXACT)


# ----------------------------------------------------------------------------- truncation / BAM


def test_trunc_compensation_constant():
    assert golden.trunc_comp_constant(0) == 0
    assert golden.trunc_comp_constant(4) == 12  # (1 + 4 + 12 + 32) / 4 = 12.25
    assert golden.trunc_comp_constant(8) == 448  # 1793 / 4 = 448.25
    assert golden.trunc_comp_constant(1) == 0  # 0.25 rounds down
    assert golden.trunc_comp_constant(2) == 1  # 5 / 4 = 1.25
    # compensation is added to every output, also to 0 * 0
    assert golden.trunc(0, 0, K=4, COMP=1) == 12


def test_trunc_values():
    assert golden.trunc(255, 255, K=4) == 65025 - 49
    assert golden.trunc(15, 1, K=4) == 0  # columns 0..3 all dropped
    assert golden.trunc(31, 1, K=4) == 16  # only a_4 b_0 (column 4) kept
    t = table(golden.trunc, K=6)
    assert np.all(t <= EXACT) and np.all((EXACT - t) < 2**6 * 6)
    assert np.all(table(golden.trunc, K=14) == np.where((A >= 128) & (B >= 128), 16384, 0))
    assert np.all(table(golden.trunc, K=15) == 0)  # column 14 is the highest pp column


def test_bam_values():
    assert golden.bam(255, 255, HBL=8, VBL=0) == 0
    assert golden.bam(1, 255, HBL=2, VBL=6) == 64 + 128
    assert golden.bam(255, 1, HBL=1, VBL=0) == 0  # row b_0 omitted
    assert golden.bam(255, 3, HBL=1, VBL=0) == 255 * 2
    t = table(golden.bam, HBL=0, VBL=8)
    np.testing.assert_array_equal(t, table(golden.trunc, K=8))
    assert np.all(table(golden.bam, HBL=2, VBL=6) <= EXACT)


# ----------------------------------------------------------------------------- logarithmic


def test_mitchell_known_values():
    assert golden.mitchell(3, 3) == 8  # x = .5 + .5 = 1 -> 2^3 * 1
    assert golden.mitchell(5, 6) == 28  # 2^4 * 1.75
    assert golden.mitchell(100, 3) == 272  # 2^8 * (0.5625 + 0.5)
    assert golden.mitchell(255, 255) == 65024  # 2^15 * 254/128
    assert golden.mitchell(0, 77) == 0 and golden.mitchell(77, 0) == 0


def test_mitchell_never_overestimates_and_exact_for_powers_of_two():
    t = table(golden.mitchell)
    assert np.all(t <= EXACT)
    pow2 = 1 << np.arange(8)
    np.testing.assert_array_equal(t[pow2, :], EXACT[pow2, :])
    np.testing.assert_array_equal(t[:, pow2], EXACT[:, pow2])
    rel = (EXACT - t)[1:, 1:] / EXACT[1:, 1:]
    assert rel.max() <= 1 / 9 + 1e-12  # Mitchell's worst case is 11.1 %


def test_mbm_known_values():
    assert golden.mbm(3, 3) == 8  # carry: floor(133 * 8 / 128)
    assert golden.mbm(5, 6) == 29  # no carry: floor((128 + 96 + 10) * 16 / 128)
    assert golden.mbm(12, 12) == 133  # carry, f = 0: 133 * 2^7 / 128
    assert golden.mbm(1, 1) == 1  # floor(138 / 128)
    # corner cases: correction omitted when f + 5 >= 128, so 255 * 255 fits 16 bits
    assert golden.mbm(255, 255) == 65024
    assert golden.mbm(255, 252) == 251 * 256  # f = 123: 123 + 5 = 128 -> omitted
    assert golden.mbm(255, 251) == 255 * 256  # f = 122: corrected to 255/128
    assert golden.mbm(0, 200) == 0 and golden.mbm(200, 0) == 0
    t = table(golden.mbm)
    assert t.max() <= 0xFFFF and t.min() == 0
    # less biased than Mitchell
    nz = EXACT > 0
    bias_mbm = np.mean((t[nz] - EXACT[nz]) / EXACT[nz])
    bias_mit = np.mean((table(golden.mitchell)[nz] - EXACT[nz]) / EXACT[nz])
    assert abs(bias_mbm) < abs(bias_mit)


# ----------------------------------------------------------------------------- DRUM / comp42


def test_drum_known_values():
    assert golden.drum(200, 100, K=4) == 13 * 13 << 7  # 21632
    assert golden.drum(15, 15, K=4) == 225  # both < 2^K: exact
    assert golden.drum(16, 1, K=4) == 18  # 16 -> seg 8|1 = 9, shift 1
    assert golden.drum(255, 255, K=3) == 7 * 7 << 10
    assert golden.drum(0, 255, K=4) == 0
    t = table(golden.drum, K=4)
    small = (A < 16) & (B < 16)
    np.testing.assert_array_equal(t[small], EXACT[small])
    assert t.max() <= 0xFFFF


def test_comp42_known_values():
    # 15 x 15, K = 4: columns 0..3 of rows 0..3 compressed; column 3 has four ones -> 2 * 8 instead of 4 * 8
    assert golden.comp42(15, 15, K=4) == 225 - 16
    assert golden.comp42(1, 1, K=15) == 1
    t = table(golden.comp42, K=15)
    assert np.all(t <= EXACT)  # this compressor never overestimates
    assert np.any(t != EXACT)


def test_sign_magnitude():
    s, m = golden.sign_magnitude(golden.exact, 1, 3, 0, 5)
    assert (int(s), int(m)) == (1, 15)
    s, m = golden.sign_magnitude(golden.exact, 1, 3, 1, 5)
    assert (int(s), int(m)) == (0, 15)
    s, m = golden.sign_magnitude(golden.exact, 1, 0, 0, 5)  # zero stays positive
    assert (int(s), int(m)) == (0, 0)
    s, m = golden.sign_magnitude(golden.drum, 1, A, 0, B, K=4)
    np.testing.assert_array_equal(m, table(golden.drum, K=4))
    np.testing.assert_array_equal(s, (m != 0).astype(np.int64))


def test_input_range_checked():
    with pytest.raises(ValueError):
        golden.exact(256, 1)
    with pytest.raises(ValueError):
        golden.drum(1, 1, K=9)
