"""Evaluation protocols against independent transcriptions of DenseDepth's evaluation code.

``_dd_compute_errors`` is DenseDepth's ``compute_errors(gt, pred)`` (utils.py and Tensorflow/evaluate.py);
``_dd_utils_evaluate`` stacks every crop and calls it with the arguments swapped, as utils.evaluate does;
``_dd_tf_evaluate`` scores each image and averages, as Tensorflow/evaluate.py does.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pyapprox.data
import pyapprox.models.weights
from pyapprox import cli
from pyapprox.commands import eval as eval_cmd
from pyapprox.errors import PyapproxError
from pyapprox.eval.evaluate import Variant, evaluate, format_table, predict_depth
from pyapprox.eval.metrics import (
    METRIC_NAMES,
    PROTOCOLS,
    MetricAccumulator,
    compute_errors,
    eigen_crop,
    evaluate_depth,
    flip_average,
    prediction_to_depth,
)
from pyapprox.models.densedepth_mbv2 import preprocess


def _dd_compute_errors(gt, pred):
    thresh = np.maximum((gt / pred), (pred / gt))
    a1 = (thresh < 1.25).mean()
    a2 = (thresh < 1.25 ** 2).mean()
    a3 = (thresh < 1.25 ** 3).mean()
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    log_10 = (np.abs(np.log10(gt) - np.log10(pred))).mean()
    return dict(zip(METRIC_NAMES, (a1, a2, a3, abs_rel, rmse, log_10)))


def _dd_utils_evaluate(gts, preds):
    predictions = np.stack(preds, axis=0)
    test_set_depths = np.stack(gts, axis=0)
    return _dd_compute_errors(predictions, test_set_depths)  # sic: DenseDepth passes (predictions, depths)


def _dd_tf_evaluate(gts, preds):
    scores = [_dd_compute_errors(g, p) for g, p in zip(gts, preds)]
    return {k: np.mean([s[k] for s in scores]) for k in METRIC_NAMES}


def _dd_predict_depth(p):
    """DenseDepth's predict (clip(DepthNorm(p), 10, 1000) / 1000) times 10, in float32 like Keras' output."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.clip(np.float32(1000) / np.asarray(p, np.float32), 10, 1000) / 1000 * 10.0


def _random_set(seed, n=6, shape=(24, 36)):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n):
        g = rng.uniform(0.5, 10.0, shape)
        scale = 0.05 + 0.15 * i  # images with very different error levels: pooling and averaging disagree
        gts.append(g)
        preds.append(np.clip(g * np.exp(rng.normal(0.0, scale, shape)), 0.1, 10.0))
    return gts, preds


def _close(got, want):
    assert set(got) >= set(METRIC_NAMES)
    for k in METRIC_NAMES:
        assert got[k] == pytest.approx(float(want[k]), rel=1e-9, abs=0), k


@pytest.mark.parametrize("seed", [0, 1])
def test_protocols_match_independent_transcriptions(seed):
    gts, preds = _random_set(seed)
    assert PROTOCOLS == ("per-image", "densedepth")
    per_image = evaluate_depth(np.stack(gts), np.stack(preds))  # default protocol
    assert per_image["protocol"] == "per-image"
    _close(per_image, _dd_tf_evaluate(gts, preds))
    pooled = evaluate_depth(np.stack(gts), np.stack(preds), protocol="densedepth")
    assert pooled["protocol"] == "densedepth"
    _close(pooled, _dd_utils_evaluate(gts, preds))
    # per_image entries keep the standard per-image metrics whatever the protocol
    assert pooled["per_image"] == per_image["per_image"]
    # the protocols really differ: rel (other denominator) and rms (pooled); a1 and log10 agree here
    # because every image has the same number of pixels
    assert abs(pooled["rel"] - per_image["rel"]) > 1e-4 and abs(pooled["rms"] - per_image["rms"]) > 1e-4
    assert pooled["a1"] == pytest.approx(per_image["a1"], rel=1e-12)
    assert pooled["log10"] == pytest.approx(per_image["log10"], rel=1e-12)


def test_pooled_rel_is_divided_by_the_prediction():
    # one pixel: gt 2, pred 1 -> standard rel 0.5, DenseDepth utils rel |2 - 1| / 1 = 1
    acc = MetricAccumulator("densedepth")
    acc.add([[2.0]], [[1.0]])
    assert acc.result()["rel"] == 1.0
    assert compute_errors([[2.0]], [[1.0]])["rel"] == 0.5


