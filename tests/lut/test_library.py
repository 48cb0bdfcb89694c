"""Library names -> LUTs through `lut gen` (both simulators), against the golden models; CLI listing/stats/hw."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyapprox.errors import PyapproxError
from pyapprox.lut.library import library_lut
from pyapprox.rtl.library import library_names, resolve


@pytest.mark.parametrize("name", library_names())
def test_library_table_equals_golden(name):
    lut = library_lut(name)
    design = resolve(name)
    assert np.array_equal(lut.table, design.golden_table())
    assert lut.operands == ("sign-magnitude" if design.sign_magnitude else "signed" if design.signed else "unsigned")
    assert lut.name == name


def test_exact_designs_have_zero_error():
    from pyapprox.lut.metrics import error_metrics

    for name in ("exact", "exact_behav", "exact_signed", "sm(exact)"):
        assert all(v == 0 for v in error_metrics(library_lut(name)).values()), name


def test_unknown_name_lists_grammar():
    with pytest.raises(PyapproxError, match="mitchell"):
        library_lut("nonsense")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyapprox", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ))


def test_cli_list_and_stats(tmp_path):
    r = _cli("lut", "list")
    assert r.returncode == 0 and "sm(mbm)" in r.stdout and "bam_h2_v6" in r.stdout
    png = tmp_path / "err.png"
    r = _cli("lut", "stats", "mbm", "--json", "--plot", png)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["name"] == "mbm" and m["WCE"] > 0 and abs(m["bias"]) < m["MAE"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = _cli("lut", "stats", tmp_path / "missing.bin")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_hw_cost_orders_designs(tmp_path):
    from pyapprox.hw.cost import hardware_cost
    from pyapprox.sim.hdl import HdlDesign

    costs = {}
    for name in ("exact", "trunc6", "drum4"):
        d = resolve(name)
        costs[name] = hardware_cost(HdlDesign.create(d.files, d.top, d.params, d.defines))
    for c in costs.values():
        assert c["gates"] > 0 and c["transistors"] > c["gates"] and c["ice40_lut4"] > 0 and c["xilinx_lut"] > 0
        assert c["depth"] > 0
    assert costs["trunc6"]["transistors"] < costs["exact"]["transistors"]
    assert costs["drum4"]["transistors"] < costs["exact"]["transistors"]
    r = _cli("hw", "--name", "mitchell", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["xilinx_lut"] > 0
    r = _cli("hw", tmp_path / "nope.v", "--top", "x")
    assert r.returncode == 2 and "no such file" in r.stderr
