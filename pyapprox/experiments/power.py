"""Energy per MAC and per inference from gate-level switching activity (``pyapprox power``).

A multiplier's energy is measured on two kinds of stream (:mod:`pyapprox.hw.energy` states the model):

* ``uniform``: independent uniformly random operand pairs (EvoApproxLib's characterisation stream);
* ``network``: the operand pairs the PEs of the MAC array see on each conv of a network, captured from one
  image through the calibrated quantized network and sampled per PE in the array's order
  (:mod:`pyapprox.cosim.streams`).

Everything is relative to the exact structural array multiplier (``exact``; ``exact_signed`` for int8 operands)
on the uniform stream = 1.0. Energy per inference of a plan = sum over convs of (relative energy per MAC of
that conv's multiplier on that conv's stream) x (its MACs), in exact-uniform-MAC units; the network streams of a
plan are captured with the plan applied, so upstream approximations shape what downstream layers see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyapprox.cache import cache_dir
from pyapprox.cosim.capture import capture_layers
from pyapprox.cosim.rtl import multiplier_rtl
from pyapprox.cosim.streams import PeStream, pe_streams
from pyapprox.errors import PyapproxError
from pyapprox.experiments.engine import EvalContext, Evaluator
from pyapprox.hw.liberty import with_liberty_loads
from pyapprox.hw.energy import Estimate, MultiplierPorts, operand_inputs, switched, uniform_stream
from pyapprox.hw.netlist import GateNetlist, synthesize
from pyapprox.hw.toggle import lanes_activity
from pyapprox.lut.gen import detect_ports
from pyapprox.lut.library import is_lut_file
from pyapprox.lut.sidecar import recorded_sources
from pyapprox.lut.table import LUT
from pyapprox.models.densedepth_mbv2 import preprocess
from pyapprox.nn.plan import model_layers
from pyapprox.nn.quant import qconv_layers
from pyapprox.rtl import library
from pyapprox.sim.hdl import HdlDesign
from pyapprox.sim.mac_array import ArrayConfig, encode_codes


@dataclass(frozen=True)
class PowerDesign:
    """A multiplier's gate netlist and the roles of its ports."""

    label: str
    netlist: GateNetlist
    ports: MultiplierPorts
    signed: bool

    @property
    def gates(self) -> int:
        return len(self.netlist.ops)


def _loads(net: GateNetlist, caps: dict | None) -> GateNetlist:
    """The netlist with a Liberty file's pin capacitances as loads (:mod:`pyapprox.hw.liberty`), or as is."""
    return with_liberty_loads(net, caps) if caps else net


def exact_name(operand_format: str) -> str:
    return "exact_signed" if operand_format == "int8" else "exact"


def library_design(name: str, operand_format: str, caps: dict | None = None) -> PowerDesign:
    """A library multiplier by name (``exact`` is the structural array), checked against the operand format."""
    d = library.resolve(name)
    if operand_format == "int8" and (not d.signed or d.sign_ports):
        raise PyapproxError(f"{name}: the int8 operand format needs a two's-complement multiplier "
                            f"(e.g. exact_signed); {name} is {'sign-magnitude' if d.sign_ports else 'unsigned'}")
    if operand_format == "sign-magnitude" and d.signed:
        raise PyapproxError(f"{name} is a two's-complement multiplier; sign-magnitude operands need an unsigned "
                            f"or sm(...) design")
    net = _loads(synthesize(HdlDesign.create(d.files, d.top, dict(d.params), dict(d.defines))), caps)
    a, b, _ = d.ports
    signs = d.sign_ports or (None, None, None)
    return PowerDesign(name, net, MultiplierPorts(a, b, signs[0], signs[1]).check(net), d.signed)


def user_design(sources, top: str, *, a=None, b=None, out=None, params=None, defines=None, ties=None,
                sign_ports=None, signed: bool = False, label: str | None = None, caps: dict | None = None) -> PowerDesign:
    """A user's Verilog multiplier (files + top, ports named or detected as ``lut gen`` does)."""
    design = HdlDesign.create(sources, top, params, defines)
    net = _loads(synthesize(design), caps)  # a sequential or unsynthesizable design is refused first
    pm, _ = detect_ports(design, a, b, out, sign_ports, ties)
    ports = MultiplierPorts(pm.a, pm.b, pm.a_sign, pm.b_sign, {k: int(v) for k, v in dict(ties or {}).items()})
    return PowerDesign(label or design.describe(), net, ports.check(net), signed)


