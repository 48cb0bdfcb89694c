import math

import numpy as np
import pytest
import torch

from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import (
    EIGEN_CROP,
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    compute_errors,
    eigen_crop,
    eigen_crop_box,
    evaluate_depth,
    prediction_to_depth,
)

GT1 = np.array([[1.0, 2.0], [4.0, 0.0]])  # the 0 is invalid ground truth
PRED1 = np.array([[1.0, 1.0], [5.0, 3.0]])
# valid pixels (gt, pred): (1, 1), (2, 1), (4, 5); ratios max(g/p, p/g): 1, 2, 1.25
EXPECTED1 = {
    "a1": 1 / 3,  # only ratio 1 is < 1.25
    "a2": 2 / 3,  # 1 and 1.25 are < 1.5625
    "a3": 2 / 3,  # 2 is not < 1.953125
    "rel": (0 + 1 / 2 + 1 / 4) / 3,
    "rms": math.sqrt((0 + 1 + 1) / 3),
    "log10": (0 + math.log10(2) + abs(math.log10(4) - math.log10(5))) / 3,
}


def test_compute_errors_by_hand():
    got = compute_errors(GT1, PRED1)
    assert set(got) == set(METRIC_NAMES)
    for k, v in EXPECTED1.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k


def test_invalid_gt_pixels_are_ignored():
    gt = GT1.copy()
    pred = PRED1.copy()
    gt[1, 1] = np.nan
    pred[1, 1] = 123.0
    assert compute_errors(gt, pred) == pytest.approx(EXPECTED1)
    gt[1, 1] = np.inf
    assert compute_errors(gt, pred) == pytest.approx(EXPECTED1)
    gt[1, 1] = -1.0
    assert compute_errors(gt, pred) == pytest.approx(EXPECTED1)


def test_evaluate_depth_averages_per_image():
    gt = np.stack([GT1, np.full((2, 2), 2.0)])
    pred = np.stack([PRED1, np.full((2, 2), 2.0)])
    res = evaluate_depth(gt, pred)
    assert len(res["per_image"]) == 2
    assert res["per_image"][1] == {"a1": 1.0, "a2": 1.0, "a3": 1.0, "rel": 0.0, "rms": 0.0, "log10": 0.0}
    for k in METRIC_NAMES:
        other = 1.0 if k.startswith("a") else 0.0
        assert res[k] == pytest.approx((EXPECTED1[k] + other) / 2), k
    assert evaluate_depth(torch.from_numpy(gt), torch.from_numpy(pred))["rms"] == res["rms"]


def test_higher_is_better():
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert [k for k in METRIC_NAMES if HIGHER_IS_BETTER[k]] == ["a1", "a2", "a3"]


def test_refusals():
    with pytest.raises(PyapproxError, match="NaN"):
        compute_errors(GT1, np.where(GT1 == 2.0, np.nan, PRED1))
    with pytest.raises(PyapproxError, match="image 1.*NaN"):
        evaluate_depth(np.ones((2, 2, 2)), np.stack([np.ones((2, 2)), np.full((2, 2), np.nan)]))
    with pytest.raises(PyapproxError, match="empty"):
        evaluate_depth(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    with pytest.raises(PyapproxError, match="no valid ground-truth"):
        compute_errors(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(PyapproxError, match="shape"):
        evaluate_depth(np.ones((1, 2, 2)), np.ones((1, 2, 3)))
    with pytest.raises(PyapproxError, match="> 0"):
        compute_errors(np.ones((2, 2)), np.zeros((2, 2)))


@pytest.mark.filterwarnings("error")
def test_prediction_to_depth_constants():
    # DenseDepth's clip(1000 / p, 10, 1000) with numpy semantics: +0 -> +inf -> 10 m; -0 -> -inf, p < 0 -> < 0,
    # -inf -> -0 and +inf -> +0 all clip to 10 -> 0.1 m
    p = np.array([100.0, 1.0, 10.0, 0.0, -5.0, np.inf, -np.inf, 1e-9, -0.0, -1e-9], dtype=np.float32).reshape(10, 1, 1)
    d = prediction_to_depth(np.broadcast_to(p, (10, 3, 4)))
    assert d.shape == (10, 6, 8) and d.dtype == np.float32
    assert np.isfinite(d).all()
    expected = [0.1, 10.0, 1.0, 10.0, 0.1, 0.1, 0.1, 10.0, 0.1, 0.1]
    for i, e in enumerate(expected):
        assert np.allclose(d[i], e, rtol=1e-6), (i, d[i, 0, 0])
    # [N, 1, h, w] and torch input are accepted
    assert prediction_to_depth(torch.full((1, 1, 2, 2), 100.0)).shape == (1, 4, 4)
    with pytest.raises(PyapproxError, match="NaN"):
        prediction_to_depth(np.full((1, 2, 2), np.nan))


def test_prediction_to_depth_bilinear_by_hand():
    # p = [1, 10] -> depths [10 m, 1 m]; align_corners=False x2: source x = (x + 0.5) / 2 - 0.5
    d = prediction_to_depth(np.array([[[1.0, 10.0]]]))
    assert d.shape == (1, 2, 4)
    assert np.allclose(d[0, 0], [10.0, 7.75, 3.25, 1.0])
    assert np.allclose(d[0, 1], d[0, 0])


def test_eigen_crop():
    assert EIGEN_CROP == (20, 460, 24, 616)
    assert eigen_crop_box(480, 640) == (20, 460, 24, 616)
    assert eigen_crop_box(240, 320) == (10, 230, 12, 308)
    a = np.arange(480 * 640).reshape(480, 640)
    c = eigen_crop(a)
    assert c.shape == (440, 592)
    assert c[0, 0] == a[20, 24] and c[-1, -1] == a[459, 615]
    b = eigen_crop(np.zeros((3, 240, 320)))
    assert b.shape == (3, 220, 296)
    res = evaluate_depth(np.ones((1, 480, 640)), np.ones((1, 480, 640)), crop=True)
    assert res["a1"] == 1.0
