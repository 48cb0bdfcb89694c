"""Exhaustive input sweeps of a combinational design on Icarus Verilog and on Verilator.

A generated wrapper module ``pyapprox_sweep_wrap(input [N-1:0] x, output [M-1:0] y)`` connects the
user's ports by name, so any port naming works the same on both simulators. The swept inputs are the
bit fields of a counter ``x`` (first listed input = most significant field); the read outputs are
concatenated into ``y`` (first listed output = most significant field). Icarus writes every output
in hex so X/Z values are caught; Verilator (2-state) runs a compiled C++ loop.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.sim import tools
from pyapprox.sim.hdl import HdlDesign

SIMULATORS = ("verilator", "icarus")
MAX_SWEEP_BITS = 24
_WRAP = "pyapprox_sweep_wrap"


@dataclass(frozen=True)
class Harness:
    """Which ports are swept, tied to constants, and read."""

    inputs: tuple[tuple[str, int], ...]      # (port, width), swept exhaustively
    outputs: tuple[tuple[str, int], ...]     # (port, width), read
    ties: tuple[tuple[str, int, int], ...] = ()  # (port, width, value), held constant

    @property
    def in_bits(self) -> int:
        return sum(w for _, w in self.inputs)

    @property
    def out_bits(self) -> int:
        return sum(w for _, w in self.outputs)


@dataclass
class SweepResult:
    simulator: str
    version: str
    values: np.ndarray          # uint64 [2**in_bits], raw output bits
    unknown: np.ndarray | None  # bool mask of vectors whose output had X/Z bits (Icarus only)
    seconds: float


def wrapper_source(design: HdlDesign, harness: Harness) -> str:
    n, m = harness.in_bits, harness.out_bits
    if not 0 < n <= MAX_SWEEP_BITS:
        raise PyapproxError(f"cannot sweep {n} input bits exhaustively (at most {MAX_SWEEP_BITS})")
    if not 0 < m <= 64:
        raise PyapproxError(f"outputs of {m} bits in total are not supported (1 to 64)")
    conns = []
    lo = n
    for port, width in harness.inputs:
        lo -= width
        conns.append(f".{port}(x[{lo + width - 1}:{lo}])")
    lo = m
    for port, width in harness.outputs:
        lo -= width
        conns.append(f".{port}(y[{lo + width - 1}:{lo}])")
    for port, width, value in harness.ties:
        conns.append(f".{port}({width}'d{value})")
    params = ", ".join(f".{k}({v})" for k, v in design.params)
    inst = f"{design.top} " + (f"#({params}) " if params else "") + "dut (" + ", ".join(conns) + ");"
    return (f"module {_WRAP} (input [{n - 1}:0] x, output [{m - 1}:0] y);\n"
            f"  {inst}\n"
            f"endmodule\n")


_ICARUS_TB = """`timescale 1ns/1ps
module pyapprox_sweep_tb;
  reg [{n1}:0] x;
  wire [{m1}:0] y;
  integer i, fd;
  {wrap} w (.x(x), .y(y));
  initial begin
    fd = $fopen("sweep.hex", "w");
    for (i = 0; i < {count}; i = i + 1) begin
      x = i;
      #1000;
      $fwrite(fd, "%h\\n", y);
    end
    $fclose(fd);
    $finish;
  end
endmodule
"""

_VERILATOR_MAIN = """#include "V{wrap}.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <vector>
int main(int argc, char** argv) {{
  if (argc < 2) return 2;
  VerilatedContext* ctx = new VerilatedContext;
  V{wrap}* top = new V{wrap}{{ctx}};
  const uint64_t n = {count}ULL;
  std::vector<uint64_t> out(n);
  for (uint64_t i = 0; i < n; ++i) {{
    top->x = i;
    top->eval();
    out[i] = (uint64_t)top->y;
  }}
  top->final();
  FILE* f = std::fopen(argv[1], "wb");
  if (!f) return 3;
  std::fwrite(out.data(), sizeof(uint64_t), n, f);
  std::fclose(f);
  delete top;
  delete ctx;
  return 0;
}}
"""


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if re.search(r"error", line, re.I):
            line = re.sub(r"^%Error(-\w+)?: ", "", line.strip())
            return line[:300]
    lines = [l for l in log.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"


def _run(cmd: list[str], cwd: Path, env=None, timeout=900) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PyapproxError(f"{cmd[0]} timed out after {timeout} s") from exc


def _sweep_icarus(design: HdlDesign, harness: Harness, work: Path) -> SweepResult:
    tool = tools.icarus()
    count = 1 << harness.in_bits
    (work / "wrap.v").write_text(wrapper_source(design, harness))
    (work / "tb.v").write_text(_ICARUS_TB.format(n1=harness.in_bits - 1, m1=harness.out_bits - 1,
                                                wrap=_WRAP, count=count))
    gen = ["-g2012"] if any(p.suffix.lower() == ".sv" for p in design.sources) else []
    defs = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in design.defines]
    t0 = time.perf_counter()
    res = _run([tool.path, *gen, *defs, "-s", "pyapprox_sweep_tb", "-o", "sweep.vvp",
                "tb.v", "wrap.v", *map(str, design.sources)], work)
    if res.returncode != 0:
        log = res.stdout + res.stderr
        raise PyapproxError(f"Icarus Verilog could not compile {design.where()}: {_first_error(log)}", log)
    res = _run([tools.vvp(), "-n", "sweep.vvp"], work)
    out = work / "sweep.hex"
    if res.returncode != 0 or not out.exists():
        log = res.stdout + res.stderr
        raise PyapproxError(f"Icarus Verilog simulation of {design.where()} failed: {_first_error(log)}", log)
    lines = out.read_text().split()
    if len(lines) != count:
        raise PyapproxError(f"Icarus Verilog wrote {len(lines)} of {count} outputs for {design.where()}",
                            res.stdout + res.stderr)
    unknown = np.fromiter((bool(re.search(r"[xXzZ]", s)) for s in lines), bool, count)
    values = np.fromiter((0 if u else int(s, 16) for s, u in zip(lines, unknown)), np.uint64, count)
    return SweepResult("icarus", tool.version, values, unknown, time.perf_counter() - t0)


def _sweep_verilator(design: HdlDesign, harness: Harness, work: Path) -> SweepResult:
    tool = tools.verilator()
    count = 1 << harness.in_bits
    (work / "wrap.v").write_text(wrapper_source(design, harness))
    (work / "main.cpp").write_text(_VERILATOR_MAIN.format(wrap=_WRAP, count=count))
    defs = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in design.defines]
    t0 = time.perf_counter()
    cmd = [tool.path, "--cc", "--exe", "--build", "-j", "2", *tools.VERILATOR_SAFE_FLAGS,
           "-Wno-TIMESCALEMOD", "--timescale", "1ns/1ps", *defs, "--top-module", _WRAP,
           "-Mdir", "obj", "-o", "sweep_bin", "wrap.v", *map(str, design.sources), "main.cpp"]
    res = _run(cmd, work, env=tool.environ())
    binary = work / "obj" / "sweep_bin"
    if res.returncode != 0 or not binary.exists():
        log = res.stdout + res.stderr
        raise PyapproxError(f"Verilator could not build {design.where()}: {_first_error(log)}", log[-6000:])
    res = _run([str(binary), "sweep.bin"], work, env=tool.environ())
    out = work / "sweep.bin"
    if res.returncode != 0 or not out.exists():
        log = res.stdout + res.stderr
        raise PyapproxError(f"Verilator simulation of {design.where()} failed (exit {res.returncode}): "
                            f"{_first_error(log)}", log)
    values = np.fromfile(out, dtype="<u8")
    if values.size != count:
        raise PyapproxError(f"Verilator wrote {values.size} of {count} outputs for {design.where()}")
    mask = np.uint64((1 << harness.out_bits) - 1) if harness.out_bits < 64 else np.uint64(2**64 - 1)
    return SweepResult("verilator", tool.version, values & mask, None, time.perf_counter() - t0)


def sweep(design: HdlDesign, harness: Harness, simulator: str, keep_dir: Path | None = None) -> SweepResult:
    """Simulate every input vector of ``harness`` on one simulator."""
    runners = {"icarus": _sweep_icarus, "verilator": _sweep_verilator}
    if simulator not in runners:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: {', '.join(SIMULATORS)}")
    work = Path(tempfile.mkdtemp(prefix=f"pyapprox-{simulator}-"))
    try:
        return runners[simulator](design, harness, work)
    finally:
        if keep_dir is not None:
            shutil.copytree(work, keep_dir, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def sweep_all(design: HdlDesign, harness: Harness, simulators=SIMULATORS) -> dict[str, SweepResult]:
    """Run the sweep on several simulators concurrently; results keyed by simulator name."""
    with ThreadPoolExecutor(max_workers=len(simulators)) as pool:
        futures = {s: pool.submit(sweep, design, harness, s) for s in simulators}
        return {s: f.result() for s, f in futures.items()}
