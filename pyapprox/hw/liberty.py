"""Input-pin capacitances from a user's Liberty (.lib) file, as loads for the energy model.

The netlists here use Yosys' simple gates (:mod:`.netlist`), not the library's cells, so each simple gate is
matched to the library's cell computing the same function (``function`` of its one output pin, compared on the
truth table) with the smallest area; a gate input then weighs that cell's pin ``capacitance`` instead of 1. A
function with no cell of its own is priced as the cells that build it: ``ANDNOT`` and ``ORNOT`` as an inverter
on B before AND / OR, ``BUF`` as an inverter. An output port bit weighs the library's mean input capacitance.
Capacitances are in the library's ``capacitive_load_unit``; only their ratios matter for relative energy.

The parser reads the Liberty subset this needs (groups, simple attributes, quoted strings, comments, line
continuations) and refuses anything it cannot read with one error naming the file and line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError

MAX_BYTES = 64 << 20
# simple gate -> (number of inputs, truth function of the inputs A, B, S)
FUNCTIONS = {
    "NOT": (1, lambda a: 1 - a), "AND": (2, lambda a, b: a & b), "NAND": (2, lambda a, b: 1 - (a & b)),
    "OR": (2, lambda a, b: a | b), "NOR": (2, lambda a, b: 1 - (a | b)), "XOR": (2, lambda a, b: a ^ b),
    "XNOR": (2, lambda a, b: 1 - (a ^ b)), "MUX": (3, lambda a, b, s: b if s else a),
}
_TOKEN = re.compile(r'\s*(?:(/\*.*?\*/)|(//[^\n]*)|("(?:[^"\\]|\\.)*")|([{}();:,])|([^\s{}();:,"]+))', re.S)


@dataclass(frozen=True)
class Cell:
    name: str
    area: float
    inputs: dict  #: pin -> capacitance
    function: str  #: of the one output pin


def _tokens(text: str, path: str):
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                return
            raise PyapproxError(f"Liberty file {path}, line {line}: cannot read {text[pos:pos + 20]!r}")
        line += text.count("\n", pos, m.end())
        pos = m.end()
        if m.group(1) or m.group(2):
            continue
        yield (m.group(3) or m.group(4) or m.group(5)), line


def parse(text: str, path: str = "<text>") -> list:
    """The file as nested [name, args, children-or-value] lists (groups have a list of children)."""
    text = text.replace("\\\n", " ")
    toks = list(_tokens(text, path))
    pos = 0

    def expect(tok):
        nonlocal pos
        if pos >= len(toks) or toks[pos][0] != tok:
            where = toks[pos][1] if pos < len(toks) else (toks[-1][1] if toks else 1)
            raise PyapproxError(f"Liberty file {path}, line {where}: expected {tok!r}")
        pos += 1

    def statement():
        nonlocal pos
        name, line = toks[pos]
        pos += 1
        if pos < len(toks) and toks[pos][0] == ":":
            pos += 1
            value = []
            while pos < len(toks) and toks[pos][0] not in (";", "}"):
                value.append(toks[pos][0])
                pos += 1
            if pos < len(toks) and toks[pos][0] == ";":
                pos += 1
            return [name, None, " ".join(value)]
        expect("(")
        args = []
        while pos < len(toks) and toks[pos][0] != ")":
            if toks[pos][0] != ",":
                args.append(toks[pos][0])
            pos += 1
        expect(")")
        if pos < len(toks) and toks[pos][0] == "{":
            pos += 1
            children = []
            while pos < len(toks) and toks[pos][0] != "}":
                children.append(statement())
            expect("}")
            return [name, args, children]
        if pos < len(toks) and toks[pos][0] == ";":
            pos += 1
        return [name, args, None]

    out = []
    while pos < len(toks):
        out.append(statement())
    return out


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def _truth(function: str, pins: list[str]) -> tuple | None:
    """The function's outputs over all input combinations (pins in order), or None if it cannot be read.
    Liberty precedence: ``!`` and postfix ``'`` (NOT), then ``^``, then ``&``, ``*`` or juxtaposition (AND),
    then ``|`` or ``+`` (OR)."""
    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_\[\]]*|[!'&*|+^()01]|\S", _unquote(function))
    if not toks:
        return None

    def evaluate(v):
        pos = 0

        def peek():
            return toks[pos] if pos < len(toks) else None

        def take():
            nonlocal pos
            pos += 1
            return toks[pos - 1]

        def primary():
            t = take() if peek() is not None else None
            if t == "(":
                r = or_expr()
                if take() != ")":
                    raise ValueError
            elif t in ("0", "1"):
                r = int(t)
            elif t in pins:
                r = v[pins.index(t)]
            else:
                raise ValueError
            while peek() == "'":
                take()
                r = 1 - r
            return r

        def unary():
            if peek() == "!":
                take()
                return 1 - unary()
            return primary()

        def xor_expr():
            r = unary()
            while peek() == "^":
                take()
                r ^= unary()
            return r

        def and_expr():
            r = xor_expr()
            while peek() is not None and (peek() in ("&", "*") or peek() not in ("|", "+", ")")):
                if peek() in ("&", "*"):
                    take()
                r &= xor_expr()
            return r

        def or_expr():
            r = and_expr()
            while peek() in ("|", "+"):
                take()
                r |= and_expr()
            return r

        r = or_expr()
        if pos != len(toks):
            raise ValueError
        return r

    try:
        return tuple(evaluate(v) for v in itertools.product((0, 1), repeat=len(pins)))
    except (ValueError, IndexError, TypeError):
        return None


def cells(path) -> list[Cell]:
    """The combinational single-output cells of a Liberty file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise PyapproxError(f"Liberty file {p}: larger than {MAX_BYTES >> 20} MB")
        text = p.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise PyapproxError(f"Liberty file {p}: cannot be read ({exc})") from None
    tree = parse(text, str(p))
    libs = [g for g in tree if g[0] == "library" and isinstance(g[2], list)]
    if not libs:
        raise PyapproxError(f"Liberty file {p}: no library(...) group")
    out = []
    for g in libs[0][2]:
        if g[0] != "cell" or not isinstance(g[2], list) or not g[1]:
            continue
        area, ins, outs = 0.0, {}, []
        for a in g[2]:
            if a[0] == "area" and a[1] is None:
                area = _float(a[2], p)
            if a[0] == "ff" or a[0] == "latch" or a[0] == "statetable":
                outs = None
                break
            if a[0] == "pin" and isinstance(a[2], list) and a[1]:
                attrs = {c[0]: c[2] for c in a[2] if c[1] is None}
                direction = _unquote(attrs.get("direction", ""))
                if direction == "input":
                    ins[_unquote(a[1][0])] = _float(attrs.get("capacitance", "0"), p)
                elif direction == "output" and "function" in attrs:
                    outs.append(attrs["function"])
        if outs and len(outs) == 1:
            out.append(Cell(_unquote(g[1][0]), area, ins, outs[0]))
    if not out:
        raise PyapproxError(f"Liberty file {p}: no combinational cell with one output and a function")
    return out


