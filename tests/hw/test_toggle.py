"""Gate-level toggle simulation (pyapprox.hw.netlist, .toggle, .vcd), checked against independent references:

* the synthesised netlist computes the design's golden table (all 65,536 pairs),
* every net's toggle count equals the count read from Icarus' own VCD of the same netlist and stream, for three
  designs and two kinds of stream (uniform pairs; a ReLU-like stream: half zeros, small magnitudes),
* the output nets' counts equal the bit changes of the golden products, over chunk boundaries,
* bad inputs give one clear error.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyapprox.errors import PyapproxError
from pyapprox.hw import toggle
from pyapprox.hw.netlist import synthesize
from pyapprox.hw.vcd import icarus_toggles, parse_vcd
from pyapprox.rtl import library
from pyapprox.sim.hdl import HdlDesign
from tests.lut.designs import SEQUENTIAL, SYNTAX, write

DESIGNS = ["exact", "mbm", "trunc4"]


def _netlist(name):
    d = library.resolve(name)
    return d, synthesize(HdlDesign.create(d.files, d.top, dict(d.params), dict(d.defines)))


def _streams(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    uniform = {"a": rng.integers(0, 256, n), "b": rng.integers(0, 256, n)}
    relu = rng.integers(0, 40, n) * (rng.random(n) < 0.5)  # activations after ReLU: half zeros, small codes
    weights = np.abs(np.round(rng.normal(0, 25, n))).clip(0, 255).astype(np.int64)
    return {"uniform": uniform, "relu-like": {"a": weights, "b": relu}}


@pytest.mark.parametrize("name", DESIGNS)
def test_netlist_computes_the_golden_table(name):
    d, net = _netlist(name)
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    out = toggle.outputs(net, {"a": a.ravel(), "b": b.ravel()})
    assert np.array_equal(out["p"].reshape(256, 256), d.golden_table())


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("stream", ["uniform", "relu-like"])
def test_toggles_equal_icarus_vcd(name, stream):
    _, net = _netlist(name)
    inputs = _streams()[stream]
    ours = toggle.toggles(net, inputs).toggles
    ref = icarus_toggles(net, inputs)
    assert (ref >= 0).all(), "every net must be seen in the VCD"
    assert ours.sum() > 1000
    assert np.array_equal(ours, ref), np.flatnonzero(ours != ref)[:10]


def test_output_toggles_match_the_golden_products_across_chunks(monkeypatch):
    d, net = _netlist("mbm")
    monkeypatch.setattr(toggle, "CHUNK", 192)  # several chunks, the last one partial
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, 1000), rng.integers(0, 256, 1000)
    counts = toggle.toggles(net, {"a": a, "b": b}).toggles
    p = d.golden_table()[a, b]
    for k, i in enumerate(net.outputs["p"]):
        if i > 1:  # not a constant
            assert counts[i] == np.count_nonzero(np.diff((p >> k) & 1)), k
    for port, val in (("a", a), ("b", b)):
        for k, i in enumerate(net.inputs[port]):
            assert counts[i] == np.count_nonzero(np.diff((val >> k) & 1))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, (1 << 20) - 1), min_size=1, max_size=300))
def test_pack_round_trip(values):
    v = np.array(values)
    assert np.array_equal(toggle.unpack(toggle.pack(v, 20), len(v)), v)


def test_parse_vcd_extends_and_settles():
    text = ("$scope module tb $end $scope module dut $end $var wire 4 ! v [3:0] $end $var wire 1 \" s $end "
            "$upscope $end $upscope $end $enddefinitions $end "
            "#0 $dumpvars bx ! x\" $end b1 ! 0\" #10 b11 ! 1\" 0\" #20 bz1 ! #30 b0 !")
    counts, steps = parse_vcd(text)
    # v: 0001 -> 0011 -> zzz1 -> 0000: bit 1 changes three times, bits 2-3 go to z and back; s settles at 0
    assert steps == 4
    assert counts == {"v[0]": 1, "v[1]": 3, "v[2]": 2, "v[3]": 2, "s": 0}


def test_a_sequential_design_is_refused(tmp_path):
    d = HdlDesign.create([write(tmp_path, "seq.v", SEQUENTIAL)], "seq")
    with pytest.raises(PyapproxError, match="seq.v is sequential .*needs a combinational design"):
        synthesize(d)


def test_an_unsynthesizable_file_is_refused(tmp_path):
    d = HdlDesign.create([write(tmp_path, "bad.v", SYNTAX)], "bad")
    with pytest.raises(PyapproxError, match="bad.v"):
        synthesize(d)


def test_a_stream_of_the_wrong_width_is_refused():
    _, net = _netlist("trunc4")
    with pytest.raises(PyapproxError, match=r"port b \(8 bits\) holds values outside 0..255"):
        toggle.toggles(net, {"a": np.zeros(4, int), "b": np.array([1, 2, 300, 4])})
    with pytest.raises(PyapproxError, match="exactly the input ports"):
        toggle.toggles(net, {"a": np.zeros(4, int)})
    with pytest.raises(PyapproxError, match="same, non-zero number of vectors"):
        toggle.toggles(net, {"a": np.zeros(4, int), "b": np.zeros(3, int)})
    with pytest.raises(PyapproxError, match="must be integers"):
        toggle.toggles(net, {"a": np.zeros(4), "b": np.zeros(4)})


def test_segments_count_no_transition_into_their_first_vector(monkeypatch):
    _, net = _netlist("drum4")
    monkeypatch.setattr(toggle, "CHUNK", 256)
    rng = np.random.default_rng(5)
    n = 1000
    inputs = {"a": rng.integers(0, 256, n), "b": rng.integers(0, 256, n)}
    starts = np.array([0, 1, 63, 64, 200, 256, 257, 700, 999])
    per_seg = toggle.toggles_per_segment(net, inputs, starts)
    ends = np.append(starts[1:], n)
    for k, (s, e) in enumerate(zip(starts, ends)):  # reference: each segment simulated on its own
        alone = toggle.toggles(net, {p: v[s:e] for p, v in inputs.items()}).toggles
        assert np.array_equal(per_seg[k], alone), k
    with pytest.raises(PyapproxError, match="segment starts"):
        toggle.toggles_per_segment(net, inputs, [1, 5])


def test_lanes_match_the_time_parallel_simulation():
    """Cycle-by-cycle lanes (the simulator of PEs) and the time-parallel words count the same transitions."""
    _, net = _netlist("mbm")
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 256, (70, 40)), rng.integers(0, 256, (70, 40))
    per_net, per_lane = toggle.lanes_activity(net, {"a": a, "b": b})
    ref = [toggle.toggles(net, {"a": a[j], "b": b[j]}).toggles for j in range(70)]
    assert np.array_equal(per_net, np.sum(ref, axis=0))
    assert np.array_equal(per_lane, [r @ net.load for r in ref])
