"""Scalar LUT loops: one table lookup per MAC, tiles of ``tile`` grid positions (see :mod:`pyapprox.nn.kernels`).

Used for depthwise and small layers and for output channels whose running sums need range checks.
:func:`conv` runs one layer; the loops and their workers are compiled (numba).
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import JIT, njit, prange, take_item
from pyapprox.nn.kernels.planes import tap_offsets

MODE_B2, MODE_B1, MODE_CHECKED, MODE_PACKED = 0, 1, 2, 3  # loop kind of a block of output channels
PACK_ITEM_POSITIONS = 16384  # positions per packed work item (amortises building the rows)


@njit(inline="always", **JIT)
def _start(q0, wph, wo):
    """(ow, d0) of grid position q0: its column and the flat output offset oh * wo + ow."""
    oh = q0 // wph
    ow = q0 - oh * wph
    return ow, oh * wo + ow


@njit(inline="always", **JIT)
def _cols(left, ow, wo):
    """How many of the next ``left`` grid positions, from column ow of a grid row on, are outputs (ow < wo)."""
    return max(0, min(left, wo - ow))


@njit(**JIT)
def _store(acc, n, out, base, q0, wph, wo):
    """acc[:n] (grid positions q0..q0+n) -> flat out[base + oh * wo + ow], dropping the columns ow >= wo."""
    ow, d0 = _start(q0, wph, wo)
    q = 0
    while q < n:  # one grid row a pass: q, d0 and ow move on to the next row's start
        m = _cols(n - q, ow, wo)
        d = out[base + d0:base + d0 + m]
        a = acc[q:q + m]
        for j in range(m):
            d[j] = a[j]
        q, d0, ow = q + wph - ow, d0 + wo - ow, 0


@njit(**JIT)
def _store_packed(acc, n, out, base_a, base_b, q0, wph, wo):
    """Unpack acc = a + 2^32 b (|a|, |b| < 2^31) into the channels at base_a and base_b, like :func:`_store`."""
    ow, d0 = _start(q0, wph, wo)
    q = 0
    while q < n:
        m = _cols(n - q, ow, wo)
        a = acc[q:q + m]
        da = out[base_a + d0:base_a + d0 + m]
        db = out[base_b + d0:base_b + d0 + m]
        for j in range(m):
            v = a[j]
            lo = np.int64(np.int32(v & 0xFFFFFFFF))
            da[j] = lo
            db[j] = (v - lo) >> 32
        q, d0, ow = q + wph - ow, d0 + wo - ow, 0


@njit(**JIT)
def _count_valid(flg, n, q0, wph, wo):
    """Number of set flags at grid positions that are outputs (columns ow < wo)."""
    ow = _start(q0, wph, wo)[0]
    q = 0
    c = 0
    while q < n:
        for j in range(_cols(n - q, ow, wo)):
            c += flg[q + j]
        q, ow = q + wph - ow, 0
    return c


@njit(inline="always", **JIT)
def _rows3(T, S, wr, t, c):
    """Table rows (length S) of taps t, t+1, t+2 of the block's channel c (row starts wr[:, c])."""
    r0 = wr[t, c]
    r1 = wr[t + 1, c]
    r2 = wr[t + 2, c]
    return T[r0:r0 + S], T[r1:r1 + S], T[r2:r2 + S]


@njit(inline="always", **JIT)
def _ops(xi, ts, t, q0, n):
    """Operand codes of tap t for the grid positions q0..q0+n (one contiguous slice of the planes)."""
    s = ts[t] + q0
    return xi[s:s + n]


@njit(inline="always", **JIT)
def _ops3(xi, ts, t, q0, n):
    """:func:`_ops` of taps t, t+1, t+2."""
    return _ops(xi, ts, t, q0, n), _ops(xi, ts, t + 1, q0, n), _ops(xi, ts, t + 2, q0, n)


@njit(inline="always", **JIT)
def _add_tap(T0, X0, n, a):
    """a[:n] += T0[X0[:n]]: one tap's products (or packed pairs)."""
    for q in range(n):
        a[q] += T0[X0[q]]


@njit(**JIT)
def _tile_b2(T, S, xi, wr, ts, q0, n, a0, a1):
    """a0/a1[:n] += products of 2 output channels (rows wr[:, 0/1]) over all taps, 3 taps per pass."""
    K = ts.shape[0]
    K3 = K - K % 3
    for t in range(0, K3, 3):
        T00, T10, T20 = _rows3(T, S, wr, t, 0)
        T01, T11, T21 = _rows3(T, S, wr, t, 1)
        X0, X1, X2 = _ops3(xi, ts, t, q0, n)
        for q in range(n):
            x0 = X0[q]
            x1 = X1[q]
            x2 = X2[q]
            a0[q] += T00[x0] + T10[x1] + T20[x2]
            a1[q] += T01[x0] + T11[x1] + T21[x2]
    for t in range(K3, K):
        T00 = T[wr[t, 0]:wr[t, 0] + S]
        T01 = T[wr[t, 1]:wr[t, 1] + S]
        X0 = _ops(xi, ts, t, q0, n)
        for q in range(n):
            x0 = X0[q]
            a0[q] += T00[x0]
            a1[q] += T01[x0]


