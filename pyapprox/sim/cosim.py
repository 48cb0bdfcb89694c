"""Bit-exact co-simulation of the RTL MAC array (``rtl/mac``) with pyapprox's arithmetic on real layer data.

Pipeline (see :func:`cosim_model`): a real image goes through the calibrated quantized network with the
multiplier applied to the selected layers; forward hooks capture each selected layer's actual input codes
and its own accumulators (the ``ApproxConv2d`` inside the ``QConv2d``); the layer is cut into array tiles of
real operands (weight codes, im2col'ed activation codes with zero padding, bias codes, requantization
parameters); the tiles stream through ``mac_array`` built with exactly the multiplier RTL the LUT came from
(cocotb test module ``sim/mac/mac_array_tb.py``, on Icarus or Verilator); and every accumulator, overflow
flag and output code is compared with the layer's accumulators, per-output overflow flags of the same
arithmetic (:func:`tile_reference`, checked against those accumulators) and ``QConv2d.output_codes``.

Tiling (the array's dataflow, documented in ``rtl/mac/mac_array.v``): for a convolution whose output
channels each read several input channels (pointwise, full, grouped with more than one output channel
per group) a tile is ROWS output channels of one group x COLS output pixels, K = (input channels per
group) x kh x kw steps in im2col order, weights broadcast along rows and activations down columns. For
one output channel per group (depthwise) a tile is ROWS channels x COLS pixels in the per-PE activation
mode. Edge tiles are padded with zero weights, bias and activations; only real outputs are compared.

Multiplier RTL (:func:`multiplier_rtl`): a library name gives its Verilog (``sm(...)`` designs go into the
PE's sign-magnitude slot with their own sign logic); a LUT file gives the sources recorded in its sidecar by
``pyapprox lut gen`` (checked by SHA-256), with a generated adapter module when its ports are not the
array's ``(a, b, p)`` / ``sm_mult`` names. A bare table (.bin/.csv/.txt, or no sources) has no RTL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.rtl import RTL_DIR
from pyapprox.lut.sidecar import recorded_sources
from pyapprox.sim.cocotb_run import run_cocotb
from pyapprox.sim.hdl import check_identifier, check_param_value

ROOT = RTL_DIR.parent
MAC_DIR = RTL_DIR / "mac"
TB_DIR = ROOT / "sim" / "mac"
TB_MODULE = "mac_array_tb"
ARRAY_TOP = "mac_array"
ARRAY_FILES = ("mac_array.v", "mac_pe.v", "mac_requant.v")
SM_PORTS = ("a_sign", "a_mag", "b_sign", "b_mag", "p_sign", "p_mag")
SIMULATORS = ("verilator", "icarus")
MAX_DIM = 64
S_BITS = 6


# -- operand codes on the array's 9-bit wires ----------------------------------------------------------
def encode_codes(values, operand_format: str) -> np.ndarray:
    """Integer codes -> 9-bit wire codes: {sign, magnitude} (sign-magnitude) or 9-bit two's complement (int8)."""
    v = np.asarray(values, dtype=np.int64)
    if operand_format == "sign-magnitude":
        return np.where(v < 0, 256 | (-v), v)
    return v & 0x1FF


def decode_codes(wire, operand_format: str) -> np.ndarray:
    c = np.asarray(wire, dtype=np.int64) & 0x1FF
    if operand_format == "sign-magnitude":
        return np.where(c & 256, -(c & 255), c & 255)
    return c - 512 * (c >= 256)


def pack(values, width: int) -> int:
    """Fields ``values[i]`` (two's complement, ``width`` bits each) into one integer, field i at bits i*width."""
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(np.asarray(values).reshape(-1).tolist()):
        word |= (int(v) & mask) << (i * width)
    return word


