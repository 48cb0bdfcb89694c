"""Compiled (numba) LUT convolution kernels, bit-identical to :func:`pyapprox.nn.functional.lut_conv2d_reference`.

Operands ("shifted planes"). The input codes are offset once (``x + offset``, so that they index the product
table directly), zero padded with code 0, split into ``stride_h x stride_w`` phase planes and stored as
``uint16``. Each phase plane of each input channel is a flat array whose row pitch ``Wph`` is that of the
output grid, so that for every conv kind (full, grouped, depthwise, pointwise; any stride, dilation,
padding) a tap (input channel, kernel row, kernel column) reads its operands for a run of consecutive outputs
as ONE contiguous slice ``planes[tap_offset + q]``. Outputs are computed on the grid ``q = oh * Wph + ow``;
the few columns ``ow >= Wo`` of each grid row are computed and dropped when storing. No im2col is built.

Product-vector path (most layers). For a tap t and a block of OB = 16 or 32 output channels, the table
``P_t[v] = (ptable[w[o, t] + off, v] for o in block)`` turns every lookup into a contiguous vector: the
activation code of a position selects one row of OB int32 products, added to the OB accumulators of that
position with one <16 x i32> load + add per 16 MACs (an LLVM intrinsic; no gathers, no alias checks). The
rows of P are built per work item, only for the blocks of 16 codes present in the tap's input channel,
with 16x16 register transposes of table rows; a 3x3 stride-1 channel (9 taps from 3 activation streams)
or 8 taps are summed per accumulator read-modify-write. Used when every running sum provably fits 31 bits and the cost
model (building P vs. positions that use it) beats the scalar loops, i.e. everywhere but tiny layers.

Scalar loops (depthwise and small layers, channels that need checks). Tiles of ``TILE`` positions:

* ``b2``: 2 output channels, taps 3 at a time: 3 activation loads serve 6 lookups in 6 L1-resident rows;
* ``packed``: two channels share one 64-bit entry ``T[w0, x] + 2^32 T[w1, x]`` and one int64 accumulator
  (exact while each sum fits 31 bits): half the loads of ``b2``;
* ``b1`` / ``dw9``: one channel; a depthwise 3x3 keeps its 9 products in registers;
* ``checked``: one channel, taps one by one in im2col order, int64 running sums with a range check after
  every addition, wrap or clamp (``saturate``), overflow flags per output.

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
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pyapprox.errors import PyapproxError

try:  # numba is optional: ApproxConv2d falls back to the reference when it is missing
    import numba
    from numba import njit, prange, types
    from numba.core import cgutils
    from numba.extending import intrinsic
    from llvmlite import ir

    _NUMBA_ERROR = None
except Exception as exc:  # pragma: no cover - depends on the environment
    numba = None
    _NUMBA_ERROR = exc

__all__ = ["available", "lut_conv2d", "prepare_planes", "TILE"]

TILE = 512  # grid positions per inner pass (accumulators stay in L1)
PACK_MIN_POSITIONS = 4096  # packed rows pay off when a block covers at least this many positions
PACK_ITEM_POSITIONS = 16384  # positions per packed work item (amortises building the rows)
PACK_MAX_BYTES = 32 << 20  # largest packed-row buffer per thread
PARALLEL_MIN_LOOKUPS = 1 << 21  # smaller convs run on the calling thread only (a thread launch costs more)
PARALLEL_MIN_CODES = 1 << 20
_MAX_CODES = 65535  # uint16 plane codes

MODE_B2, MODE_B1, MODE_CHECKED, MODE_PACKED = 0, 1, 2, 3
PV_CODES = 512  # rows per tap of a product-vector chunk (>= table size)
PV_RMAX = 32768  # grid positions per product-vector work item (accumulators: RMAX x OB int32)
# cost model choosing the path of a layer (rates of one thread)
PV_BUILD_RATE = 7e9  # product-vector table entries built per second
PV_APPLY_RATE = 20e9  # product-vector MACs per second
SCALAR_RATE = 3.3e9  # table lookups per second of the scalar loops
PACKED_RATE = 4.5e9
FORCE_PATH = None  # tests: "vector" or "scalar" forces that path wherever it applies

_pair = torch.nn.modules.utils._pair


if numba is not None:
    _jit = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")

    @intrinsic
    def _fetch_add(typingctx, arr, idx, val):
        """Atomic ``old = arr[idx]; arr[idx] += val; return old`` on an int64 array."""
        if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
            return None
        sig = types.int64(arr, types.intp, types.int64)

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
            return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

        return sig, codegen

    @njit(**_jit)
    def _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item):
        """Phase planes of one (image, channel) ``item`` for :func:`_prep_planes_par`."""
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        i = item // c
        ch = item - i * c
        nph = sh * sw
        o = out[i]
        base = ch * nph * lp
        seg = o[base:base + nph * lp]
        for j in range(seg.shape[0]):  # code 0 everywhere: padding and slack
            seg[j] = off
        xc = x[i, ch]
        vmin = np.int32(2147483647)
        vmax = np.int32(-2147483648)
        mk = np.uint64(0)
        for r in range(h):
            xr = xc[r]
            for j in range(w):
                v = xr[j]
                vmin = min(vmin, v)
                vmax = max(vmax, v)
                mk |= np.uint64(1) << np.uint64(min(max((v + off) >> 4, 0), 63))
        mins[item] = vmin
        maxs[item] = vmax
        masks[item] = mk
        for r in range(h):
            xr = xc[r]
            pr = r + ph
            py = pr % sh
            prow = pr // sh
            for px in range(sw):
                j0 = (px - pw) % sw  # first source column of this column phase
                if j0 >= w:
                    continue
                cnt = (w - 1 - j0) // sw + 1
                d = o[base + (py * sw + px) * lp + prow * wph + (j0 + pw) // sw:]
                if sw == 1:
                    for k in range(cnt):
                        d[k] = xr[j0 + k] + off
                else:
                    for k in range(cnt):
                        d[k] = xr[j0 + k * sw] + off

    @njit(parallel=True, **_jit)
    def _noop_par(a):
        """An (almost) empty parallel region: measures what a thread launch costs here."""
        for i in prange(a.shape[0]):
            a[i] += 1

    @njit(parallel=True, **_jit)
    def _prep_planes_par(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks):
        """x int32 [N, C, H, W] -> out uint16 [N, C * sh * sw * lp]: phase planes of the padded, offset codes.

        mins/maxs [N * C] receive the smallest/largest code of each (image, channel), masks [N * C] the blocks
        of 16 table columns its codes fall in (bit b: columns 16b..16b+15, i.e. codes + off).
        """
        for item in prange(mins.shape[0]):
            _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item)

    @njit(**_jit)
    def _prep_planes_ser(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks):
        """Single-threaded :func:`_prep_planes_par` (no thread launch for small inputs)."""
        for item in range(mins.shape[0]):
            _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item)

    @njit(**_jit)
    def _store(acc, n, out, base, q0, wph, wo):
        """acc[:n] (grid positions q0..q0+n) -> flat out[base + oh * wo + ow], dropping the columns ow >= wo."""
        oh = q0 // wph
        ow = q0 - oh * wph
        q = 0
        while q < n:
            if ow < wo:
                m = min(n - q, wo - ow)
                d = out[base + oh * wo + ow:base + oh * wo + ow + m]
                a = acc[q:q + m]
                for j in range(m):
                    d[j] = a[j]
                q += m
                ow += m
            q += wph - ow
            ow = 0
            oh += 1

    @njit(**_jit)
    def _store_packed(acc, n, out, base_a, base_b, q0, wph, wo):
        """Unpack acc = a + 2^32 b (|a|, |b| < 2^31) into the channels at base_a and base_b, like :func:`_store`."""
        oh = q0 // wph
        ow = q0 - oh * wph
        q = 0
        while q < n:
            if ow < wo:
                m = min(n - q, wo - ow)
                da = out[base_a + oh * wo + ow:base_a + oh * wo + ow + m]
                db = out[base_b + oh * wo + ow:base_b + oh * wo + ow + m]
                a = acc[q:q + m]
                for j in range(m):
                    v = a[j]
                    lo = np.int64(np.int32(v & 0xFFFFFFFF))
                    da[j] = lo
                    db[j] = (v - lo) >> 32
                q += m
                ow += m
            q += wph - ow
            ow = 0
            oh += 1

    @njit(**_jit)
    def _count_valid(flg, n, q0, wph, wo):
        """Number of set flags at grid positions that are outputs (columns ow < wo)."""
        oh = q0 // wph
        ow = q0 - oh * wph
        q = 0
        c = 0
        while q < n:
            if ow < wo:
                m = min(n - q, wo - ow)
                for j in range(m):
                    c += flg[q + j]
                q += m
                ow += m
            q += wph - ow
            ow = 0
            oh += 1
        return c

    @njit(**_jit)
    def _tile_b2(T, S, xi, wr, ts, q0, n, a0, a1):
        """a0/a1[:n] += products of 2 output channels (rows wr[:, 0/1]) over all taps, 3 taps per pass."""
        K = ts.shape[0]
        K3 = K - K % 3
        for t in range(0, K3, 3):
            r = wr[t, 0]
            T00 = T[r:r + S]
            r = wr[t, 1]
            T01 = T[r:r + S]
            r = wr[t + 1, 0]
            T10 = T[r:r + S]
            r = wr[t + 1, 1]
            T11 = T[r:r + S]
            r = wr[t + 2, 0]
            T20 = T[r:r + S]
            r = wr[t + 2, 1]
            T21 = T[r:r + S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            s = ts[t + 1] + q0
            X1 = xi[s:s + n]
            s = ts[t + 2] + q0
            X2 = xi[s:s + n]
            for q in range(n):
                x0 = X0[q]
                x1 = X1[q]
                x2 = X2[q]
                a0[q] += T00[x0] + T10[x1] + T20[x2]
                a1[q] += T01[x0] + T11[x1] + T21[x2]
        for t in range(K3, K):
            r = wr[t, 0]
            T00 = T[r:r + S]
            r = wr[t, 1]
            T01 = T[r:r + S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            for q in range(n):
                x0 = X0[q]
                a0[q] += T00[x0]
                a1[q] += T01[x0]

    @njit(**_jit)
    def _tile_b1(T, S, xi, wr, ts, q0, n, a0):
        """a0[:n] += products of one output channel (rows wr[:, 0]) over all taps, 3 taps per pass."""
        K = ts.shape[0]
        K3 = K - K % 3
        for t in range(0, K3, 3):
            r = wr[t, 0]
            T0 = T[r:r + S]
            r = wr[t + 1, 0]
            T1 = T[r:r + S]
            r = wr[t + 2, 0]
            T2 = T[r:r + S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            s = ts[t + 1] + q0
            X1 = xi[s:s + n]
            s = ts[t + 2] + q0
            X2 = xi[s:s + n]
            for q in range(n):
                a0[q] += T0[X0[q]] + T1[X1[q]] + T2[X2[q]]
        for t in range(K3, K):
            r = wr[t, 0]
            T0 = T[r:r + S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            for q in range(n):
                a0[q] += T0[X0[q]]

    @njit(**_jit)
    def _tile_dw9(T, S, xi, wr, ts, q0, n, a0, pattern):
        """a0[:n] += the 9 products of one output channel with 9 taps (depthwise 3x3), all in registers.

        pattern 1: taps of a kernel row are 3 consecutive positions (stride 1): 3 activation streams;
        pattern 2: taps 0/2, 3/5, 6/8 are 1 position apart (stride 2 phases): 6 streams; else 9 streams.
        """
        r = wr[0, 0]
        T0 = T[r:r + S]
        r = wr[1, 0]
        T1 = T[r:r + S]
        r = wr[2, 0]
        T2 = T[r:r + S]
        r = wr[3, 0]
        T3 = T[r:r + S]
        r = wr[4, 0]
        T4 = T[r:r + S]
        r = wr[5, 0]
        T5 = T[r:r + S]
        r = wr[6, 0]
        T6 = T[r:r + S]
        r = wr[7, 0]
        T7 = T[r:r + S]
        r = wr[8, 0]
        T8 = T[r:r + S]
        if pattern == 1:
            A = xi[ts[0] + q0:ts[0] + q0 + n + 2]
            B = xi[ts[3] + q0:ts[3] + q0 + n + 2]
            C = xi[ts[6] + q0:ts[6] + q0 + n + 2]
            for q in range(n):
                a0[q] += ((T0[A[q]] + T1[A[q + 1]] + T2[A[q + 2]]) + (T3[B[q]] + T4[B[q + 1]] + T5[B[q + 2]])
                          + (T6[C[q]] + T7[C[q + 1]] + T8[C[q + 2]]))
        elif pattern == 2:
            A = xi[ts[0] + q0:ts[0] + q0 + n + 1]
            B = xi[ts[1] + q0:ts[1] + q0 + n]
            C = xi[ts[3] + q0:ts[3] + q0 + n + 1]
            D = xi[ts[4] + q0:ts[4] + q0 + n]
            E = xi[ts[6] + q0:ts[6] + q0 + n + 1]
            F = xi[ts[7] + q0:ts[7] + q0 + n]
            for q in range(n):
                a0[q] += ((T0[A[q]] + T1[B[q]] + T2[A[q + 1]]) + (T3[C[q]] + T4[D[q]] + T5[C[q + 1]])
                          + (T6[E[q]] + T7[F[q]] + T8[E[q + 1]]))
        else:
            X0 = xi[ts[0] + q0:ts[0] + q0 + n]
            X1 = xi[ts[1] + q0:ts[1] + q0 + n]
            X2 = xi[ts[2] + q0:ts[2] + q0 + n]
            X3 = xi[ts[3] + q0:ts[3] + q0 + n]
            X4 = xi[ts[4] + q0:ts[4] + q0 + n]
            X5 = xi[ts[5] + q0:ts[5] + q0 + n]
            X6 = xi[ts[6] + q0:ts[6] + q0 + n]
            X7 = xi[ts[7] + q0:ts[7] + q0 + n]
            X8 = xi[ts[8] + q0:ts[8] + q0 + n]
            for q in range(n):
                a0[q] += ((T0[X0[q]] + T1[X1[q]] + T2[X2[q]]) + (T3[X3[q]] + T4[X4[q]] + T5[X5[q]])
                          + (T6[X6[q]] + T7[X7[q]] + T8[X8[q]]))

    @njit(**_jit)
    def _build_packed(T, S, wr, xlo, xhi, P):
        """P[t * S + x] = T[w0_t, x] + 2^32 T[w1_t, x] for the codes xlo..xhi that occur."""
        K = wr.shape[0]
        for t in range(K):
            T0 = T[wr[t, 0]:wr[t, 0] + S]
            T1 = T[wr[t, 1]:wr[t, 1] + S]
            Pt = P[t * S:(t + 1) * S]
            for x in range(xlo, xhi + 1):
                Pt[x] = np.int64(T0[x]) + (np.int64(T1[x]) << 32)

    @njit(**_jit)
    def _tile_packed(P, S, xi, ts, q0, n, a):
        """a[:n] += packed products (two channels per int64) over all taps, 3 taps per pass."""
        K = ts.shape[0]
        K3 = K - K % 3
        for t in range(0, K3, 3):
            P0 = P[t * S:(t + 1) * S]
            P1 = P[(t + 1) * S:(t + 2) * S]
            P2 = P[(t + 2) * S:(t + 3) * S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            s = ts[t + 1] + q0
            X1 = xi[s:s + n]
            s = ts[t + 2] + q0
            X2 = xi[s:s + n]
            for q in range(n):
                a[q] += P0[X0[q]] + P1[X1[q]] + P2[X2[q]]
        for t in range(K3, K):
            P0 = P[t * S:(t + 1) * S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            for q in range(n):
                a[q] += P0[X0[q]]

    @njit(**_jit)
    def _tile_checked(T, S, xi, wr, ts, q0, n, a, f, lo, hi, saturate):
        """Sequential (im2col order) accumulation of one channel with range checks, int64 running sums."""
        K = ts.shape[0]
        for t in range(K):
            r = wr[t]
            T0 = T[r:r + S]
            s = ts[t] + q0
            X0 = xi[s:s + n]
            if saturate:
                for q in range(n):
                    v = a[q] + T0[X0[q]]
                    if v > hi:
                        f[q] = 1
                        v = hi
                    elif v < lo:
                        f[q] = 1
                        v = lo
                    a[q] = v
            else:
                for q in range(n):
                    v = a[q] + T0[X0[q]]
                    if v > hi or v < lo:
                        f[q] = 1
                    a[q] = v

    @njit(**_jit)
    def _worker(T, S, X, wrow, tsh, blk_o, blk_g, blk_mode, bias, it_blk, it_img, it_q0, it_q1, tile, wph, wo,
                lo, hi, saturate, xlo, xhi, packed_len, dw9, nout, out, counts, counter):
        """Take work items from ``counter`` until none is left (see :func:`_run_par` for the arguments)."""
        nitems = it_blk.shape[0]
        plane = out.shape[0] // (X.shape[0] * nout)  # Ho * Wo
        half = hi + 1
        mask = 2 * half - 1
        acc = np.empty((2, tile + 24), np.int64)  # rows padded: not 4 KiB apart
        a64 = np.empty(tile + 24, np.int64)
        flg = np.empty(tile + 24, np.uint8)
        P = np.empty(packed_len, np.int64)
        pblk = -1
        while True:
            item = _fetch_add(counter, 0, 1)
            if item >= nitems:
                break
            b = it_blk[item]
            img = it_img[item]
            o = blk_o[b]
            mode = blk_mode[b]
            ob0 = (img * nout + o) * plane
            xi = X[img]
            ts = tsh[blk_g[b]]
            wr = wrow[b]
            if mode == MODE_PACKED and pblk != b:
                _build_packed(T, S, wr, xlo, xhi, P)
                pblk = b
            for q0 in range(it_q0[item], it_q1[item], tile):
                n = min(tile, it_q1[item] - q0)
                if mode == MODE_PACKED:
                    init = bias[o] + (bias[o + 1] << 32)
                    for q in range(n):
                        a64[q] = init
                    _tile_packed(P, S, xi, ts, q0, n, a64)
                    _store_packed(a64, n, out, ob0, ob0 + plane, q0, wph, wo)
                elif mode == MODE_B2:
                    a0 = acc[0]
                    a1 = acc[1]
                    b0 = bias[o]
                    b1 = bias[o + 1]
                    for q in range(n):
                        a0[q] = b0
                        a1[q] = b1
                    _tile_b2(T, S, xi, wr, ts, q0, n, a0, a1)
                    _store(a0, n, out, ob0, q0, wph, wo)
                    _store(a1, n, out, ob0 + plane, q0, wph, wo)
                elif mode == MODE_B1:
                    a0 = acc[0]
                    b0 = bias[o]
                    for q in range(n):
                        a0[q] = b0
                    if dw9:
                        _tile_dw9(T, S, xi, wr, ts, q0, n, a0, dw9)
                    else:
                        _tile_b1(T, S, xi, wr, ts, q0, n, a0)
                    _store(a0, n, out, ob0, q0, wph, wo)
                else:
                    bv = bias[o]
                    bad = 1 if (bv > hi or bv < lo) else 0
                    if saturate:
                        bv = min(max(bv, lo), hi)
                    for q in range(n):
                        a64[q] = bv
                        flg[q] = bad
                    _tile_checked(T, S, xi, wr[:, 0], ts, q0, n, a64, flg, lo, hi, saturate)
                    if not saturate:
                        for q in range(n):
                            a64[q] = ((a64[q] + half) & mask) - half
                    counts[item] += _count_valid(flg, n, q0, wph, wo)
                    _store(a64, n, out, ob0, q0, wph, wo)

    @njit(parallel=True, **_jit)
    def _run_par(T, S, X, wrow, tsh, blk_o, blk_g, blk_mode, bias, it_blk, it_img, it_q0, it_q1, tile, wph, wo,
                 lo, hi, saturate, xlo, xhi, packed_len, dw9, nthreads, nout, out, counts, counter):
        """Run every work item on ``nthreads`` threads; dynamic scheduling through the atomic ``counter``.

        T: flat int32 product table; X: uint16 [N, planes]; wrow: int64 [nblk, K, 2] table row
        starts of the block's channels; tsh: int64 [groups, K] tap offsets into an image's planes; blk_o/g/mode:
        first channel, group and loop kind of each block; it_*: block, image and grid range of each item;
        nout: O; out: flat int64 [N, O, Ho, Wo]; counts: int64 [nitems] overflow counts; counter: int64 [1]
        zero. T is int32; the scalar loops accumulate in int64.
        """
        for _ in prange(nthreads):
            _worker(T, S, X, wrow, tsh, blk_o, blk_g, blk_mode, bias, it_blk, it_img, it_q0, it_q1, tile, wph, wo,
                    lo, hi, saturate, xlo, xhi, packed_len, dw9, nout, out, counts, counter)

    # ---------------------------------------------------------------------------------------------------
    # product-vector path: the activation code selects a row of OB products (one per output channel)

    def _make_vacc(nsrc, nvec):
        """Intrinsic ``acc[a:a + 16 nvec] += sum_i P[off_i:off_i + 16 nvec]`` on int32 arrays, as <16 x i32> vectors."""

        @intrinsic
        def vacc(typingctx, acc, aoff, P, offs):
            if not (isinstance(offs, types.UniTuple) and offs.count == nsrc):
                return None
            sig = types.void(acc, types.intp, P, offs)

            def codegen(context, builder, sig, args):
                a = context.make_array(sig.args[0])(context, builder, args[0])
                p = context.make_array(sig.args[2])(context, builder, args[2])
                vty = ir.VectorType(ir.IntType(32), 16)
                offs = cgutils.unpack_tuple(builder, args[3], nsrc)
                for k in range(nvec):
                    total = None
                    for o in offs:
                        ptr = builder.gep(p.data, [builder.add(o, ir.Constant(o.type, 16 * k))])
                        v = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4)
                        total = v if total is None else builder.add(total, v)
                    aptr = builder.gep(a.data, [builder.add(args[1], ir.Constant(args[1].type, 16 * k))])
                    aptr = builder.bitcast(aptr, vty.as_pointer())
                    builder.store(builder.add(builder.load(aptr, align=4), total), aptr, align=4)
                return context.get_dummy_value()

            return sig, codegen

        return vacc

    _vacc9_1, _vacc9_2 = _make_vacc(9, 1), _make_vacc(9, 2)
    _vacc8_1, _vacc8_2 = _make_vacc(8, 1), _make_vacc(8, 2)
    _vacc1_1, _vacc1_2 = _make_vacc(1, 1), _make_vacc(1, 2)

    def _transpose_masks():
        """shufflevector masks of the 4 rounds of a 16x16 transpose (round s swaps the off-diagonal s x s blocks)."""
        masks = {}
        for s in (8, 4, 2, 1):
            lo = [j if not j & s else 16 + j - s for j in range(16)]
            hi = [j + s if not j & s else 16 + j for j in range(16)]
            masks[s] = (lo, hi)
        return masks

    _TMASKS = _transpose_masks()

    @intrinsic
    def _transpose16(typingctx, T, R, ridx, v0, P, dst, stride):
        """P[dst + i * stride + j] = T[R[ridx + j] + v0 + i] for i, j < 16: 16 table rows, 16 codes, transposed."""
        sig = types.void(T, R, types.intp, types.intp, P, types.intp, types.intp)

        def codegen(context, builder, sig, args):
            t = context.make_array(sig.args[0])(context, builder, args[0])
            r = context.make_array(sig.args[1])(context, builder, args[1])
            p = context.make_array(sig.args[4])(context, builder, args[4])
            ridx, v0, dst, stride = args[2], args[3], args[5], args[6]
            i64 = ir.IntType(64)
            vty = ir.VectorType(ir.IntType(32), 16)
            rows = []
            for i in range(16):
                start = builder.load(builder.gep(r.data, [builder.add(ridx, ir.Constant(i64, i))]))
                ptr = builder.gep(t.data, [builder.add(start, v0)])
                rows.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4))
            for s in (8, 4, 2, 1):
                lo, hi = _TMASKS[s]
                new = list(rows)
                for i in range(16):
                    if i & s:
                        continue
                    new[i] = builder.shuffle_vector(rows[i], rows[i + s], ir.Constant(vty, lo))
                    new[i + s] = builder.shuffle_vector(rows[i], rows[i + s], ir.Constant(vty, hi))
                rows = new
            for i in range(16):
                ptr = builder.gep(p.data, [builder.add(dst, builder.mul(stride, ir.Constant(i64, i)))])
                builder.store(rows[i], builder.bitcast(ptr, vty.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @njit(**_jit)
    def _pv_build(T, rows, masks, g, ob, P):
        """P[t, v, j] = T[rows[t, j] + v] for the taps t < g of a chunk and the codes v of tap t's channel.

        P is [PV_CODES rows per tap] x ob, flat. Codes are done in aligned blocks of 16 (16x16 register
        transposes), only the blocks whose bit is set in ``masks[t]`` (blocks holding a code of the channel);
        T needs 16 entries of slack after its last row.
        """
        for t in range(g):
            rt = rows[t]
            m = masks[t]
            while m:
                blk = 0
                while not (m >> np.uint64(blk)) & np.uint64(1):
                    blk += 1
                m &= ~(np.uint64(1) << np.uint64(blk))
                v0 = blk * 16
                for jb in range(0, ob, 16):
                    _transpose16(T, rt, jb, v0, P, (t * PV_CODES + v0) * ob + jb, ob)

    @njit(**_jit)
    def _pv_apply9s_16(P, xi, base, wph, n, acc):
        """acc[q] += sum of the 9 taps of a 3x3 stride-1 channel whose plane row 0 starts at xi[base]; OB=16."""
        R0 = xi[base:base + n + 2]
        R1 = xi[base + wph:base + wph + n + 2]
        R2 = xi[base + 2 * wph:base + 2 * wph + n + 2]
        for q in range(n):
            offs = (np.intp(R0[q]) * 16, np.intp(R0[q + 1]) * 16 + 1 * PV_CODES * 16,
                    np.intp(R0[q + 2]) * 16 + 2 * PV_CODES * 16, np.intp(R1[q]) * 16 + 3 * PV_CODES * 16,
                    np.intp(R1[q + 1]) * 16 + 4 * PV_CODES * 16, np.intp(R1[q + 2]) * 16 + 5 * PV_CODES * 16,
                    np.intp(R2[q]) * 16 + 6 * PV_CODES * 16, np.intp(R2[q + 1]) * 16 + 7 * PV_CODES * 16,
                    np.intp(R2[q + 2]) * 16 + 8 * PV_CODES * 16)
            _vacc9_1(acc, q * 16, P, offs)

    @njit(**_jit)
    def _pv_apply9s_32(P, xi, base, wph, n, acc):
        """:func:`_pv_apply9s_16` with OB=32."""
        R0 = xi[base:base + n + 2]
        R1 = xi[base + wph:base + wph + n + 2]
        R2 = xi[base + 2 * wph:base + 2 * wph + n + 2]
        for q in range(n):
            offs = (np.intp(R0[q]) * 32, np.intp(R0[q + 1]) * 32 + 1 * PV_CODES * 32,
                    np.intp(R0[q + 2]) * 32 + 2 * PV_CODES * 32, np.intp(R1[q]) * 32 + 3 * PV_CODES * 32,
                    np.intp(R1[q + 1]) * 32 + 4 * PV_CODES * 32, np.intp(R1[q + 2]) * 32 + 5 * PV_CODES * 32,
                    np.intp(R2[q]) * 32 + 6 * PV_CODES * 32, np.intp(R2[q + 1]) * 32 + 7 * PV_CODES * 32,
                    np.intp(R2[q + 2]) * 32 + 8 * PV_CODES * 32)
            _vacc9_2(acc, q * 32, P, offs)

    @njit(**_jit)
    def _pv_apply8_16(P, xi, ts, n, acc):
        """acc[q] += sum over 8 taps of P[t, xi[ts[t] + q]]; OB=16."""
        X0 = xi[ts[0]:ts[0] + n]
        X1 = xi[ts[1]:ts[1] + n]
        X2 = xi[ts[2]:ts[2] + n]
        X3 = xi[ts[3]:ts[3] + n]
        X4 = xi[ts[4]:ts[4] + n]
        X5 = xi[ts[5]:ts[5] + n]
        X6 = xi[ts[6]:ts[6] + n]
        X7 = xi[ts[7]:ts[7] + n]
        for q in range(n):
            offs = (np.intp(X0[q]) * 16, np.intp(X1[q]) * 16 + 1 * PV_CODES * 16,
                    np.intp(X2[q]) * 16 + 2 * PV_CODES * 16, np.intp(X3[q]) * 16 + 3 * PV_CODES * 16,
                    np.intp(X4[q]) * 16 + 4 * PV_CODES * 16, np.intp(X5[q]) * 16 + 5 * PV_CODES * 16,
                    np.intp(X6[q]) * 16 + 6 * PV_CODES * 16, np.intp(X7[q]) * 16 + 7 * PV_CODES * 16)
            _vacc8_1(acc, q * 16, P, offs)

    @njit(**_jit)
    def _pv_apply8_32(P, xi, ts, n, acc):
        """:func:`_pv_apply8_16` with OB=32."""
        X0 = xi[ts[0]:ts[0] + n]
        X1 = xi[ts[1]:ts[1] + n]
        X2 = xi[ts[2]:ts[2] + n]
        X3 = xi[ts[3]:ts[3] + n]
        X4 = xi[ts[4]:ts[4] + n]
        X5 = xi[ts[5]:ts[5] + n]
        X6 = xi[ts[6]:ts[6] + n]
        X7 = xi[ts[7]:ts[7] + n]
        for q in range(n):
            offs = (np.intp(X0[q]) * 32, np.intp(X1[q]) * 32 + 1 * PV_CODES * 32,
                    np.intp(X2[q]) * 32 + 2 * PV_CODES * 32, np.intp(X3[q]) * 32 + 3 * PV_CODES * 32,
                    np.intp(X4[q]) * 32 + 4 * PV_CODES * 32, np.intp(X5[q]) * 32 + 5 * PV_CODES * 32,
                    np.intp(X6[q]) * 32 + 6 * PV_CODES * 32, np.intp(X7[q]) * 32 + 7 * PV_CODES * 32)
            _vacc8_2(acc, q * 32, P, offs)

    @njit(**_jit)
    def _pv_apply1_16(P, xi, t0, n, acc):
        """acc[q] += P[0, xi[t0 + q]]; OB=16."""
        X0 = xi[t0:t0 + n]
        for q in range(n):
            _vacc1_1(acc, q * 16, P, (np.intp(X0[q]) * 16,))

    @njit(**_jit)
    def _pv_apply1_32(P, xi, t0, n, acc):
        """:func:`_pv_apply1_16` with OB=32."""
        X0 = xi[t0:t0 + n]
        for q in range(n):
            _vacc1_2(acc, q * 32, P, (np.intp(X0[q]) * 32,))

    @njit(**_jit)
    def _pv_worker(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img,
                   it_q0, it_q1, ob, rmax, wph, wo, nout, out, counter):
        """Take product-vector work items from ``counter`` until none is left (see :func:`_pv_run_par`)."""
        nitems = it_blk.shape[0]
        nchunk = chunk_start.shape[0] - 1
        plane = out.shape[0] // (X.shape[0] * nout)  # Ho * Wo
        acc = np.empty(rmax * ob + 64, np.int32)
        P = np.zeros((9 * PV_CODES + 32) * ob, np.int32)
        mk9 = np.empty(9, np.uint64)
        ts8 = np.empty(8, np.int64)
        while True:
            item = _fetch_add(counter, 0, 1)
            if item >= nitems:
                break
            b = it_blk[item]
            img = it_img[item]
            q0 = it_q0[item]
            n = it_q1[item] - q0
            xi = X[img]
            ts = tsh[blk_g[b]]
            tc = tch[blk_g[b]]
            rows = prow[b]
            for j in range(ob):
                bj = bias[pch[b, j]] if pch[b, j] >= 0 else 0
                for q in range(n):
                    acc[q * ob + j] = bj
            for ci in range(nchunk):
                t0 = chunk_start[ci]
                g = chunk_start[ci + 1] - t0
                for t in range(g):
                    c = tc[t0 + t]
                    mk9[t] = cmask[img, c]
                _pv_build(T, rows[t0:t0 + g], mk9, g, ob, P)
                kind = chunk_kind[ci]
                if kind == 9:  # the 9 taps of a 3x3 stride-1 channel
                    if ob == 32:
                        _pv_apply9s_32(P, xi, ts[t0] + q0, wph, n, acc)
                    else:
                        _pv_apply9s_16(P, xi, ts[t0] + q0, wph, n, acc)
                elif kind == 8:
                    for t in range(8):
                        ts8[t] = ts[t0 + t] + q0
                    if ob == 32:
                        _pv_apply8_32(P, xi, ts8, n, acc)
                    else:
                        _pv_apply8_16(P, xi, ts8, n, acc)
                else:
                    if ob == 32:
                        _pv_apply1_32(P, xi, ts[t0] + q0, n, acc)
                    else:
                        _pv_apply1_16(P, xi, ts[t0] + q0, n, acc)
            # transposed store of the valid channels and columns, 64 positions at a time (acc block stays in L1)
            oh = q0 // wph
            ow = q0 - oh * wph
            q = 0
            while q < n:
                if ow < wo:
                    m = min(n - q, wo - ow, 64)
                    for j in range(ob):
                        o = pch[b, j]
                        if o >= 0:
                            start = (img * nout + o) * plane + oh * wo + ow
                            d = out[start:start + m]
                            for i in range(m):
                                d[i] = acc[(q + i) * ob + j]
                    q += m
                    ow += m
                else:
                    q += wph - ow
                    ow = 0
                    oh += 1

    @njit(parallel=True, **_jit)
    def _pv_run_par(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img,
                    it_q0, it_q1, ob, rmax, wph, wo, nthreads, nout, out, counter):
        """Product-vector path on ``nthreads`` threads (dynamic scheduling through ``counter``).

        T: flat int32 table; X: uint16 planes [N, ...]; prow: int64 [nblk, K, ob] table row starts of the
        block's channels (padding lanes: any valid row); pch: int64 [nblk, ob] output channel of each lane or -1;
        tsh: int64 [groups, K] tap offsets; tch: int64 [groups, K] input channel of each tap;
        chunk_start/kind: tap chunks (9: a 3x3 stride-1 channel, 8: eight taps, 1: one tap); cmask: uint64
        [N, C] blocks of 16 table columns that occur in each input channel's planes (bit b: columns
        16b..16b+15); it_*: block, image, grid range of the work items; nout: O; out: flat int64 output.
        """
        for _ in prange(nthreads):
            _pv_worker(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img,
                       it_q0, it_q1, ob, rmax, wph, wo, nout, out, counter)


_LAUNCH_S = None  # measured cost of one parallel launch (seconds)


def _launch_cost() -> float:
    """Median time of an empty parallel launch, measured once.

    With libgomp's default (active, spinning) wait policy on a loaded machine a launch can take milliseconds
    (OMP_WAIT_POLICY=passive brings it to microseconds); smaller convs then run on the calling thread only.
    """
    global _LAUNCH_S
    if _LAUNCH_S is None:
        a = np.zeros(max(2, numba.get_num_threads()))
        _noop_par(a)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            _noop_par(a)
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


_AVAILABLE = None


def _geometry(h, w, kh, kw, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    hp, wp = h + 2 * ph, w + 2 * pw
    hph, wph = -(-hp // sh), -(-wp // sw)
    # every read of a valid output stays inside the hph x wph plane; the junk columns of the last grid row
    # read up to (kw - 1) * dw // sw further: keep a slack (filled with code 0)
    lp = hph * wph + (kw - 1) * dw // sw + 8
    return ho, wo, hph, wph, lp


def prepare_planes(x: torch.Tensor, offset: int, kh: int, kw: int, stride, padding, dilation):
    """Offset, padded, phase-split input codes.

    Returns (uint16 planes [N, C * sh * sw * lp], (Ho, Wo, Hph, Wph, lp), mins, maxs, masks) where mins/maxs
    [N, C] are the smallest/largest code of each input channel (int64; min > max for a channel without codes)
    and masks [N, C] (uint64) the blocks of 16 table columns (``code + offset``) that occur in its planes,
    column ``offset`` (code 0: padding, slack) included. The planes are only meaningful when every
    ``code + offset`` lies in 0..65535.
    """
    if numba is None:
        raise PyapproxError(f"the numba backend needs numba ({_NUMBA_ERROR})")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    geo = _geometry(h, w, kh, kw, stride, padding, dilation)
    ho, wo, hph, wph, lp = geo
    xn = x.detach().cpu()
    xn = np.ascontiguousarray(xn.numpy() if xn.dtype == torch.int32 else xn.to(torch.int32).numpy())
    nph = stride[0] * stride[1]
    planes = np.empty((n, c * nph * lp), np.uint16)
    mins = np.full(n * c, np.iinfo(np.int32).max, np.int32)
    maxs = np.full(n * c, np.iinfo(np.int32).min, np.int32)
    masks = np.zeros(n * c, np.uint64)
    if planes.size:
        prep = _prep_planes_par if _parallel(planes.size, PARALLEL_MIN_CODES, 5e8) else _prep_planes_ser
        prep(xn, offset, stride[0], stride[1], padding[0], padding[1], hph, wph, lp, planes, mins, maxs, masks)
    masks |= np.uint64(1) << np.uint64(min(max(offset >> 4, 0), 63))
    return planes, geo, mins.reshape(n, c).astype(np.int64), maxs.reshape(n, c).astype(np.int64), masks.reshape(n, c)


def _blocks(safe: np.ndarray, groups: int, og: int, packed: bool):
    """Blocks of output channels: pairs of safe channels (packed or b2), single safe (b1) or checked ones."""
    pair_mode = MODE_PACKED if packed else MODE_B2
    if safe.all():
        starts = np.arange(0, og, 2)
        modes = np.where(starts + 1 < og, pair_mode, MODE_B1)
        blk_o = (np.arange(groups)[:, None] * og + starts[None, :]).reshape(-1)
        return blk_o.astype(np.int64), np.tile(modes, groups).astype(np.int64)
    blk_o, blk_mode = [], []
    for g in range(groups):
        j, end = g * og, (g + 1) * og
        while j < end:
            if not safe[j]:
                blk_o.append(j)
                blk_mode.append(MODE_CHECKED)
                j += 1
            elif j + 1 < end and safe[j + 1]:
                blk_o.append(j)
                blk_mode.append(pair_mode)
                j += 2
            else:
                blk_o.append(j)
                blk_mode.append(MODE_B1)
                j += 1
    return np.asarray(blk_o, np.int64), np.asarray(blk_mode, np.int64)


def _items(blk_mode: np.ndarray, nimg: int, nq: int):
    """Work items (block, image, q0, q1); packed blocks get longer ranges (their rows are built per item)."""

    def ranges(span):  # even split of [0, nq) into ranges of about `span` positions, multiples of TILE
        nr = max(1, -(-nq // span))
        bounds = np.minimum(nq, -(-(nq * np.arange(nr + 1) // nr) // TILE) * TILE)
        bounds[-1] = nq
        keep = bounds[:-1] < bounds[1:]
        return bounds[:-1][keep], bounds[1:][keep]

    parts = []
    for is_packed in (True, False):
        blks = np.flatnonzero((blk_mode == MODE_PACKED) == is_packed)
        if not len(blks):
            continue
        q0, q1 = ranges(TILE * max(1, PACK_ITEM_POSITIONS // TILE) if is_packed else TILE)
        nb, nr = len(blks), len(q0)
        parts.append((np.repeat(blks, nimg * nr), np.tile(np.repeat(np.arange(nimg), nr), nb),
                      np.tile(q0, nb * nimg), np.tile(q1, nb * nimg)))
    return tuple(np.ascontiguousarray(np.concatenate([p[i] for p in parts]), dtype=np.int64) for i in range(4))


def _pv_plan(geo, cmask, nthreads):
    """Blocks, tap chunks and work items of the product-vector path, or None when the scalar loops are faster."""
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    if og < 8 and FORCE_PATH != "vector":
        return None
    p16, p32 = -(-og // 16) * 16, -(-og // 32) * 32
    ob = 32 if p32 <= 1.1 * p16 else 16
    nblk_g = -(-og // ob)
    nblk = nblk_g * groups
    # table columns built per tap: 16 per block of columns present in the channel
    span = 16 * float(np.unpackbits(np.ascontiguousarray(cmask).view(np.uint8)).sum()) / max(1, cmask.size)
    # work items: (block, image, range of grid positions). A range long enough to amortise building the
    # product vectors (~16 x span), short enough for its accumulators to stay in L2; then split until all
    # threads have work.
    nr = max(1, -(-nq // max(2048, min(PV_RMAX, int(16 * span)))))
    while nblk * n * nr < 4 * nthreads and nq // (nr + 1) >= 1024:
        nr += 1
    build = nblk * n * nr * k * ob * span
    macs = nblk * ob * n * nq * k
    est_pv = build / PV_BUILD_RATE + macs / PV_APPLY_RATE
    est_scalar = groups * og * n * nq * k / (PACKED_RATE if nq * n >= PACK_MIN_POSITIONS else SCALAR_RATE)
    if FORCE_PATH == "scalar" or (est_pv >= est_scalar and FORCE_PATH != "vector"):
        return None
    bounds = [nq * r // nr for r in range(nr + 1)]
    it = np.array([(blk, img, bounds[r], bounds[r + 1]) for blk in range(nblk) for img in range(n) for r in range(nr)
                   if bounds[r] < bounds[r + 1]], np.int64).reshape(-1, 4)
    # tap chunks: a 3x3 stride-1 channel at once, else 8 taps at once, then single taps
    if (kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1):
        starts, kinds = list(range(0, k, 9)), [9] * cg
    else:
        k8 = k - k % 8
        starts, kinds = list(range(0, k8, 8)) + list(range(k8, k)), [8] * (k8 // 8) + [1] * (k - k8)
    return dict(ob=ob, nblk_g=nblk_g, items=it, rmax=int((it[:, 3] - it[:, 2]).max()),
                chunk_start=np.asarray(starts + [k], np.int64), chunk_kind=np.asarray(kinds, np.int64))


def _pv_conv(plan, geo, table, wc, b, planes, cmask, out, nthreads):
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    ob, nblk_g = plan["ob"], plan["nblk_g"]
    # lanes of each block: output channels (or -1: padding lanes, computed with a valid row and dropped)
    lane = np.arange(nblk_g * ob)
    pch = np.concatenate([np.where(lane < og, g * og + np.minimum(lane, og - 1), -1) for g in range(groups)])
    pch = pch.reshape(groups * nblk_g, ob)
    src = np.where(pch >= 0, pch, np.repeat(pch[:, :1], ob, axis=1))  # padding lanes reuse the first lane's rows
    prow = np.ascontiguousarray((wc[src] * size).transpose(0, 2, 1))  # [nblk, K, ob]
    blk_g = np.arange(groups * nblk_g) // nblk_g
    cc, ky, kx = (a.ravel() for a in np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij"))
    tch = np.ascontiguousarray(np.arange(groups)[:, None] * cg + cc[None, :], dtype=np.int64)
    tsh = _tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups)
    it = plan["items"]
    args = (table, planes, prow, np.ascontiguousarray(pch, dtype=np.int64), tsh, tch, plan["chunk_start"],
            plan["chunk_kind"], np.ascontiguousarray(cmask), blk_g, b, np.ascontiguousarray(it[:, 0]),
            np.ascontiguousarray(it[:, 1]), np.ascontiguousarray(it[:, 2]), np.ascontiguousarray(it[:, 3]), ob,
            plan["rmax"], wph, wo)
    nthreads = max(1, min(nthreads, len(it)))
    if nthreads > 1:
        _pv_run_par(*args, nthreads, out.shape[1], out.reshape(-1), np.zeros(1, np.int64))
    else:  # the worker alone, on the calling thread
        _pv_worker(*args, out.shape[1], out.reshape(-1), np.zeros(1, np.int64))


def _dw9_pattern(tsh: np.ndarray) -> int:
    """Loop kind of single-channel blocks with 9 taps (depthwise 3x3): 1, 2 or 3 (see ``_tile_dw9``); 0: other K."""
    if tsh.shape[1] != 9:
        return 0
    d = tsh - tsh[:, :1]
    rows = d[:, [0, 3, 6]]
    if (d[:, [1, 2, 4, 5, 7, 8]] == np.repeat(rows, 2, axis=1) + np.tile([1, 2], 3)).all():
        return 1
    if (d[:, [2, 5, 8]] == rows + 1).all():
        return 2
    return 3


def _tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups):
    """int64 [groups, K]: offset of each tap's operand for grid position 0 in an image's planes (im2col order)."""
    nph = stride[0] * stride[1]
    cc, ky, kx = (a.ravel() for a in np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij"))
    dy, dx = ky * dilation[0], kx * dilation[1]
    phase = (dy % stride[0]) * stride[1] + dx % stride[1]
    shift = (dy // stride[0]) * wph + dx // stride[1]
    plane = (np.arange(groups)[:, None] * cg + cc[None, :]) * nph + phase[None, :]
    return (plane * lp + shift[None, :]).astype(np.int64)


_TABLES: dict = {}


def _table(pt: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(flat int32 table with 16 entries of slack, or None when a product does not fit int32; max |product| of
    each row), cached."""
    hit = _TABLES.get(id(pt))
    if hit is not None and hit[0] is pt and np.array_equal(hit[1], pt):
        return hit[2], hit[3]
    pt64 = np.ascontiguousarray(pt, dtype=np.int64)
    table = None
    if pt64.min() >= -(1 << 31) and pt64.max() < (1 << 31):
        table = np.zeros(pt64.size + 16, np.int32)  # slack for the 16-code reads of the transposes
        table[:pt64.size] = pt64.reshape(-1)
    rowmax = np.abs(pt64).max(axis=1)
    if len(_TABLES) >= 8:
        _TABLES.clear()
    _TABLES[id(pt)] = (pt, pt64.copy(), table, rowmax)
    return table, rowmax