@njit(**JIT)
def _tile_b1(T, S, xi, wr, ts, q0, n, a0):
    """a0[:n] += products of one output channel (rows wr[:, 0]) over all taps, 3 taps per pass."""
    K = ts.shape[0]
    K3 = K - K % 3
    for t in range(0, K3, 3):
        T0, T1, T2 = _rows3(T, S, wr, t, 0)
        X0, X1, X2 = _ops3(xi, ts, t, q0, n)
        for q in range(n):
            a0[q] += T0[X0[q]] + T1[X1[q]] + T2[X2[q]]
    for t in range(K3, K):
        _add_tap(T[wr[t, 0]:wr[t, 0] + S], _ops(xi, ts, t, q0, n), n, a0)


@njit(**JIT)
def _tile_dw9(T, S, xi, wr, ts, q0, n, a0, pattern):
    """a0[:n] += the 9 products of one output channel with 9 taps (depthwise 3x3), all in registers.

    pattern 1: taps of a kernel row are 3 consecutive positions (stride 1): 3 activation streams;
    pattern 2: taps 0/2, 3/5, 6/8 are 1 position apart (stride 2 phases): 6 streams; else 9 streams.
    """
    T0, T1, T2 = _rows3(T, S, wr, 0, 0)
    T3, T4, T5 = _rows3(T, S, wr, 3, 0)
    T6, T7, T8 = _rows3(T, S, wr, 6, 0)
    if pattern == 1:
        A = _ops(xi, ts, 0, q0, n + 2)
        B = _ops(xi, ts, 3, q0, n + 2)
        C = _ops(xi, ts, 6, q0, n + 2)
        for q in range(n):
            a0[q] += ((T0[A[q]] + T1[A[q + 1]] + T2[A[q + 2]]) + (T3[B[q]] + T4[B[q + 1]] + T5[B[q + 2]])
                      + (T6[C[q]] + T7[C[q + 1]] + T8[C[q + 2]]))
    elif pattern == 2:
        A, B = _ops(xi, ts, 0, q0, n + 1), _ops(xi, ts, 1, q0, n)
        C, D = _ops(xi, ts, 3, q0, n + 1), _ops(xi, ts, 4, q0, n)
        E, F = _ops(xi, ts, 6, q0, n + 1), _ops(xi, ts, 7, q0, n)
        for q in range(n):
            a0[q] += ((T0[A[q]] + T1[B[q]] + T2[A[q + 1]]) + (T3[C[q]] + T4[D[q]] + T5[C[q + 1]])
                      + (T6[E[q]] + T7[F[q]] + T8[E[q + 1]]))
    else:
        X0, X1, X2 = _ops3(xi, ts, 0, q0, n)
        X3, X4, X5 = _ops3(xi, ts, 3, q0, n)
        X6, X7, X8 = _ops3(xi, ts, 6, q0, n)
        for q in range(n):
            a0[q] += ((T0[X0[q]] + T1[X1[q]] + T2[X2[q]]) + (T3[X3[q]] + T4[X4[q]] + T5[X5[q]])
                      + (T6[X6[q]] + T7[X7[q]] + T8[X8[q]]))


@njit(**JIT)
def _build_packed(T, S, wr, xlo, xhi, P):
    """P[t * S + x] = T[w0_t, x] + 2^32 T[w1_t, x] for the codes xlo..xhi that occur."""
    K = wr.shape[0]
    for t in range(K):
        T0 = T[wr[t, 0]:wr[t, 0] + S]
        T1 = T[wr[t, 1]:wr[t, 1] + S]
        Pt = P[t * S:(t + 1) * S]
        for x in range(xlo, xhi + 1):
            Pt[x] = np.int64(T0[x]) + (np.int64(T1[x]) << 32)


@njit(**JIT)
def _tile_packed(P, S, xi, ts, q0, n, a):
    """a[:n] += packed products (two channels per int64) over all taps, 3 taps per pass."""
    K = ts.shape[0]
    K3 = K - K % 3
    for t in range(0, K3, 3):
        P0 = P[t * S:(t + 1) * S]
        P1 = P[(t + 1) * S:(t + 2) * S]
        P2 = P[(t + 2) * S:(t + 3) * S]
        X0, X1, X2 = _ops3(xi, ts, t, q0, n)
        for q in range(n):
            a[q] += P0[X0[q]] + P1[X1[q]] + P2[X2[q]]
    for t in range(K3, K):
        _add_tap(P[t * S:(t + 1) * S], _ops(xi, ts, t, q0, n), n, a)


@njit(**JIT)
def _tile_checked(T, S, xi, wr, ts, q0, n, a, f, lo, hi, saturate):
    """Sequential (im2col order) accumulation of one channel with range checks, int64 running sums."""
    K = ts.shape[0]
    for t in range(K):
        T0 = T[wr[t]:wr[t] + S]
        X0 = _ops(xi, ts, t, q0, n)
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