def pack_rows(values, width: int) -> list[int]:
    """:func:`pack` of every row of a 2-D (or more) array, vectorised: one integer per leading index."""
    v = np.asarray(values, dtype=np.int64)
    n = v.shape[0]
    v = v.reshape(n, -1)
    if v.shape[1] == 0 or n == 0:
        return [0] * n
    bits = ((v[:, :, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8).reshape(n, -1)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack(word: int, n: int, width: int, signed: bool = True) -> list[int]:
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    out = []
    for i in range(n):
        v = (word >> (i * width)) & mask
        out.append(v - (1 << width) if signed and v >= half else v)
    return out


# -- the array's configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayConfig:
    """HDL parameters of ``mac_array`` (see the header of ``rtl/mac/mac_array.v``)."""

    rows: int = 8
    cols: int = 8
    operand_format: str = "sign-magnitude"
    weight_port: str = "a"
    acc_bits: int = 32
    acc_mode: str = "wrap"
    m_bits: int = 16
    s_bits: int = S_BITS
    p_bits: int = 16

    def check(self) -> "ArrayConfig":
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_DIM:
                raise PyapproxError(f"array configuration: --{name} {v!r} is not valid; expected 1..{MAX_DIM}")
        if self.operand_format not in ("sign-magnitude", "int8"):
            raise PyapproxError(f"array configuration: operand format {self.operand_format!r}; expected "
                                f"sign-magnitude or int8")
        if self.weight_port not in ("a", "b"):
            raise PyapproxError(f"array configuration: weight port {self.weight_port!r}; expected a or b")
        if self.acc_mode not in ("wrap", "saturate"):
            raise PyapproxError(f"array configuration: accumulator mode {self.acc_mode!r}; expected wrap or saturate")
        need = self.product_bits
        if not isinstance(self.acc_bits, (int, np.integer)) or self.acc_bits < need:
            raise PyapproxError(
                f"array configuration does not fit: a {self.acc_bits}-bit accumulator is narrower than a product "
                f"({need} bits with its sign for {self.operand_format} operands on a {self.p_bits}-bit multiplier "
                f"output); use --acc-bits {need} or more")
        if self.acc_bits > 62:
            raise PyapproxError(f"array configuration: --acc-bits {self.acc_bits} is more than 62")
        if not 2 <= self.m_bits <= 31 or self.acc_bits + self.m_bits > 62:
            raise PyapproxError(f"array configuration: a {self.m_bits}-bit requantization multiplier with a "
                                f"{self.acc_bits}-bit accumulator is not supported (at most 62 bits together)")
        return self

    @property
    def product_bits(self) -> int:
        return self.p_bits + 1 if self.operand_format == "sign-magnitude" else self.p_bits

    @property
    def acc_range(self) -> tuple[int, int]:
        return -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1

    def hdl_parameters(self) -> dict:
        return {"ROWS": self.rows, "COLS": self.cols, "OPERAND_SM": int(self.operand_format == "sign-magnitude"),
                "WEIGHT_PORT": int(self.weight_port == "b"), "P_BITS": self.p_bits, "ACC_BITS": self.acc_bits,
                "ACC_SAT": int(self.acc_mode == "saturate"), "M_BITS": self.m_bits, "S_BITS": self.s_bits}

    def describe(self) -> str:
        return (f"{self.rows}x{self.cols} array, {self.operand_format} operands, weight on port {self.weight_port}, "
                f"{self.acc_bits}-bit {self.acc_mode} accumulator, {self.m_bits}-bit requantization multiplier")

    def to_dict(self) -> dict:
        return asdict(self)


# -- the multiplier RTL -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiplierRtl:
    """The Verilog of one multiplier as the PE's multiplier slot sees it (see ``rtl/mac/mac_pe.v``)."""

    name: str  #: as given (library name or LUT file)
    origin: str  #: where the RTL came from, for messages and reports
    sources: tuple  #: the design's Verilog files (absolute paths)
    module: str  #: the module the PE instantiates (the design's top or a generated adapter)
    params: tuple = ()  #: HDL parameter overrides of ``module`` ((name, value) pairs)
    defines: tuple = ()  #: macros the design needs ((name, value) pairs)
    sign_magnitude: bool = False  #: sm_mult-style slot (sign ports) instead of (a, b, p)
    signed: bool = False  #: two's complement multiplier (int8 operands)
    p_bits: int = 16  #: product port width
    top: str = ""  #: the design's own top module
    adapter: str | None = None  #: Verilog of the generated adapter module, if any

    def build_defines(self) -> dict:
        d = dict(self.defines)
        d["MAC_MULT"] = self.module
        if self.params:
            d["MAC_MULT_PARAMS"] = "#(" + ",".join(f".{k}({v})" for k, v in self.params) + ")"
        if self.sign_magnitude:
            d["MAC_MULT_SM"] = "1"
        return d

    def build_sources(self, build_dir: Path) -> list[Path]:
        files = [MAC_DIR / f for f in ARRAY_FILES] + [Path(s) for s in self.sources]
        if self.adapter is not None:
            path = Path(build_dir) / f"{self.module}.v"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != self.adapter:
                path.write_text(self.adapter)
            files.append(path)
        return files

    def key(self) -> dict:
        return {"sources": sorted(hashlib.sha256(Path(s).read_bytes()).hexdigest() for s in self.sources),
                "module": self.module, "params": list(self.params), "defines": list(self.defines),
                "sm": self.sign_magnitude, "adapter": self.adapter}

    def describe(self) -> str:
        files = ", ".join(Path(s).name for s in self.sources)
        via = f" via adapter {self.module}" if self.adapter else ""
        params = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.top}{f' #({params})' if params else ''} from {files}{via}"

    def to_dict(self) -> dict:
        return {"name": self.name, "origin": self.origin, "top": self.top, "module": self.module,
                "sources": [str(s) for s in self.sources], "params": dict(self.params), "defines": dict(self.defines),
                "sign_magnitude_slot": self.sign_magnitude, "signed": self.signed, "p_bits": self.p_bits,
                "adapter": self.adapter is not None}


def _port_width(design, port: str) -> int:
    return design.ports()[port].width


def _adapter(top: str, params: tuple, port_map: dict, ties: dict, out_width: int, sm: bool, widths: dict) -> tuple[str, str]:
    """A module with the slot's port names around ``top`` (``port_map``: slot port -> design port).

    Every name pasted into it is a checked Verilog identifier and every value an integer or checked literal."""
    check_identifier(top, "top module")
    for name in list(port_map.values()) + list(ties):
        check_identifier(name, "port")
    for k, v in params:
        check_identifier(k, "parameter name")
        check_param_value(k, v)
    ties = {k: int(v) for k, v in ties.items()}
    out_width = int(out_width)
    digest = hashlib.sha256(json.dumps([top, params, port_map, ties, out_width, sm], sort_keys=True).encode())
    name = f"pyapprox_mac_mult_{digest.hexdigest()[:10]}"
    if sm:
        decl = ["input  wire       a_sign", "input  wire [7:0] a_mag", "input  wire       b_sign",
                "input  wire [7:0] b_mag", "output wire       p_sign", f"output wire [{out_width - 1}:0] p_mag"]
    else:
        decl = ["input  wire [7:0] a", "input  wire [7:0] b", f"output wire [{out_width - 1}:0] p"]
    conns = [f".{port}({slot})" for slot, port in port_map.items()]
    conns += [f".{port}({widths[port]}'d{int(value)})" for port, value in ties.items()]
    ptext = ("#(" + ", ".join(f".{k}({v})" for k, v in params) + ") ") if params else ""
    text = ("// generated by pyapprox.sim.cosim: the multiplier slot of rtl/mac/mac_pe.v\n"
            f"// ({'sign-magnitude ports' if sm else 'ports a, b, p'}) around module {top}\n"
            f"module {name} (\n    " + ",\n    ".join(decl) + "\n);\n"
            f"    {top} {ptext}u_mult ({', '.join(conns)});\n"
            "endmodule\n")
    return name, text


def _library_rtl(spec: str) -> MultiplierRtl:
    from pyapprox.rtl.library import resolve
    from pyapprox.sim.hdl import HdlDesign

    d = resolve(spec)
    hd = HdlDesign.create(d.files, d.top, d.params, d.defines)
    out = d.ports[2]
    p_bits = _port_width(hd, out)
    if d.sign_magnitude:
        if tuple(d.ports) + tuple(d.sign_ports) != ("a_mag", "b_mag", "p_mag", "a_sign", "b_sign", "p_sign"):
            raise PyapproxError(f"multiplier {spec}: unexpected sign-magnitude port names")
        return MultiplierRtl(spec, f"library design {d.name}", tuple(d.files), d.top, (),
                             tuple(d.defines.items()), True, False, p_bits, d.top)
    if tuple(d.ports) != ("a", "b", "p"):
        raise PyapproxError(f"multiplier {spec}: unexpected port names {d.ports}")
    return MultiplierRtl(spec, f"library design {d.name}", tuple(d.files), d.top,
                         tuple((k, str(v)) for k, v in d.params.items()), tuple(d.defines.items()), False,
                         d.signed, p_bits, d.top)


def _lut_file_rtl(spec: str) -> MultiplierRtl:
    from pyapprox.lut.table import LUT
    from pyapprox.sim.hdl import HdlDesign

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
    params, defines = hd.params, hd.defines  # validated and normalised
    have = hd.ports()
    for role in ("a", "b", "out") + (("a_sign", "b_sign", "out_sign") if sm else ()):
        if ports.get(role) not in have:
            raise PyapproxError(f"multiplier {spec}: port {ports.get(role)!r} ({role}) is not a port of {top} any more")
    p_bits = have[ports["out"]].width
    widths = {n: p.width for n, p in have.items()}
    if sm:
        port_map = {"a_sign": ports["a_sign"], "a_mag": ports["a"], "b_sign": ports["b_sign"], "b_mag": ports["b"],
                    "p_sign": ports["out_sign"], "p_mag": ports["out"]}
    else:
        port_map = {"a": ports["a"], "b": ports["b"], "p": ports["out"]}
    direct = all(k == v for k, v in port_map.items()) and not ties
    origin = f"LUT file {path} (RTL {', '.join(p.name for p in sources)})"
    if direct:
        return MultiplierRtl(spec, origin, tuple(sources), top, params, defines, sm, lut.signed, p_bits, top)
    name, text = _adapter(top, params, port_map, ties, p_bits, sm, widths)
    return MultiplierRtl(spec, origin, tuple(sources), name, (), defines, sm, lut.signed, p_bits, top, text)


def multiplier_rtl(spec: str, operand_format: str = "sign-magnitude") -> MultiplierRtl:
    """The RTL of a multiplier named as in plans (library name, LUT file, or ``exact``).

    ``exact`` is the exact product of the operand format: the structural array multiplier for
    sign-magnitude operands, Baugh-Wooley for int8. Raises :class:`PyapproxError` when there is no RTL or
    when the multiplier does not fit the operand format.
    """
    from pyapprox.lut.library import is_lut_file

    spec = str(spec).strip()
    if spec == "exact" and operand_format == "int8":
        rtl = _library_rtl("exact_signed")
        rtl = MultiplierRtl("exact", rtl.origin, rtl.sources, rtl.module, rtl.params, rtl.defines,
                            rtl.sign_magnitude, rtl.signed, rtl.p_bits, rtl.top)
    elif is_lut_file(spec):
        rtl = _lut_file_rtl(spec)
    else:
        rtl = _library_rtl(spec)
    if operand_format == "int8" and not rtl.signed:
        raise PyapproxError(f"multiplier {spec}: int8 operands need a signed (two's complement) multiplier; "
                            f"{rtl.describe()} is {'sign-magnitude' if rtl.sign_magnitude else 'unsigned'}")
    if operand_format == "sign-magnitude" and rtl.signed:
        raise PyapproxError(f"multiplier {spec}: sign-magnitude operands need an unsigned or sign-magnitude "
                            f"multiplier; {rtl.describe()} is signed")
    return rtl


# -- tiles --------------------------------------------------------------------------------------------------
@dataclass
class Tile:
    """One array tile of real operands and the outputs it must produce."""

    layer: str
    index: int  #: position in the layer's tile enumeration
    dw: bool  #: per-PE activation (depthwise) mode
    w: np.ndarray  #: [ROWS, K] weight codes
    x: np.ndarray | None  #: [K, COLS] activation codes (dense mode)
    xpe: np.ndarray | None  #: [ROWS, K, COLS] activation codes (depthwise mode)
    bias: np.ndarray  #: [ROWS] bias codes
    rq: dict  #: per row: m, mneg, shift, qlo, qhi
    channels: np.ndarray  #: [nr] output channel of each real row
    pixels: np.ndarray  #: [nc] flat output pixel of each real column
    exp_acc: np.ndarray | None = None  #: [nr, nc]
    exp_ovf: np.ndarray | None = None
    exp_q: np.ndarray | None = None

    @property
    def k(self) -> int:
        return self.w.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.channels), len(self.pixels)


