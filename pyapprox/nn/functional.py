"""Integer arithmetic of the accelerator, as plain vectorised reference code.

Everything here works on integer codes (see :mod:`pyapprox.nn.config` for the number model) and is
the reference that the fast kernels and the RTL MAC array are compared with bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox.errors import PyapproxError

_pair = torch.nn.modules.utils._pair


def product_table(table: np.ndarray, operand_format: str, weight_port: str) -> tuple[np.ndarray, int]:
    """Signed product of every (weight code, activation code) pair, indexed ``[w + off, x + off]``.

    ``table`` is the LUT's 256x256 array indexed by the multiplier's raw port codes ``[a, b]``.
    Sign-magnitude: codes -255..255, product = sign(w) sign(x) table[|w|, |x|] with sign(0) = +1 (code 0
    is +0), so a multiplier whose table[w, 0] is non-zero keeps that value, with the weight's sign.
    int8: codes -128..127, product = table[w & 255, x & 255] (a signed table).
    """
    t = np.asarray(table, dtype=np.int64)
    if weight_port == "b":
        t = t.T  # t[w, x] = LUT[a=x, b=w]
    if operand_format == "sign-magnitude":
        v = np.arange(-255, 256)
        mag = np.abs(v)
        sign = np.where(v < 0, -1, 1)  # code 0 is +0: its sign bit is clear
        st = t[mag[:, None], mag[None, :]] * (sign[:, None] * sign[None, :])
        return np.ascontiguousarray(st), 255
    if operand_format == "int8":
        v = np.arange(-128, 128)
        st = t[(v & 255)[:, None], (v & 255)[None, :]]
        return np.ascontiguousarray(st), 128
    raise PyapproxError(f"unknown operand format {operand_format!r}")


def exact_product_table(operand_format: str) -> tuple[np.ndarray, int]:
    lo, hi = (-255, 255) if operand_format == "sign-magnitude" else (-128, 127)
    v = np.arange(lo, hi + 1, dtype=np.int64)
    return np.outer(v, v), -lo


def conv_output_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def im2col(x: torch.Tensor, kernel, stride, padding, dilation) -> torch.Tensor:
    """[N, C, H, W] integer codes -> [N, C*kh*kw, L] int64 columns (zero padding = code 0), im2col order
    (channel, kernel row, kernel column)."""
    cols = F.unfold(x.to(torch.float64), kernel, dilation=dilation, padding=padding, stride=stride)
    return cols.to(torch.int64)


def wrap(acc: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return ((acc + half) % (1 << bits)) - half


def lut_conv2d_reference(x: torch.Tensor, w: torch.Tensor, ptable: np.ndarray, offset: int, bias: torch.Tensor | None,
                         stride=1, padding=0, dilation=1, groups=1, acc_bits=32, acc_mode="wrap",
                         chunk: int = 4096) -> tuple[torch.Tensor, int]:
    """Convolution of integer codes in which every product is ``ptable[w + offset, x + offset]``.

    Returns the accumulators [N, O, Ho, Wo] (int64, already wrapped/saturated to ``acc_bits``) and the
    number of outputs whose running sum overflowed. Accumulation order: bias, then im2col order.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups or o % groups:
        raise PyapproxError(f"conv shapes do not fit: input {c} channels, weight {tuple(w.shape)}, groups {groups}")
    ho = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    wo = conv_output_size(wd, kw, stride[1], padding[1], dilation[1])
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    pt = torch.from_numpy(np.asarray(ptable, dtype=np.int64))
    size = pt.shape[0]
    og = o // groups
    out = torch.empty((n, o, ho * wo), dtype=torch.int64)
    overflow = 0
    b = torch.zeros(o, dtype=torch.int64) if bias is None else bias.to(torch.int64)
    for g in range(groups):
        cols = im2col(x[:, g * cg:(g + 1) * cg], (kh, kw), stride, padding, dilation) + offset  # [N, K, L]
        wg = (w[g * og:(g + 1) * og].reshape(og, -1).to(torch.int64) + offset)  # [og, K]
        if cols.min() < 0 or cols.max() >= size or wg.min() < 0 or wg.max() >= size:
            raise PyapproxError("operand code outside the table's range")
        k = wg.shape[1]
        for i in range(n):
            for s in range(0, ho * wo, chunk):
                xc = cols[i, :, s:s + chunk]  # [K, Lc]
                prod = pt.view(-1)[wg[:, :, None] * size + xc[None, :, :]]  # [og, K, Lc]
                acc0 = b[g * og:(g + 1) * og, None].expand(og, xc.shape[1])
                if acc_mode == "wrap":
                    run = torch.cumsum(torch.cat([acc0[:, None, :], prod], 1), 1)  # running sums [og, K+1, Lc]
                    flagged = ((run < lo) | (run > hi)).any(1)
                    res = wrap(run[:, -1], acc_bits)
                else:
                    acc = acc0.clamp(lo, hi)
                    flagged = (acc0 < lo) | (acc0 > hi)
                    for j in range(k):
                        acc = acc + prod[:, j]
                        flagged |= (acc < lo) | (acc > hi)
                        acc = acc.clamp(lo, hi)
                    res = acc
                overflow += int(flagged.sum())
                out[i, g * og:(g + 1) * og, s:s + chunk] = res
    return out.view(n, o, ho, wo), overflow