def test_accumulator_streams_images_and_skips_invalid_ground_truth():
    gts, preds = _random_set(7, n=4)
    gts[1][:5] = 0.0  # invalid ground truth: images now have different numbers of valid pixels
    gts[2][3, 4] = np.nan
    acc = MetricAccumulator("densedepth")
    for g, p in zip(gts, preds):
        m = acc.add(g, p)
        assert m == compute_errors(g, p)
    assert acc.images == 4 and len(acc.per_image) == 4
    valid = [np.isfinite(g) & (g > 0) for g in gts]
    want = _dd_compute_errors(np.concatenate([p[v] for p, v in zip(preds, valid)]),
                              np.concatenate([g[v] for g, v in zip(gts, valid)]))
    _close(acc.result(), want)
    per = MetricAccumulator()
    for g, p in zip(gts, preds):
        per.add(g, p)
    assert per.result() == {k: float(np.mean([compute_errors(g, p)[k] for g, p in zip(gts, preds)]))
                            for k in METRIC_NAMES}


def test_protocol_refusals():
    with pytest.raises(PyapproxError, match="protocol 'pooled'.*valid: per-image, densedepth"):
        MetricAccumulator("pooled")
    with pytest.raises(PyapproxError, match="valid: per-image, densedepth"):
        evaluate_depth(np.ones((1, 2, 2)), np.ones((1, 2, 2)), protocol="Per-Image")
    with pytest.raises(PyapproxError, match="no images"):
        MetricAccumulator("densedepth").result()
    with pytest.raises(PyapproxError, match="image 0.*> 0"):
        MetricAccumulator("densedepth").add(np.ones((2, 2)), -np.ones((2, 2)), where="image 0")


def test_prediction_to_depth_follows_densedepth_for_every_sign():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.normal(0.0, 200.0, 200), [0.0, -0.0, np.inf, -np.inf, 1e-30, -1e-30, 5.0, -5.0]])
    p = p.astype(np.float32)
    d = prediction_to_depth(p.reshape(-1, 1, 1))  # constant maps: the upscaling leaves them unchanged
    want = _dd_predict_depth(p)
    assert np.allclose(d[:, 0, 0], want, rtol=1e-6, atol=0)
    assert d[-1, 0, 0] == pytest.approx(0.1) and d[-8, 0, 0] == pytest.approx(10.0)  # p = -5 and p = +0
    assert d[-7, 0, 0] == pytest.approx(0.1)  # p = -0.0
    assert (d[:-8, 0, 0][p[:-8] < 0] == np.float32(0.1)).all()


class _Asymmetric(torch.nn.Module):
    """Half-resolution output p = ramp along the width + the input's mean: mirroring the input changes it."""

    def forward(self, x):
        y = F.avg_pool2d(x.mean(1, keepdim=True), 2)
        ramp = torch.linspace(20.0, 600.0, y.shape[-1])
        return ramp + 40.0 * y


class _Data:
    name = "tiny"

    def __init__(self, n=2, h=48, w=64):
        rng = np.random.default_rng(11)
        self.rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        self.depth = rng.uniform(0.5, 9.0, (n, h, w)).astype(np.float32)

    def __len__(self):
        return len(self.rgb)

    def __getitem__(self, i):
        return self.rgb[i], self.depth[i]


def _reference_depth(model, rgb):
    """Network output -> DenseDepth's depth (float32 clip mapping), upscaled x2 bilinearly, in metres."""
    with torch.no_grad():
        p = model(preprocess(rgb)).numpy()[:, 0]
    d = torch.from_numpy(_dd_predict_depth(p).astype(np.float32))[:, None]
    return F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float64)


