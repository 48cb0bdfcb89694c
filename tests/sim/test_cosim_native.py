"""Whole-image co-simulation through the in-process Verilated MAC array (``cosim --sim native``).

Every output of every conv of a small image (the randomly initialised network of test_cosim) goes through the
RTL array: 0 mismatches for MBM and for the exact (structural array) multiplier. A multiplier whose RTL has one
product changed (the product of the most common weight magnitude of the first conv with a zero activation, which
that conv's zero padding guarantees) is caught: the first failing tile is written as a VCD, and the printed command
re-runs exactly that tile and fails again. Bad option combinations fail before any work.
"""

import shlex
import subprocess
import sys

import pytest
import torch

from pyapprox.cosim import cosim_network, format_report, multiplier_rtl, resolve_layers
from pyapprox.cosim.rtl import user_rtl
from pyapprox.data.synthetic import render
from pyapprox.models.densedepth_mbv2 import preprocess
from pyapprox.nn.quant import qconv_layers
from tests.sim.test_cosim import _cli, _random_model, qmodel_for, user_lut, weights  # noqa: F401 (fixtures)

BROKEN_V = """\
// exact, except for one product: (A, B) gives A*B with its low bit flipped
module mult_one_wrong #(parameter A = 0, parameter B = 0) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    wire [15:0] full = a * b;
    assign p = (a == A && b == B) ? (full ^ 16'd1) : full;
endmodule
"""


@pytest.fixture(scope="module")
def small():
    model = _random_model()
    calib = [preprocess(render(seed, 32, 48)[0]) for seed in (11, 12)]
    return qmodel_for(model, calib), preprocess(render(5, 32, 48)[0])


def _check_all(rep, q):
    assert rep.mismatches == 0, format_report(rep)
    mods = dict(qconv_layers(q))
    assert [li["name"] for li in rep.layers] == list(mods)
    for li in rep.layers:
        assert li["tiles"] == li["total_tiles"] > 0
        assert li["outputs"] == li["out_channels"] * li["output"][0] * li["output"][1]
    assert rep.sim["macs"] == sum(li["macs"] for li in rep.layers) > 0 and rep.sim["macs_per_s"] > 0


@pytest.mark.parametrize("mult", ["mbm", "exact"])
def test_every_output_of_every_conv_matches(small, mult):
    q, image = small
    names = resolve_layers(q, ["*"])
    rep = cosim_network(q, image, names, mult, multiplier_rtl(mult), rows=4, cols=4)
    _check_all(rep, q)
    assert rep.simulator == "verilator-native" and len(rep.layers) == 66


@pytest.mark.parametrize("spec", ["sm(drum4)", "user"])
def test_sign_magnitude_slot_and_generated_adapter(small, user_lut, spec):  # noqa: F811
    """sm(...) designs bring their own sign logic into the PE; a user's design with other port names, a parameter
    and a tied input goes through the generated adapter."""
    q, image = small
    spec = str(user_lut / "my_mult.npy") if spec == "user" else spec
    rtl = multiplier_rtl(spec)
    assert rtl.sign_magnitude == spec.startswith("sm(") and (rtl.adapter is not None) == (spec.endswith(".npy"))
    names = resolve_layers(q, ["0.0", "1.conv.0.0", "1.conv.1", "decoder.conv3"])
    rep = cosim_network(q, image, names, spec, rtl, rows=3, cols=5)
    assert rep.mismatches == 0 and rep.outputs == sum(li["outputs"] for li in rep.layers) > 0, format_report(rep)
    assert all(li["multiplier"] not in (None, "exact") for li in rep.layers)


def _broken_pair(q) -> tuple[int, int]:
    first = next(iter(dict(qconv_layers(q)).values()))
    mags = first.conv.weight_codes.abs().flatten()
    vals, counts = torch.unique(mags[mags > 0], return_counts=True)
    assert first.conv.padding[0] > 0
    return int(vals[counts.argmax()]), 0


