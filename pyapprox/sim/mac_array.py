"""Driving the RTL MAC array (``rtl/mac``): operand wire codes, the array's configuration, the multiplier RTL
in the PE's slot, tiles of operands with their reference arithmetic, and streaming tiles through ``mac_array``.

Low-level and model-free (no LUTs, no networks): :mod:`pyapprox.cosim` cuts real layers into :class:`Tile`
objects and compares; the MAC benches (``sim/mac``) stream random and directed tiles. The cocotb test module
that streams (:data:`TB_MODULE`) lives in ``pyapprox/sim/tb/``.

Tiling (the array's dataflow, documented in ``rtl/mac/mac_array.v``): a dense tile is ROWS output channels x
COLS output pixels over K accumulation steps, weights broadcast along rows and activations down columns; a
depthwise tile gives every PE its own activation stream (per-PE activation mode). Edge tiles are padded with
zero weights, bias and activations.

Multiplier RTL (:class:`MultiplierRtl`): a library name gives its Verilog (``sm(...)`` designs go into the
PE's sign-magnitude slot with their own sign logic); any other design is wrapped in a generated adapter module
(:func:`adapter`) when its ports are not the slot's ``(a, b, p)`` / ``sm_mult`` names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox.rtl import RTL_DIR
from pyapprox.rtl.library import resolve
from pyapprox.sim.cocotb_run import run_cocotb
from pyapprox.sim.hdl import HdlDesign, check_identifier, check_param_value
from pyapprox.sim.sweep import SIMULATORS

MAC_DIR = RTL_DIR / "mac"
TB_DIR = Path(__file__).resolve().parent / "tb"
TB_MODULE = "mac_array_tb"
ARRAY_TOP = "mac_array"
ARRAY_FILES = ("mac_array.v", "mac_pe.v", "mac_requant.v")
SM_PORTS = ("a_sign", "a_mag", "b_sign", "b_mag", "p_sign", "p_mag")
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


def check_array_args(rows: int, cols: int, acc_bits: int | None, operand_format: str, p_bits: int = 16) -> None:
    """Array-shape and accumulator checks that need neither the model nor a simulator."""
    ArrayConfig(rows, cols, operand_format, "a", 32 if acc_bits is None else acc_bits, "wrap", 16, S_BITS,
                p_bits).check()




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


def adapter(top: str, params: tuple, port_map: dict, ties: dict, out_width: int, sm: bool, widths: dict) -> tuple[str, str]:
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
    text = ("// generated by pyapprox.sim.mac_array: the multiplier slot of rtl/mac/mac_pe.v\n"
            f"// ({'sign-magnitude ports' if sm else 'ports a, b, p'}) around module {top}\n"
            f"module {name} (\n    " + ",\n    ".join(decl) + "\n);\n"
            f"    {top} {ptext}u_mult ({', '.join(conns)});\n"
            "endmodule\n")
    return name, text


def library_rtl(spec: str) -> MultiplierRtl:
    """The RTL of a library multiplier (raises for unknown names or unexpected port names)."""
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


# -- streaming through the RTL ----------------------------------------------------------------------------
def stream_arrays(tiles: list[Tile], acfg: ArrayConfig, stall_in: float = 0.0, stall_out: float = 0.0,
                  seed: int = 0) -> dict:
    """The .npz content that ``pyapprox/sim/tb/mac_array_tb.py`` streams: one beat per accumulation step."""
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
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_build_dir(rtl: MultiplierRtl, acfg: ArrayConfig, simulator: str) -> Path:
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