#: Integers of magnitude below this are exact in float32, so is every sum of them that stays below it.
F32_EXACT = 1 << 24


def int_conv2d_exact(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride=1, padding=0, dilation=1,
                     groups=1, cache: dict | None = None) -> torch.Tensor:
    """Exact integer convolution (no accumulator limit) of integer codes.

    On the CPU from float32 convolutions in which every product and every partial sum is an integer of magnitude
    below 2^24, hence exact in any summation order. Any partial sum of output channel o is at most
    max|x| * L1(w[o]) (the sum of |w| over its taps), so one convolution is exact when max|x| max_o L1(w[o]) < 2^24.
    Else the weights are split as w = 16 wh + wl (wl in 0..15) and both halves are convolved in ONE convolution
    (stacked as 2 x O output channels) when each half keeps the bound, then combined in int64; else input channels
    are cut into chunks that keep it (groups = 1). Elsewhere (CUDA may use TF32) and where the bound cannot be
    kept, float64 (exact while |sums| < 2^53). ``cache``: a dict kept by the caller for these weights (unchanged)."""
    y = None
    if x.device.type == "cpu" and x.numel() and w.numel():
        y = _int_conv2d_f32(x, w, stride, padding, dilation, groups, cache)
    if y is None:
        y = F.conv2d(x.to(torch.float64), w.to(torch.float64), None, stride, padding, dilation, groups)
        y = y.to(torch.int64)
    if bias is not None:
        y += bias.to(torch.int64).view(1, -1, 1, 1)
    return y


def _weight_bounds(w: torch.Tensor) -> dict:
    """L1 bounds of the weights [O, cg, kh, kw] for the float32 paths: of w, and of the larger split half
    (w = 16 wh + wl, wl in 0..15), per output channel (max) and per (output, input channel)."""
    wh, wl = _split_halves(w)
    chan = torch.maximum(wh.abs().sum((2, 3)), wl.sum((2, 3)))  # [O, cg]
    return {"l1": int(w.to(torch.int64).abs().sum((1, 2, 3)).max()), "split_l1": int(chan.sum(1).max()),
            "chan_l1": chan}


