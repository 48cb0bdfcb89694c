"""`pyapprox eval` end to end on tiny data, and its bad-input errors."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyapprox", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(3)
    m = DenseDepthMBV2()
    with torch.no_grad():  # a random net whose output stays positive, like a depth net's
        m.decoder.conv3.bias.fill_(5.0)
    path = tmp_path_factory.mktemp("w") / "random.pt"
    torch.save(m.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def h5_folder(tmp_path_factory):
    from pyapprox.data.synthetic import render

    d = tmp_path_factory.mktemp("nyu") / "val" / "official"
    d.mkdir(parents=True)
    for i in range(2):
        rgb, depth = render(2_000_000 + i)
        with h5py.File(d / f"{i:05d}.h5", "w") as f:
            f["rgb"] = rgb.transpose(2, 0, 1)
            f["depth"] = depth
    return d.parent.parent


def test_eval_side_by_side_on_nyu_h5(weights, h5_folder, tmp_path):
    out = tmp_path / "res.json"
    r = _cli("eval", "--data", h5_folder, "--weights", weights, "--approx", "encoder=trunc6", "--json", out,
             "--calib-images", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "accelerator: sign-magnitude operands" in r.stdout
    res = json.loads(out.read_text())
    v = res["variants"]
    assert set(v) == {"float", "exact", "approx"}
    for name in v:
        assert v[name]["images"] == 2 and set(v[name]["metrics"]) == {"a1", "a2", "a3", "rel", "rms", "log10"}
    assert v["approx"]["plan"]["assignment"]["encoder.original_model.features.0.0"] == "trunc6"
    assert v["approx"]["plan"]["assignment"]["decoder.conv3"] == "exact"
    assert v["approx"]["metrics"] != v["exact"]["metrics"]
    assert res["accelerator"]["operand_format"] == "sign-magnitude"
    # the default protocol is recorded in the JSON and printed above the table
    assert res["protocol"] == "per-image" and res["flip"] is False
    assert all(v[name]["protocol"] == "per-image" and v[name]["flip"] is False for name in v)
    assert "protocol: per-image (metrics per image, averaged over images" in r.stdout and "; no flip" in r.stdout


def test_eval_bad_inputs(weights, tmp_path):
    r = _cli("eval", "--data", "imagenet", "--weights", weights)
    assert r.returncode == 2 and "unknown data set 'imagenet'" in r.stderr and "synthetic" in r.stderr
    r = _cli("eval", "--data", "synthetic", "--limit", "1", "--weights", tmp_path / "none.pt")
    assert r.returncode == 2 and "no such file" in r.stderr
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), other)
    r = _cli("eval", "--data", "synthetic", "--limit", "1", "--weights", other)
    assert r.returncode == 2 and "not a densedepth_mbv2 state_dict" in r.stderr and "missing keys" in r.stderr
    r = _cli("eval", "--data", "synthetic", "--limit", "1", "--weights", weights, "--approx", "99.conv=mbm")
    assert r.returncode == 2 and "unknown layer '99.conv'" in r.stderr
    for res in (r,):
        assert "Traceback" not in res.stderr


def test_layers_listing():
    r = _cli("layers")
    assert r.returncode == 0
    assert "encoder: 52 convs (17 dw, 1 full, 34 pw)" in r.stdout
    assert "8,714,263,040 MACs at 480x640" in r.stdout
    assert " 0.0 " in r.stdout and "9.conv.1.0" in r.stdout and "decoder.up0.convA" in r.stdout
