"""Compiled (numba) LUT convolution kernels, bit-identical to :func:`pyapprox.nn.functional.lut_conv2d_reference`.

Operands ("shifted planes"). The input codes are offset once (``x + offset``, so that they index the product
table directly), zero padded with code 0, split into ``stride_h x stride_w`` phase planes and stored as
``uint16``. Each phase plane of each input channel is a flat array whose row pitch ``Wph`` is that of the
output grid, so that for every conv kind (full, grouped, depthwise, pointwise; any stride, dilation,
padding) a tap (input channel, kernel row, kernel column) reads its operands for a run of consecutive outputs
as ONE contiguous slice ``planes[tap_offset + q]``. Outputs are computed on the grid ``q = oh * Wph + ow``;
the few columns ``ow >= Wo`` of each grid row are computed and dropped when storing. No im2col is built
(:mod:`.planes`).

Product-vector path (most layers). For a tap t and a block of OB = 16 or 32 output channels, the table
``P_t[v] = (ptable[w[o, t] + off, v] for o in block)`` turns every lookup into a contiguous vector: the
activation code of a position selects one row of OB int32 products, added to the OB accumulators of that
position with one <16 x i32> load + add per 16 MACs (an LLVM intrinsic; no gathers, no alias checks). The
rows of P are built per work item, only for the blocks of 16 codes present in the tap's input channel,
with 16x16 register transposes of table rows; a 3x3 stride-1 channel (9 taps from 3 activation streams)
or 8 taps are summed per accumulator read-modify-write. Used when every running sum provably fits 31 bits and the cost
model (building P vs. positions that use it) beats the scalar loops, i.e. everywhere but tiny layers
(:mod:`.vector`).

Scalar loops (depthwise and small layers, channels that need checks). Tiles of ``TILE`` positions:

* ``b2``: 2 output channels, taps 3 at a time: 3 activation loads serve 6 lookups in 6 L1-resident rows;
* ``packed``: two channels share one 64-bit entry ``T[w0, x] + 2^32 T[w1, x]`` and one int64 accumulator
  (exact while each sum fits 31 bits): half the loads of ``b2``;
* ``b1`` / ``dw9``: one channel; a depthwise 3x3 keeps its 9 products in registers;
* ``checked``: one channel, taps one by one in im2col order, int64 running sums with a range check after
  every addition, wrap or clamp (``saturate``), overflow flags per output (:mod:`.scalar`).

A per-output-channel bound ``|bias| + sum_taps max_x |ptable[w + off, x]|`` proves that no running sum of
the channel can leave the accumulator range; such channels take the fast loops (any summation order, the
sum being exact; int32 accumulators only where the bound fits 31 bits), the others the checked loop (in
``saturate`` mode too). ``overflow_free=True`` skips the proof. Tables are int32; a table with products
beyond int32 (no 8-bit multiplier has them) is handed to the exact PyTorch backend instead.

Work items (block of output channels, image, range of grid positions) are handed out to the threads
through an atomic counter (dynamic scheduling). Every output is computed by exactly one item in one fixed
order, so the results do not depend on the number of threads or on which thread ran what. Small convs run
on the calling thread (a parallel launch is timed once; with libgomp's default spinning wait policy on a
loaded machine it costs milliseconds: ``OMP_WAIT_POLICY=passive`` before torch is imported avoids that).

This module is the dispatch: the entry points, the path (cost model), threads and launches; its knobs are
attributes of the package (tests set ``FORCE_PATH``, ``PARALLEL_MIN_*``, ``_LAUNCH_S``). The compiled loops
are in :mod:`.planes`, :mod:`.scalar` and :mod:`.vector`, the hand-written LLVM intrinsics in
:mod:`.intrinsics`; they are imported only when numba is.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn.kernels.intrinsics import NUMBA_ERROR, numba
from pyapprox.nn.torch_backend import lut_conv2d_torch

if numba is not None:
    from pyapprox.nn.kernels import requant, scalar, vector
    from pyapprox.nn.kernels.intrinsics import noop_par
    from pyapprox.nn.kernels.planes import geometry, prep_planes_par, prep_planes_ser

__all__ = ["available", "lut_conv2d", "prepare_planes", "quantize", "requantize", "TILE"]

TILE = 512  # grid positions per inner pass of the scalar loops (accumulators stay in L1)
PACK_MIN_POSITIONS = 4096  # packed rows pay off when a block covers at least this many positions
PACK_MAX_BYTES = 32 << 20  # largest packed-row buffer per thread
PARALLEL_MIN_LOOKUPS = 1 << 21  # smaller convs run on the calling thread only (a thread launch costs more)
PARALLEL_MIN_CODES = 1 << 20
_MAX_CODES = 65535  # uint16 plane codes

# cost model choosing the path of a layer (rates of one thread)
PV_BUILD_RATE = 7e9  # product-vector table entries built per second
PV_APPLY_RATE = 20e9  # product-vector MACs per second
SCALAR_RATE = 3.3e9  # table lookups per second of the scalar loops
PACKED_RATE = 4.5e9
FORCE_PATH = None  # tests: "vector" or "scalar" forces that path wherever it applies

_pair = torch.nn.modules.utils._pair
_LAUNCH_S = None  # measured cost of one parallel launch (seconds)
_AVAILABLE = None  # available(), once checked


def _launch_cost() -> float:
    """Median time of an empty parallel launch, measured once.

    With libgomp's default (active, spinning) wait policy on a loaded machine a launch can take milliseconds
    (OMP_WAIT_POLICY=passive brings it to microseconds); smaller convs then run on the calling thread only.
    """
    global _LAUNCH_S
    if _LAUNCH_S is None:
        a = np.zeros(max(2, numba.get_num_threads()))
        noop_par(a)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            noop_par(a)
            times.append(time.perf_counter() - t0)
        _LAUNCH_S = sorted(times)[2]
    return _LAUNCH_S


def _parallel(work: int, minimum: int, rate: float) -> bool:
    """Worth a parallel launch: ``work`` units at ``rate`` per second take more than ~2 launches."""
    if numba.get_num_threads() < 2 or work < minimum:
        return False
    return work >= 2 * _launch_cost() * rate


def available() -> bool:
    """True when numba is importable and the kernels compile and run (checked once)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        if numba is None:
            _AVAILABLE = False
        else:
            try:
                x = torch.tensor([[[[1, -2], [3, 4]]]], dtype=torch.int32)
                w = torch.tensor([[[[2]]], [[[-3]]]], dtype=torch.int32)
                pt = np.outer(np.arange(-255, 256), np.arange(-255, 256)).astype(np.int64)
                acc, _ = lut_conv2d(x, w, pt, 255, None)
                _AVAILABLE = bool(acc.flatten().tolist() == [2, -4, 6, 8, -3, 6, -9, -12])
            except Exception:  # pragma: no cover - broken numba install
                _AVAILABLE = False
    return _AVAILABLE


