"""Compiled backward pass of a LUT convolution with gradient tables (``--gradient lut``).

For accumulators ``acc[o, p] = sum_t P[w[o, t], x[t(p)]]`` and an upstream gradient ``g[o, p]``:

* ``grad_x[i] = sum_{(o, t, p): t(p) = i} g[o, p] * GX[w[o, t], x[i]]`` (GX: the table's slope along x),
* ``grad_w[o, t] = sum_p g[o, p] * GW[w[o, t], x[t(p)]]`` (GW: its slope along w; padding counts as code 0,
  which the multiplier sees).

Method. Per input channel c and tap t (kernel row, kernel column) the block of ``og`` output channels that
reads c has fixed weights, so ``V[v, j] = G[w[o0 + j, t], v]`` turns every term into a contiguous vector of
``og`` slopes selected by the activation code v: grad_x is then one dot product of length ``og`` per output
position (with the gradient stored channels-last), grad_w one multiply-add of length ``og``. Depthwise convs
(``og`` = 1) read a tap's slopes from one table row instead (:func:`_backward_dw`). V is built only for
the codes present in the channel, and only when the channel has enough positions to repay it; otherwise the
slopes are read straight from the transposed tables. Threads take whole input channels (``prange``): each
output element is written by one thread in one fixed order, so results do not depend on the thread count.
Sums are float32, like the float network's own backward pass.
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import JIT, njit, prange


@njit(inline="always", **JIT)
def _code_range(xp, c):
    vlo, vhi = xp[0, c, 0, 0], xp[0, c, 0, 0]
    for b in range(xp.shape[0]):
        for y in range(xp.shape[2]):
            for x in range(xp.shape[3]):
                v = xp[b, c, y, x]
                vlo = min(vlo, v)
                vhi = max(vhi, v)
    return vlo, vhi


@njit(parallel=True, fastmath=True, **JIT)
def _backward(xp, wi, g, gxt, gwt, sh, sw, dh, dw, og, cg, need_x, need_w, gx_out, gw_out):
    """xp [N, C, Hp, Wp] int32 table columns (padded with the column of code 0); wi [O, cg, kh, kw] int32 table
    rows; g [N, Ho, Wo, O] float32; gxt / gwt [S, S] float32 indexed [column, row]; outputs gx_out
    [N, C, Hp, Wp] and gw_out [O, cg, kh, kw] float32 (zeroed by the caller)."""
    n, c_in, hp, wp = xp.shape
    ho, wo = g.shape[1], g.shape[2]
    kh, kw = wi.shape[2], wi.shape[3]
    positions = n * ho * wo
    for c in prange(c_in):
        grp = c // cg
        ci = c - grp * cg
        o0 = grp * og
        vlo, vhi = _code_range(xp, c)
        nv = vhi - vlo + 1
        vectors = nv * 2 < positions
        vx = np.zeros((nv if vectors and need_x else 1, og), np.float32)
        vw = np.zeros((nv if vectors and need_w else 1, og), np.float32)
        acc_w = np.zeros(og, np.float32)
        rows = np.empty(og, np.int32)
        for ki in range(kh):
            for kj in range(kw):
                for j in range(og):
                    rows[j] = wi[o0 + j, ci, ki, kj]
                if vectors:
                    for v in range(nv):
                        for j in range(og):
                            if need_x:
                                vx[v, j] = gxt[vlo + v, rows[j]]
                            if need_w:
                                vw[v, j] = gwt[vlo + v, rows[j]]
                acc_w[:] = 0.0
                for b in range(n):
                    for oy in range(ho):
                        iy = oy * sh + ki * dh
                        for ox in range(wo):
                            ix = ox * sw + kj * dw
                            v = xp[b, c, iy, ix]
                            gp = g[b, oy, ox, o0:o0 + og]
                            if vectors:
                                if need_x:
                                    s = np.float32(0.0)
                                    r = vx[v - vlo]
                                    for j in range(og):
                                        s += r[j] * gp[j]
                                    gx_out[b, c, iy, ix] += s
                                if need_w:
                                    r = vw[v - vlo]
                                    for j in range(og):
                                        acc_w[j] += gp[j] * r[j]
                            else:
                                if need_x:
                                    s = np.float32(0.0)
                                    for j in range(og):
                                        s += gxt[v, rows[j]] * gp[j]
                                    gx_out[b, c, iy, ix] += s
                                if need_w:
                                    for j in range(og):
                                        acc_w[j] += gp[j] * gwt[v, rows[j]]
                if need_w:
                    for j in range(og):
                        gw_out[o0 + j, ci, ki, kj] = acc_w[j]


@njit(parallel=True, fastmath=True, **JIT)
def _backward_dw(xp, wi, g, gx, gw, sh, sw, dh, dw, need_x, need_w, gx_out, gw_out):
    """Depthwise (one output channel per input channel): g [N, O, Ho, Wo] channels-first and the slope tables
    untransposed ([row, column]): a tap's slopes are one table row, indexed by the activation code."""
    n, c_in, hp, wp = xp.shape
    ho, wo = g.shape[2], g.shape[3]
    kh, kw = wi.shape[2], wi.shape[3]
    for c in prange(c_in):
        for ki in range(kh):
            for kj in range(kw):
                row = wi[c, 0, ki, kj]
                acc = np.float32(0.0)
                for b in range(n):
                    for oy in range(ho):
                        iy = oy * sh + ki * dh
                        for ox in range(wo):
                            ix = ox * sw + kj * dw
                            v = xp[b, c, iy, ix]
                            gv = g[b, c, oy, ox]
                            if need_x:
                                gx_out[b, c, iy, ix] += gx[row, v] * gv
                            if need_w:
                                acc += gw[row, v] * gv
                if need_w:
                    gw_out[c, 0, ki, kj] = acc


def lut_conv2d_backward(xcols: np.ndarray, wrows: np.ndarray, g: np.ndarray, gxt: np.ndarray, gwt: np.ndarray,
                        stride, dilation, groups: int, need_x: bool = True, need_w: bool = True):
    """(grad of the padded input [N, C, Hp, Wp], grad of the weights [O, cg, kh, kw]), float32.

    ``xcols``: padded input as table columns; ``wrows``: weights as table rows; ``g``: the accumulators' gradient
    channels-last [N, Ho, Wo, O]; ``gxt`` / ``gwt``: the slope tables transposed ([column, row]).
    """
    o, cg = wrows.shape[0], wrows.shape[1]
    gx = np.zeros(xcols.shape, np.float32)
    gw = np.zeros(wrows.shape, np.float32)
    xcols, wrows = np.ascontiguousarray(xcols, np.int32), np.ascontiguousarray(wrows, np.int32)
    geometry = (int(stride[0]), int(stride[1]), int(dilation[0]), int(dilation[1]))
    if cg == 1 and groups == o == xcols.shape[1]:
        _backward_dw(xcols, wrows, np.ascontiguousarray(g.transpose(0, 3, 1, 2), np.float32),
                     np.ascontiguousarray(gxt.T, np.float32), np.ascontiguousarray(gwt.T, np.float32), *geometry,
                     bool(need_x), bool(need_w), gx, gw)
    else:
        _backward(xcols, wrows, np.ascontiguousarray(g, np.float32), np.ascontiguousarray(gxt, np.float32),
                  np.ascontiguousarray(gwt, np.float32), *geometry, o // groups, cg, bool(need_x), bool(need_w),
                  gx, gw)
    return gx, gw
