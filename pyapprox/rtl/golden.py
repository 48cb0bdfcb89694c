"""Golden (reference) models of the RTL multiplier library, in vectorised numpy.

Every model is written from the algorithm's arithmetic definition, independently of
the Verilog in ``rtl/mult`` (which is structural / gate-level): the truncation and
broken-array models mask the outer product of operand bits, the logarithmic models
use floating-point log/antilog maths with ``floor``, DRUM uses an integer formula.

Convention: a model takes raw input codes ``a, b`` (integer arrays or scalars,
broadcastable, values 0..255) plus keyword parameters named like the Verilog
parameters, and returns an ``int64`` array holding the output value.  Signed designs
interpret codes as two's complement (code 255 is -1) and return signed values.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "exact",
    "exact_signed",
    "trunc",
    "trunc_comp_constant",
    "bam",
    "mitchell",
    "mbm",
    "drum",
    "comp42",
    "sign_magnitude",
    "golden_table",
]

_WEIGHTS = np.arange(8)
_COLUMN = _WEIGHTS[:, None] + _WEIGHTS[None, :]  # [i, j] -> i + j (weight of a_i b_j)
_ROW = np.broadcast_to(_WEIGHTS[None, :], (8, 8))  # [i, j] -> j (row = multiplier bit)


def _codes(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    for name, x in (("a", a), ("b", b)):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"input codes {name} must be in 0..255")
    return a, b


def _bits(x: np.ndarray) -> np.ndarray:
    """Bits of ``x`` along a new last axis, LSB first: shape x.shape + (8,)."""
    return (x[..., None] >> _WEIGHTS) & 1


def _pp_sum(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """sum of a_i b_j 2^(i+j) over the (8, 8) boolean mask ``keep[i, j]``."""
    weights = np.where(keep, np.int64(1) << _COLUMN, 0).astype(np.int64)
    return np.einsum("...i,...j,ij->...", _bits(a), _bits(b), weights).astype(np.int64)


# --------------------------------------------------------------------------- exact


def exact(a, b) -> np.ndarray:
    """Exact unsigned product (mult_exact_array, mult_exact_behav)."""
    a, b = _codes(a, b)
    return a * b


def exact_signed(a, b) -> np.ndarray:
    """Exact two's-complement product of 8-bit codes (mult_signed_bw)."""
    a, b = _codes(a, b)
    sa = np.where(a >= 128, a - 256, a)
    sb = np.where(b >= 128, b - 256, b)
    return (sa * sb).astype(np.int64)


# --------------------------------------------------------------------------- truncation


def trunc_comp_constant(K: int) -> int:
    """Round-half-up expected value of the dropped bits (each is 1 with probability 1/4)."""
    dropped = sum(2.0 ** (i + j) for i in range(8) for j in range(8) if i + j < K)
    return int(np.floor(dropped * 0.25 + 0.5))


def trunc(a, b, K: int = 4, COMP: int = 0) -> np.ndarray:
    """Column-truncated product: bits a_i b_j with i + j < K dropped (+ constant if COMP)."""
    if not 0 <= K <= 15:
        raise ValueError("trunc: K must be in 0..15")
    a, b = _codes(a, b)
    p = _pp_sum(a, b, _COLUMN >= K)
    return p + (trunc_comp_constant(K) if COMP else 0)


def bam(a, b, HBL: int = 0, VBL: int = 0) -> np.ndarray:
    """Broken-array multiplier: keep a_i b_j only for j >= HBL and i + j >= VBL."""
    if not (0 <= HBL <= 8 and 0 <= VBL <= 15):
        raise ValueError("bam: HBL must be in 0..8 and VBL in 0..15")
    a, b = _codes(a, b)
    return _pp_sum(a, b, (_ROW >= HBL) & (_COLUMN >= VBL))


# --------------------------------------------------------------------------- logarithmic


