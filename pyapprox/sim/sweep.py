"""Exhaustive input sweeps of a combinational design on Icarus Verilog and on Verilator.

A generated wrapper module ``pyapprox_sweep_wrap(input [N-1:0] x, output [M-1:0] y)`` connects the
user's ports by name, so any port naming works the same on both simulators. The swept inputs are the
bit fields of a counter ``x`` (first listed input = most significant field); the read outputs are
concatenated into ``y`` (first listed output = most significant field). Icarus writes every output
in hex so X/Z values are caught; Verilator (2-state) runs a compiled C++ loop.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.sim import tools
from pyapprox.sim.hdl import HdlDesign, check_identifier

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
    for port, *_ in harness.inputs + harness.outputs + harness.ties:
        check_identifier(port, "port")
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
      if (i % 1024 == 1023) $fflush(fd);
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


class Cancelled(Exception):
    """The sweep on another simulator failed (or the user interrupted): this one was stopped."""


def run_timeout(vectors: int) -> float:
    """Seconds a simulation of ``vectors`` input vectors may take: 30 s + 2 ms per vector (Icarus needs about
    0.15 ms per vector for the structural exact array), or ``$PYAPPROX_SIM_TIMEOUT`` seconds when set (for very
    large designs; it also turns off the stall detection of :data:`STALL_SECONDS`)."""
    env = os.environ.get("PYAPPROX_SIM_TIMEOUT")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = -1.0
        if not 0 < value <= 86400:
            raise PyapproxError(f"PYAPPROX_SIM_TIMEOUT={env!r}: expected a number of seconds from 1 to 86400")
        return value
    return 30.0 + 0.002 * vectors


#: Seconds a simulation may go without finishing another block of 1,024 vectors (Icarus) before it is
#: declared stuck: a normal block takes well under a second.
STALL_SECONDS = 20.0


def _run(cmd: list[str], cwd: Path, env=None, timeout: float = 900, cancel: threading.Event | None = None,
         what: str = "", progress=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (an argument list, never a shell line) in its own process group; kill the group on
    timeout, when ``progress()`` (a number that grows while the run advances) stays the same for
    :data:`STALL_SECONDS`, on ``cancel`` being set, or on KeyboardInterrupt."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    last, last_change = None, time.monotonic()
    try:
        while True:
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancel is not None and cancel.is_set():
                _kill(proc)
                raise Cancelled(what or cmd[0])
            now = time.monotonic()
            if now > deadline:
                _kill(proc)
                raise PyapproxError(f"{what or Path(cmd[0]).name} did not finish within {timeout:.0f} s")
            if progress is not None:
                value = progress()
                if value != last:
                    last, last_change = value, now
                elif now - last_change > STALL_SECONDS:
                    _kill(proc)
                    raise PyapproxError(f"{what or Path(cmd[0]).name} made no progress for {STALL_SECONDS:.0f} s")
    except BaseException:
        _kill(proc)
        raise
    reader.join(timeout=5)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def _sweep_icarus(design: HdlDesign, harness: Harness, work: Path, cancel=None) -> SweepResult:
    tool = tools.icarus()
    count = 1 << harness.in_bits
    (work / "wrap.v").write_text(wrapper_source(design, harness))
    (work / "tb.v").write_text(_ICARUS_TB.format(n1=harness.in_bits - 1, m1=harness.out_bits - 1,
                                                wrap=_WRAP, count=count))
    gen = ["-g2012"] if any(p.suffix.lower() == ".sv" for p in design.sources) else []
    defs = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in design.defines]
    t0 = time.perf_counter()
    res = _run([tool.path, *gen, *defs, "-s", "pyapprox_sweep_tb", "-o", "sweep.vvp",
                "tb.v", "wrap.v", *map(str, design.sources)], work, timeout=600, cancel=cancel,
               what="Icarus Verilog (compile)")
    if res.returncode != 0:
        log = res.stdout + res.stderr
        raise PyapproxError(f"Icarus Verilog could not compile {design.where()}: {_first_error(log)}", log)
    limit = run_timeout(count)
    out = work / "sweep.hex"

    def written() -> int:
        return out.stat().st_size if out.exists() else 0

    try:
        res = _run([tools.vvp(), "-n", "sweep.vvp"], work, timeout=limit, cancel=cancel,
                   progress=None if os.environ.get("PYAPPROX_SIM_TIMEOUT") else written)
    except PyapproxError as exc:
        done = written() // (harness.out_bits // 4 + (harness.out_bits % 4 > 0) + 1)
        raise PyapproxError(
            f"Icarus Verilog stopped simulating {design.where()} near vector {done:,} of {count:,} ({exc}): the "
            f"design most likely has a combinational loop that never settles (an oscillating feedback path); for "
            f"a very large design set PYAPPROX_SIM_TIMEOUT=SECONDS") from None
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


def _sweep_verilator(design: HdlDesign, harness: Harness, work: Path, cancel=None) -> SweepResult:
    tool = tools.verilator()
    count = 1 << harness.in_bits
    (work / "wrap.v").write_text(wrapper_source(design, harness))
    (work / "main.cpp").write_text(_VERILATOR_MAIN.format(wrap=_WRAP, count=count))
    defs = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in design.defines]
    t0 = time.perf_counter()
    cmd = [tool.path, "--cc", "--exe", "--build", "-j", "2", *tools.VERILATOR_SAFE_FLAGS,
           "-Wno-TIMESCALEMOD", "--timescale", "1ns/1ps", *defs, "--top-module", _WRAP,
           "-Mdir", "obj", "-o", "sweep_bin", "wrap.v", *map(str, design.sources), "main.cpp"]
    res = _run(cmd, work, env=tool.environ(), timeout=1800, cancel=cancel, what="Verilator (build)")
    binary = work / "obj" / "sweep_bin"
    if res.returncode != 0 or not binary.exists():
        log = res.stdout + res.stderr
        raise PyapproxError(f"Verilator could not build {design.where()}: {_first_error(log)}", log[-6000:])
    limit = run_timeout(count)
    try:
        res = _run([str(binary), "sweep.bin"], work, env=tool.environ(), timeout=limit, cancel=cancel)
    except PyapproxError:
        raise PyapproxError(f"the Verilator model of {design.where()} did not finish {count:,} vectors within "
                            f"{limit:.0f} s; for a very large design set PYAPPROX_SIM_TIMEOUT=SECONDS") from None
    out = work / "sweep.bin"
    if res.returncode != 0 or not out.exists():
        log = res.stdout + res.stderr
        if "converge" in log.lower():
            raise PyapproxError(f"Verilator simulation of {design.where()}: the combinational logic did not converge "
                                f"(DIDNOTCONVERGE): the design has a combinational loop that never settles (an "
                                f"oscillating feedback path)", log)
        raise PyapproxError(f"Verilator simulation of {design.where()} failed (exit {res.returncode}): "
                            f"{_first_error(log)}", log)
    values = np.fromfile(out, dtype="<u8")
    if values.size != count:
        raise PyapproxError(f"Verilator wrote {values.size} of {count} outputs for {design.where()}")
    mask = np.uint64((1 << harness.out_bits) - 1) if harness.out_bits < 64 else np.uint64(2**64 - 1)
    return SweepResult("verilator", tool.version, values & mask, None, time.perf_counter() - t0)


def sweep(design: HdlDesign, harness: Harness, simulator: str, keep_dir: Path | None = None,
          cancel: threading.Event | None = None) -> SweepResult:
    """Simulate every input vector of ``harness`` on one simulator (its temporary folder is always removed)."""
    runners = {"icarus": _sweep_icarus, "verilator": _sweep_verilator}
    if simulator not in runners:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: {', '.join(SIMULATORS)}")
    work = Path(tempfile.mkdtemp(prefix=f"pyapprox-{simulator}-"))
    try:
        return runners[simulator](design, harness, work, cancel)
    finally:
        if keep_dir is not None:
            shutil.copytree(work, keep_dir, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def sweep_all(design: HdlDesign, harness: Harness, simulators=SIMULATORS) -> dict[str, SweepResult]:
    """Run the sweep on several simulators concurrently; results keyed by simulator name.

    The first failure stops the others at once (their processes are killed and their folders removed) and
    is raised; Ctrl-C does the same before re-raising.
    """
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(simulators))
    futures = {s: pool.submit(sweep, design, harness, s, None, cancel) for s in simulators}
    try:
        done, _ = wait(list(futures.values()), return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None and not isinstance(exc, Cancelled):
                cancel.set()
                raise exc
        return {s: f.result() for s, f in futures.items()}
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)