def _split_halves(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(wh, wl) int64 with w = 16 wh + wl, wl in 0..15."""
    w64 = w.to(torch.int64)
    wl = torch.remainder(w64, 16)
    return torch.div(w64 - wl, 16, rounding_mode="floor"), wl


def _int_conv2d_f32(x, w, stride, padding, dilation, groups, cache=None) -> torch.Tensor | None:
    """The float32 paths of :func:`int_conv2d_exact`; None when none keeps the bound. ``cache`` keeps the weight
    bounds and (for the split) the stacked halves: computed once per layer, the split only where it is used."""
    cache = {} if cache is None else cache
    if "bounds" not in cache:
        cache["bounds"] = _weight_bounds(w)
    bounds = cache["bounds"]
    lo, hi = torch.aminmax(x)
    xmax = max(-int(lo), int(hi))
    xf = x.to(torch.float32)

    def conv(a, wt):
        return F.conv2d(a, wt, None, stride, padding, dilation, groups)

    if xmax * bounds["l1"] < F32_EXACT:
        return conv(xf, w.to(torch.float32)).to(torch.int64)
    o, cg = w.shape[:2]
    if xmax * bounds["split_l1"] < F32_EXACT:
        if "split" not in cache:  # per group: the wh outputs, then the wl outputs
            wh, wl = _split_halves(w)
            og = o // groups
            cache["split"] = torch.stack([wh.view(groups, og, *w.shape[1:]), wl.view(groups, og, *w.shape[1:])],
                                         1).reshape(2 * o, *w.shape[1:]).to(torch.float32)
        y = conv(xf, cache["split"])  # [N, 2 O, H, W]
        n, _, ho, wo = y.shape
        y = y.view(n, groups, 2, -1, ho, wo).to(torch.int64)
        return (y[:, :, 0] * 16 + y[:, :, 1]).reshape(n, -1, ho, wo)
    if groups > 1:
        return None
    # input-channel chunks [c0, c1) with xmax * max_o sum_{c0 <= c < c1} chan_l1[o, c] < 2^24
    run = torch.cumsum(bounds["chan_l1"], 1)  # [O, cg]
    wh, wl = (h.to(torch.float32) for h in _split_halves(w))
    y, c0 = None, 0
    while c0 < cg:
        base = run[:, c0 - 1:c0] if c0 else torch.zeros(o, 1, dtype=torch.int64)
        fits = ((run[:, c0:] - base) * xmax < F32_EXACT).all(0)  # per candidate end channel, in order
        c1 = c0 + int(fits.to(torch.int8).cumprod(0).sum())
        if c1 == c0:
            return None  # one channel alone exceeds the bound
        xc = xf[:, c0:c1]
        part = conv(xc, wh[:, c0:c1]).to(torch.int64) * 16 + conv(xc, wl[:, c0:c1]).to(torch.int64)
        y = part if y is None else y + part
        c0 = c1
    return y


def quantize(x: torch.Tensor, scale: float, qmin: int, qmax: int) -> torch.Tensor:
    """clamp(round-half-even(x / scale)) as int32 codes."""
    return torch.clamp(torch.round(x / scale), qmin, qmax).to(torch.int32)


def requant_params(real_multiplier: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer M (``bits`` bits, top bit set) and shift S with M / 2^S ~= real multiplier, per channel."""
    m = np.asarray(real_multiplier, dtype=np.float64)
    if (m <= 0).any() or not np.isfinite(m).all():
        raise PyapproxError("requantization multipliers must be positive and finite")
    e = np.floor(np.log2(m)).astype(np.int64)
    shift = (bits - 1) - e
    mult = np.round(m * np.exp2(shift.astype(np.float64))).astype(np.int64)
    top = mult >= (1 << bits)
    mult[top] //= 2
    shift[top] -= 1
    return mult, shift


def requantize(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, mult_neg: torch.Tensor | None,
               qlo: torch.Tensor | int, qhi: torch.Tensor | int) -> torch.Tensor:
    """q = clamp((acc * M + 2^(S-1)) >> S), with M_neg for negative accumulators when given (LeakyReLU).

    ``acc`` is [N, O, H, W] int64, ``mult``/``shift``/``mult_neg``/``qlo``/``qhi`` per output channel.
    """
    shape = (1, -1, 1, 1)
    m = mult.view(shape)
    if mult_neg is not None:
        m = torch.where(acc < 0, mult_neg.view(shape), m)
    s = shift.view(shape)
    prod = acc * m
    pos = s > 0
    rounded = torch.where(pos, (prod + (torch.ones_like(s) << (s - 1).clamp(min=0))) >> s.clamp(min=0),
                          prod << (-s).clamp(min=0))
    lo = qlo.view(shape) if isinstance(qlo, torch.Tensor) else qlo
    hi = qhi.view(shape) if isinstance(qhi, torch.Tensor) else qhi
    return torch.maximum(torch.minimum(rounded, torch.as_tensor(hi)), torch.as_tensor(lo))
