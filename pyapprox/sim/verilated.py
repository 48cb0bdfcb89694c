"""The RTL MAC array as an in-process compiled Verilator model, fed whole layers from numpy buffers.

:func:`build_array` Verilates ``rtl/mac/mac_array.v`` with a multiplier's RTL in the PE slot (:class:`MultiplierRtl`,
the same sources, parameters, macros and generated adapter as the cocotb path), behind the register slice
``native/mac_array_drv.v``, together with the C++ harness ``native/mac_array_harness.cpp`` into one shared library
(``verilator --cc --build``, every name and value checked before it reaches the command line, arguments as a list).
The library is cached by content under ``$PYAPPROX_CACHE/verilated/<key>`` (sources, HDL parameters, harness,
Verilator version, tracing), built in a private directory and renamed into place, so a crashed or concurrent
build never leaves a half-built model behind.

:meth:`VerilatedArray.run` streams tiles of one layer (:class:`ArrayJob`, validated before any pointer reaches C)
through the model on ``threads`` model instances and returns every output: accumulator, overflow flag and
requantized code. Tiles are the array's dataflow (``mac_array.v``): a dense tile is ROWS output channels of one
group x COLS output pixels over K steps; a depthwise tile gives every PE its own activation (channel r0 + r reads
group r0 + r). A build with ``trace=True`` also dumps a VCD of a run (one thread).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox.sim import tools
from pyapprox.sim.hdl import check_identifier, check_macro_value, check_param_value, check_source_path
from pyapprox.sim.mac_array import ARRAY_FILES, MAC_DIR, ArrayConfig, MultiplierRtl, _locked

NATIVE_DIR = Path(__file__).resolve().parent / "native"
DRIVER_V = NATIVE_DIR / "mac_array_drv.v"
HARNESS = NATIVE_DIR / "mac_array_harness.cpp"
DRIVER_TOP = "mac_array_drv"
LIBRARY = "libpyapprox_mac_array.so"
#: C++ optimisation of the generated model (Verilator's default -Os is slower on these flat gate-level models).
OPT_FAST = "-O2"


class _PaLayer(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_int32) for n in ("rows", "cols", "acc_bits", "m_bits", "s_bits", "dw", "k", "L", "n_out")]
                + [(n, ctypes.c_void_p) for n in ("w", "x", "bias", "m", "mneg", "shift", "qlo", "qhi", "blocks")]
                + [("n_blocks", ctypes.c_int64), ("acc", ctypes.c_void_p), ("ovf", ctypes.c_void_p),
                   ("q", ctypes.c_void_p)])


@dataclass
class ArrayJob:
    """One layer (or a pixel range of it) as the array computes it; codes are 9-bit wire codes (``encode_codes``).

    ``w`` [O, K], ``x`` [G, K, L], per output channel ``bias``, ``m``, ``mneg``, ``shift``, ``qlo``, ``qhi`` [O],
    ``blocks`` [n, 4] tiles (group, r0, r1, c0), ``dw`` depthwise (per-PE activation) mode."""

    w: np.ndarray
    x: np.ndarray
    bias: np.ndarray
    rq: dict
    blocks: np.ndarray
    dw: bool

    def check(self, acfg: ArrayConfig) -> "ArrayJob":
        self.w = np.ascontiguousarray(self.w, np.int16)
        self.x = np.ascontiguousarray(self.x, np.int16)
        self.bias = np.ascontiguousarray(self.bias, np.int64)
        self.rq = {k: np.ascontiguousarray(self.rq[k], np.int64) for k in ("m", "mneg", "shift", "qlo", "qhi")}
        self.blocks = np.ascontiguousarray(self.blocks, np.int64).reshape(-1, 4)
        o, k = self.w.shape
        if self.x.ndim != 3 or self.x.shape[1] != k or k < 1:
            raise PyapproxError(f"array job: activations {self.x.shape} do not match weights {self.w.shape}")
        g, L = self.x.shape[0], self.x.shape[2]
        for name, v in [("bias", self.bias)] + list(self.rq.items()):
            if v.shape != (o,):
                raise PyapproxError(f"array job: {name} has shape {v.shape}, expected ({o},)")
        if ((self.w < 0) | (self.w > 511)).any() or ((self.x < 0) | (self.x > 511)).any():
            raise PyapproxError("array job: operand wire codes must be 9-bit (0..511)")
        b = self.blocks
        if len(b):
            grp, r0, r1, c0 = b.T
            bad = (r0 < 0) | (r1 <= r0) | (r1 > o) | (r1 - r0 > acfg.rows) | (c0 < 0) | (c0 >= L)
            bad |= (r1 > g) if self.dw else ((grp < 0) | (grp >= g))
            if bad.any():
                raise PyapproxError(f"array job: tile {b[np.argmax(bad)].tolist()} is outside the layer "
                                    f"({o} channels, {g} groups, {L} pixels, {acfg.rows} rows)")
        return self


class VerilatedArray:
    """A loaded build of :func:`build_array` (one per process and build)."""

    def __init__(self, path: Path, acfg: ArrayConfig, rtl: MultiplierRtl, traced: bool, build_seconds: float):
        self.path, self.acfg, self.rtl, self.traced, self.build_seconds = path, acfg, rtl, traced, build_seconds
        self._lib = ctypes.CDLL(str(path))
        self._lib.pa_run.restype = ctypes.c_int64
        self._lib.pa_run.argtypes = [ctypes.POINTER(_PaLayer), ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                     ctypes.c_int]

    def run(self, job: ArrayJob, threads: int = 2, vcd: Path | None = None) -> dict:
        """Stream ``job`` through the array; ``acc`` [O, L] int64, ``ovf`` [O, L] bool and ``q_wire`` [O, L] (the
        output codes on the wire) for every output of every tile (others stay 0), ``cycles``, ``seconds``."""
        a = self.acfg
        job.check(a)
        o, k = job.w.shape
        L = job.x.shape[2]
        acc = np.zeros((o, L), np.int64)
        ovf = np.zeros((o, L), np.uint8)
        q = np.zeros((o, L), np.int16)
        keep = [job.w, job.x, job.bias, *job.rq.values(), job.blocks, acc, ovf, q]
        p = _PaLayer(a.rows, a.cols, a.acc_bits, a.m_bits, a.s_bits, int(job.dw), k, L, o,
                     *[arr.ctypes.data for arr in keep[:9]], len(job.blocks), acc.ctypes.data, ovf.ctypes.data,
                     q.ctypes.data)
        err = ctypes.create_string_buffer(512)
        if vcd is not None and not self.traced:
            raise PyapproxError("a waveform needs a build with tracing (build_array(..., trace=True))")
        t0 = time.perf_counter()
        cycles = self._lib.pa_run(ctypes.byref(p), int(max(1, threads)),
                                  str(vcd).encode() if vcd is not None else None, err, len(err))
        secs = time.perf_counter() - t0
        del keep
        if cycles < 0:
            raise PyapproxError(f"the Verilated MAC array refused the job: {err.value.decode(errors='replace')}")
        return {"acc": acc, "ovf": ovf.astype(bool), "q_wire": q, "cycles": int(cycles), "seconds": secs}


_LOADED: dict[str, VerilatedArray] = {}


def _sources(rtl: MultiplierRtl, gen_dir: Path) -> list[Path]:
    return [DRIVER_V] + [check_source_path(s) for s in rtl.build_sources(gen_dir)]


def build_key(rtl: MultiplierRtl, acfg: ArrayConfig, trace: bool) -> str:
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    return content_key({"rtl": rtl.key(), "array": acfg.hdl_parameters(), "trace": trace, "opt": OPT_FAST,
                        "mac": [digest(MAC_DIR / f) for f in ARRAY_FILES], "drv": digest(DRIVER_V),
                        "harness": digest(HARNESS), "verilator": tools.verilator().version})


def build_array(rtl: MultiplierRtl, acfg: ArrayConfig, trace: bool = False, progress=None,
                root: Path | None = None) -> VerilatedArray:
    """The compiled model of ``mac_array`` with ``rtl`` (built on first use under ``root``, default the cache,
    then reused)."""
    acfg = acfg.check()
    key = build_key(rtl, acfg, trace)
    root = Path(root) if root is not None else cache_dir("verilated")
    root.mkdir(parents=True, exist_ok=True)
    if str(root / key) in _LOADED:
        return _LOADED[str(root / key)]
    final = root / key
    lib = final / LIBRARY
    t0 = time.perf_counter()
    with _locked(root / f".{key}"):
        if not lib.exists():
            if progress:
                progress(f"building the Verilated MAC array ({acfg.rows}x{acfg.cols}, {rtl.describe()}"
                         f"{', traced' if trace else ''}); cached for later runs")
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
            try:
                _verilate(rtl, acfg, trace, tmp)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    arr = VerilatedArray(lib, acfg, rtl, trace, time.perf_counter() - t0)
    _LOADED[str(final)] = arr
    return arr


def _verilate(rtl: MultiplierRtl, acfg: ArrayConfig, trace: bool, out: Path) -> None:
    tool = tools.verilator()
    params = acfg.hdl_parameters()
    defines = rtl.build_defines()
    for k, v in params.items():
        check_identifier(k, "parameter name")
        check_param_value(k, v)
    for k, v in defines.items():
        check_identifier(k, "macro name")
        check_macro_value(k, v)
    sources = _sources(rtl, out / "gen")
    cflags = ["-fPIC"] + [f"-DPA_{k}={int(params[k])}" for k in ("ROWS", "COLS", "ACC_BITS", "M_BITS", "S_BITS")]
    cmd = [tool.path, "--cc", "--build", "-j", "2", *tools.VERILATOR_SAFE_FLAGS, "-Wno-TIMESCALEMOD",
           "--x-assign", "fast", "--x-initial", "fast", "-O3", "--top-module", DRIVER_TOP,
           *[f"-G{k}={v}" for k, v in params.items()], *[f"-D{k}={v}" for k, v in defines.items()],
           *map(str, sources), "--exe", str(HARNESS), "-CFLAGS", " ".join(cflags), "-LDFLAGS", "-shared -pthread",
           "-MAKEFLAGS", f"OPT_FAST={OPT_FAST}", "-o", LIBRARY, "--Mdir", str(out / "obj")]
    if trace:
        cmd.insert(1, "--trace")
    log = out / "build.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=tool.environ(), cwd=out)
    built = out / "obj" / LIBRARY
    if proc.returncode != 0 or not built.exists():
        raise PyapproxError(f"verilator could not build the MAC array with {rtl.describe()}",
                            log.read_text()[-4000:])
    os.replace(built, out / LIBRARY)
    shutil.rmtree(out / "obj", ignore_errors=True)
