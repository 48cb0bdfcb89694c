"""Error metrics against hand-computed values."""

import numpy as np
import pytest

from pyapprox.lut.metrics import error_metrics
from pyapprox.lut.table import LUT, code_values

V = np.arange(256)


def test_exact_is_all_zero():
    assert all(v == 0 for v in error_metrics(LUT(np.outer(V, V))).values())
    s = code_values("signed")
    assert all(v == 0 for v in error_metrics(LUT(np.outer(s, s), "signed")).values())


def test_always_zero_multiplier():
    m = error_metrics(LUT(np.zeros((256, 256), np.int64)))
    assert m["MAE"] == pytest.approx(127.5 ** 2)          # mean of a*b over all pairs
    assert m["MAE%"] == pytest.approx(100 * 16256.25 / 65536)  # 24.80...%: the divisor is 2^16
    assert f"{m['MAE%']:.3f}" == "24.805"
    assert m["WCE"] == 255 * 255 and m["WCE%"] == pytest.approx(100 * 65025 / 65536)
    assert m["bias"] == pytest.approx(-16256.25)
    assert m["EP%"] == pytest.approx(100 * (65536 - 511) / 65536)  # 511 pairs have a*b == 0
    assert m["MRE%"] == pytest.approx(100.0) and m["WCRE%"] == pytest.approx(100.0)


def test_off_by_one_everywhere():
    m = error_metrics(LUT(np.outer(V, V) + 1))
    nz = np.outer(V, V)[np.outer(V, V) != 0]
    assert m["MAE"] == 1 and m["WCE"] == 1 and m["MSE"] == 1 and m["bias"] == 1 and m["EP%"] == 100
    assert m["MRE%"] == pytest.approx(100 * np.mean(1.0 / nz))
    assert m["WCRE%"] == pytest.approx(100.0)  # 1/(1*1)


def test_single_error_signed():
    s = code_values("signed")
    t = np.outer(s, s)
    t[255, 255] += 3  # (-1) * (-1) = 1 -> 4
    m = error_metrics(LUT(t, "signed"))
    assert m["WCE"] == 3 and m["MAE"] == pytest.approx(3 / 65536) and m["EP%"] == pytest.approx(100 / 65536)
    assert m["WCRE%"] == pytest.approx(300.0)
    assert m["MSE"] == pytest.approx(9 / 65536)
