"""Bit-exact co-simulation of the RTL MAC array with pyapprox's arithmetic on real layer data.

A randomly initialised DenseDepthMBV2 with perturbed BatchNorm statistics, calibrated and quantized on
synthetic images, runs a small synthetic image (64x96); real tiles of a full 3x3 stride-2 conv (0.0),
depthwise convs (1.conv.0.0, 2.conv.1.0 stride 2), a pointwise conv (1.conv.1) and the last conv
(decoder.conv3, not requantized) stream through rtl/mac/mac_array.v built with the multiplier's own RTL;
every accumulator, overflow flag and output code must match. Then: narrow accumulators that overflow
(saturate and wrap), int8 operands with the weight on port b, a user's Verilog multiplier with other port
names (through a generated adapter), the CLI end to end, and the bad-input errors raised before any
simulation.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from pyapprox.data.synthetic import render
from pyapprox.errors import PyapproxError
from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2, preprocess
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.quant import quantize_model
from pyapprox.cosim import ArrayConfig, cosim_model, format_report, multiplier_rtl

KINDS = ["0.0", "1.conv.0.0", "1.conv.1"]  # full 3x3 stride 2, depthwise, pointwise


def _random_model():
    torch.manual_seed(0)
    m = DenseDepthMBV2().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    return m


@pytest.fixture(scope="module")
def model():
    return _random_model()


@pytest.fixture(scope="module")
def calib():
    return [preprocess(render(seed, 64, 96)[0]) for seed in (11, 12)]


@pytest.fixture(scope="module")
def image():
    return preprocess(render(5, 64, 96)[0])


_QMODELS = {}


def qmodel_for(model, calib, **cfg):
    key = tuple(sorted(cfg.items()))
    if key not in _QMODELS:
        with torch.no_grad():
            _QMODELS[key] = quantize_model(model, calib, AccelConfig(**cfg))
    return _QMODELS[key]


def _check(rep, layers):
    assert rep.mismatches == 0, format_report(rep)
    assert [li["short"] for li in rep.layers] == layers
    assert rep.outputs == sum(li["outputs"] for li in rep.layers) > 0
    for li in rep.layers:
        assert li["tiles"] >= 1 and li["outputs"] >= 1 and li["mismatches"] == 0
    assert rep.sim["array_macs"] > 0 and rep.sim["macs_per_s"] > 0


@pytest.mark.parametrize("mult, sim, extra", [
    pytest.param("exact", "icarus", ["2.conv.1.0"], marks=pytest.mark.xdist_group("cosim-i"), id="exact-icarus"),
    pytest.param("mbm", "verilator", ["2.conv.1.0", "decoder.conv3"], marks=pytest.mark.xdist_group("cosim-v"),
                 id="mbm-verilator"),
    pytest.param("trunc6", "icarus", [], marks=pytest.mark.xdist_group("cosim-i"), id="trunc6-icarus"),
    pytest.param("sm(drum4)", "verilator", [], marks=pytest.mark.xdist_group("cosim-v"), id="sm(drum4)-verilator"),
])
def test_layer_kinds_match(model, calib, image, mult, sim, extra):
    q = qmodel_for(model, calib)
    layers = KINDS + extra
    rep = cosim_model(q, image, layers, mult, rows=4, cols=4, tiles=4, simulator=sim)
    _check(rep, layers)
    kinds = {li["short"]: (li["kind"], li["mode"]) for li in rep.layers}
    assert kinds["0.0"] == ("full", "dense") and kinds["1.conv.0.0"] == ("dw", "depthwise")
    assert kinds["1.conv.1"] == ("pw", "dense")
    if "decoder.conv3" in layers:  # the last conv: one output channel, not requantized
        assert not rep.layers[-1]["requantized"] and rep.layers[-1]["tiles"] == 4
        assert rep.layers[-1]["mode"] == "dense" and rep.layers[-1]["outputs"] == 16
    if mult != "exact":  # the multiplier really is approximate on these operands
        assert rep.layers[0]["multiplier"] == mult


@pytest.mark.xdist_group("cosim-i")
@pytest.mark.parametrize("mode, mult", [("saturate", "mbm"), ("wrap", "trunc6")])
def test_narrow_accumulator_overflows_match(model, calib, image, mode, mult):
    q = qmodel_for(model, calib, acc_bits=17, acc_mode=mode)
    rep = cosim_model(q, image, ["0.0", "1.conv.1"], mult, rows=4, cols=4, tiles=16, simulator="icarus")
    _check(rep, ["0.0", "1.conv.1"])
    assert rep.overflows > 0 and rep.array["acc_bits"] == 17 and rep.array["acc_mode"] == mode


@pytest.mark.xdist_group("cosim-i")
def test_int8_weight_on_port_b(model, calib, image):
    q = qmodel_for(model, calib, operand_format="int8", weight_port="b")
    rep = cosim_model(q, image, KINDS, "exact", rows=3, cols=5, tiles=3, simulator="icarus")
    _check(rep, KINDS)
    assert rep.rtl["top"] == "mult_signed_bw" and rep.array["weight_port"] == "b"


@pytest.mark.xdist_group("cosim-i")
def test_a_different_rtl_is_caught(model, calib, image):
    """The comparison has teeth: the model multiplies with mbm's LUT, the array runs trunc6's RTL."""
    q = qmodel_for(model, calib)
    rep = cosim_model(q, image, ["1.conv.1"], "mbm", rows=2, cols=3, tiles=2, simulator="icarus",
                      rtl=multiplier_rtl("trunc6"))
    assert rep.mismatches > 0 and rep.field_mismatches["acc"] > 0
    m = rep.first_mismatches[0]
    assert {"layer", "tile", "row", "col", "channel", "pixel", "expected", "got"} <= set(m)
    assert m["expected"]["acc"] != m["got"]["acc"]
    assert "mismatch: layer encoder.original_model.features.1.conv.1 tile" in format_report(rep)


USER_V = """\
// a user's approximate multiplier: its own port names, a parameter, and a mode input to tie off
module my_approx_mult #(parameter DROP = 2) (
    input  [7:0]  op_x,
    input  [7:0]  op_y,
    input  [1:0]  mode,
    output [15:0] result,
    output        busy
);
    wire [15:0] full = op_x * op_y;
    // mode 2: drop the DROP low bits and add half of them back (non-zero even for a zero operand)
    assign result = (mode == 2'd2) ? ((full >> DROP) << DROP) | (16'd1 << (DROP - 1)) : full;
    assign busy = 1'b0;
