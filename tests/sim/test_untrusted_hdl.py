"""Untrusted Verilog, macros, parameters and LUT sidecars never reach a tool unchecked (issue 11, items 1, 2, 5).

Each test here failed before the fix: the injected Yosys `exec` ran, the oscillating design hung, Ctrl-C left
the simulator's folder behind, and a `$` in a file name reached Verilator.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyapprox.cli import main
from pyapprox.errors import PyapproxError
from pyapprox.lut.gen import generate
from pyapprox.lut.sidecar import sidecar_digest
from pyapprox.sim import sweep as sweep_mod
from pyapprox.sim.hdl import HdlDesign, check_macro_value, check_param_value, forbidden_system_tasks

GOOD = """module good_mult(input [7:0] a, input [7:0] b, output [15:0] p);
  assign p = a * b;
endmodule
"""
# the design: an oscillating loop on the last operand pair only
OSCILLATING = """module osc_mult(input [7:0] a, input [7:0] b, output [15:0] p);
  wire w;
  assign w = (a == 8'd255 && b == 8'd255) ? ~w : 1'b0;
  assign p = (a * b) ^ {15'b0, w};
endmodule
"""
# oscillates on the second vector (a=0, b=1), once w has settled to 0 on the first
OSCILLATING_FIRST = OSCILLATING.replace("a == 8'd255 && b == 8'd255", "a == 8'd0 && b == 8'd1")
INJECT = "X=1 /dev/null ; exec -- touch MARKER ; read_verilog -DY=1"


def _run_cli(cwd: Path, *argv) -> int:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return main([str(a) for a in argv])
    finally:
        os.chdir(old)


@pytest.fixture
def good(tmp_path):
    (tmp_path / "good.v").write_text(GOOD)
    return tmp_path


@pytest.mark.parametrize("argv", [
    ("lut", "gen", "good.v", "--top", "good_mult", "--no-cache", "--define", INJECT, "-o", "x.npy"),
    ("hw", "good.v", "--top", "good_mult", "--no-cache", "--define", INJECT),
    ("hw", "good.v", "--top", "good_mult", "--no-cache", "--param", "W=1 ; exec -- touch MARKER"),
    ("hw", "good.v", "--top", "good_mult ; exec -- touch MARKER", "--no-cache"),
    ("lut", "gen", "good.v", "--top", "good_mult", "--no-cache", "--define", "X;exec=1", "-o", "x.npy"),
], ids=["lut-gen-define", "hw-define", "hw-param", "hw-top", "define-name"])
def test_command_line_injection_is_refused(good, capsys, argv):
    assert _run_cli(good, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0]
    assert not (good / "MARKER").exists() and not (good / "x.npy").exists()


def _evil_sidecar(tmp_path: Path, **fields) -> Path:
    """A LUT derived honestly, whose sidecar an attacker then edits (and re-digests: the digest is no secret)."""
    (tmp_path / "good.v").write_text(GOOD)
    lut = generate([tmp_path / "good.v"], "good_mult", use_cache=False)
    path = lut.save(tmp_path / "evil.npy")
    side = json.loads(path.with_suffix(".json").read_text())
    side.update(fields)
    side["sidecar_digest"] = sidecar_digest(side)
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


@pytest.mark.parametrize("field,value,message", [
    ("defines", {"X": "1 /dev/null ; exec -- touch MARKER ; read_verilog -DY=1"}, "field 'defines'"),
    ("params", {"W": "1 ; exec -- touch MARKER"}, "field 'params'"),
    ("top", "good_mult ; exec -- touch MARKER", "field 'top'"),
    ("ports", {"a": "a), .b(b)); initial $fopen(", "b": "b", "out": "p"}, "field 'ports'"),
])
def test_sidecar_fields_cannot_reach_a_tool(tmp_path, monkeypatch, field, value, message):
    """Whoever uses a LUT they were sent (cosim, search's hardware cost) is safe from its sidecar."""
    from pyapprox.experiments.sweeps import multiplier_cost
    from pyapprox.lut.table import LUT
    from pyapprox.cosim import multiplier_rtl

    path = _evil_sidecar(tmp_path, **{field: value})
    monkeypatch.chdir(tmp_path)
    for use in (LUT.load, multiplier_rtl, multiplier_cost):
        with pytest.raises(PyapproxError, match=message):
            use(str(path))
    assert not (tmp_path / "MARKER").exists()


def test_sidecar_edit_without_new_digest_is_detected(tmp_path):
    from pyapprox.lut.table import LUT

    path = _evil_sidecar(tmp_path)
    side = json.loads(path.with_suffix(".json").read_text())
    side["defines"] = {"WIDTH": "9"}  # a harmless-looking value, but not what was derived
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(PyapproxError, match="do not match its sidecar_digest"):
        LUT.load(path)


def test_forbidden_system_tasks_ignore_comments_and_strings():
    text = '// $fopen in a comment\n/* $system */\ninitial $display("$fwrite");\nassign p = $signed(a) * b;'
    assert forbidden_system_tasks(text) == []
    assert forbidden_system_tasks("initial begin fd = $fopen(\"x\", \"w\"); $fwrite(fd, 1); end") == [
        "$fopen", "$fwrite"]
    assert forbidden_system_tasks("initial $readmemh(\"/etc/shadow\", mem);") == ["$readmemh"]


def test_value_rules():
    for ok in ("8", "-3", "8'd3", "4'sb1010", "'hFF", '"FAST"'):
        assert check_param_value("P", ok) == ok
    for bad in ("1 2", "a;b", '"a b"', "$x", "1)", "`X", "8'd3 ; exec"):
        with pytest.raises(PyapproxError):
            check_param_value("P", bad)
    for ok in ("", "1", "mult_drum", "#(.K(4),.COMP(0))"):
        assert check_macro_value("M", ok) == ok
    for bad in ("#(.K(4)) x", "a b", "#(.K(4)),.X(1)", "\n"):
        with pytest.raises(PyapproxError):
            check_macro_value("M", bad)


def test_design_calling_file_tasks_is_refused_before_any_tool(tmp_path):
    (tmp_path / "inc.vh").write_text('initial begin : w integer fd; fd = $fopen("PWNED", "w"); end\n')
    (tmp_path / "bad.v").write_text(GOOD.replace("endmodule", '`include "inc.vh"\nendmodule'))
    with pytest.raises(PyapproxError, match=r"inc\.vh: calls \$fopen"):
        generate([tmp_path / "bad.v"], "good_mult", use_cache=False)
    (tmp_path / "paste.v").write_text(GOOD.replace("endmodule", "`define T(a) $f``a\nendmodule"))
    with pytest.raises(PyapproxError, match="token pasting"):
        HdlDesign.create([tmp_path / "paste.v"], "good_mult")
    assert not (tmp_path / "PWNED").exists()


def test_dollar_in_source_name_is_refused_up_front(tmp_path, capsys):
    (tmp_path / "my$mult.v").write_text(GOOD)
    assert _run_cli(tmp_path, "lut", "gen", "my$mult.v", "--top", "good_mult", "--no-cache") == 2
    err = capsys.readouterr().err
    assert "its path contains '$'" in err and "Cannot find file" not in err


def test_oscillating_loop_fails_fast_on_both_simulators(tmp_path):
    """Verilator reports DIDNOTCONVERGE; Icarus, which would spin forever, is stopped at once."""
    (tmp_path / "osc.v").write_text(OSCILLATING)
    t0 = time.monotonic()
    with pytest.raises(PyapproxError, match="did not converge .*combinational loop that never settles"):
        generate([tmp_path / "osc.v"], "osc_mult", use_cache=False)
    assert time.monotonic() - t0 < 120


def test_oscillating_loop_on_icarus_alone_is_a_stall(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_mod, "STALL_SECONDS", 3.0)
    (tmp_path / "osc.v").write_text(OSCILLATING_FIRST)
    t0 = time.monotonic()
    with pytest.raises(PyapproxError, match="Icarus Verilog stopped simulating .* near vector 0 of 65,536 .* "
                                            "combinational loop that never settles"):
        generate([tmp_path / "osc.v"], "osc_mult", simulators=("icarus",), use_cache=False)
    assert time.monotonic() - t0 < 60


def test_ctrl_c_during_a_simulation_removes_its_folder(tmp_path):
    (tmp_path / "osc.v").write_text(OSCILLATING_FIRST)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYAPPROX_SIM_TIMEOUT="600")
    proc = subprocess.Popen([sys.executable, "-m", "pyapprox", "lut", "gen", "osc.v", "--top", "osc_mult",
                             "--sim", "icarus", "--no-cache"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (list(tmp.glob("pyapprox-icarus-*/sweep.vvp")) and time.monotonic() > deadline - 57):
            assert time.monotonic() < deadline, "the simulation never started"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "pyapprox lut: interrupted"
    assert not list(tmp.glob("pyapprox-*"))
