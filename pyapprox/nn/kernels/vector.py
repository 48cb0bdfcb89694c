"""Product-vector LUT loops: a code selects a row of OB products, one per output channel.

See :mod:`pyapprox.nn.kernels` for the method. :func:`plan` sizes a layer's work (the dispatch weighs it
against the scalar loops), :func:`conv` runs it. The loops over a chunk of taps are built by
:func:`_make_apply`, one compiled function per block width OB.
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import JIT, njit, prange, take_item, transpose16, vmac
from pyapprox.nn.kernels.planes import tap_offsets

PV_CODES = 512  # rows per tap of a product-vector chunk (>= table size)
PV_RMAX = 32768  # grid positions per product-vector work item (accumulators: RMAX x OB int32)


@njit(**JIT)
def _build(T, rows, masks, g, ob, P):
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
                transpose16(T, rt, jb, v0, P, (t * PV_CODES + v0) * ob + jb, ob)


def _make_apply(ob):
    """Compiled ``apply(P, xi, ts, t0, q0, wph, kind, n, acc)`` for blocks of ``ob`` (16 or 32) output channels.

    For the grid positions q < n: ``acc[q * ob + j] += sum_t P[t, xi[ts[t0 + t] + q0 + q], j]`` over the taps t
    of the chunk at t0: kind 9, the taps of a 3x3 stride-1 channel (3 plane rows from ``ts[t0]`` with pitch
    ``wph``, 3 consecutive codes each); 8, eight taps; 1, one tap. One :func:`vmac` per position; the tuple of
    tap starts fixes its taps, ``ob`` its vectors. A closure over ints only: numba caches each one (the closure
    values are part of its cache key).
    """
    nvec, tstride = ob // 16, PV_CODES * ob

    @njit(**JIT)
    def apply(P, xi, ts, t0, q0, wph, kind, n, acc):
        if kind == 9:
            r0 = ts[t0] + q0
            r1, r2 = r0 + wph, r0 + 2 * wph
            st9 = (r0, r0 + 1, r0 + 2, r1, r1 + 1, r1 + 2, r2, r2 + 1, r2 + 2)
            for q in range(n):
                vmac(acc, q * ob, P, tstride, xi, st9, q, nvec)
        elif kind == 8:
            st8 = (ts[t0] + q0, ts[t0 + 1] + q0, ts[t0 + 2] + q0, ts[t0 + 3] + q0, ts[t0 + 4] + q0, ts[t0 + 5] + q0,
                   ts[t0 + 6] + q0, ts[t0 + 7] + q0)
            for q in range(n):
                vmac(acc, q * ob, P, tstride, xi, st8, q, nvec)
        else:
            st1 = (ts[t0] + q0,)
            for q in range(n):
                vmac(acc, q * ob, P, tstride, xi, st1, q, nvec)

    return apply


_apply16, _apply32 = _make_apply(16), _make_apply(32)


@njit(**JIT)
def _worker(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img, it_q0, it_q1,
            ob, rmax, ni, wph, wo, nout, out, counter):
    """Take product-vector work items from ``counter`` until none is left (see :func:`_run_par`). An item covers
    the images img .. img + ni - 1 (as many as there are) over its grid range; they share each built P."""
    nchunk = chunk_start.shape[0] - 1
    nimg = X.shape[0]
    plane = out.shape[0] // (nimg * nout)  # Ho * Wo
    acc = np.empty(rmax * ni * ob + 64, np.int32)
    P = np.zeros((9 * PV_CODES + 32) * ob, np.int32)
    mk9 = np.empty(9, np.uint64)
    while True:
        item, b, img0 = take_item(counter, it_blk, it_img)
        if item < 0:
            break
        q0 = it_q0[item]
        n = it_q1[item] - q0
        img1 = min(nimg, img0 + ni)
        ts = tsh[blk_g[b]]
        tc = tch[blk_g[b]]
        rows = prow[b]
        for j in range(ob):
            bj = bias[pch[b, j]] if pch[b, j] >= 0 else 0
            for q in range((img1 - img0) * n):
                acc[q * ob + j] = bj
        for ci in range(nchunk):
            t0 = chunk_start[ci]
            g = chunk_start[ci + 1] - t0
            for t in range(g):
                c = tc[t0 + t]
                mk = np.uint64(0)
                for img in range(img0, img1):
                    mk |= cmask[img, c]
                mk9[t] = mk
            _build(T, rows[t0:t0 + g], mk9, g, ob, P)
            for img in range(img0, img1):
                acc_i = acc[(img - img0) * n * ob:]
                if ob == 32:
                    _apply32(P, X[img], ts, t0, q0, wph, chunk_kind[ci], n, acc_i)
                else:
                    _apply16(P, X[img], ts, t0, q0, wph, chunk_kind[ci], n, acc_i)
        for img in range(img0, img1):
            _store_item(acc[(img - img0) * n * ob:], pch[b], ob, q0, n, wph, wo, (img * nout) * plane, plane, out)


@njit(**JIT)
def _store_item(acc, lanes, ob, q0, n, wph, wo, base, plane, out):
    """Transposed store of one image's accumulators (grid positions q0 .. q0 + n) into out[base + o * plane + ...]
    for the valid channels o and columns, 64 positions at a time (the acc block stays in L1)."""
    oh = q0 // wph
    ow = q0 - oh * wph
    q = 0
    while q < n:
        if ow < wo:
            m = min(n - q, wo - ow, 64)
            for j in range(ob):
                o = lanes[j]
                if o >= 0:
                    start = base + o * plane + oh * wo + ow
                    d = out[start:start + m]
                    for i in range(m):
                        d[i] = acc[(q + i) * ob + j]
            q += m
            ow += m
        else:
            q += wph - ow
            ow = 0
            oh += 1


@njit(parallel=True, **JIT)
def _run_par(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img, it_q0, it_q1,
             ob, rmax, ni, wph, wo, nthreads, nout, out, counter):
    """Product-vector path on ``nthreads`` threads (dynamic scheduling through ``counter``).

    T: flat int32 table; X: uint16 planes [N, ...]; prow: int64 [nblk, K, ob] table row starts of the
    block's channels (padding lanes: any valid row); pch: int64 [nblk, ob] output channel of each lane or -1;
    tsh: int64 [groups, K] tap offsets; tch: int64 [groups, K] input channel of each tap;
    chunk_start/kind: tap chunks (9: a 3x3 stride-1 channel, 8: eight taps, 1: one tap); cmask: uint64
    [N, C] blocks of 16 table columns that occur in each input channel's planes (bit b: columns
    16b..16b+15); it_*: block, first image, grid range of the work items (ni images each, fewer at the end);
    nout: O; out: flat int64 output.
    """
    for _ in prange(nthreads):
        _worker(T, X, prow, pch, tsh, tch, chunk_start, chunk_kind, cmask, blk_g, bias, it_blk, it_img, it_q0, it_q1,
                ob, rmax, ni, wph, wo, nout, out, counter)


def plan(geo, cmask, nthreads):
    """Block width, blocks per group and work-item ranges of a layer, with its work for the cost model.

    Returns dict(ob, nblk_g, nr: ranges of grid positions per (block, images), ni: images per work item (that
    share each built product vector), build: product-vector entries built, macs: vector MACs).
    """
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    p16, p32 = -(-og // 16) * 16, -(-og // 32) * 32
    ob = 32 if p32 <= 1.1 * p16 else 16
    nblk_g = -(-og // ob)
    nblk = nblk_g * groups
    # table columns built per tap: 16 per block of columns present in the channel
    span = 16 * float(np.unpackbits(np.ascontiguousarray(cmask).view(np.uint8)).sum()) / max(1, cmask.size)
    # work items: (block, image, range of grid positions). A range long enough to amortise building the
    # product vectors (~16 x span), short enough for its accumulators to stay in L2; then split until all
    # threads have work.
    # Images of a batch share an item (and its product vectors) while one image's grid is shorter than that.
    target = max(2048, min(PV_RMAX, int(16 * span)))
    nr = max(1, -(-nq // target))
    ni = max(1, min(n, target // max(1, nq))) if nr == 1 else 1
    while nblk * -(-n // ni) * nr < 4 * nthreads and ni > 1:  # all threads need work
        ni = -(-ni // 2)
    while nblk * -(-n // ni) * nr < 4 * nthreads and nq // (nr + 1) >= 1024:
        nr += 1
    items = nblk * -(-n // ni) * nr
    return dict(ob=ob, nblk_g=nblk_g, nr=nr, ni=ni, build=items * k * ob * span, macs=nblk * ob * n * nq * k)


def conv(plan, geo, table, wc, b, planes, cmask, out, nthreads, cache=None):
    """One layer along ``plan`` into ``out`` (int64 [N, O, Ho, Wo]); every running sum must fit 31 bits.

    Arguments as in :func:`pyapprox.nn.kernels.scalar.conv`; cmask: uint64 [N, C] blocks of 16 table columns
    that occur in each input channel's planes.
    """
    n, cg, kh, kw, og, k, nq, stride, dilation, lp, wph, wo, groups, size = geo
    ob, nblk_g, nr, ni = plan["ob"], plan["nblk_g"], plan["nr"], plan.get("ni", 1)
    cache = {} if cache is None else cache
    if ("vector", ob) not in cache:
        cache[("vector", ob)] = _weight_rows(wc, ob, nblk_g, og, cg, kh, kw, stride, dilation, groups, size)
    prow, pch, blk_g, tch, starts, kinds = cache[("vector", ob)]
    if ("tsh", lp, wph) not in cache:
        tsh = tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups)
        cache[("tsh", lp, wph)] = tsh, None
    tsh = cache[("tsh", lp, wph)][0]
    bounds = [nq * r // nr for r in range(nr + 1)]
    it = np.array([(blk, img, bounds[r], bounds[r + 1]) for blk in range(groups * nblk_g) for img in range(0, n, ni)
                   for r in range(nr) if bounds[r] < bounds[r + 1]], np.int64).reshape(-1, 4)
    args = (table, planes, prow, pch, tsh, tch, starts, kinds, np.ascontiguousarray(cmask), blk_g, b,
            np.ascontiguousarray(it[:, 0]), np.ascontiguousarray(it[:, 1]), np.ascontiguousarray(it[:, 2]),
            np.ascontiguousarray(it[:, 3]), ob, int((it[:, 3] - it[:, 2]).max()), ni, wph, wo)
    nthreads = max(1, min(nthreads, len(it)))
    if nthreads > 1:
        _run_par(*args, nthreads, out.shape[1], out.reshape(-1), np.zeros(1, np.int64))
    else:  # the worker alone, on the calling thread
        _worker(*args, out.shape[1], out.reshape(-1), np.zeros(1, np.int64))


def _weight_rows(wc, ob, nblk_g, og, cg, kh, kw, stride, dilation, groups, size):
    """What depends on the weights only: (prow, pch, blk_g, tch, chunk starts, chunk kinds) of :func:`_run_par`."""
    k = cg * kh * kw
    # tap chunks: a 3x3 stride-1 channel at once, else 8 taps at once, then single taps
    if (kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1):
        starts, kinds = list(range(0, k, 9)), [9] * cg
    else:
        k8 = k - k % 8
        starts, kinds = list(range(0, k8, 8)) + list(range(k8, k)), [8] * (k8 // 8) + [1] * (k - k8)
    # lanes of each block: output channels (or -1: padding lanes, computed with a valid row and dropped)
    lane = np.arange(nblk_g * ob)
    pch = np.concatenate([np.where(lane < og, g * og + np.minimum(lane, og - 1), -1) for g in range(groups)])
    pch = pch.reshape(groups * nblk_g, ob)
    src = np.where(pch >= 0, pch, np.repeat(pch[:, :1], ob, axis=1))  # padding lanes reuse the first lane's rows
    prow = np.ascontiguousarray((wc[src].astype(np.int64) * size).transpose(0, 2, 1))  # [nblk, K, ob]
    blk_g = np.arange(groups * nblk_g) // nblk_g
    tch = np.ascontiguousarray(np.arange(groups)[:, None] * cg + np.repeat(np.arange(cg), kh * kw)[None, :],
                               dtype=np.int64)  # input channel of each tap (im2col order)
    return (prow, np.ascontiguousarray(pch, dtype=np.int64), blk_g, tch, np.asarray(starts + [k], np.int64),
            np.asarray(kinds, np.int64))
