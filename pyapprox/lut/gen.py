"""Derive a trusted LUT from any combinational 8x8 multiplier by exhaustive simulation.

Every table is simulated on Verilator and on Icarus Verilog; it is emitted only when the two agree on
all pairs and Icarus saw no X/Z output. Tables are cached, content-addressed by the source files'
contents, top, ports, parameters, macros, operand format and tool versions.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass

import numpy as np

from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT, N
from pyapprox.sim import tools
from pyapprox.sim.hdl import HdlDesign, Port, format_ports
from pyapprox.sim.sweep import SIMULATORS, Harness, sweep_all

GEN_VERSION = 2


@dataclass(frozen=True)
class PortMap:
    a: str
    b: str
    out: str
    a_sign: str | None = None
    b_sign: str | None = None
    out_sign: str | None = None


def detect_ports(design: HdlDesign, a=None, b=None, out=None, sign_ports=None, ties=None) -> tuple[PortMap, dict[str, Port]]:
    """Resolve which ports carry the operands and the product; auto-detect when unambiguous."""
    ports = design.ports()
    ties = dict(ties or {})
    listing = format_ports(ports)

    def need(name, role, direction, width_ok, width_text):
        if name not in ports:
            raise PyapproxError(f"{design.where()}: no port named {name!r} for {role}; ports are: {listing}")
        p = ports[name]
        if p.direction != direction or not width_ok(p.width):
            raise PyapproxError(f"{design.where()}: port {name} ({p.direction}, {p.width} bits) cannot be {role}: "
                                f"expected an {direction} of {width_text}; ports are: {listing}")
        return name

    sign_set = set(sign_ports or ())
    free_in = [p for p in ports.values() if p.direction == "input" and p.name not in ties and p.name not in sign_set]
    if a is None or b is None:
        cands = [p.name for p in free_in if p.width == 8 and p.name not in (a, b)]
        missing = [r for r, v in (("a", a), ("b", b)) if v is None]
        if len(cands) != len(missing):
            raise PyapproxError(
                f"{design.where()}: cannot tell which ports are the operands ({len(cands)} candidate 8-bit inputs "
                f"for {len(missing)} operand(s)); name them with --a PORT --b PORT. Ports: {listing}")
        it = iter(cands)
        a = a if a is not None else next(it)
        b = b if b is not None else next(it)
    if out is None:
        outs = [p.name for p in ports.values() if p.direction == "output" and p.width >= 16
                and p.name not in sign_set]
        if len(outs) != 1:
            raise PyapproxError(
                f"{design.where()}: cannot tell which port is the product ({len(outs)} outputs of at least 16 bits); "
                f"name it with --out PORT. Ports: {listing}")
        out = outs[0]
    need(a, "operand a", "input", lambda w: w == 8, "8 bits")
    need(b, "operand b", "input", lambda w: w == 8, "8 bits")
    if a == b:
        raise PyapproxError(f"{design.where()}: operands a and b must be different ports (both {a})")
    need(out, "the product", "output", lambda w: 16 <= w <= 62, "16 to 62 bits")
    pm = PortMap(a, b, out)
    if sign_ports:
        sa, sb, sp = sign_ports
        need(sa, "sign of a", "input", lambda w: w == 1, "1 bit")
        need(sb, "sign of b", "input", lambda w: w == 1, "1 bit")
        need(sp, "sign of the product", "output", lambda w: w == 1, "1 bit")
        pm = PortMap(a, b, out, sa, sb, sp)
    used = {a, b, pm.a_sign, pm.b_sign}
    for name, value in ties.items():
        if name not in ports or ports[name].direction != "input":
            raise PyapproxError(f"{design.where()}: --tie {name}: no such input port; ports are: {listing}")
        if not 0 <= int(value) < (1 << ports[name].width):
            raise PyapproxError(f"{design.where()}: --tie {name}={value} does not fit {ports[name].width} bits")
    undriven = [p.name for p in ports.values() if p.direction == "input" and p.name not in used and p.name not in ties]
    if undriven:
        raise PyapproxError(f"{design.where()}: input port(s) {', '.join(undriven)} are neither operands nor tied; "
                            f"tie them with --tie PORT=VALUE. Ports: {listing}")
    inouts = [p.name for p in ports.values() if p.direction == "inout"]
    if inouts:
        raise PyapproxError(f"{design.where()}: inout ports ({', '.join(inouts)}) are not supported")
    return pm, ports


def _interpret(raw: np.ndarray, width: int, signed: bool) -> np.ndarray:
    v = raw.astype(np.int64)
    if signed:
        v = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
    return v


def _pairs(idx: np.ndarray, sm: bool) -> list[str]:
    out = []
    for i in idx[:5]:
        i = int(i)
        if sm:
            sa, sb, a, b = (i >> 17) & 1, (i >> 16) & 1, (i >> 8) & 0xFF, i & 0xFF
            out.append(f"a={'-' if sa else '+'}{a} b={'-' if sb else '+'}{b}")
        else:
            out.append(f"a={(i >> 8) & 0xFF} b={i & 0xFF}")
    return out


def generate(sources, top: str, *, a=None, b=None, out=None, params=None, defines=None, signed=False,
             sign_ports=None, ties=None, simulators=SIMULATORS, use_cache=True, name=None) -> LUT:
    """Simulate all 65,536 operand pairs (x4 sign combinations for sign-magnitude designs) and return the LUT."""
    if signed and sign_ports:
        raise PyapproxError("a design is either two's complement (--signed) or sign-magnitude, not both")
    design = HdlDesign.create(sources, top, params, defines)
    state = design.is_sequential()
    if state:
        raise PyapproxError(f"{design.where()}: not combinational; it holds state in "
                            f"{', '.join(state[:4])}. LUT derivation needs a purely combinational multiplier")
    pm, ports = detect_ports(design, a, b, out, sign_ports, ties)
    operands = "sign-magnitude" if sign_ports else ("signed" if signed else "unsigned")
    out_width = ports[pm.out].width
    tool_versions = {s: getattr(tools, s)().version for s in simulators}
    key = content_key({
        "v": GEN_VERSION, "sources": sorted(design.source_hashes().values()), "top": top,
        "ports": pm.__dict__, "params": design.params, "defines": design.defines,
        "ties": sorted((ties or {}).items()), "operands": operands, "tools": tool_versions,
    })
    cache_file = cache_dir("luts") / f"{key}.npy"
    if use_cache and cache_file.exists():
        try:
            lut = LUT.load(cache_file)
            # the key is content-based: report the paths and name of THIS request, not of the first one
            lut.meta.update(name=name or top, sources=design.source_hashes(), cache="hit")
            return lut
        except PyapproxError:
            pass  # unreadable cache entry: regenerate and overwrite it

    sm = bool(sign_ports)
    inputs = ((pm.a_sign, 1), (pm.b_sign, 1)) if sm else ()
    inputs += ((pm.a, 8), (pm.b, 8))
    outputs = ((pm.out_sign, 1), (pm.out, out_width)) if sm else ((pm.out, out_width),)
    harness = Harness(inputs, outputs, tuple((k, ports[k].width, int(v)) for k, v in (ties or {}).items()))
    t0 = time.perf_counter()
    results = sweep_all(design, harness, simulators)
    seconds = time.perf_counter() - t0

    icarus = results.get("icarus")
    if icarus is not None and icarus.unknown.any():
        bad = np.nonzero(icarus.unknown)[0]
        raise PyapproxError(f"{design.where()}: output has X/Z bits for {bad.size} input vector(s), first: "
                            f"{'; '.join(_pairs(bad, sm))}. Every output bit must be driven for every input")
    names = list(results)
    for other in names[1:]:
        diff = np.nonzero(results[names[0]].values != results[other].values)[0]
        if diff.size:
            shown = "; ".join(
                f"{p}: {names[0]}={int(results[names[0]].values[i])} {other}={int(results[other].values[i])}"
                for p, i in zip(_pairs(diff, sm), diff[:5]))
            raise PyapproxError(f"{design.where()}: {names[0]} and {other} disagree on {diff.size} input vector(s); "
                                f"refusing to emit a table. First: {shown}")
    raw = results[names[0]].values

    if sm:
        mag = raw & np.uint64((1 << out_width) - 1)
        psign = (raw >> np.uint64(out_width)) & np.uint64(1)
        mags = _interpret(mag, out_width, False).reshape(2, 2, N * N)
        signs = psign.reshape(2, 2, N * N).astype(bool)
        for sa in (0, 1):
            for sb in (0, 1):
                diff = np.nonzero(mags[sa, sb] != mags[0, 0])[0]
                if diff.size:
                    raise PyapproxError(f"{design.where()}: not a sign-magnitude multiplier: the product magnitude "
                                        f"depends on the operand signs, first at "
                                        f"{_pairs(diff + (sa << 17) + (sb << 16), True)[0]}")
                want = bool(sa ^ sb) & (mags[sa, sb] != 0)
                diff = np.nonzero(signs[sa, sb] != want)[0]
                if diff.size:
                    raise PyapproxError(f"{design.where()}: not a sign-magnitude multiplier: product sign is not "
                                        f"XOR of the operand signs (zero positive), first at "
                                        f"{_pairs(diff + (sa << 17) + (sb << 16), True)[0]}")
        table = mags[0, 0].reshape(N, N)
    else:
        table = _interpret(raw, out_width, signed).reshape(N, N)

    meta = {
        "name": name or top,
        "top": top,
        "sources": design.source_hashes(),
        "ports": {k: v for k, v in pm.__dict__.items() if v is not None},
        "params": dict(design.params),
        "defines": dict(design.defines),
        "ties": {k: int(v) for k, v in (ties or {}).items()},
        "simulators": {s: r.version for s, r in results.items()},
        "sweep_seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cache_key": key,
    }
    lut = LUT(table, operands, out_width, meta)
    if use_cache:
        lut.save(cache_file)
    lut.meta["cache"] = "miss"
    return lut