UNIFORM_SEGMENTS = 64


def uniform_energy(design: PowerDesign, operand_format: str, pairs: int, seed: int) -> Estimate:
    """Switched capacitance per transition on ``pairs`` uniform operand pairs (load units), the stream cut into
    :data:`UNIFORM_SEGMENTS` equal segments for the confidence interval."""
    w, x = uniform_stream(pairs, seed, operand_format, signs=design.ports.a_sign is not None)
    starts = np.arange(0, pairs, max(pairs // UNIFORM_SEGMENTS, 2))
    return switched(design.netlist, operand_inputs(design.netlist, design.ports, w, x, operand_format, "a"), starts)


def network_streams(qmodel, image, names: list[str] | None = None, rows: int = 8, cols: int = 8,
                    segments: int = 64, min_pairs: int = 256, seed: int = 0) -> dict[str, PeStream]:
    """Sampled PE streams of the named convs (all by default) of a calibrated quantized network on one image."""
    layers = list(model_layers(qmodel))
    names = names or layers
    captured = capture_layers(qmodel, names, image)
    mods = dict(qconv_layers(qmodel))
    return {n: pe_streams(n, mods[n], captured[n]["codes"], rows, cols, segments, min_pairs, seed + layers.index(n))
            for n in names}


def stream_energy(design: PowerDesign, stream: PeStream, operand_format: str, weight_port: str) -> Estimate:
    inputs = operand_inputs(design.netlist, design.ports, stream.w, stream.x, operand_format, weight_port)
    return switched(design.netlist, inputs, stream.starts)


def combine(estimates: list[Estimate], weights: list[float]) -> Estimate:
    """Weighted mean of independent estimates (weights sum to 1), its CI half-width in quadrature."""
    value = sum(e.per_transition * w for e, w in zip(estimates, weights))
    half = math.sqrt(sum((e.half_width * w) ** 2 for e, w in zip(estimates, weights)))
    return Estimate(value, half, sum(e.transitions for e in estimates), sum(e.segments for e in estimates))


def ranks(values: list[float]) -> list[int]:
    """1 for the smallest value."""
    order = np.argsort(np.asarray(values), kind="stable")
    out = [0] * len(values)
    for r, i in enumerate(order):
        out[int(i)] = r + 1
    return out


def compare_designs(designs: list[PowerDesign], reference: Estimate, streams: dict[str, PeStream] | None,
                    operand_format: str, weight_port: str, pairs: int, seed: int, progress=None) -> list[dict]:
    """Per design: uniform and (with ``streams``) network energy per MAC relative to ``reference``, with ranks
    and whether the two streams rank the design differently."""
    rows = []
    for d in designs:
        if progress:
            progress(d.label)
        uni = uniform_energy(d, operand_format, pairs, seed).scaled(1 / reference.per_transition)
        row = {"design": d.label, "gates": d.gates, "uniform": uni.to_dict()}
        if streams:
            total = sum(s.macs for s in streams.values())
            per_layer = {n: stream_energy(d, s, operand_format, weight_port).scaled(1 / reference.per_transition)
                         for n, s in streams.items()}
            net = combine(list(per_layer.values()), [s.macs / total for s in streams.values()])
            row["network"] = net.to_dict()
            row["layers"] = {n: e.per_transition for n, e in per_layer.items()}
        rows.append(row)
    uni_rank = ranks([r["uniform"]["per_transition"] for r in rows])
    for r, k in zip(rows, uni_rank):
        r["rank_uniform"] = k
    if streams:
        for r, k in zip(rows, ranks([r["network"]["per_transition"] for r in rows])):
            r["rank_network"] = k
            r["rank_flip"] = k != r["rank_uniform"]
    return rows


def plan_energy(assignment: dict[str, str], streams: dict[str, PeStream], designs: dict,
                reference: Estimate, operand_format: str, weight_port: str, short=None) -> dict:
    """Per-layer and whole-network energy of a plan ({layer: multiplier}; ``designs`` holds every multiplier,
    ``exact`` included, as :class:`PowerDesign` (the multiplier alone) or :class:`PeDesign` (the whole PE)) on
    its own network streams."""
    rows, estimates, macs = [], [], []
    for name, s in streams.items():
        mult = assignment.get(name, "exact")
        d = designs[mult]
        e = pe_energy(d, s) if isinstance(d, PeDesign) else stream_energy(d, s, operand_format, weight_port)
        e = e.scaled(1 / reference.per_transition)
        rows.append({"layer": name, "short": short(name) if short else name, "multiplier": mult, "macs": s.macs,
                     "pairs": s.pairs, "segments": len(s.starts), "energy_per_mac": e.per_transition,
                     "ci95": e.half_width, "energy": e.per_transition * s.macs})
        estimates.append(e)
        macs.append(s.macs)
    total_macs = sum(macs)
    mean = combine(estimates, [m / total_macs for m in macs])
    energy = mean.per_transition * total_macs
    for r in rows:
        r["share"] = r["energy"] / energy if energy else 0.0
    return {"layers": rows, "macs": total_macs, "energy": energy, "ci95": mean.half_width * total_macs,
            "energy_per_mac": mean.per_transition, "energy_per_mac_ci95": mean.half_width}


def multiplier_design(name: str, operand_format: str, caps: dict | None = None) -> PowerDesign | None:
    """A library name, or a LUT file whose sidecar records its RTL (None when its sources are gone or changed:
    no energy, as for a bare table)."""
    if not is_lut_file(name):
        return library_design(name, operand_format, caps)
    lut = LUT.load(name)
    meta = lut.meta
    try:
        srcs = recorded_sources(meta, Path(name), f"multiplier {name}")
    except PyapproxError:
        return None
    if srcs is None:
        return None
    ports = meta.get("ports", {})
    signs = (ports.get("a_sign"), ports.get("b_sign"), ports.get("out_sign")) if ports.get("a_sign") else None
    return user_design(srcs, meta["top"], a=ports.get("a"), b=ports.get("b"), out=ports.get("out"),
                       params=meta.get("params"), defines=meta.get("defines"), ties=meta.get("ties"),
                       sign_ports=signs, signed=lut.operands == "signed", label=name, caps=caps)


def energy_costs(ctx: EvalContext, names, image_index: int = 0, segments: int = 64, min_pairs: int = 256,
                 pairs: int = 1 << 18, seed: int = 0, progress=None) -> tuple[dict, dict]:
    """Energy cost of each multiplier for a sweep or search context: ({name: {layer: relative energy per MAC}},
    {name: {"uniform": relative energy per MAC on uniform pairs, "network": MAC-weighted mean}}); a name
    without RTL maps to None in both. Streams: every conv of the context's exact-quantized network on image
    ``image_index`` of its data set."""
    fmt = ctx.accel.operand_format
    ev = Evaluator(ctx)
    if not 0 <= image_index < len(ev.data):
        raise PyapproxError(f"image {image_index}: the data set holds {len(ev.data)} images")
    image = preprocess(np.asarray(ev.data[image_index][0]))
    streams = network_streams(ev.qmodel, image, None, 8, 8, segments, min_pairs, seed)
    exact = library_design(exact_name(fmt), fmt)
    reference = uniform_energy(exact, fmt, pairs, seed)
    total = sum(s.macs for s in streams.values())
    costs, info = {}, {}
    for name in names:
        if progress:
            progress(name)
        d = exact if name == exact_name(fmt) else multiplier_design(name, fmt)
        if d is None:
            costs[name] = info[name] = None
            continue
        per = {n: stream_energy(d, s, fmt, ctx.accel.weight_port).per_transition / reference.per_transition
               for n, s in streams.items()}
        costs[name] = per
        info[name] = {"uniform": uniform_energy(d, fmt, pairs, seed).per_transition / reference.per_transition,
                      "network": sum(per[n] * s.macs for n, s in streams.items()) / total}
    return costs, info


# -- the whole PE ----------------------------------------------------------------------------------------------
PE_TOP = "mac_pe"


@dataclass(frozen=True)
class PeDesign:
    """The gate netlist of one PE of ``rtl/mac`` (operand-format logic, the multiplier, the accumulator adder, the
    accumulator, overflow and result registers) built around a multiplier, and its accumulator width."""

    label: str
    netlist: GateNetlist
    acc_bits: int
    operand_format: str

    @property
    def gates(self) -> int:
        return len(self.netlist.ops)


def pe_design(multiplier: str, accel, caps: dict | None = None) -> PeDesign:
    """``rtl/mac/mac_pe.v`` with ``multiplier`` (as plans name it: library name, LUT file with its RTL, or exact)
    and the accelerator's operand format, weight port, accumulator width and mode, synthesised with its
    flip-flops."""
    rtl = multiplier_rtl(multiplier, accel.operand_format)
    acfg = ArrayConfig(1, 1, accel.operand_format, accel.weight_port, accel.acc_bits, accel.acc_mode,
                       accel.requant_bits, p_bits=rtl.p_bits).check()
    params = {k: v for k, v in acfg.hdl_parameters().items()
              if k in ("OPERAND_SM", "WEIGHT_PORT", "P_BITS", "ACC_BITS", "ACC_SAT")}
    sources = rtl.build_sources(cache_dir("pe-adapters") / rtl.module)
    design = HdlDesign.create(sources, PE_TOP, params, rtl.build_defines())
    return PeDesign(multiplier, _loads(synthesize(design, sequential=True), caps), accel.acc_bits,
                    accel.operand_format)


def pe_inputs(pe: PeDesign, stream: PeStream) -> dict[str, np.ndarray]:
    """[lanes, cycles] input streams of the PE for a sampled layer stream: one lane per segment (segments of a
    layer have equal length), en = 1, first/last at tile boundaries, the bias loaded on first cycles."""
    n = len(stream.starts)
    t = stream.pairs // n
    if t * n != stream.pairs or np.any(stream.starts != np.arange(n) * t):
        raise PyapproxError(f"layer {stream.layer}: PE lanes need segments of equal length")
    step = np.arange(t) % stream.k
    shape = (n, t)
    mask = (1 << pe.acc_bits) - 1
    return {"rst": np.zeros(shape, np.int64), "en": np.ones(shape, np.int64),
            "first": np.broadcast_to(step == 0, shape).astype(np.int64),
            "last": np.broadcast_to(step == stream.k - 1, shape).astype(np.int64),
            "w": encode_codes(stream.w, pe.operand_format).reshape(shape),
            "x": encode_codes(stream.x, pe.operand_format).reshape(shape),
            "bias": (stream.bias & mask).reshape(shape)}


def pe_energy(pe: PeDesign, stream: PeStream) -> Estimate:
    """Switched capacitance per cycle of the whole PE on a sampled layer stream (load units), with a 95%
    confidence interval over lanes (segments)."""
    _, per_lane = lanes_activity(pe.netlist, pe_inputs(pe, stream))
    n, t = per_lane.shape[0], stream.pairs // len(stream.starts)
    if t < 2:
        raise PyapproxError(f"layer {stream.layer}: segments of at least two cycles are needed")
    values = per_lane / (t - 1)
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return Estimate(mean, half, n * (t - 1), n)


PE_UNIFORM_K = 16


def uniform_pe_stream(operand_format: str, segments: int = 64, cycles: int = 256, seed: int = 0) -> PeStream:
    """Uniform operand codes for a PE (random magnitudes and signs, or bytes), tiles of :data:`PE_UNIFORM_K`
    cycles, zero bias: the PE's counterpart of the uniform multiplier stream."""
    n = segments * cycles
    w, x = uniform_stream(n, seed, operand_format, signs=True)
    return PeStream("uniform", w, x, np.arange(segments) * cycles, np.zeros(n, np.int64), PE_UNIFORM_K, n, 0, [])


def compare_pes(names: list[str], accel, streams: dict[str, PeStream] | None, seed: int,
                progress=None, caps: dict | None = None) -> tuple[list[dict], Estimate]:
    """As :func:`compare_designs` for whole PEs: energy per cycle relative to the exact multiplier's PE on the
    uniform PE stream; returns the rows and that reference."""
    uniform = uniform_pe_stream(accel.operand_format, seed=seed)
    reference = pe_energy(pe_design("exact", accel, caps), uniform)
    rows = []
    for name in names:
        if progress:
            progress(name)
        pe = pe_design(name, accel, caps)
        uni = pe_energy(pe, uniform).scaled(1 / reference.per_transition)
        row = {"design": name, "gates": pe.gates, "flip_flops": len(pe.netlist.regs), "uniform": uni.to_dict()}
        if streams:
            total = sum(st.macs for st in streams.values())
            per_layer = {n: pe_energy(pe, st).scaled(1 / reference.per_transition) for n, st in streams.items()}
            row["network"] = combine(list(per_layer.values()), [st.macs / total for st in streams.values()]).to_dict()
            row["layers"] = {n: e.per_transition for n, e in per_layer.items()}
        rows.append(row)
    for r, k in zip(rows, ranks([r["uniform"]["per_transition"] for r in rows])):
        r["rank_uniform"] = k
    if streams:
        for r, k in zip(rows, ranks([r["network"]["per_transition"] for r in rows])):
            r["rank_network"] = k
            r["rank_flip"] = k != r["rank_uniform"]
    return rows, reference