@njit(**JIT)
def _worker(T, S, X, wrow, tsh, blk_o, blk_g, blk_mode, bias, it_blk, it_img, it_q0, it_q1, tile, wph, wo,
            lo, hi, saturate, xlo, xhi, packed_len, dw9, nout, out, counts, counter):
    """Take work items from ``counter`` until none is left (see :func:`_run_par` for the arguments)."""
    plane = out.shape[0] // (X.shape[0] * nout)  # Ho * Wo
    half = hi + 1
    mask = 2 * half - 1
    acc = np.empty((2, tile + 24), np.int64)  # rows padded: not 4 KiB apart
    a64 = np.empty(tile + 24, np.int64)
    flg = np.empty(tile + 24, np.uint8)
    P = np.empty(packed_len, np.int64)
    pblk = -1
    while True:
        item, b, img = take_item(counter, it_blk, it_img)
        if item < 0:
            break
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


@njit(parallel=True, **JIT)
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


def _items(blk_mode: np.ndarray, nimg: int, nq: int, tile: int):
    """Work items (block, image, q0, q1); packed blocks get longer ranges (their rows are built per item)."""

    def ranges(span):  # even split of [0, nq) into ranges of about `span` positions, multiples of tile
        nr = max(1, -(-nq // span))
        bounds = np.minimum(nq, -(-(nq * np.arange(nr + 1) // nr) // tile) * tile)
        bounds[-1] = nq
        keep = bounds[:-1] < bounds[1:]
        return bounds[:-1][keep], bounds[1:][keep]

    parts = []
    for is_packed in (True, False):
        blks = np.flatnonzero((blk_mode == MODE_PACKED) == is_packed)
        if not len(blks):
            continue
        q0, q1 = ranges(tile * max(1, PACK_ITEM_POSITIONS // tile) if is_packed else tile)
        nb, nr = len(blks), len(q0)
        parts.append((np.repeat(blks, nimg * nr), np.tile(np.repeat(np.arange(nimg), nr), nb),
                      np.tile(q0, nb * nimg), np.tile(q1, nb * nimg)))
    return tuple(np.ascontiguousarray(np.concatenate([p[i] for p in parts]), dtype=np.int64) for i in range(4))


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


def conv(geo, table, wc, b, planes, safe, packed, lo, hi, saturate, xlo, xhi, tile, out, nthreads, cache=None) -> int:
    """One layer through the scalar loops into ``out`` (flat-able int64 [N, O, Ho, Wo]); returns the overflow count.

    geo: the layer tuple of :func:`pyapprox.nn.kernels.lut_conv2d`; table: flat int32 product table; wc: int64
    [O, K] table rows of the weights; b: int64 [O] bias; planes: :func:`pyapprox.nn.kernels.prepare_planes`;
    safe: bool [O] channels whose running sums provably fit (the others take the checked loop, accumulator range
    lo..hi, wrap or saturate); packed: pair safe channels in int64 entries; xlo..xhi: the table columns that
    occur; nthreads: threads to use (1: the calling thread); cache: a dict kept by the caller for this layer's
    weights, bias, table and conv parameters (see :func:`pyapprox.nn.kernels.lut_conv2d`), or None.
    """
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    cache = {} if cache is None else cache
    key = ("scalar", packed, safe.tobytes())
    if key not in cache:
        blk_o, blk_mode = _blocks(safe, groups, og, packed)
        rows = wc.astype(np.int64) * size  # [O, K] table row starts
        second = np.where((blk_mode == MODE_B2) | (blk_mode == MODE_PACKED), blk_o + 1, blk_o)
        wrow = np.ascontiguousarray(np.stack([rows[blk_o], rows[second]], axis=2))  # [nblk, K, 2]
        cache[key] = blk_o, blk_mode, wrow, blk_o // og, packed and bool((blk_mode == MODE_PACKED).any())
    blk_o, blk_mode, wrow, blk_g, packed = cache[key]
    if ("tsh", lp, wph) not in cache:
        tsh = tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups)
        cache[("tsh", lp, wph)] = tsh, _dw9_pattern(tsh)
    tsh, dw9 = cache[("tsh", lp, wph)]
    if key + (n, nq) not in cache:
        cache[key + (n, nq)] = _items(blk_mode, n, nq, tile)
    it_blk, it_img, it_q0, it_q1 = cache[key + (n, nq)]
    counts = np.zeros(len(it_blk), np.int64)
    nthreads = max(1, min(nthreads, len(it_blk)))
    args = (table, size, planes, wrow, tsh, blk_o, blk_g, blk_mode, b, it_blk, it_img, it_q0, it_q1, tile, wph, wo,
            lo, hi, saturate, xlo, xhi, k * size if packed else 0, dw9)
    if nthreads > 1:
        _run_par(*args, nthreads, out.shape[1], out.reshape(-1), counts, np.zeros(1, np.int64))
    else:  # the worker alone, on the calling thread
        _worker(*args, out.shape[1], out.reshape(-1), counts, np.zeros(1, np.int64))
    return int(counts.sum())
