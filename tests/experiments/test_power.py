"""Energy from switching activity (issue 16): PE streams follow the array's dataflow (checked against the
co-simulation's own tiles), toggle counts on real layer streams equal Icarus' VCD, operands reach the right
ports, and ``pyapprox power`` gives results and clear errors."""

import json

import numpy as np
import pytest
import torch

from pyapprox.cli import main
from pyapprox.cosim import ArrayConfig
from pyapprox.cosim.capture import capture_layers, resolve_layers
from pyapprox.cosim.streams import pe_streams
from pyapprox.cosim.tiles import layer_tiles
from pyapprox.errors import PyapproxError
from pyapprox.experiments import power as P
from pyapprox.hw import toggle
from pyapprox.hw.energy import operand_inputs
from pyapprox.hw.vcd import icarus_toggles
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.quant import qconv_layers
from tests.lut.designs import SEQUENTIAL, write
from tests.sim.test_cosim import calib, image, model, qmodel_for, user_lut  # noqa: F401 (fixtures)

KINDS = ["0.0", "1.conv.0.0", "1.conv.1"]  # full 3x3 stride 2, depthwise, pointwise


@pytest.fixture(scope="module")
def captured(model, calib, image):  # noqa: F811
    q = qmodel_for(model, calib)
    full = {k: resolve_layers(q, k)[0] for k in KINDS}
    got = capture_layers(q, list(full.values()), image)
    return q, {k: (dict(qconv_layers(q))[n], got[n]) for k, n in full.items()}


@pytest.mark.parametrize("layer", KINDS)
def test_pe_streams_follow_the_array_dataflow(captured, layer):
    _, layers = captured
    mod, got = layers[layer]
    rows, cols = 4, 3
    s = pe_streams(layer, mod, got["codes"], rows, cols, segments=12, min_pairs=40, seed=1)
    tiles, total, _ = layer_tiles(layer, mod, got["codes"], got["acc"],
                                  ArrayConfig(rows, cols, "sign-magnitude", "a", 32, "wrap", 16).check(), None)
    assert s.tiles == total == len(tiles)
    ends = np.append(s.starts[1:], s.pairs)
    for (r, c, b0, n), a, e in zip(s.positions, s.starts, ends):
        w = np.concatenate([t.w[r] for t in tiles[b0:b0 + n]])
        x = np.concatenate([(t.xpe[r, :, c] if t.dw else t.x[:, c]) for t in tiles[b0:b0 + n]])
        assert np.array_equal(s.w[a:e], w) and np.array_equal(s.x[a:e], x), (r, c, b0)
    assert s.macs == mod.conv.weight_codes[0].numel() * got["acc"][0, 0].numel() * mod.conv.weight_codes.shape[0]
    again = pe_streams(layer, mod, got["codes"], rows, cols, segments=12, min_pairs=40, seed=1)
    assert np.array_equal(again.w, s.w) and again.positions == s.positions  # reproducible from the seed


@pytest.mark.parametrize("name", ["exact", "mbm", "trunc4"])
def test_toggles_on_a_real_layer_stream_equal_icarus(captured, name):
    mod, got = captured[1]["1.conv.1"]
    s = pe_streams("1.conv.1", mod, got["codes"], segments=8, min_pairs=200, seed=2)
    d = P.library_design(name, "sign-magnitude")
    inputs = operand_inputs(d.netlist, d.ports, s.w, s.x, "sign-magnitude", "a")
    ours = toggle.toggles(d.netlist, inputs).toggles
    assert ours.sum() > 1000
    assert np.array_equal(ours, icarus_toggles(d.netlist, inputs))


def test_operands_reach_their_ports():
    d = P.library_design("sm(drum4)", "sign-magnitude")
    w, x = np.array([-3, 5, 0, 255]), np.array([7, -9, -1, -255])
    ins = operand_inputs(d.netlist, d.ports, w, x, "sign-magnitude", "a")
    assert ins["a_mag"].tolist() == [3, 5, 0, 255] and ins["a_sign"].tolist() == [1, 0, 0, 0]
    assert ins["b_mag"].tolist() == [7, 9, 1, 255] and ins["b_sign"].tolist() == [0, 1, 1, 1]
    swapped = operand_inputs(d.netlist, d.ports, w, x, "sign-magnitude", "b")
    assert swapped["a_mag"].tolist() == [7, 9, 1, 255]
    s = P.library_design("exact_signed", "int8")
    ins = operand_inputs(s.netlist, s.ports, np.array([-1, 127]), np.array([-128, 3]), "int8", "a")
    assert ins["a"].tolist() == [255, 127] and ins["b"].tolist() == [128, 3]
    with pytest.raises(PyapproxError, match="outside -128..127"):
        operand_inputs(s.netlist, s.ports, np.array([200]), np.array([0]), "int8", "a")
    with pytest.raises(PyapproxError, match="int8 operand format needs a two's-complement multiplier"):
        P.library_design("mbm", "int8")
    with pytest.raises(PyapproxError, match="sign-magnitude operands need an unsigned"):
        P.library_design("exact_signed", "sign-magnitude")


