"""Gate-level netlist of a combinational design, as Yosys 0.23 synthesises it, ready for toggle simulation.

Flow (the ``gates`` flow of :mod:`pyapprox.hw.cost`): ``synth -flatten``, ``abc -g
AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX``, ``opt_clean``, ``rename -enumerate``. The cell set is therefore
Yosys' simple gates: ``$_NOT_ $_BUF_ $_AND_ $_NAND_ $_OR_ $_NOR_ $_XOR_ $_XNOR_ $_ANDNOT_`` (A & ~B),
``$_ORNOT_`` (A | ~B) and ``$_MUX_`` (S ? B : A). The same synthesised design is written twice, as JSON (read
here) and as Verilog (``netlist.v``, simulated by Icarus to check the toggle counts, :mod:`pyapprox.hw.vcd`).

Contract of :class:`GateNetlist`: nets are dense indices, 0 and 1 are the constants; ``ops`` lists every cell
once, in topological order, as (kind, in0, in1, in2, out) with unused inputs 0; every net that is read is an
input port bit, a constant or a cell output (else the design is refused). ``load[n]`` is the number of cell
inputs net n drives, plus 1 for each output-port bit it drives (the next stage's input), the capacitance unit of
the energy model. A design with state (flip-flops, latches, memories) is refused unless ``sequential=True`` (a PE):
then ``dfflegalize`` first turns every flip-flop into a plain rising-edge D flip-flop (``$_DFF_P_``) plus gates
(enables and synchronous resets become logic in front of D), all clocked by one input port, ``clock``; ``regs``
lists them as (D net, Q net), and a Q net counts as driven. Latches, memories and asynchronous resets are
refused. Netlists are cached by the design's content, the flow and the Yosys version.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyapprox import io as pio
from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox.sim import tools
from pyapprox.sim.hdl import HdlDesign, check_identifier, summarise_yosys_error

NETLIST_VERSION = 2
GATE_FLOW = ("abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX", "opt_clean", "rename -enumerate")
REGISTER_FLOW = ("dfflegalize -cell $_DFF_P_ 01",)

# cell type -> (kind code, input pins in order)
CELLS = {
    "$_BUF_": (0, ("A",)), "$_NOT_": (1, ("A",)),
    "$_AND_": (2, ("A", "B")), "$_NAND_": (3, ("A", "B")), "$_OR_": (4, ("A", "B")), "$_NOR_": (5, ("A", "B")),
    "$_XOR_": (6, ("A", "B")), "$_XNOR_": (7, ("A", "B")), "$_ANDNOT_": (8, ("A", "B")),
    "$_ORNOT_": (9, ("A", "B")), "$_MUX_": (10, ("A", "B", "S")),
}
KIND_NAMES = {code: name.strip("$_") for name, (code, _) in CELLS.items()}


@dataclass(frozen=True)
class GateNetlist:
    """A flattened gate netlist (see the module docstring for the contract)."""

    top: str
    inputs: dict[str, tuple[int, ...]]   #: port -> net per bit, LSB first
    outputs: dict[str, tuple[int, ...]]  #: port -> net per bit, LSB first (may be constants or input nets)
    ops: np.ndarray                      #: [cells, 5] int32: kind, in0, in1, in2, out; topological order
    names: tuple[str, ...]               #: a name per net ("0", "1", "a[3]", "_17_", ...)
    aliases: dict[str, int]              #: every wire bit's name ("p[0]", "_17_") -> its net
    load: np.ndarray                     #: [nets] int64 capacitance units
    verilog: str                         #: the same netlist as Yosys writes it (for a reference simulator)
    regs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))  #: [flip-flops, 2]: D, Q
    clock: str | None = None             #: the clock input port of a sequential netlist

    @property
    def n_nets(self) -> int:
        return len(self.names)

    def cell_counts(self) -> dict[str, int]:
        kinds, counts = np.unique(self.ops[:, 0], return_counts=True)
        return {KIND_NAMES[int(k)]: int(c) for k, c in zip(kinds, counts)}

    def describe(self) -> str:
        cells = ", ".join(f"{k} {v}" for k, v in sorted(self.cell_counts().items()))
        regs = f", {len(self.regs)} flip-flops" if len(self.regs) else ""
        return f"{self.top}: {len(self.ops)} gates ({cells}){regs}, {self.n_nets - 2} nets"


def synthesize(design: HdlDesign, use_cache: bool = True, sequential: bool = False) -> GateNetlist:
    """The gate netlist of a combinational ``design`` (or, with ``sequential``, one with flip-flops);
    :class:`PyapproxError` for a sequential design when not allowed, an unsynthesizable one, or one whose ports
    are not plain Verilog identifiers."""
    state = design.is_sequential()  # also reads the design: HDL errors surface here, naming the module and file
    if state and not sequential:
        shown = ", ".join(state[:4]) + (f" and {len(state) - 4} more" if len(state) > 4 else "")
        raise PyapproxError(f"{design.where()} is sequential ({shown}): gate-level toggle simulation of a "
                            f"multiplier needs a combinational design (no flip-flops, latches or memories)")
    for port in design.ports():
        check_identifier(port, f"{design.where()}: port")
    yosys = tools.yosys()
    key = content_key({"v": NETLIST_VERSION, "sources": sorted(design.source_hashes().values()), "top": design.top,
                       "params": design.params, "defines": design.defines, "yosys": yosys.version,
                       "sequential": sequential})
    cache_file = cache_dir("netlist") / f"{key}.json"
    raw = None
    if use_cache and cache_file.exists():
        try:
            raw = json.loads(cache_file.read_text())
            net = _parse(design, raw["json"], raw["verilog"], sequential)
        except (json.JSONDecodeError, KeyError, TypeError, PyapproxError):
            raw = None
        else:
            return net
    with tempfile.TemporaryDirectory(prefix="pyapprox-netlist-") as tmp:
        work = Path(tmp)
        script = work / "netlist.ys"
        flow = [f"synth -flatten -top {design.top}", *(REGISTER_FLOW if sequential else ()), *GATE_FLOW,
                'write_json "netlist.json"', 'write_verilog -noattr "netlist.v"']
        script.write_text("\n".join(design.yosys_read_commands() + flow) + "\n")
        res = subprocess.run([yosys.path, "-q", "-s", str(script)], capture_output=True, text=True, timeout=1800,
                             cwd=work)
        log = res.stdout + res.stderr
        if res.returncode != 0 or not (work / "netlist.json").exists():
            raise PyapproxError(f"Yosys could not synthesise {design.where()}: "
                                f"{summarise_yosys_error(log, design.top)}", log[-4000:])
        raw = {"json": json.loads((work / "netlist.json").read_text()), "verilog": (work / "netlist.v").read_text()}
    net = _parse(design, raw["json"], raw["verilog"], sequential)
    if use_cache:
        pio.write_json(cache_file, raw)
    return net


def _parse(design: HdlDesign, data: dict, verilog: str, sequential: bool = False) -> GateNetlist:
    where = design.where()
    module = data.get("modules", {}).get(design.top)
    if module is None:
        raise PyapproxError(f"{where}: module {design.top} not found in the synthesised netlist")
    index: dict = {"0": 0, "1": 1}
    names = ["0", "1"]

    def net(bit, what):
        if bit in ("x", "z"):
            raise PyapproxError(f"{where}: {what} is undriven ({bit!r}) after synthesis")
        if bit not in index:
            index[bit] = len(names)
            names.append(f"#{bit}")
        return index[bit]

    inputs, outputs = {}, {}
    for pname, port in module["ports"].items():
        bits = [net(b, f"port {pname}") if port["direction"] == "input" else b for b in port["bits"]]
        if port["direction"] == "input":
            inputs[pname] = tuple(bits)
        elif port["direction"] == "output":
            outputs[pname] = bits
        else:
            raise PyapproxError(f"{where}: inout port {pname} is not supported")
    driven = {i for bits in inputs.values() for i in bits} | {0, 1}
    rows, pending, regs, clocks = [], [], [], set()
    for cname, cell in module.get("cells", {}).items():
        if cell["type"] == "$_DFF_P_" and sequential:
            conns = cell["connections"]
            clocks.add(net(conns["C"][0], f"clock of flip-flop {cname}"))
            q = net(conns["Q"][0], f"output of flip-flop {cname}")
            if q in driven:
                raise PyapproxError(f"{where}: net {names[q]} has more than one driver")
            driven.add(q)
            regs.append((net(conns["D"][0], f"input of flip-flop {cname}"), q))
            continue
        if cell["type"] not in CELLS:
            raise PyapproxError(f"{where}: cell {cname} of type {cell['type']} after synthesis; the toggle "
                                f"simulator knows the simple gates {', '.join(sorted(CELLS))}")
        code, pins = CELLS[cell["type"]]
        conns = cell["connections"]
        ins = [net(conns[p][0], f"input {p} of cell {cname}") for p in pins]
        out = net(conns["Y"][0], f"output of cell {cname}")
        if out in driven:
            raise PyapproxError(f"{where}: net {names[out]} has more than one driver")
        driven.add(out)
        pending.append((code, ins + [0] * (3 - len(ins)), out))
    outputs = {p: tuple(net(b, f"output port {p}") for b in bits) for p, bits in outputs.items()}
    aliases = {}
    for nname, info in module.get("netnames", {}).items():
        for i, b in enumerate(info["bits"]):
            if b not in index:
                continue  # a wire bit nothing reads or drives
            bit_name = nname if len(info["bits"]) == 1 else f"{nname}[{i}]"
            aliases[bit_name] = index[b]
            if names[index[b]].startswith("#"):
                names[index[b]] = bit_name
    # topological order (Kahn): a cell is ready when all its inputs are driven
    ready_nets = set(driven - {c[2] for c in pending})
    waiting = {}
    for k, (code, ins, out) in enumerate(pending):
        for i in set(ins[:len(CELLS_BY_CODE[code])]):
            waiting.setdefault(i, []).append(k)
    missing = {k: len({i for i in ins[:len(CELLS_BY_CODE[code])] if i not in ready_nets})
               for k, (code, ins, out) in enumerate(pending)}
    queue = [k for k, m in missing.items() if m == 0]
    while queue:
        k = queue.pop()
        rows.append((pending[k][0], *pending[k][1], pending[k][2]))
        for j in waiting.get(pending[k][2], ()):
            missing[j] -= 1
            if missing[j] == 0:
                queue.append(j)
    if len(rows) != len(pending):
        undriven = sorted({names[i] for code, ins, out in pending for i in ins[:len(CELLS_BY_CODE[code])]
                           if i not in driven})
        if undriven:
            raise PyapproxError(f"{where}: net(s) {', '.join(undriven[:5])} read but never driven")
        raise PyapproxError(f"{where}: combinational loop in the synthesised netlist")
    for p, bits in outputs.items():
        bad = [names[i] for i in bits if i not in driven]
        if bad:
            raise PyapproxError(f"{where}: output port {p} has undriven bits ({', '.join(bad[:4])})")
    clock = None
    if regs:
        port_of = {bits[0]: p for p, bits in inputs.items() if len(bits) == 1}
        if len(clocks) != 1 or next(iter(clocks)) not in port_of:
            raise PyapproxError(f"{where}: the flip-flops must all be clocked by one 1-bit input port")
        clock = port_of[next(iter(clocks))]
        inputs.pop(clock)
        for d, _ in regs:
            if d not in driven:
                raise PyapproxError(f"{where}: flip-flop input {names[d]} is never driven")
    ops = np.array(rows, np.int32).reshape(-1, 5)
    load = np.zeros(len(names), np.int64)
    for code, i0, i1, i2, _ in rows:
        for i in (i0, i1, i2)[:len(CELLS_BY_CODE[code])]:
            load[i] += 1
    for bits in outputs.values():
        for i in bits:
            load[i] += 1
    for d, _ in regs:
        load[d] += 1
    return GateNetlist(design.top, inputs, outputs, ops, tuple(names), aliases, load, verilog,
                       np.array(regs, np.int32).reshape(-1, 2), clock)


CELLS_BY_CODE = {code: pins for code, pins in CELLS.values()}
