"""Verilator line/toggle coverage for `make sim` (issue 15, item 3): the coverage.dat parser on a hand-written
sample, then a tiny design built plain, with coverage, and plain again in one build directory."""

import json
from pathlib import Path

from pyapprox.sim import coverage
from pyapprox.sim.cocotb_run import run_cocotb


def _point(count, **fields):
    body = "".join(f"\x01{k}\x02{v}" for k, v in fields.items())
    return f"C '{body}' {count}\n"


def test_parser_merges_runs_and_instances(tmp_path):
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    src = rtl / "x.v"
    src.write_text("".join(f"line{n}\n" for n in range(1, 14)) + "function [3:0] foo(input a);\nfoo = a;\nendfunction\n")
    (rtl / "unused.v").write_text("module unused; endmodule\n")
    f = str(src)
    line = dict(f=f, t="line", page="v_line/x")
    run1 = ["# SystemC::Coverage-3\n",
            _point(0, l=3, n=5, o="block", S="3-4", h="top.u0", **line),
            _point(0, l=3, n=5, o="block", S="3-4", h="top.u1", **line),
            _point(0, l=6, n=5, o="if", S="6", h="top.u0", **line),
            _point(5, l=8, n=9, t="branch", page="v_branch/x", o="if", S="8", h="top.u0", f=f),
            _point(0, l=8, n=10, t="branch", page="v_branch/x", o="else", h="top.u0", f=f),
            _point(0, l=10, n=5, o="block", S="10-12", h="top.u0", **line),
            _point(0, l=14, n=5, o="block", S="14-15", h="top.u0", **line),
            _point(2, l=1, n=20, t="toggle", page="v_toggle/x", o="a[0]:0->1", h="top.u0", f=f),
            _point(0, l=1, n=20, t="toggle", page="v_toggle/x", o="a[0]:1->0", h="top.u0", f=f),
            _point(7, l=1, n=20, t="toggle", page="v_toggle/y", o="z:0->1", h="tb", f=str(tmp_path / "tb.v")),
            "C 'garbage\n"]
    run2 = [_point(4, l=3, n=5, o="block", S="3-4", h="top.u1", **line),  # another parameterization (page):
            _point(1, l=1, n=20, t="toggle", page="v_toggle/x__W8", o="a[0]:1->0", h="top", f=f),  # same point
            _point(0, l=6, n=5, o="if", S="6", h="top.u1", **line)]
    (tmp_path / "a.dat").write_text("".join(run1))
    (tmp_path / "b.dat").write_text("".join(run2))

    assert len(coverage.parse(tmp_path / "a.dat")) == 9  # the two instances of line 3 are one point
    points = coverage.merge(sorted(tmp_path.glob("*.dat")))
    files = coverage.summarize(points, roots=[rtl], base=tmp_path)
    assert [fc.path for fc in files] == ["rtl/unused.v", "rtl/x.v"]  # tb.v is outside the roots
    unused, x = files
    assert not unused.simulated and not unused.lines
    assert x.lines == {3: True, 4: True, 6: False, 8: False, 10: False, 11: False, 12: False}
    assert (x.toggles, x.toggles_hit, x.uncovered_toggles) == (2, 2, [])
    assert x.uncovered_groups() == [(6, 6), (8, 8), (10, 12)]
    assert x.uncalled == [(14, 16, "foo")]

    text = coverage.report(tmp_path, roots=[rtl], base=tmp_path)
    assert text[2:] == ["rtl/unused.v           -       -             -        -  not simulated",
                        "rtl/x.v              2/7   28.6%           2/2   100.0%",
                        "total                2/7   28.6%           2/2   100.0%",
                        "uncovered lines: 5",
                        "  rtl/x.v:6      line6",
                        "  rtl/x.v:8      line8",
                        "  rtl/x.v:10-12  line10 | line11 | line12",
                        "not counted: functions never called at run time (constant functions, evaluated at "
                        "elaboration):",
                        "  rtl/x.v: foo 14-16"]
    assert (tmp_path / "summary.txt").read_text().splitlines() == text
    js = json.loads((tmp_path / "summary.json").read_text())
    assert (js["runs"], js["lines"], js["lines_hit"], js["toggles"], js["toggles_hit"]) == (2, 7, 2, 2, 2)
    assert coverage.report(tmp_path / "nothing") is None


TINY = """module cov_tiny (
    input  wire [3:0] a,
    input  wire [3:0] b,
    input  wire       sel,
    output reg  [4:0] y
);
    function [4:0] mask_of(input integer n);
        begin
            mask_of = (5'd1 << n) - 5'd1;
        end
    endfunction
    localparam [4:0] MASK = mask_of(4);  // a constant function: evaluated at elaboration only

    always @(*) begin
        if (sel)
            y = a + b;
        else if (a == 4'd15 && a != 4'd15)
            y = 5'd31;  // unreachable
        else
            y = {1'b0, a} & MASK;
    end
endmodule
"""
TB = """import cocotb
from cocotb.triggers import Timer


@cocotb.test()
async def drive(dut):
    for sel in (0, 1):
        for a in range(16):
            dut.sel.value, dut.a.value, dut.b.value = sel, a, 3
            await Timer(1, "ns")
            assert int(dut.y.value) == (a + 3 if sel else a)
"""


def test_verilator_coverage_of_a_tiny_design(tmp_path, monkeypatch):
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "cov_tiny.v").write_text(TINY)
    (tmp_path / "cov_tiny_tb.py").write_text(TB)
    cov_dir, build = tmp_path / "cov", tmp_path / "build"

    def run():
        run_cocotb("verilator", [rtl / "cov_tiny.v"], "cov_tiny", "cov_tiny_tb", tmp_path, build)

    monkeypatch.delenv(coverage.ENV, raising=False)
    run()
    assert coverage.coverage_dir() is None and not cov_dir.exists()
    monkeypatch.setenv(coverage.ENV, str(cov_dir))
    run()  # same build directory: the plain objects must not be reused
    dats = list(cov_dir.glob("cov_tiny-*.dat"))
    assert len(dats) == 1 and not (tmp_path / "coverage.dat").exists()

    points = coverage.merge(dats)
    [fc] = coverage.summarize(points, roots=[rtl], base=tmp_path)
    line_kinds = [dict(p) for p in points if dict(p)["t"] in ("line", "branch")]
    spans = {n for p in line_kinds for n in coverage.point_lines(p)}
    assert line_kinds and set(fc.lines) == {n for n in spans if not 7 <= n <= 11}
    assert fc.lines[16] and fc.lines[20]      # y = a + b; y = {1'b0, a} & MASK
    assert fc.lines[18] is False              # the unreachable assignment
    assert fc.uncalled == [(7, 11, "mask_of")] and not any(7 <= n <= 11 for n in fc.lines)
    assert fc.toggles == 2 * (4 + 4 + 1 + 5)  # every port bit, both directions
    assert "2:a[0]:0->1" not in fc.uncovered_toggles and "3:b[3]:0->1" in fc.uncovered_toggles
    assert "3:b[0]:0->1" not in fc.uncovered_toggles  # b went 0 -> 3 once

    monkeypatch.delenv(coverage.ENV)
    run()  # and back to a plain build: it links and runs, and leaves no coverage data
    assert list(cov_dir.glob("*.dat")) == dats