def test_energy_is_relative_to_the_exact_array_and_reproducible():
    ex = P.library_design("exact", "sign-magnitude")
    tr = P.library_design("trunc6", "sign-magnitude")
    ref = P.uniform_energy(ex, "sign-magnitude", 1 << 14, 0)
    rows = P.compare_designs([ex, tr], ref, None, "sign-magnitude", "a", 1 << 14, 0)
    assert rows[0]["uniform"]["per_transition"] == pytest.approx(1.0)
    assert 0.2 < rows[1]["uniform"]["per_transition"] < 0.95  # truncation removes switching logic
    assert rows[1]["rank_uniform"] == 1
    again = P.compare_designs([tr], ref, None, "sign-magnitude", "a", 1 << 14, 0)
    assert again[0]["uniform"] == rows[1]["uniform"]


def _cli(*args):
    return main(["power", *map(str, args)])


def test_power_cli_designs_and_plan(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert _cli("exact", "mbm", "--layers", "encoder", "--height", 64, "--width", 96, "--pairs", 4096,
                "--segments", 8, "--json", out, "--plot", tmp_path / "p.png", "--quiet") == 0
    text = capsys.readouterr().out
    assert "uniform" in text and "network" in text and "mbm" in text
    res = json.loads(out.read_text())
    assert [r["design"] for r in res["designs"]] == ["exact", "mbm"]
    assert res["designs"][0]["uniform"]["per_transition"] == pytest.approx(1.0, abs=0.05)
    assert (tmp_path / "p.png").stat().st_size > 1000
    plan = tmp_path / "plan.json"
    assert _cli("--approx", "encoder=trunc6", "--height", 64, "--width", 96, "--pairs", 4096, "--segments", 4,
                "--json", plan, "--quiet") == 0
    res = json.loads(plan.read_text())["plan"]
    assert res["energy"] < res["exact_energy_same_streams"]
    assert {r["multiplier"] for r in res["layers"]} == {"trunc6", "exact"}
    assert sum(r["share"] for r in res["layers"]) == pytest.approx(1.0)


def test_power_cli_bad_inputs(tmp_path, capsys):
    seq = write(tmp_path, "seq.v", SEQUENTIAL)
    cases = [
        ((), "nothing to measure"),
        (("mbm", "--approx", "all=mbm"), "not both"),
        (("nosuch",), "unknown multiplier 'nosuch'"),
        (("--verilog", seq, "--top", "seq", "--stream", "uniform"), "is sequential"),
        (("--verilog", seq), "--verilog needs --top"),
        (("mbm", "--segments", 0), "--segments 0"),
        (("mbm", "--json", tmp_path / "x.txt"), "--json"),
        (("mbm", "--pj-per-unit", -1), "--pj-per-unit"),
    ]
    for args, msg in cases:
        capsys.readouterr()
        assert _cli(*args) == 2, args
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, (args, err)
    assert not list(tmp_path.glob("x.txt*"))


@pytest.mark.parametrize("name", ["exact", "mbm", "trunc4"])
def test_pe_toggles_equal_icarus(captured, name):
    """The whole PE (rtl/mac/mac_pe.v with its flip-flops), cycle by cycle: every net's count equals Icarus'
    VCD of the same netlist, on a real layer's PE stream and on the uniform PE stream."""
    mod, got = captured[1]["1.conv.0.0"]  # depthwise: short tiles, so first/last and bias loads happen often
    real = pe_streams("1.conv.0.0", mod, got["codes"], segments=2, min_pairs=60, seed=3)
    pe = P.pe_design(name, AccelConfig(acc_bits=20))
    for stream in (real, P.uniform_pe_stream("sign-magnitude", segments=2, cycles=80)):
        ins = P.pe_inputs(pe, stream)
        lane = {p: v[0:1] for p, v in ins.items()}
        ours, _ = toggle.lanes_activity(pe.netlist, lane)
        warm = {p: np.concatenate([[1 if p == "rst" else 0], v[0]]) for p, v in ins.items()}  # reset, then the lane
        ref = icarus_toggles(pe.netlist, warm, warmup=1)
        assert ours.sum() > 500
        assert np.array_equal(ours, ref), [pe.netlist.names[i] for i in np.flatnonzero(ours != ref)[:5]]


def test_power_cli_pe(tmp_path):
    out = tmp_path / "pe.json"
    assert _cli("exact", "trunc6", "--pe", "--layers", "1.conv*", "--height", 64, "--width", 96, "--segments", 4,
                "--json", out, "--quiet") == 0
    rows = {r["design"]: r for r in json.loads(out.read_text())["designs"]}
    assert rows["exact"]["uniform"]["per_transition"] == pytest.approx(1.0)
    assert rows["trunc6"]["flip_flops"] == rows["exact"]["flip_flops"] > 32  # accumulator, result, flags
    assert rows["trunc6"]["network"]["per_transition"] < rows["exact"]["network"]["per_transition"]
    assert _cli("exact", "--pe", "--verilog", "x.v", "--top", "t") == 2


def test_a_lut_file_with_its_rtl_and_one_without(user_lut, capsys):  # noqa: F811
    """A LUT from `lut gen` of a user design (odd port names, a parameter, a tied port) is priced from the RTL its
    sidecar records; a bare table has none."""
    assert _cli(user_lut / "my_mult.npy", "exact", "--stream", "uniform", "--pairs", 4096, "--quiet") == 0
    out = capsys.readouterr().out
    assert "my_mult.npy" in out and "exact" in out
    assert _cli(user_lut / "my_mult.bin", "--stream", "uniform", "--quiet") == 2
    assert "no RTL" in capsys.readouterr().err