def prepare_planes(x: torch.Tensor, offset: int, kh: int, kw: int, stride, padding, dilation):
    """Offset, padded, phase-split input codes.

    Returns (uint16 planes [N, C * sh * sw * lp], (Ho, Wo, Hph, Wph, lp), mins, maxs, masks) where mins/maxs
    [N, C] are the smallest/largest code of each input channel (int64; min > max for a channel without codes)
    and masks [N, C] (uint64) the blocks of 16 table columns (``code + offset``) that occur in its planes,
    column ``offset`` (code 0: padding, slack) included. The planes are only meaningful when every
    ``code + offset`` lies in 0..65535.
    """
    if numba is None:
        raise PyapproxError(f"the numba backend needs numba ({NUMBA_ERROR})")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    geo = geometry(h, w, kh, kw, stride, padding, dilation)
    ho, wo, hph, wph, lp = geo
    xn = x.detach().cpu()
    xn = np.ascontiguousarray(xn.numpy() if xn.dtype == torch.int32 else xn.to(torch.int32).numpy())
    nph = stride[0] * stride[1]
    planes = np.empty((n, c * nph * lp), np.uint16)
    mins = np.full(n * c, np.iinfo(np.int32).max, np.int32)
    maxs = np.full(n * c, np.iinfo(np.int32).min, np.int32)
    masks = np.zeros(n * c, np.uint64)
    if planes.size:
        prep = prep_planes_par if _parallel(planes.size, PARALLEL_MIN_CODES, 5e8) else prep_planes_ser
        prep(xn, offset, stride[0], stride[1], padding[0], padding[1], hph, wph, lp, planes, mins, maxs, masks)
    masks |= np.uint64(1) << np.uint64(min(max(offset >> 4, 0), 63))
    return planes, geo, mins.reshape(n, c).astype(np.int64), maxs.reshape(n, c).astype(np.int64), masks.reshape(n, c)