def tile_products(tile: Tile, ptable: np.ndarray, offset: int) -> np.ndarray:
    """[ROWS, K, COLS] products ``ptable[w + offset, x + offset]``."""
    pt = np.asarray(ptable, dtype=np.int64)
    w = tile.w.astype(np.int64)[:, :, None] + offset
    x = (tile.xpe if tile.dw else tile.x[None, :, :]).astype(np.int64) + offset
    return pt[w, x]


def tile_reference(tile: Tile, ptable: np.ndarray, offset: int, acc_bits: int, acc_mode: str):
    """Accumulators and per-output overflow flags [ROWS, COLS] of a tile, by the number model: start at the
    bias, add the products in order, wrap or saturate after every addition, flag a running sum that left
    the range (:func:`pyapprox.nn.functional.lut_conv2d_reference` gives the same sums and the flag count)."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    prods = tile_products(tile, ptable, offset)
    b = tile.bias.astype(np.int64)[:, None] * np.ones((1, prods.shape[2]), np.int64)
    flagged = (b < lo) | (b > hi)
    if acc_mode == "wrap":
        run = b[:, None, :] + np.cumsum(prods, axis=1)
        flagged |= ((run < lo) | (run > hi)).any(axis=1)
        last = run[:, -1, :] if prods.shape[1] else b
        acc = ((last - lo) % (1 << acc_bits)) + lo
    else:
        acc = np.clip(b, lo, hi)
        for k in range(prods.shape[1]):
            acc = acc + prods[:, k, :]
            flagged |= (acc < lo) | (acc > hi)
            acc = np.clip(acc, lo, hi)
    return acc, flagged


def _select(total: int, n: int | None) -> list[int]:
    if n is None or n >= total:
        return list(range(total))
    if n <= 1:
        return [0]
    return sorted(set(np.linspace(0, total - 1, n).round().astype(int).tolist()))


def layer_tiles(name: str, qconv, codes, acc, acfg: ArrayConfig, n_tiles: int | None) -> tuple[list[Tile], int, dict]:
    """Tiles of real operands of one layer (see the module docstring), with the expected outputs.

    ``codes`` [1, C, H, W] are the layer's input codes and ``acc`` [1, O, Ho, Wo] its own accumulators.
    Returns (tiles, total number of tiles of the layer, layer description).
    """
    import torch

    from pyapprox.nn import functional as QF

    conv = qconv.conv
    wc = conv.weight_codes.to(torch.int64)
    o, cg, kh, kw = wc.shape
    groups = conv.groups
    og = o // groups
    _, _, ho, wo = acc.shape
    cols = QF.im2col(codes, (kh, kw), conv.stride, conv.padding, conv.dilation)[0]  # [C*kh*kw, L]
    L = cols.shape[1]
    k = cg * kh * kw
    cols = cols.view(groups, k, L).numpy()
    wmat = wc.view(o, k).numpy()
    bias = conv.bias_codes.to(torch.int64).numpy()
    acc_flat = acc[0].reshape(o, L).to(torch.int64).numpy()
    requantized = qconv.s_out is not None
    if requantized:
        q_flat = qconv.output_codes(acc.to(torch.int64))[0].reshape(o, L).to(torch.int64).numpy()
        m = qconv.rq_mult.to(torch.int64).numpy()
        mneg = qconv.rq_mult_neg.to(torch.int64).numpy() if qconv.rq_mult_neg is not None else m
        shift = qconv.rq_shift.to(torch.int64).numpy()
        qlo = np.full(o, int(qconv.qlo), np.int64)
        qhi = np.full(o, int(qconv.qhi), np.int64)
    else:
        q_flat = None
        m, mneg = np.ones(o, np.int64), np.ones(o, np.int64)
        shift = np.zeros(o, np.int64)
        qmin, qmax = (-128, 127) if acfg.operand_format == "int8" else (-255, 255)
        qlo, qhi = np.full(o, qmin, np.int64), np.full(o, qmax, np.int64)
    rows, ccount = acfg.rows, acfg.cols
    dw = og == 1 and groups > 1  # one output channel per group: per-PE activations
    # enumerate tiles: (group or channel block, pixel block)
    blocks = []
    if dw:
        for rb in range(0, o, rows):
            for cb in range(0, L, ccount):
                blocks.append((None, rb, cb))
    else:
        for g in range(groups):
            for rb in range(0, og, rows):
                for cb in range(0, L, ccount):
                    blocks.append((g, g * og + rb, cb))
    total = len(blocks)
    tiles = []
    for idx in _select(total, n_tiles):
        g, r0, c0 = blocks[idx]
        r1 = min(r0 + rows, (g + 1) * og if g is not None else o)
        c1 = min(c0 + ccount, L)
        nr, nc = r1 - r0, c1 - c0
        chans = np.arange(r0, r1)
        pix = np.arange(c0, c1)
        w = np.zeros((rows, k), np.int64)
        w[:nr] = wmat[r0:r1]
        b = np.zeros(rows, np.int64)
        b[:nr] = bias[r0:r1]
        rq = {}
        for key, arr, fill in (("m", m, 1), ("mneg", mneg, 1), ("shift", shift, 0), ("qlo", qlo, 0), ("qhi", qhi, 0)):
            v = np.full(rows, fill, np.int64)
            v[:nr] = arr[r0:r1]
            rq[key] = v
        if dw:
            xpe = np.zeros((rows, k, ccount), np.int64)
            xpe[:nr, :, :nc] = cols[r0:r1, :, c0:c1]  # channel c reads group c
            tile = Tile(name, idx, True, w, None, xpe, b, rq, chans, pix)
        else:
            x = np.zeros((k, ccount), np.int64)
            x[:, :nc] = cols[g, :, c0:c1]
            tile = Tile(name, idx, False, w, x, None, b, rq, chans, pix)
        tile.exp_acc = acc_flat[r0:r1, c0:c1]
        ref_acc, ref_ovf = tile_reference(tile, conv.ptable, conv.offset, acfg.acc_bits, acfg.acc_mode)
        if not np.array_equal(ref_acc[:nr, :nc], tile.exp_acc):
            bad = np.argwhere(ref_acc[:nr, :nc] != tile.exp_acc)[0]
            raise PyapproxError(f"layer {name}: pyapprox's layer accumulators and its tile reference disagree at "
                                f"channel {chans[bad[0]]}, pixel {pix[bad[1]]} ({tile.exp_acc[tuple(bad)]} vs "
                                f"{ref_acc[tuple(bad)]}); the number model is inconsistent")
        tile.exp_ovf = ref_ovf[:nr, :nc]
        tile.exp_q = q_flat[r0:r1, c0:c1] if q_flat is not None else None
        tiles.append(tile)
    info = {"kind": conv.kind, "in_channels": cg * groups, "out_channels": o, "kernel": [kh, kw],
            "stride": list(conv.stride), "padding": list(conv.padding), "dilation": list(conv.dilation),
            "groups": groups, "output": [ho, wo], "k": k, "mode": "depthwise" if dw else "dense",
            "requantized": requantized, "act": qconv.act, "multiplier": conv.multiplier}
    return tiles, total, info


def check_fits(name: str, qconv, acfg: ArrayConfig) -> None:
    """Raise before any simulation when the layer's arithmetic does not fit the array configuration."""
    conv = qconv.conv
    if conv.acc_bits != acfg.acc_bits or conv.acc_mode != acfg.acc_mode:
        raise PyapproxError(f"layer {name}: the model accumulates in {conv.acc_bits} bits ({conv.acc_mode}) but the "
                            f"array in {acfg.acc_bits} bits ({acfg.acc_mode})")
    if conv.operand_format != acfg.operand_format or conv.weight_port != acfg.weight_port:
        raise PyapproxError(f"layer {name}: operand format / weight port of the model ({conv.operand_format}, "
                            f"{conv.weight_port}) differ from the array's ({acfg.operand_format}, {acfg.weight_port})")
    pmax = int(np.abs(conv.ptable).max())
    if pmax.bit_length() + 1 > acfg.acc_bits:
        raise PyapproxError(f"layer {name}: a product of {pmax} needs {pmax.bit_length() + 1} bits with its sign, more "
                            f"than the {acfg.acc_bits}-bit accumulator")
    if pmax >= (1 << acfg.p_bits):
        raise PyapproxError(f"layer {name}: products up to {pmax} do not fit the multiplier's {acfg.p_bits}-bit output")
    if qconv.s_out is not None:
        mult = qconv.rq_mult.numpy()
        shift = qconv.rq_shift.numpy()
        if int(mult.max()) >= (1 << acfg.m_bits) or int(mult.min()) < 0:
            raise PyapproxError(f"layer {name}: requantization multipliers up to {int(mult.max())} do not fit "
                                f"{acfg.m_bits} bits")
        if int(shift.min()) < 0 or int(shift.max()) >= (1 << acfg.s_bits):
            raise PyapproxError(f"layer {name}: requantization shifts {int(shift.min())}..{int(shift.max())} are outside "
                                f"the requantization unit's 0..{(1 << acfg.s_bits) - 1}")