endmodule
"""


@pytest.fixture(scope="module")
def user_lut(tmp_path_factory):
    from pyapprox.lut.gen import generate

    d = tmp_path_factory.mktemp("user")
    (d / "my_mult.v").write_text(USER_V)
    lut = generate([d / "my_mult.v"], "my_approx_mult", a="op_x", b="op_y", out="result", params={"DROP": 3},
                   ties={"mode": 2}, name="my_approx_mult", use_cache=False)
    assert lut.table[0, 0] == 4 and not lut.is_exact()
    lut.save(d / "my_mult.npy")
    lut.save(d / "my_mult.bin")
    return d


@pytest.mark.xdist_group("cosim-i")
def test_user_design_through_generated_adapter(model, calib, image, user_lut):
    spec = str(user_lut / "my_mult.npy")
    rtl = multiplier_rtl(spec)
    assert rtl.adapter is not None and "op_x" in rtl.adapter and "2'd2" in rtl.adapter and ".DROP(3)" in rtl.adapter
    q = qmodel_for(model, calib)
    rep = cosim_model(q, image, ["1.conv.1", "1.conv.0.0"], spec, rows=3, cols=4, tiles=4, simulator="icarus")
    _check(rep, ["1.conv.0.0", "1.conv.1"])
    assert rep.rtl["adapter"] and rep.rtl["top"] == "my_approx_mult"


@pytest.mark.xdist_group("cosim-i")
def test_lut_moved_with_its_sources_finds_them(user_lut, tmp_path):
    """A LUT whose recorded source path is gone finds the same file (same SHA-256) next to it."""
    import shutil

    from pyapprox.lut.table import LUT

    origin = tmp_path / "origin"
    origin.mkdir()
    shutil.copy(user_lut / "my_mult.v", origin / "my_mult.v")
    lut = LUT.load(user_lut / "my_mult.npy")
    lut.meta["sources"] = {str((origin / "my_mult.v").resolve()): d for d in lut.meta["sources"].values()}
    lut.save(origin / "my_mult.npy")
    moved = tmp_path / "moved"
    shutil.copytree(origin, moved)
    shutil.rmtree(origin)
    rtl = multiplier_rtl(str(moved / "my_mult.npy"))
    assert [str(s) for s in rtl.sources] == [str((moved / "my_mult.v").resolve())]


# -- bad input: clear errors before any simulation ------------------------------------------------------
@pytest.mark.xdist_group("cosim-i")
def test_bad_inputs_fail_before_simulating(model, calib, image, user_lut, tmp_path):
    q = qmodel_for(model, calib)
    build = tmp_path / "build"
    with pytest.raises(PyapproxError, match=r"unknown layer '9\.conv\.9'; valid names: 0\.0, 1\.conv\.0\.0"):
        cosim_model(q, image, ["9.conv.9"], "mbm", build_dir=build)
    with pytest.raises(PyapproxError, match=r"my_mult\.bin: the LUT file has no RTL \(a bare \.bin table\)"):
        cosim_model(q, image, ["1.conv.1"], str(user_lut / "my_mult.bin"), build_dir=build)
    with pytest.raises(PyapproxError, match="unknown multiplier 'nosuch'"):
        cosim_model(q, image, ["1.conv.1"], "nosuch", build_dir=build)
    with pytest.raises(PyapproxError, match="--rows 0 is not valid"):
        cosim_model(q, image, ["1.conv.1"], "mbm", rows=0, build_dir=build)
    with pytest.raises(PyapproxError, match="narrower than a product .17 bits with its sign"):
        ArrayConfig(8, 8, acc_bits=16).check()
    q8 = qmodel_for(model, calib, operand_format="int8", weight_port="b")
    with pytest.raises(PyapproxError, match="int8 operands need a signed"):
        cosim_model(q8, image, ["1.conv.1"], "mbm", build_dir=build)
    # the RTL a LUT was derived from changed afterwards
    src = user_lut / "copy"
    src.mkdir(exist_ok=True)
    (src / "my_mult.v").write_text(USER_V)
    from pyapprox.lut.gen import generate

    generate([src / "my_mult.v"], "my_approx_mult", a="op_x", b="op_y", out="result", ties={"mode": 0},
             use_cache=False).save(src / "m.npy")
    (src / "my_mult.v").write_text(USER_V.replace("DROP = 2", "DROP = 4"))
    with pytest.raises(PyapproxError, match="changed since the LUT was derived"):
        cosim_model(q, image, ["1.conv.1"], str(src / "m.npy"), build_dir=build)
    assert not build.exists()


# -- the command line -----------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyapprox", "cosim", *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "random.pt"
    torch.save(_random_model().state_dict(), path)
    return path


@pytest.mark.xdist_group("cosim-i")
def test_cli_end_to_end(weights, tmp_path):
    out = tmp_path / "cosim.json"
    r = _cli("--layer", "1.conv.1", "--layer", "1.conv.0.0", "--multiplier", "trunc6", "--tiles", "3", "--sim",
             "icarus", "--rows", "2", "--cols", "3", "--weights", weights, "--height", "64", "--width", "96",
             "--calib-images", "1", "--json", out, "--build-dir", tmp_path / "b", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 mismatches" in r.stdout and "MAC/s" in r.stdout and "1.conv.0.0" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["mismatches"] == 0 and rep["tiles"] == 6 and rep["outputs"] == 36
    assert [li["short"] for li in rep["layers"]] == ["1.conv.0.0", "1.conv.1"]
    assert rep["sim"]["macs_per_s"] > 0 and rep["multiplier"] == "trunc6" and rep["simulator"] == "icarus"


@pytest.mark.xdist_group("cosim-i")
def test_cli_bad_inputs(weights, user_lut, tmp_path):
    build = tmp_path / "b"
    common = ["--weights", weights, "--build-dir", build, "--quiet"]
    r = _cli("--layer", "0.0", "--multiplier", "mbm", "--acc-bits", "16", *common)
    assert r.returncode == 2 and "a 16-bit accumulator is narrower than a product (17 bits" in r.stderr
    r = _cli("--layer", "no.such.layer", "--multiplier", "mbm", *common)
    assert r.returncode == 2 and "unknown layer 'no.such.layer'; valid names: 0.0, 1.conv.0.0" in r.stderr
    r = _cli("--layer", "0.0", "--multiplier", user_lut / "my_mult.bin", *common)
    assert r.returncode == 2 and "the LUT file has no RTL" in r.stderr
    r = _cli("--layer", "0.0", "--multiplier", "mbm", "--cols", "0", *common)
    assert r.returncode == 2 and "--cols 0 is not valid" in r.stderr
    assert not build.exists()