def test_flip_averages_the_mirrored_prediction():
    model = _Asymmetric()
    data = _Data()
    rgb = data.rgb[0]
    plain = _reference_depth(model, rgb)
    mirrored = _reference_depth(model, np.ascontiguousarray(rgb[:, ::-1]))
    want = 0.5 * plain + 0.5 * mirrored[:, ::-1]
    got = predict_depth(model, rgb, flip=True)
    assert got.shape == (48, 64) and got.dtype == np.float64
    assert np.allclose(got, want, rtol=1e-6, atol=0)
    assert not np.allclose(got, plain, rtol=1e-3)  # the model is asymmetric: flipping matters
    assert np.array_equal(predict_depth(model, rgb), prediction_to_depth(model(preprocess(rgb)).detach())[0])
    assert np.array_equal(flip_average(plain, mirrored), want)

    gts = [eigen_crop(data.depth[i].astype(np.float64)) for i in range(len(data))]
    preds = [eigen_crop(0.5 * _reference_depth(model, data.rgb[i])
                        + 0.5 * _reference_depth(model, np.ascontiguousarray(data.rgb[i][:, ::-1]))[:, ::-1])
             for i in range(len(data))]
    res = evaluate([Variant("float", model)], data, progress=False, keep=1, protocol="densedepth", flip=True)
    r = res["variants"]["float"]
    assert r["protocol"] == "densedepth" and r["flip"] is True and r["images"] == 2
    for k in METRIC_NAMES:
        assert r["metrics"][k] == pytest.approx(float(_dd_utils_evaluate(gts, preds)[k]), rel=1e-6), k
    assert np.array_equal(res["predictions"]["float"][0], predict_depth(model, data.rgb[0], flip=True))
    table = format_table(res)
    assert table.splitlines()[0].startswith("protocol: densedepth (all pixels of the set pooled")
    assert table.splitlines()[0].endswith("; flip averaged")


def test_evaluate_default_is_per_image_without_flip():
    model = _Asymmetric()
    data = _Data()
    res = evaluate([Variant("float", model)], data, progress=False)
    r = res["variants"]["float"]
    assert r["protocol"] == "per-image" and r["flip"] is False
    per = [compute_errors(eigen_crop(data.depth[i]), eigen_crop(predict_depth(model, data.rgb[i])))
           for i in range(len(data))]
    assert r["per_image"] == per
    assert r["metrics"] == {k: float(np.mean([m[k] for m in per])) for k in METRIC_NAMES}
    flipped = evaluate([Variant("float", model)], data, progress=False, flip=True)["variants"]["float"]
    assert flipped["metrics"]["rms"] != r["metrics"]["rms"]
    lines = format_table(res).splitlines()
    assert lines[0] == ("protocol: per-image (metrics per image, averaged over images; rel = |gt-pred|/gt; "
                        "DenseDepth Tensorflow/evaluate.py); no flip")
    assert lines[1].split()[0] == "variant" and lines[2].split()[0] == "float"
    # variants scored under different protocols: the protocol becomes a column
    mixed = format_table({"variants": {"a": r, "b": flipped}}).splitlines()
    assert mixed[0].endswith("  protocol") and mixed[1].endswith("  per-image") and mixed[2].endswith("  per-image +flip")
    with pytest.raises(PyapproxError, match="valid: per-image, densedepth"):
        evaluate([Variant("float", model)], data, progress=False, protocol="pixels")


@pytest.fixture
def no_work(monkeypatch):
    """Make loading a model or a data set fail the test: the CLI must refuse before any work."""

    def forbidden(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(pyapprox.models.weights, "load_model", forbidden)
    monkeypatch.setattr(pyapprox.data, "open_dataset", forbidden)


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_cli_nothing_to_evaluate(no_work, capsys):
    assert cli.main(["eval", "--no-float", "--no-exact", "--limit", "1"]) == 2
    assert _one_error_line(capsys) == (
        "pyapprox eval: error: nothing to evaluate: --no-float and --no-exact leave no variant; "
        "add --plan or --approx, or drop one of them")


def test_cli_json_output_checked_first(no_work, capsys, tmp_path):
    assert cli.main(["eval", "--limit", "1", "--json", str(tmp_path)]) == 2
    assert _one_error_line(capsys) == f"pyapprox eval: error: --json {tmp_path}: is a directory; give a file name ending in .json"
    assert cli.main(["eval", "--limit", "1", "--json", str(tmp_path / "out.txt")]) == 2
    assert "expected a file name ending in .json" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", "--protocol", "pooled"])
    assert e.value.code == 2 and "invalid choice: 'pooled'" in capsys.readouterr().err
    assert eval_cmd.PROTOCOLS == PROTOCOLS


def test_cli_protocol_and_flip_reach_the_json(capsys, tmp_path):
    out = tmp_path / "res.json"
    assert cli.main(["eval", "--data", "synthetic@120x160", "--limit", "2", "--no-exact", "--protocol", "densedepth",
                     "--flip", "--json", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "protocol: densedepth (all pixels of the set pooled" in stdout and "; flip averaged" in stdout
    res = json.loads(out.read_text())
    assert res["protocol"] == "densedepth" and res["flip"] is True
    assert res["variants"]["float"]["protocol"] == "densedepth" and res["variants"]["float"]["flip"] is True
    assert set(res["variants"]["float"]["metrics"]) == set(METRIC_NAMES)
