"""The multiplier RTL behind a name in a plan: a library design, ``exact``, or a LUT file whose sidecar records
the Verilog it was derived from (``pyapprox lut gen``), checked by SHA-256 and validated field by field."""

from __future__ import annotations

from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.lut.gen import detect_ports
from pyapprox.lut.library import is_lut_file
from pyapprox.lut.sidecar import recorded_sources
from pyapprox.lut.table import LUT
from pyapprox.sim.hdl import HdlDesign
from pyapprox.sim.mac_array import MultiplierRtl, adapter, library_rtl


def lut_file_rtl(spec: str) -> MultiplierRtl:
    """The RTL a LUT file was derived from, as its sidecar records it (sources checked by SHA-256)."""
    path = Path(spec)
    lut = LUT.load(path)
    meta = lut.meta
    sources = recorded_sources(meta, path, f"multiplier {spec}")
    if sources is None:
        kind = f"a bare {path.suffix} table" if path.suffix.lower() != ".npy" else "a table without RTL in its sidecar"
        raise PyapproxError(
            f"multiplier {spec}: the LUT file has no RTL ({kind}); co-simulation runs the Verilog the table came "
            f"from: derive the LUT with `pyapprox lut gen FILE.v --top MODULE -o {path.stem}.npy` (its .json sidecar "
            f"records the sources) or name a library multiplier")
    top = meta["top"]
    params = tuple((str(k), str(v)) for k, v in dict(meta.get("params") or {}).items())
    defines = tuple((str(k), str(v)) for k, v in dict(meta.get("defines") or {}).items())
    ties = {str(k): int(v) for k, v in dict(meta.get("ties") or {}).items()}
    ports = dict(meta.get("ports") or {})
    if not {"a", "b", "out"} <= set(ports):
        raise PyapproxError(f"multiplier {spec}: the sidecar does not record the operand/product ports")
    sm = lut.operands == "sign-magnitude"
    hd = HdlDesign.create(sources, top, dict(params), dict(defines))
    origin = f"LUT file {path} (RTL {', '.join(p.name for p in sources)})"
    return _slot_rtl(spec, origin, hd, ports, ties, sm, lut.signed, f"multiplier {spec}")


def user_rtl(sources, top: str, *, a=None, b=None, out=None, params=None, defines=None, ties=None, sign_ports=None,
             signed: bool = False) -> MultiplierRtl:
    """A user's Verilog multiplier for the PE slot (files + top, ports named or detected as ``lut gen`` does):
    ``cosim --rtl`` runs it in the array against the network's multiplier table."""
    hd = HdlDesign.create(sources, top, params, defines)
    ties = {str(k): int(v) for k, v in dict(ties or {}).items()}
    pm, _ = detect_ports(hd, a, b, out, sign_ports, ties)
    ports = {"a": pm.a, "b": pm.b, "out": pm.out, "a_sign": pm.a_sign, "b_sign": pm.b_sign, "out_sign": pm.out_sign}
    origin = f"--rtl {', '.join(Path(s).name for s in hd.sources)} (top {top})"
    return _slot_rtl(top, origin, hd, ports, ties, sign_ports is not None, signed, f"--rtl {top}")


def _slot_rtl(name: str, origin: str, hd: HdlDesign, ports: dict, ties: dict, sm: bool, signed: bool,
              where: str) -> MultiplierRtl:
    """The design as the PE's multiplier slot sees it: directly when its ports already have the slot's names and
    nothing is tied, else through a generated adapter."""
    params, defines, top, sources = hd.params, hd.defines, hd.top, tuple(hd.sources)  # validated and normalised
    have = hd.ports()
    for role in ("a", "b", "out") + (("a_sign", "b_sign", "out_sign") if sm else ()):
        if ports.get(role) not in have:
            raise PyapproxError(f"{where}: port {ports.get(role)!r} ({role}) is not a port of {top} any more")
    p_bits = have[ports["out"]].width
    widths = {n: p.width for n, p in have.items()}
    if sm:
        port_map = {"a_sign": ports["a_sign"], "a_mag": ports["a"], "b_sign": ports["b_sign"], "b_mag": ports["b"],
                    "p_sign": ports["out_sign"], "p_mag": ports["out"]}
    else:
        port_map = {"a": ports["a"], "b": ports["b"], "p": ports["out"]}
    direct = all(k == v for k, v in port_map.items()) and not ties
    if direct:
        return MultiplierRtl(name, origin, sources, top, params, defines, sm, signed, p_bits, top)
    module, text = adapter(top, params, port_map, ties, p_bits, sm, widths)
    return MultiplierRtl(name, origin, sources, module, (), defines, sm, signed, p_bits, top, text)


def multiplier_rtl(spec: str, operand_format: str = "sign-magnitude") -> MultiplierRtl:
    """The RTL of a multiplier named as in plans (library name, LUT file, or ``exact``).

    ``exact`` is the exact product of the operand format: the structural array multiplier for
    sign-magnitude operands, Baugh-Wooley for int8. Raises :class:`PyapproxError` when there is no RTL or
    when the multiplier does not fit the operand format.
    """
    spec = str(spec).strip()
    if spec == "exact" and operand_format == "int8":
        rtl = library_rtl("exact_signed")
        rtl = MultiplierRtl("exact", rtl.origin, rtl.sources, rtl.module, rtl.params, rtl.defines,
                            rtl.sign_magnitude, rtl.signed, rtl.p_bits, rtl.top)
    elif is_lut_file(spec):
        rtl = lut_file_rtl(spec)
    else:
        rtl = library_rtl(spec)
    if operand_format == "int8" and not rtl.signed:
        raise PyapproxError(f"multiplier {spec}: int8 operands need a signed (two's complement) multiplier; "
                            f"{rtl.describe()} is {'sign-magnitude' if rtl.sign_magnitude else 'unsigned'}")
    if operand_format == "sign-magnitude" and rtl.signed:
        raise PyapproxError(f"multiplier {spec}: sign-magnitude operands need an unsigned or sign-magnitude "
                            f"multiplier; {rtl.describe()} is signed")
    return rtl
