"""Liberty pin capacitances as loads: cells matched to the simple gates by their function (several syntaxes),
the smallest matching cell chosen, loads summed per net, and clear errors for unusable files."""

import re

import numpy as np
import pytest

from pyapprox.cli import main
from pyapprox.errors import PyapproxError
from pyapprox.hw.liberty import _truth, pin_capacitances, with_liberty_loads
from pyapprox.hw.netlist import synthesize
from pyapprox.sim.hdl import HdlDesign
from tests.lut.designs import write

LIB = r"""
/* a toy library */
library (toy) {
  capacitive_load_unit (1, ff);
  cell (INV_X1) { area : 1; pin (A) { direction : input; capacitance : 1.0; }
                  pin (ZN) { direction : output; function : "!A"; } }
  cell (NAND2_X2) { area : 3; pin (A1) { direction : input; capacitance : 9.0; }
                    pin (A2) { direction : input; capacitance : 9.0; }
                    pin (ZN) { direction : output; function : "!(A1 & A2)"; } }
  cell (NAND2_X1) { area : 2; pin (A1) { direction : input; capacitance : 1.5; }
                    pin (A2) { direction : input; capacitance : 1.5; }
                    pin (ZN) { direction : output; function : "(A1 A2)'"; } }
  cell (AND2_X1) { area : 2; pin (A1) { direction : input; capacitance : 2.0; }
                   pin (A2) { direction : input; capacitance : 2.0; }
                   pin (ZN) { direction : output; function : "(A1 * A2)"; } }
  cell (OR2_X1) { area : 2; pin (A1) { direction : input; capacitance : 2.5; } pin (A2) { direction : input;
                  capacitance : 2.5; } pin (ZN) { direction : output; function : "(A1 + A2)"; } }
  cell (NOR2_X1) { area : 2; pin (A1) { direction : input; capacitance : 1.25; } pin (A2) { direction : input;
                   capacitance : 1.25; } pin (ZN) { direction : output; function : "!(A1 | A2)"; } }
  cell (XOR2_X1) { area : 3; pin (A) { direction : input; capacitance : 4.0; } pin (B) { direction : input;
                   capacitance : 4.0; } pin (Z) { direction : output; function : "(A ^ B)"; } }
  cell (XNOR2_X1) { area : 3; pin (A) { direction : input; capacitance : 3.5; } pin (B) { direction : input;
                    capacitance : 3.5; } pin (ZN) { direction : output; function : "!(A ^ B)"; } }
  cell (MUX2_X1) { area : 4; pin (A) { direction : input; capacitance : 1.0; } pin (B) { direction : input;
                   capacitance : 2.0; } pin (S) { direction : input; capacitance : 3.0; }
                   pin (Z) { direction : output; function : "((S & B) | (A & !S))"; } }
  cell (DFF_X1) { area : 5; ff (IQ, IQN) { next_state : "D"; clocked_on : "CK"; }
                  pin (D) { direction : input; capacitance : 1.1; } pin (Q) { direction : output; function : "IQ"; } }
}
"""

AND_XOR = """
module ax (input [7:0] a, input [7:0] b, output [15:0] p);
  assign p = {a & b, a ^ b};
endmodule
"""


def test_functions_in_several_syntaxes():
    assert _truth('"!(A1 & A2)"', ["A1", "A2"]) == (1, 1, 1, 0)
    assert _truth("(A1 A2)'", ["A1", "A2"]) == (1, 1, 1, 0)
    assert _truth("A + B * C", ["A", "B", "C"]) == (0, 0, 0, 1, 1, 1, 1, 1)  # AND binds tighter
    assert _truth("!A ^ B", ["A", "B"]) == (1, 0, 0, 1)
    assert _truth("A & Q", ["A", "B"]) is None


def test_smallest_matching_cells_and_loads(tmp_path):
    lib = write(tmp_path, "toy.lib", LIB)
    caps = pin_capacitances(lib)
    assert caps["NAND"] == (1.5, 1.5)  # NAND2_X1 (area 2), not NAND2_X2
    assert caps["MUX"] == (1.0, 2.0, 3.0)  # pins matched to A, B, S by function, not by name
    assert caps["ANDNOT"] == (2.0, 1.0) and caps["BUF"] == (1.0,)
    net = synthesize(HdlDesign.create([write(tmp_path, "ax.v", AND_XOR)], "ax"))
    weighted = with_liberty_loads(net, caps)
    assert net.cell_counts() == {"AND": 8, "XOR": 8}
    for i in range(8):
        assert weighted.load[net.inputs["a"][i]] == pytest.approx(2.0 + 4.0)
    assert weighted.load[net.outputs["p"][0]] == pytest.approx(caps["OUTPUT"][0])
    assert np.array_equal(net.load[net.inputs["a"][0]], 2)  # unit loads unchanged in the original


def test_power_with_a_liberty_file(tmp_path, capsys):
    lib = write(tmp_path, "toy.lib", LIB)
    assert main(["power", "exact", "mbm", "--stream", "uniform", "--pairs", "4096", "--liberty", str(lib),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "exact" in out and "1.000" in out


@pytest.mark.parametrize("text, message", [
    ("library (x) { cell (INV) { area : 1; pin (A) { direction : input; capacitance : 1; } "
     "pin (Z) { direction : output; function : \"!A\"; } } }", "no cell computes AND"),
    ("library (x) { cell (INV) { area : 1; pin (A) { direction : input; capacitance : oops; } } }",
     "'oops' is not a number"),
    ("library (x) { cell (INV) { area : 1; ", "expected '}'"),
    ("cell (x) { }", "no library(...) group"),
])
def test_unusable_files_are_refused(tmp_path, text, message):
    with pytest.raises(PyapproxError, match=re.escape(message)):
        pin_capacitances(write(tmp_path, "bad.lib", text))


def test_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "bin.lib"
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(PyapproxError, match="cannot be read"):
        pin_capacitances(bad)
    assert main(["power", "mbm", "--stream", "uniform", "--liberty", str(tmp_path / "missing.lib")]) == 2
    assert "missing.lib" in capsys.readouterr().err