def requantize(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, mult_neg: torch.Tensor | None,
               qlo, qhi, scale: float | None = None):
    """:func:`pyapprox.nn.functional.requantize` of CPU accumulators [N, O, H, W] by the compiled loop of
    :mod:`.requant` (int64 codes, bit-identical); None when it does not apply (no numba, another device, shifts
    of 63 or more), and the caller uses the PyTorch version.

    With ``scale``: the codes dequantized in the same pass, (int32 codes, float32 ``codes.float() * scale``)."""
    if numba is None or acc.device.type != "cpu" or acc.dim() != 4 or acc.dtype not in (torch.int32, torch.int64):
        return None
    n, o, h, w = acc.shape
    shift_np = shift.detach().cpu().to(torch.int64).numpy()
    if shift_np.size and int(np.abs(shift_np).max()) >= 63:
        return None

    def per_channel(v):
        if isinstance(v, torch.Tensor):
            return np.ascontiguousarray(np.broadcast_to(v.detach().cpu().to(torch.int64).numpy().reshape(-1), (o,)))
        return np.full(o, int(v), np.int64)

    mult_np = per_channel(mult)
    mneg_np = per_channel(mult_neg) if mult_neg is not None else mult_np
    a = acc.detach().contiguous().view(n, o, h * w).numpy()
    shift_np = np.ascontiguousarray(shift_np.reshape(-1))
    if scale is None:
        out = np.empty((n, o, h, w), np.int64)
        if out.size:
            f = requant.requant_par if _parallel(out.size, PARALLEL_MIN_CODES, 1e9) else requant.requant_ser
            f(a, mult_np, mneg_np, shift_np, per_channel(qlo), per_channel(qhi), out.reshape(n, o, h * w))
        return torch.from_numpy(out)
    lo_np, hi_np = per_channel(qlo), per_channel(qhi)
    if lo_np.size and (int(lo_np.min()) < -(1 << 24) or int(hi_np.max()) > 1 << 24):
        return None  # codes beyond int32 / not exact in float32
    codes = np.empty((n, o, h, w), np.int32)  # allocated in their final shape: the tensors are not views
    y = np.empty((n, o, h, w), np.float32)
    if codes.size:
        f = requant.requant_dequant_par if _parallel(codes.size, PARALLEL_MIN_CODES, 1e9) else \
            requant.requant_dequant_ser
        f(a, mult_np, mneg_np, shift_np, lo_np, hi_np, np.float32(scale), codes.reshape(n, o, h * w),
          y.reshape(n, o, h * w))
    return torch.from_numpy(codes), torch.from_numpy(y)


def quantize(x: torch.Tensor, scale: float, qmin: int, qmax: int) -> torch.Tensor | None:
    """:func:`pyapprox.nn.functional.quantize` (int32 codes, bit-identical) of a CPU float32 tensor in one compiled
    pass; None when it does not apply (no numba, another device or dtype, NaNs in ``x``) and the caller uses the
    PyTorch version."""
    if numba is None or x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    xf = x.detach().contiguous().reshape(-1).numpy()
    out = np.empty(tuple(x.shape), np.int32)
    if out.size:
        f = requant.quant_par if _parallel(out.size, PARALLEL_MIN_CODES, 1e9) else requant.quant_ser
        if f(xf, np.float32(scale), np.float32(qmin), np.float32(qmax), out.reshape(-1)):
            return None
    return torch.from_numpy(out)


def _vector_plan(geo, cmask, nthreads):
    """The product-vector plan of a layer (:func:`.vector.plan`), or None when the scalar loops are faster."""
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    if og < 8 and FORCE_PATH != "vector":
        return None
    plan = vector.plan(geo, cmask, nthreads)
    est_pv = plan["build"] / PV_BUILD_RATE + plan["macs"] / PV_APPLY_RATE
    est_scalar = groups * og * n * nq * k / (PACKED_RATE if nq * n >= PACK_MIN_POSITIONS else SCALAR_RATE)
    if FORCE_PATH == "scalar" or (est_pv >= est_scalar and FORCE_PATH != "vector"):
        return None
    return plan


_TABLES: dict = {}


