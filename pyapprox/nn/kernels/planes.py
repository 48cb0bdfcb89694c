"""Operand layout of the LUT kernels: offset, zero-padded, phase-split input codes ("shifted planes").

See :mod:`pyapprox.nn.kernels` for the layout; :func:`pyapprox.nn.kernels.prepare_planes` is the entry point.
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import JIT, njit, prange


@njit(**JIT)
def _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item):
    """Phase planes of one (image, channel) ``item`` for :func:`prep_planes_par`."""
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


@njit(parallel=True, **JIT)
def prep_planes_par(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks):
    """x int32 [N, C, H, W] -> out uint16 [N, C * sh * sw * lp]: phase planes of the padded, offset codes.

    mins/maxs [N * C] receive the smallest/largest code of each (image, channel), masks [N * C] the blocks
    of 16 table columns its codes fall in (bit b: columns 16b..16b+15, i.e. codes + off).
    """
    for item in prange(mins.shape[0]):
        _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item)


@njit(**JIT)
def prep_planes_ser(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks):
    """Single-threaded :func:`prep_planes_par` (no thread launch for small inputs)."""
    for item in range(mins.shape[0]):
        _prep_channel(x, off, sh, sw, ph, pw, hph, wph, lp, out, mins, maxs, masks, item)


def geometry(h, w, kh, kw, stride, padding, dilation):
    """(Ho, Wo, Hph, Wph, lp): output size, phase-plane rows and row pitch, plane length with its slack."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    hp, wp = h + 2 * ph, w + 2 * pw
    hph, wph = -(-hp // sh), -(-wp // sw)
    # every read of a valid output stays inside the hph x wph plane; the junk columns of the last grid row
    # read up to (kw - 1) * dw // sw further: keep a slack (filled with code 0)
    lp = hph * wph + (kw - 1) * dw // sw + 8
    return ho, wo, hph, wph, lp


def tap_offsets(cg, kh, kw, stride, dilation, lp, wph, groups):
    """int64 [groups, K]: offset of each tap's operand for grid position 0 in an image's planes (im2col order)."""
    nph = stride[0] * stride[1]
    cc, ky, kx = (a.ravel() for a in np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij"))
    dy, dx = ky * dilation[0], kx * dilation[1]
    phase = (dy % stride[0]) * stride[1] + dx % stride[1]
    shift = (dy // stride[0]) * wph + dx // stride[1]
    plane = (np.arange(groups)[:, None] * cg + cc[None, :]) * nph + phase[None, :]
    return (plane * lp + shift[None, :]).astype(np.int64)