def test_one_wrong_product_is_caught_with_the_waveform_of_the_failing_tile(small, tmp_path):
    q, image = small
    (tmp_path / "broken.v").write_text(BROKEN_V)
    a, b = _broken_pair(q)
    rtl = user_rtl([tmp_path / "broken.v"], "mult_one_wrong", params={"A": a, "B": b})
    names = resolve_layers(q, ["*"])
    seen = []

    def on_mismatch(layer, tile):
        seen.append((layer, tile))
        return tmp_path / "first.vcd"

    rep = cosim_network(q, image, names, "exact", rtl, rows=4, cols=4, on_mismatch=on_mismatch)
    assert rep.mismatches > 0 and rep.field_mismatches["acc"] > 0
    m = rep.first_mismatches[0]
    assert seen == [(names[0], m["tile"])] and m["layer"] == names[0]
    assert abs(m["expected"]["acc"] - m["got"]["acc"]) == 1  # one product, its low bit
    text = (tmp_path / "first.vcd").read_text()
    assert "$enddefinitions" in text and "mac_array_drv" in text and rep.extra["wave"] == str(tmp_path / "first.vcd")
    assert not list(tmp_path.glob(".*.tmp"))
    # the tile alone, traced: fails the same way
    one = cosim_network(q, image, [names[0]], "exact", rtl, rows=4, cols=4, tile_index=m["tile"],
                        wave=tmp_path / "again.vcd")
    assert one.tiles == 1 and one.mismatches > 0 and (tmp_path / "again.vcd").stat().st_size > 1000
    assert one.first_mismatches[0]["expected"] == m["expected"] and one.first_mismatches[0]["got"] == m["got"]
    # the design's own table would have passed: its RTL runs against its own products
    ok = cosim_network(q, image, [names[0]], "exact", multiplier_rtl("exact"), rows=4, cols=4)
    assert ok.mismatches == 0


def test_cli_broken_rtl_prints_the_rerun_command_that_fails_again(weights, tmp_path):  # noqa: F811
    (tmp_path / "broken.v").write_text(BROKEN_V)
    a, b = 255, 0  # per-channel weight scales give every channel a weight of magnitude 255; conv 0.0 pads with 0
    wave = tmp_path / "fail.vcd"
    common = ["--multiplier", "exact", "--rtl", tmp_path / "broken.v", "--top", "mult_one_wrong", "--param",
              f"A={a}", "--param", f"B={b}", "--weights", weights, "--height", "32", "--width", "48", "--rows", "4",
              "--cols", "4", "--calib-images", "1"]
    r = _cli("--layer", "0.0", "--layer", "1.conv.1", *common, "--wave", wave, "--json", tmp_path / "r.json",
             "--quiet")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "waveform of the first failing tile: " + str(wave) in r.stdout and wave.exists()
    line = next(li for li in r.stdout.splitlines() if li.startswith("re-run the failing tile: "))
    cmd = shlex.split(line.split(": ", 1)[1])
    assert cmd[:2] == ["pyapprox", "cosim"] and "--tile-index" in cmd and "--rtl" in cmd
    wave.unlink()
    r2 = subprocess.run([sys.executable, "-m", "pyapprox", *cmd[1:], "--quiet"], capture_output=True, text=True)
    assert r2.returncode == 1, r2.stdout + r2.stderr
    assert wave.exists() and "$enddefinitions" in wave.read_text()
    assert any(ln.startswith("compared 16 outputs in 1 tiles") for ln in r2.stdout.splitlines()), r2.stdout


def test_cli_option_errors(weights, tmp_path, capsys):  # noqa: F811
    from pyapprox.cli import main

    base = ["--multiplier", "mbm", "--weights", str(weights), "--quiet"]
    cases = [
        (["--layer", "0.0", "--all-layers"], "--layer and --all-layers exclude each other"),
        ([], "name the layers to co-simulate"),
        (["--layer", "0.0", "--layer", "1.conv.1", "--tile-index", "0"], "--tile-index needs exactly one --layer"),
        (["--layer", "0.0", "--sim", "icarus", "--wave", str(tmp_path / "w.vcd")], "--wave needs --sim native"),
        (["--layer", "0.0", "--rtl", str(tmp_path / "x.v")], "--rtl needs --top MODULE"),
        (["--layer", "0.0", "--top", "m"], "describe an --rtl design"),
        (["--layer", "0.0", "--wave", str(tmp_path / "w.txt")], "--wave"),
        (["--layer", "0.0", "--threads", "0"], "--threads must be 1..64"),
    ]
    for extra, msg in cases:
        rc = main(["cosim", *extra, *base])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err, (extra, err)
    assert not (tmp_path / "w.vcd").exists()