# -- streaming through the RTL ----------------------------------------------------------------------------
def stream_arrays(tiles: list[Tile], acfg: ArrayConfig, stall_in: float = 0.0, stall_out: float = 0.0,
                  seed: int = 0) -> dict:
    """The .npz content that ``sim/mac/mac_array_tb.py`` streams: one beat per accumulation step."""
    rows, cols = acfg.rows, acfg.cols
    nbeats = sum(t.k for t in tiles)
    b_tile = np.zeros(nbeats, np.int32)
    b_first = np.zeros(nbeats, np.uint8)
    b_last = np.zeros(nbeats, np.uint8)
    b_dw = np.zeros(nbeats, np.uint8)
    b_w = np.zeros((nbeats, rows), np.int64)
    b_x = np.zeros((nbeats, cols), np.int64)
    any_dw = any(t.dw for t in tiles)
    b_xpe = np.zeros((nbeats if any_dw else 0, rows, cols), np.int64)
    i = 0
    for ti, t in enumerate(tiles):
        k = t.k
        if k < 1:
            raise PyapproxError(f"layer {t.layer}: a tile needs at least one accumulation step")
        sl = slice(i, i + k)
        b_tile[sl] = ti
        b_first[i] = 1
        b_last[i + k - 1] = 1
        b_dw[sl] = int(t.dw)
        b_w[sl] = t.w.T
        if t.dw:
            b_xpe[sl] = t.xpe.transpose(1, 0, 2)
        else:
            b_x[sl] = t.x
        i += k
    fmt = acfg.operand_format
    per_tile = {key: np.stack([t.rq[key] for t in tiles]) for key in ("m", "mneg", "shift", "qlo", "qhi")}
    return {
        "rows": rows, "cols": cols, "acc_bits": acfg.acc_bits, "m_bits": acfg.m_bits, "s_bits": acfg.s_bits,
        "operand_sm": int(fmt == "sign-magnitude"), "stall_in": float(stall_in), "stall_out": float(stall_out),
        "seed": int(seed), "tiles": len(tiles),
        "beat_tile": b_tile, "beat_first": b_first, "beat_last": b_last, "beat_dw": b_dw,
        "beat_w": encode_codes(b_w, fmt), "beat_x": encode_codes(b_x, fmt), "beat_xpe": encode_codes(b_xpe, fmt),
        "bias": np.stack([t.bias for t in tiles]), **per_tile,
    }


