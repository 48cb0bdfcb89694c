"""`lut gen` on user-style designs: ports, parameters, multi-file, both simulators, cache, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyapprox.errors import PyapproxError
from pyapprox.lut.gen import generate
from pyapprox.lut.table import LUT

from .designs import (AMBIGUOUS, COMB_LOOP, DISAGREE, HELPER, NARROW, NON_ANSI, SEQUENTIAL, SIGNED, SYNTAX, XOUT,
                      write)

A, B = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("PYAPPROX_CACHE", str(d))
    return d


def test_multifile_non_ansi_parameter_no_timescale(tmp_path, cache):
    top = write(tmp_path, "my_mul.v", NON_ANSI)
    helper = write(tmp_path, "helper.v", HELPER)
    lut = generate([top, helper], "my_mul", params={"SHIFT": 3})
    assert lut.meta["ports"] == {"a": "x_in", "b": "y_in", "out": "prod_o"}
    assert np.array_equal(lut.table, (A * B) >> 3)
    assert set(lut.meta["simulators"]) == {"verilator", "icarus"}
    assert lut.meta["params"] == {"SHIFT": "3"}
    assert len(lut.meta["sources"]) == 2


def test_cache_hit_on_second_run(tmp_path, cache):
    top = write(tmp_path, "my_mul.v", NON_ANSI)
    helper = write(tmp_path, "helper.v", HELPER)
    first = generate([top, helper], "my_mul")
    assert first.meta["cache"] == "miss"
    second = generate([top, helper], "my_mul")
    assert second.meta["cache"] == "hit"
    assert np.array_equal(first.table, second.table)
    assert not list(cache.rglob("*.tmp"))
    # editing a source changes the key
    helper.write_text(HELPER.replace("p * q", "p * q + 16'd1"))
    third = generate([top, helper], "my_mul")
    assert third.meta["cache"] == "miss" and np.array_equal(third.table, A * B + 1)


def test_combinational_loop_warnings_are_fine(tmp_path, cache):
    lut = generate([write(tmp_path, "loopy.v", COMB_LOOP)], "loopy")
    assert np.array_equal(lut.table, A * B)


def test_signed_operands(tmp_path, cache):
    lut = generate([write(tmp_path, "smul.v", SIGNED)], "smul", signed=True)
    v = np.where(np.arange(256) >= 128, np.arange(256) - 256, np.arange(256))
    assert lut.operands == "signed"
    assert np.array_equal(lut.table, np.outer(v, v))


def test_ambiguous_ports_need_names(tmp_path, cache):
    src = write(tmp_path, "amb.v", AMBIGUOUS)
    with pytest.raises(PyapproxError, match=r"cannot tell which ports.*input \[7:0\] c"):
        generate([src], "amb")
    with pytest.raises(PyapproxError, match="neither operands nor tied"):
        generate([src], "amb", a="a", b="b")
    lut = generate([src], "amb", a="a", b="b", ties={"c": 2})
    assert np.array_equal(lut.table, A * B + 2)


def test_wrong_width_port(tmp_path, cache):
    src = write(tmp_path, "narrow.v", NARROW)
    with pytest.raises(PyapproxError, match="port b .*7 bits.* cannot be operand b"):
        generate([src], "narrow", a="a", b="b")


def test_sequential_design_refused(tmp_path, cache):
    with pytest.raises(PyapproxError, match="not combinational"):
        generate([write(tmp_path, "seq.v", SEQUENTIAL)], "seq")


def test_x_output_refused(tmp_path, cache):
    with pytest.raises(PyapproxError, match=r"X/Z bits for 1 input vector.*a=3 b=5"):
        generate([write(tmp_path, "xout.v", XOUT)], "xout")


def test_disagreeing_simulators_refused(tmp_path, cache):
    with pytest.raises(PyapproxError, match=r"disagree on 1 input vector.*a=7 b=9: verilator=1 icarus=63"):
        generate([write(tmp_path, "disagree.v", DISAGREE)], "disagree")
    assert not list(cache.rglob("*.npy"))


def test_missing_file_and_top_and_syntax(tmp_path, cache):
    with pytest.raises(PyapproxError, match="no such file"):
        generate([tmp_path / "nope.v"], "x")
    src = write(tmp_path, "smul.v", SIGNED)
    with pytest.raises(PyapproxError, match="top module nothere is not defined"):
        generate([src], "nothere")
    with pytest.raises(PyapproxError, match=r"broken.v:3: .*syntax error") as exc:
        generate([write(tmp_path, "broken.v", SYNTAX)], "broken")
    assert "ERROR" in exc.value.detail  # Yosys' own message underneath


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pyapprox", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_cli_gen_writes_each_format_and_fails_cleanly(tmp_path, cache):
    env = dict(os.environ, PYAPPROX_CACHE=str(cache))
    top = write(tmp_path, "my_mul.v", NON_ANSI)
    helper = write(tmp_path, "helper.v", HELPER)
    for ext in (".npy", ".bin", ".csv", ".txt"):
        out = tmp_path / f"t{ext}"
        r = _cli("lut", "gen", top, helper, "--top", "my_mul", "--param", "SHIFT=1", "-o", out, env=env)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(LUT.load(out).table, (A * B) >> 1)
    assert json.loads((tmp_path / "t.json").read_text())["top"] == "my_mul"
    bad_out = tmp_path / "bad.npy"
    r = _cli("lut", "gen", write(tmp_path, "xout.v", XOUT), "--top", "xout", "-o", bad_out, env=env)
    assert r.returncode == 2
    assert r.stderr.startswith("pyapprox lut: error: module xout in xout.v: output has X/Z")
    assert "Traceback" not in r.stderr
    assert not bad_out.exists() and not list(tmp_path.glob(".bad*"))