def _log_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characteristic k = floor(log2 x) and fraction x/2^k - 1 truncated to 7 bits (x > 0)."""
    m, e = np.frexp(np.maximum(x, 1).astype(np.float64))  # x = m * 2^e, m in [0.5, 1)
    k = (e - 1).astype(np.int64)
    frac = 2.0 * m - 1.0
    frac = np.floor(frac * 128.0) / 128.0  # exact for 8-bit inputs; kept for the definition
    return k, frac


def mitchell(a, b) -> np.ndarray:
    """Mitchell (1962) logarithmic product: antilog(log~(a) + log~(b)), truncated."""
    a, b = _codes(a, b)
    ka, xa = _log_parts(a)
    kb, xb = _log_parts(b)
    s = xa + xb
    p = np.where(
        s < 1.0,
        np.ldexp(1.0 + s, ka + kb),
        np.ldexp(s, ka + kb + 1),
    )
    p = np.floor(p).astype(np.int64)
    return np.where((a == 0) | (b == 0), 0, p)


def mbm(a, b) -> np.ndarray:
    """MBM (Saadat et al., TCAD 2018): Mitchell + mantissa correction 1/12 (7 bits) or half of it."""
    a, b = _codes(a, b)
    ka, xa = _log_parts(a)
    kb, xb = _log_parts(b)
    c = np.floor((1.0 / 12.0) * 128.0) / 128.0  # 1/12 truncated to 7 fraction bits = 10/128
    s = xa + xb
    no_carry = s < 1.0
    frac = s - 1.0  # mantissa fraction when there is a carry
    corr = np.where(frac + c / 2.0 >= 1.0, 0.0, c / 2.0)  # overflowing correction omitted
    p = np.where(
        no_carry,
        np.ldexp(1.0 + s + c, ka + kb),
        np.ldexp(1.0 + frac + corr, ka + kb + 1),
    )
    p = np.floor(p).astype(np.int64)
    return np.where((a == 0) | (b == 0), 0, p)


# --------------------------------------------------------------------------- DRUM


def drum(a, b, K: int = 4) -> np.ndarray:
    """DRUM-k (Hashemi et al., ICCAD 2015): K-bit unbiased leading segments, exact K x K product."""
    if not 2 <= K <= 8:
        raise ValueError("drum: K must be in 2..8")
    a, b = _codes(a, b)

    def segment(x):
        t = np.where(x > 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int64), 0)
        # guard against log2 rounding: t must satisfy 2^t <= x < 2^(t+1)
        t = np.where((x > 0) & ((np.int64(1) << t) > x), t - 1, t)
        t = np.where((x > 0) & ((np.int64(1) << (t + 1)) <= x), t + 1, t)
        shift = np.where(x >= (1 << K), t - K + 1, 0)
        seg = np.where(shift > 0, (x >> shift) | 1, x)
        return seg, shift

    sa, sha = segment(a)
    sb, shb = segment(b)
    return (sa * sb) << (sha + shb)


# --------------------------------------------------------------------------- 4:2 compressors


def comp42(a, b, K: int = 8) -> np.ndarray:
    """Approximate 4:2-compressor multiplier (Momeni et al., TC 2015), columns < K compressed.

    Rows 0-3 and 4-7 form two groups; in each, the four bits x1..x4 of a column c < K
    become sum = (x1^x2)|(x3^x4) at weight 2^c and carry = (x1&x2)|(x3&x4) at 2^(c+1).
    Everything else is added exactly.
    """
    if not 0 <= K <= 15:
        raise ValueError("comp42: K must be in 0..15")
    a, b = _codes(a, b)
    ab, bb = _bits(a), _bits(b)
    p = _pp_sum(a, b, _COLUMN >= K)
    for c in range(min(K, 16)):
        for g in (0, 1):
            x = []
            for r in range(4 * g, 4 * g + 4):  # row r = multiplier bit b_r, a index c - r
                i = c - r
                x.append(ab[..., i] & bb[..., r] if 0 <= i <= 7 else np.zeros_like(a))
            s = (x[0] ^ x[1]) | (x[2] ^ x[3])
            cy = (x[0] & x[1]) | (x[2] & x[3])
            p = p + (s << c) + (cy << (c + 1))
    return p.astype(np.int64)


# --------------------------------------------------------------------------- helpers


def sign_magnitude(inner_fn: Callable, a_sign, a_mag, b_sign, b_mag, **params):
    """Sign-magnitude wrapper (sm_mult): returns ``(p_sign, p_mag)``.

    ``p_mag = inner_fn(a_mag, b_mag, **params)``; ``p_sign = a_sign ^ b_sign`` unless the
    magnitude is zero (zero is always positive).
    """
    p_mag = np.asarray(inner_fn(a_mag, b_mag, **params), dtype=np.int64)
    sa = np.asarray(a_sign, dtype=np.int64) & 1
    sb = np.asarray(b_sign, dtype=np.int64) & 1
    p_sign = ((sa ^ sb) & (p_mag != 0)).astype(np.int64)
    p_sign, p_mag = np.broadcast_arrays(p_sign, p_mag)
    return p_sign.copy(), p_mag.copy()


def golden_table(fn: Callable, **params) -> np.ndarray:
    """(256, 256) int64 table of ``fn`` over all input codes, indexed ``[a_code, b_code]``."""
    codes = np.arange(256, dtype=np.int64)
    out = fn(codes[:, None], codes[None, :], **params)
    return np.ascontiguousarray(np.broadcast_to(out, (256, 256)), dtype=np.int64)