@contextlib.contextmanager
def _locked(build_dir: Path):
    import fcntl

    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_build_dir(rtl: MultiplierRtl, acfg: ArrayConfig, simulator: str) -> Path:
    from pyapprox.cache import cache_dir, content_key

    key = content_key({"rtl": rtl.key(), "array": acfg.hdl_parameters(),
                       "mac": sorted(hashlib.sha256((MAC_DIR / f).read_bytes()).hexdigest() for f in ARRAY_FILES)})
    return cache_dir("cosim") / key / simulator


def run_stream(stream: dict, rtl: MultiplierRtl, acfg: ArrayConfig, simulator: str = "verilator",
               build_dir: Path | None = None) -> dict:
    """Build ``mac_array`` with ``rtl`` and stream ``stream`` (:func:`stream_arrays`) through it.

    Returns the TB's results: ``acc``, ``ovf``, ``q`` [tiles, ROWS, COLS] (q decoded to integers),
    ``cycles``, ``seconds`` (streaming loop), ``build_seconds``.
    """
    if simulator not in SIMULATORS:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: {', '.join(SIMULATORS)}")
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir(rtl, acfg, simulator)
    with _locked(build_dir):
        stream_file = build_dir / "stream.npz"
        result_file = build_dir / "result.npz"
        result_file.unlink(missing_ok=True)
        np.savez(stream_file, **stream)
        sources = rtl.build_sources(build_dir)
        t0 = time.perf_counter()
        error = None
        try:
            run_cocotb(simulator, sources, ARRAY_TOP, TB_MODULE, TB_DIR, build_dir, acfg.hdl_parameters(),
                          rtl.build_defines(),
                          {"PYAPPROX_STREAM": str(stream_file), "PYAPPROX_RESULT": str(result_file)})
        except PyapproxError as exc:
            error = exc
        wall = time.perf_counter() - t0
        if not result_file.exists():
            raise error or PyapproxError(f"{simulator}: the MAC array bench wrote no results")
        with np.load(result_file) as z:
            res = {k: z[k] for k in z.files}
    res["wall_seconds"] = wall
    res["build_seconds"] = max(0.0, wall - float(res.get("seconds", 0.0)))
    res["error"] = str(error) if error else None
    fmt = acfg.operand_format
    res["q"] = decode_codes(res["q_wire"], fmt)
    return res