def _table(pt: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(flat int32 table with 16 entries of slack, or None when a product does not fit int32; max |product| of
    each row), cached."""
    hit = _TABLES.get(id(pt))
    if hit is not None and hit[0] is pt and (hit[1] is None or np.array_equal(hit[1], pt)):
        return hit[2], hit[3]
    pt64 = np.ascontiguousarray(pt, dtype=np.int64)
    table = None
    if pt64.min() >= -(1 << 31) and pt64.max() < (1 << 31):
        table = np.zeros(pt64.size + 16, np.int32)  # slack for the 16-code reads of the transposes
        table[:pt64.size] = pt64.reshape(-1)
    rowmax = np.abs(pt64).max(axis=1)
    if len(_TABLES) >= 8:
        _TABLES.clear()
    _TABLES[id(pt)] = (pt, None if not pt.flags.writeable else pt64.copy(), table, rowmax)  # read-only: by identity
    return table, rowmax


def lut_conv2d(x: torch.Tensor, w: torch.Tensor, ptable: np.ndarray, offset: int, bias: torch.Tensor | None,
               stride=1, padding=0, dilation=1, groups=1, acc_bits=32, acc_mode="wrap",
               overflow_free=False, cache: dict | None = None) -> tuple[torch.Tensor, int]:
    """LUT convolution with the semantics of :func:`pyapprox.nn.functional.lut_conv2d_reference`.

    Returns (accumulators int64 [N, O, Ho, Wo], number of outputs whose running sum overflowed).
    ``overflow_free=True`` is the caller's promise that no running sum can leave the accumulator range
    (then no checks are made and the overflow count is 0). ``cache``: a dict the caller keeps for ONE layer
    (these weights, bias, table, offset and conv parameters, unchanged; a new dict when any changes): what
    depends on them only (table rows of the weights, bounds, work layout) is computed on the first call.
    """
    if numba is None:
        raise PyapproxError(f"the numba backend needs numba ({NUMBA_ERROR})")
    if acc_mode not in ("wrap", "saturate"):
        raise PyapproxError(f"unknown accumulator mode {acc_mode!r}; expected wrap or saturate")
    if not 2 <= int(acc_bits) <= 62:
        raise PyapproxError(f"acc_bits={acc_bits} is not supported (2..62)")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups or o % groups:
        raise PyapproxError(f"conv shapes do not fit: input {c} channels, weight {tuple(w.shape)}, groups {groups}")
    pt = np.asarray(ptable)
    size = pt.shape[0]
    if pt.ndim != 2 or pt.shape[1] != size or size > _MAX_CODES:
        raise PyapproxError(f"product table must be square with at most {_MAX_CODES} codes, got {pt.shape}")
    ho, wo, hph, wph, lp = geometry(h, wd, kh, kw, stride, padding, dilation)
    if ho <= 0 or wo <= 0:
        raise PyapproxError(f"conv output would be empty: input {h}x{wd}, kernel {kh}x{kw}")
    og = o // groups
    k = cg * kh * kw
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1

    cache = {} if cache is None else cache
    if "weights" not in cache:
        # operand codes must index the table
        wc = w.detach().cpu().reshape(o, k).numpy().astype(np.int64) + offset
        if wc.size and (wc.min() < 0 or wc.max() >= size):
            raise PyapproxError("operand code outside the table's range")
        wc = wc.astype(np.int32)  # kept in the cache: table rows < 65535 (multiplied by the row size in int64)
        b = np.zeros(o, np.int64) if bias is None else bias.detach().cpu().numpy().astype(np.int64).reshape(o)
        table, rowmax = _table(pt)
        # per-output-channel bound on every running sum: which channels need the checked loop
        bound = np.abs(b) + rowmax[wc].sum(axis=1) if table is not None else None
        cache["weights"] = wc, b, table, bound
    wc, b, table, bound = cache["weights"]
    out = np.empty((n, o, ho, wo), np.int64)
    if out.size == 0:
        return torch.from_numpy(out), 0
    if table is None:  # products beyond int32 (no 8-bit multiplier has them): the exact PyTorch backend
        return lut_conv2d_torch(x, w, pt, offset, bias, stride, padding, dilation, groups, acc_bits, acc_mode,
                                overflow_free)

    planes, _, cmin, cmax, cmask = prepare_planes(x, offset, kh, kw, stride, padding, dilation)
    has = cmin <= cmax
    if has.any() and (int(cmin[has].min()) + offset < 0 or int(cmax[has].max()) + offset >= size):
        raise PyapproxError("operand code outside the table's range")
    # table columns that occur in each channel's planes (column `offset`, code 0, always does: padding, slack)
    clo = np.where(has, np.minimum(cmin + offset, offset), offset)
    chi = np.where(has, np.maximum(cmax + offset, offset), offset)
    xlo, xhi = int(clo.min()), int(chi.max())

    safe = np.ones(o, bool) if overflow_free else bound <= hi
    fast32 = not safe.any() or int(bound[safe].max()) < (1 << 31)  # int32 sums (packed, product vectors)

    nq = ho * wph  # grid positions per image
    nthreads = max(1, numba.get_num_threads()) if _parallel(n * o * ho * wo * k, PARALLEL_MIN_LOOKUPS, 4e9) else 1
    geo = (n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size)
    if fast32 and bool(safe.all()) and size <= vector.PV_CODES:
        plan = _vector_plan(geo, cmask, nthreads)
        if plan is not None:
            vector.conv(plan, geo, table, wc, b, planes, cmask, out, nthreads, cache)
            return torch.from_numpy(out), 0
    packed = fast32 and nq * n >= PACK_MIN_POSITIONS and k * size * 8 <= PACK_MAX_BYTES
    overflows = scalar.conv(geo, table, wc, b, planes, safe, packed, lo, hi, acc_mode == "saturate", xlo, xhi, TILE,
                            out, nthreads, cache)
    return torch.from_numpy(out), overflows