def _float(v: str, path) -> float:
    try:
        f = float(_unquote(v))
    except ValueError:
        raise PyapproxError(f"Liberty file {path}: {v!r} is not a number") from None
    if not np.isfinite(f) or f < 0:
        raise PyapproxError(f"Liberty file {path}: {v!r} is not a non-negative number")
    return f


def pin_capacitances(path) -> dict[str, tuple[float, ...]]:
    """Simple gate -> capacitance of each of its inputs (A, B, S order), from the library's smallest matching
    cells; ANDNOT / ORNOT / BUF priced as built from AND / OR and an inverter."""
    lib = cells(path)
    best: dict[str, tuple[float, tuple[float, ...]]] = {}
    for c in lib:
        pins = list(c.inputs)
        for gate, (n, fn) in FUNCTIONS.items():
            if len(pins) != n:
                continue
            want = tuple(int(fn(*v)) for v in itertools.product((0, 1), repeat=n))
            for order in itertools.permutations(range(n)):
                ordered = [pins[i] for i in order]
                if _truth(c.function, ordered) == want:
                    caps = tuple(c.inputs[q] for q in ordered)
                    if gate not in best or c.area < best[gate][0]:
                        best[gate] = (c.area, caps)
                    break
    missing = [g for g in FUNCTIONS if g not in best]
    if missing:
        raise PyapproxError(f"Liberty file {path}: no cell computes {', '.join(missing)} (needed to price the "
                            f"simple gates {', '.join(FUNCTIONS)})")
    caps = {g: v[1] for g, v in best.items()}
    inv = caps["NOT"][0]
    caps["BUF"] = (inv,)
    caps["ANDNOT"] = (caps["AND"][0], inv)
    caps["ORNOT"] = (caps["OR"][0], inv)
    caps["OUTPUT"] = (float(np.mean([x for c in lib for x in c.inputs.values()])),)
    return caps


def with_liberty_loads(net, caps: dict[str, tuple[float, ...]]):
    """``net`` with each net's load the sum of the library capacitances of the gate inputs it drives (flip-flop
    D pins and output-port bits at the library's mean input capacitance)."""
    from dataclasses import replace

    from pyapprox.hw.netlist import CELLS_BY_CODE, KIND_NAMES

    load = np.zeros(net.n_nets, np.float64)
    for kind, i0, i1, i2, _ in net.ops.tolist():
        pins = (i0, i1, i2)[:len(CELLS_BY_CODE[kind])]
        for p, c in zip(pins, caps[KIND_NAMES[kind]]):
            load[p] += c
    other = caps["OUTPUT"][0]
    for bits in net.outputs.values():
        for i in bits:
            load[i] += other
    for d, _ in net.regs.tolist():
        load[d] += other
    return replace(net, load=load)