# -- the comparison -----------------------------------------------------------------------------------------
@dataclass
class CosimReport:
    multiplier: str
    rtl: dict
    simulator: str
    array: dict
    layers: list = field(default_factory=list)
    tiles: int = 0
    outputs: int = 0
    mismatches: int = 0
    field_mismatches: dict = field(default_factory=dict)
    first_mismatches: list = field(default_factory=list)
    overflows: int = 0
    sim: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def compare(tiles: list[Tile], res: dict, keep: int = 10) -> tuple[dict, list, dict]:
    """Per-layer counts and the first ``keep`` mismatches (tile, row, col, field, expected, got)."""
    per_layer: dict[str, dict] = {}
    first = []
    unknown = res.get("unknown")
    for ti, t in enumerate(tiles):
        nr, nc = t.shape
        got_acc = res["acc"][ti, :nr, :nc]
        got_ovf = res["ovf"][ti, :nr, :nc].astype(bool)
        got_q = res["q"][ti, :nr, :nc]
        stats = per_layer.setdefault(t.layer, {"tiles": 0, "outputs": 0, "mismatches": 0, "overflows": 0,
                                               "acc": 0, "ovf": 0, "q": 0, "unknown": 0})
        stats["tiles"] += 1
        stats["outputs"] += nr * nc
        stats["overflows"] += int(t.exp_ovf.sum())
        bad_acc = got_acc != t.exp_acc
        bad_ovf = got_ovf != t.exp_ovf
        bad_q = (got_q != t.exp_q) if t.exp_q is not None else np.zeros_like(bad_acc)
        bad_x = unknown[ti, :nr, :nc].astype(bool) if unknown is not None else np.zeros_like(bad_acc)
        bad = bad_acc | bad_ovf | bad_q | bad_x
        stats["acc"] += int(bad_acc.sum())
        stats["ovf"] += int(bad_ovf.sum())
        stats["q"] += int(bad_q.sum())
        stats["unknown"] += int(bad_x.sum())
        stats["mismatches"] += int(bad.sum())
        for r, c in np.argwhere(bad)[: max(0, keep - len(first))]:
            exp = {"acc": int(t.exp_acc[r, c]), "ovf": bool(t.exp_ovf[r, c])}
            got = {"acc": int(got_acc[r, c]), "ovf": bool(got_ovf[r, c])}
            if t.exp_q is not None:
                exp["q"] = int(t.exp_q[r, c])
                got["q"] = int(got_q[r, c])
            if bad_x[r, c]:
                got["unknown"] = True
            first.append({"layer": t.layer, "tile": int(t.index), "row": int(r), "col": int(c),
                          "channel": int(t.channels[r]), "pixel": int(t.pixels[c]), "expected": exp, "got": got})
    fields = {f: sum(s[f] for s in per_layer.values()) for f in ("acc", "ovf", "q", "unknown")}
    return per_layer, first, fields