def lut_conv2d(x: torch.Tensor, w: torch.Tensor, ptable: np.ndarray, offset: int, bias: torch.Tensor | None,
               stride=1, padding=0, dilation=1, groups=1, acc_bits=32, acc_mode="wrap",
               overflow_free=False) -> tuple[torch.Tensor, int]:
    """LUT convolution with the semantics of :func:`pyapprox.nn.functional.lut_conv2d_reference`.

    Returns (accumulators int64 [N, O, Ho, Wo], number of outputs whose running sum overflowed).
    ``overflow_free=True`` is the caller's promise that no running sum can leave the accumulator range
    (then no checks are made and the overflow count is 0).
    """
    if numba is None:
        raise PyapproxError(f"the numba backend needs numba ({_NUMBA_ERROR})")
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
    ho, wo, hph, wph, lp = _geometry(h, wd, kh, kw, stride, padding, dilation)
    if ho <= 0 or wo <= 0:
        raise PyapproxError(f"conv output would be empty: input {h}x{wd}, kernel {kh}x{kw}")
    og = o // groups
    k = cg * kh * kw
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1

    # operand codes must index the table
    wc = w.detach().cpu().reshape(o, k).numpy().astype(np.int64) + offset
    if wc.size and (wc.min() < 0 or wc.max() >= size):
        raise PyapproxError("operand code outside the table's range")
    b = np.zeros(o, np.int64) if bias is None else bias.detach().cpu().numpy().astype(np.int64).reshape(o)
    out = np.empty((n, o, ho, wo), np.int64)
    if out.size == 0:
        return torch.from_numpy(out), 0

    table, rowmax = _table(pt)
    if table is None:  # products beyond int32 (no 8-bit multiplier has them): the exact PyTorch backend
        from pyapprox.nn.torch_backend import lut_conv2d_torch

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

    # per-output-channel bound on every running sum: which channels need the checked loop
    bound = np.abs(b) + rowmax[wc].sum(axis=1)
    safe = np.ones(o, bool) if overflow_free else bound <= hi
    fast32 = not safe.any() or int(bound[safe].max()) < (1 << 31)  # int32 sums (packed, product vectors)

    nq = ho * wph  # grid positions per image
    nthreads_max = max(1, numba.get_num_threads())
    parallel_ok = _parallel(n * o * ho * wo * k, PARALLEL_MIN_LOOKUPS, 4e9)
    geo = (n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size)
    if fast32 and bool(safe.all()) and size <= PV_CODES:
        plan = _pv_plan(geo, cmask, nthreads_max if parallel_ok else 1)
        if plan is not None:
            _pv_conv(plan, geo, table, wc, b, planes, cmask, out, nthreads_max if parallel_ok else 1)
            return torch.from_numpy(out), 0

    packed = fast32 and nq * n >= PACK_MIN_POSITIONS and k * size * 8 <= PACK_MAX_BYTES
    blk_o, blk_mode = _blocks(safe, groups, og, packed)
    packed = packed and bool((blk_mode == MODE_PACKED).any())

    tsh = _tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups)

    rows = wc * size  # [O, K] table row starts
    second = np.where((blk_mode == MODE_B2) | (blk_mode == MODE_PACKED), blk_o + 1, blk_o)
    wrow = np.ascontiguousarray(np.stack([rows[blk_o], rows[second]], axis=2))  # [nblk, K, 2]
    blk_g = blk_o // og
    it_blk, it_img, it_q0, it_q1 = _items(blk_mode, n, nq)
    counts = np.zeros(len(it_blk), np.int64)
    nthreads = max(1, min(nthreads_max, len(it_blk)))
    args = (table, size, planes, wrow, tsh, blk_o, blk_g, blk_mode, b, it_blk, it_img, it_q0, it_q1, TILE, wph, wo,
            lo, hi, acc_mode == "saturate", xlo, xhi, k * size if packed else 0, _dw9_pattern(tsh))
    if nthreads > 1 and parallel_ok:
        _run_par(*args, nthreads, o, out.reshape(-1), counts, np.zeros(1, np.int64))
    else:  # the worker alone, on the calling thread
        _worker(*args, o, out.reshape(-1), counts, np.zeros(1, np.int64))
    return torch.from_numpy(out), int(counts.sum())
