"""Reference toggle counts from a simulator's own activity dump: Icarus Verilog simulates the synthesised gate
netlist (the Verilog Yosys wrote beside the JSON the toggle simulator reads) on the same stream and dumps a VCD
(the testbench's step counter is dumped too, so every vector has a time step, even one equal to the last).

Counting rule, the same as :mod:`pyapprox.hw.toggle`'s: one vector per time step (10 ns apart); a net's value in
a step is the last value the VCD records at that time (the settled value: zero-delay netlists may glitch inside a
step), and a toggle is a change of a bit's settled value between consecutive steps. Every bit of every wire in
the netlist module is counted, aliases included, and mapped to its net through ``GateNetlist.aliases``; a named
wire bit that no cell drives or reads (kept by Yosys for its name) must not toggle.

The testbench and the stimulus file are written here from validated names only (``GateNetlist`` ports are
checked identifiers); the simulator runs with argument lists in a temporary folder.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.hw.netlist import GateNetlist
from pyapprox.sim import tools
from pyapprox.sim.hdl import check_identifier

TB = "pyapprox_toggle_tb"


def _declarations(net: GateNetlist, vectors: int, timescale: str, clock: str | None = None) -> list[str]:
    """The testbench's header: registers for the inputs (and clock), wires for the outputs, the stimulus memory,
    the step counter, and the netlist instance (every name a checked identifier)."""
    ports = [*([clock] if clock else []), *net.inputs, *net.outputs]
    total = sum(len(bits) for bits in net.inputs.values())
    lines = [f"`timescale {timescale}", f"module {TB};"] + ([f"  reg {clock};"] if clock else [])
    for port, bits in net.inputs.items():
        lines.append(f"  reg [{len(bits) - 1}:0] {check_identifier(port, 'port')};")
    for port, bits in net.outputs.items():
        lines.append(f"  wire [{len(bits) - 1}:0] {check_identifier(port, 'port')};")
    return lines + [f"  reg [{total - 1}:0] stim [0:{vectors - 1}];", "  integer i;", "  reg [31:0] step;",
                    f"  {check_identifier(net.top, 'top module')} dut(" + ", ".join(f".{p}({p})" for p in ports)
                    + ");"]


_DUMP = ['    $readmemh("stim.hex", stim);', '    $dumpfile("dump.vcd");', "    $dumpvars(0, dut);",
         "    $dumpvars(0, step);"]


def _testbench(net: GateNetlist, vectors: int) -> str:
    cat = "{" + ", ".join(net.inputs) + "}"
    lines = _declarations(net, vectors, "1ns/1ps") + [
        "  initial begin", *_DUMP, f"    for (i = 0; i < {vectors}; i = i + 1) begin",
        f"      {cat} = stim[i];", "      step = i;", "      #10;", "    end", "    $finish;", "  end", "endmodule", ""]
    return "\n".join(lines)


def _clocked_testbench(net: GateNetlist, vectors: int) -> str:
    """A sequential netlist: vector 0 is applied at time 0, vector n at the n-th rising clock edge (time 10n - 5
    ns, non-blocking like a register stage), so inputs and flip-flops change in the same time step."""
    clk = check_identifier(net.clock, "clock port")
    cat = "{" + ", ".join(net.inputs) + "}"
    lines = _declarations(net, vectors, "1ns/1ns", clk) + [
        f"  always #5 {clk} = ~{clk};",
        f"  always @(posedge {clk}) begin",
        f"    if (i < {vectors}) begin {cat} <= stim[i]; step <= i; i <= i + 1; end",
        "  end",
        f"  initial #{10 * vectors - 8} $finish;  // after the last vector's cycle, before the next edge",
        "  initial begin", *_DUMP, f"    {clk} = 0; {cat} = stim[0]; step = 0; i = 1;", "  end", "endmodule", ""]
    return "\n".join(lines)


def _stimulus(net: GateNetlist, inputs: dict[str, np.ndarray]) -> str:
    words = np.zeros(len(next(iter(inputs.values()))), dtype=object)
    for port, bits in net.inputs.items():  # concatenation order: first port in the most significant bits
        words = words * (1 << len(bits)) + np.asarray(inputs[port]).astype(object)
    return "".join(f"{int(w):x}\n" for w in words)


def _extend(value: str, width: int) -> str:
    """A VCD vector value to ``width`` bits: a leading x or z extends itself, a leading 0 or 1 extends with 0."""
    return value.rjust(width, value[0] if value[0] in "xz" else "0")


def parse_vcd(text: str, scope: str = "dut", count_from: int = 0) -> tuple[dict[str, int], int]:
    """(bit name -> settled-value transitions, time steps with a value change of any variable) for every wire
    bit declared in ``scope``. Bit names are ``name`` for 1-bit wires and ``name[i]`` (i counted from the LSB)
    otherwise. Only transitions into time stamps after ``count_from`` (VCD time units) count."""
    ids: dict[str, list[tuple[str, int]]] = {}
    path: list[str] = []
    header, _, body = text.partition("$enddefinitions")
    for m in re.finditer(r"\$(scope\s+\w+\s+(\S+)|upscope|var\s+\w+\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[[^\]]*\])?)\s+"
                         r"\$end", header):
        if m.group(1).startswith("scope"):
            path.append(m.group(2))
        elif m.group(1) == "upscope":
            path.pop()
        elif path and path[-1] == scope and len(path) >= 2:
            ids.setdefault(m.group(4), []).append((m.group(5).removeprefix("\\"), int(m.group(3))))
    current: dict[str, str] = {}
    previous: dict[str, str] = {}
    counts = {code: np.zeros(max(w for _, w in vs), np.int64) for code, vs in ids.items()}
    steps = 0
    pending_vector = None

    now = 0

    def settle():
        for code, value in current.items():
            old = previous.get(code)
            if old is not None and old != value and now > count_from:
                width = len(counts[code])
                a, b = _extend(old, width), _extend(value, width)
                for k in range(width):  # string index 0 is the MSB
                    if a[width - 1 - k] != b[width - 1 - k]:
                        counts[code][k] += 1
            previous[code] = value

    changed = False  # any value change (of any variable) since the last time stamp
    for token in body.split():
        if pending_vector is not None:  # the id code after a vector (or real) value
            if pending_vector and token in ids:
                current[token] = pending_vector.lower()
            pending_vector = None
            changed = True
            continue
        c = token[0]
        if c == "#" and token[1:].isdigit():
            if changed:
                settle()
                steps += 1
            current, changed = {}, False
            now = int(token[1:])
        elif c in "bB":
            pending_vector = token[1:]
        elif c in "rR":
            pending_vector = ""  # a real value: skip its id
        elif c in "01xzXZ" and len(token) > 1:
            changed = True
            if token[1:] in ids:
                current[token[1:]] = c.lower()
    if changed:
        settle()
        steps += 1
    result = {}
    for code, vs in ids.items():
        for name, width in vs:
            for k in range(width):
                result[name if width == 1 else f"{name}[{k}]"] = int(counts[code][k])
    return result, steps


def icarus_toggles(net: GateNetlist, inputs: dict[str, np.ndarray], warmup: int = 0) -> np.ndarray:
    """Per-net transition counts of the stream ``inputs`` read from Icarus' VCD of the netlist ([nets] int64).
    Every wire bit of the VCD must name a net (through an alias) and all aliases of a net must agree.

    A sequential netlist is clocked (:func:`_clocked_testbench`); its first ``warmup`` vectors bring the
    flip-flops to their start state (e.g. a synchronous reset) and only transitions into later cycles count,
    the clock's own excepted."""
    vectors = len(next(iter(inputs.values())))
    if TB == net.top:
        raise PyapproxError(f"top module {net.top} clashes with the testbench's name")
    with tempfile.TemporaryDirectory(prefix="pyapprox-vcd-") as tmp:
        work = Path(tmp)
        (work / "netlist.v").write_text(net.verilog)
        (work / "tb.v").write_text(_clocked_testbench(net, vectors) if net.clock else _testbench(net, vectors))
        (work / "stim.hex").write_text(_stimulus(net, inputs))
        for cmd in ([tools.icarus().path, "-g2005", "-o", "sim.vvp", "-s", TB, "tb.v", "netlist.v"],
                    [tools.vvp(), "-n", "sim.vvp"]):
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=1800)
            if res.returncode != 0:
                raise PyapproxError(f"Icarus failed on the netlist of {net.top}", (res.stdout + res.stderr)[-4000:])
        bits, steps = parse_vcd((work / "dump.vcd").read_text(), count_from=10 * warmup - 5 if net.clock else 0)
    if net.clock:
        bits.pop(net.clock, None)
    elif steps != vectors:
        raise PyapproxError(f"VCD of {net.top} holds {steps} time steps for {vectors} vectors")
    counts = np.full(net.n_nets, -1, np.int64)
    counts[:2] = 0
    for name, n in bits.items():
        if name not in net.aliases:  # a named wire bit that nothing drives or reads: it must stay still
            if n:
                raise PyapproxError(f"VCD wire bit {name} of {net.top} is not a net of the netlist, yet toggles")
            continue
        i = net.aliases[name]
        if counts[i] not in (-1, n):
            raise PyapproxError(f"VCD of {net.top}: aliases of net {net.names[i]} disagree ({counts[i]} vs {n})")
        counts[i] = n
    if net.clock and net.clock in net.aliases:
        counts[net.aliases[net.clock]] = 0  # not a net of the toggle model (its energy is the same every cycle)
    return counts