# -- the model side -----------------------------------------------------------------------------------------
class _Done(Exception):
    pass


def capture_layers(qmodel, names: list[str], image) -> dict:
    """Run ``image`` [1, 3, H, W] through ``qmodel`` and capture each named layer's input codes (via
    ``QConv2d.quantize_input``) and its own accumulators (the ``ApproxConv2d`` output)."""
    import torch

    mods = dict(qmodel.named_modules())
    got: dict[str, dict] = {}
    handles = []

    def conv_hook(name):
        def hook(module, inputs, output):
            got[name]["codes"] = inputs[0].detach().clone()
            got[name]["acc"] = output.detach().to(torch.int64).clone()
            if len([n for n in names if "acc" in got.get(n, {})]) == len(names):
                raise _Done()
        return hook

    def q_hook(name):
        def hook(module, inputs):
            got.setdefault(name, {})["quantized"] = module.quantize_input(inputs[0]).detach().clone()
        return hook

    for n in names:
        handles.append(mods[n].register_forward_pre_hook(q_hook(n)))
        handles.append(mods[n].conv.register_forward_hook(conv_hook(n)))
    try:
        with torch.no_grad():
            qmodel(image)
    except _Done:
        pass
    finally:
        for h in handles:
            h.remove()
    for n in names:
        if n not in got or "acc" not in got[n]:
            raise PyapproxError(f"layer {n} did not run on this image")
        if image.shape[0] != 1:
            raise PyapproxError("co-simulation takes one image")
        if not torch.equal(got[n]["quantized"].to(torch.int64), got[n]["codes"].to(torch.int64)):
            raise PyapproxError(f"layer {n}: the conv's input codes differ from QConv2d.quantize_input of its input")
    return got


def resolve_layers(qmodel, selectors) -> list[str]:
    from pyapprox.nn.plan import select
    from pyapprox.nn.quant import qconv_layers

    layers = {n: m.conv.kind for n, m in qconv_layers(qmodel)}
    if not layers:
        raise PyapproxError("the model has no quantized convolutions; quantize it first")
    out: list[str] = []
    for sel in ([selectors] if isinstance(selectors, str) else list(selectors)):
        for n in select(sel, layers):
            if n not in out:
                out.append(n)
    return [n for n in layers if n in out]  # forward order


def cosim_model(qmodel, image, selectors, multiplier: str, *, rows: int = 8, cols: int = 8, tiles: int | None = 8,
                simulator: str = "verilator", build_dir: Path | None = None, rtl: MultiplierRtl | None = None,
                keep: int = 10, progress=None) -> CosimReport:
    """Co-simulate the selected layers of a calibrated quantized model (see the module docstring).

    ``qmodel`` is not modified (the multiplier is applied to a copy). ``image`` is [1, 3, H, W] preprocessed.
    ``tiles`` per layer (None: all). Every error that can be known before simulating is raised first.
    """
    import copy

    from pyapprox.nn.plan import approximate
    from pyapprox.nn.quant import qconv_layers

    say = progress or (lambda msg: None)
    cfg = getattr(qmodel, "accel_config", None)
    if cfg is None:
        raise PyapproxError("the model is not quantized (no accelerator configuration)")
    acfg = ArrayConfig(rows, cols, cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode,
                       cfg.requant_bits).check()
    if tiles is not None and tiles < 1:
        raise PyapproxError(f"--tiles must be at least 1, got {tiles}")
    if simulator not in SIMULATORS:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: {', '.join(SIMULATORS)}")
    rtl = rtl or multiplier_rtl(multiplier, cfg.operand_format)
    acfg = ArrayConfig(rows, cols, cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode,
                       cfg.requant_bits, S_BITS, rtl.p_bits).check()
    names = resolve_layers(qmodel, selectors)
    model = copy.deepcopy(qmodel)
    approximate(model, [(n, multiplier) for n in names])
    mods = dict(qconv_layers(model))
    for n in names:
        check_fits(n, mods[n], acfg)
    say(f"running the image through the quantized model ({len(names)} layer(s) captured)")
    captured = capture_layers(model, names, image)
    all_tiles: list[Tile] = []
    layer_info = []
    for n in names:
        ts, total, info = layer_tiles(n, mods[n], captured[n]["codes"], captured[n]["acc"], acfg, tiles)
        from pyapprox.nn.plan import aliases

        al = aliases(n)
        info.update({"name": n, "short": al[1] if len(al) > 1 else n, "tiles": len(ts), "total_tiles": total,
                     "macs": int(sum(len(t.channels) * len(t.pixels) * t.k for t in ts))})
        layer_info.append(info)
        all_tiles += ts
    stream = stream_arrays(all_tiles, acfg)
    say(f"streaming {len(all_tiles)} tiles ({len(stream['beat_tile'])} beats) through {ARRAY_TOP} on {simulator}")
    res = run_stream(stream, rtl, acfg, simulator, build_dir)
    per_layer, first, fields = compare(all_tiles, res, keep)
    for info in layer_info:
        info.update(per_layer[info["name"]])
    beats = int(len(stream["beat_tile"]))
    array_macs = beats * acfg.rows * acfg.cols
    useful = int(sum(i["macs"] for i in layer_info))
    secs = float(res["seconds"])
    sim = {"beats": beats, "cycles": int(res["cycles"]), "seconds": round(secs, 3),
           "build_seconds": round(float(res["build_seconds"]), 3), "array_macs": array_macs, "macs": useful,
           "macs_per_s": round(array_macs / secs, 1) if secs > 0 else None,
           "useful_macs_per_s": round(useful / secs, 1) if secs > 0 else None,
           "cycles_per_s": round(int(res["cycles"]) / secs, 1) if secs > 0 else None}
    rep = CosimReport(multiplier, rtl.to_dict(), simulator, acfg.to_dict(), layer_info, len(all_tiles),
                      int(sum(i["outputs"] for i in layer_info)), int(sum(i["mismatches"] for i in layer_info)),
                      fields, first, int(sum(i["overflows"] for i in layer_info)), sim,
                      {"accelerator": cfg.to_dict(), "bench_error": res.get("error")})
    return rep


def format_report(rep: CosimReport) -> str:
    lines = [f"multiplier: {rep.multiplier} = {rep.rtl['top']} from "
             f"{', '.join(Path(s).name for s in rep.rtl['sources'])}"
             + (" (generated adapter)" if rep.rtl["adapter"] else "") + f"; simulator: {rep.simulator}"]
    a = rep.array
    lines.append(f"array: {a['rows']}x{a['cols']} PEs, {a['operand_format']} operands, weight on port "
                 f"{a['weight_port']}, {a['acc_bits']}-bit {a['acc_mode']} accumulator, {a['m_bits']}-bit "
                 f"requantization multiplier")
    lines.append(f"{'layer':<20} {'kind':<5} {'shape':<22} {'K':>5} {'tiles':>11} {'outputs':>8} {'ovf':>6} "
                 f"{'mismatch':>8}")
    for li in rep.layers:
        shape = (f"{li['in_channels']}->{li['out_channels']} {li['kernel'][0]}x{li['kernel'][1]}"
                 f" s{li['stride'][0]}" + (f" g{li['groups']}" if li["groups"] > 1 else ""))
        lines.append(f"{li['short']:<20} {li['kind']:<5} {shape:<22} {li['k']:>5} "
                     f"{str(li['tiles']) + '/' + str(li['total_tiles']):>11} {li['outputs']:>8} "
                     f"{li['overflows']:>6} {li['mismatches']:>8}")
    f = rep.field_mismatches
    lines.append(f"compared {rep.outputs:,} outputs in {rep.tiles} tiles (accumulator, overflow flag, output code): "
                 f"{rep.mismatches} mismatches (acc {f.get('acc', 0)}, ovf {f.get('ovf', 0)}, code {f.get('q', 0)}"
                 + (f", X/Z {f['unknown']}" if f.get("unknown") else "") + f"); {rep.overflows} outputs overflowed")
    for m in rep.first_mismatches[:5]:
        lines.append(f"  mismatch: layer {m['layer']} tile {m['tile']} row {m['row']} col {m['col']} "
                     f"(channel {m['channel']}, pixel {m['pixel']}): expected {m['expected']}, got {m['got']}")
    s = rep.sim
    lines.append(f"simulated: {s['beats']:,} beats in {s['cycles']:,} cycles, {s['array_macs']:,} array MACs "
                 f"({s['macs']:,} on real outputs) in {s['seconds']:.2f} s = {s['macs_per_s'] or 0:,.0f} MAC/s "
                 f"({s['cycles_per_s'] or 0:,.0f} cycles/s); build and start-up {s['build_seconds']:.1f} s")
    return "\n".join(lines)


def check_array_args(rows: int, cols: int, acc_bits: int | None, operand_format: str, p_bits: int = 16) -> None:
    """Array-shape and accumulator checks that need neither the model nor a simulator."""
    ArrayConfig(rows, cols, operand_format, "a", 32 if acc_bits is None else acc_bits, "wrap", 16, S_BITS,
                p_bits).check()


__all__ = ["ArrayConfig", "MultiplierRtl", "Tile", "CosimReport", "multiplier_rtl", "layer_tiles", "tile_reference",
           "stream_arrays", "run_stream", "compare", "capture_layers", "resolve_layers", "cosim_model",
           "format_report", "check_array_args", "encode_codes", "decode_codes", "pack", "pack_rows", "unpack"]
