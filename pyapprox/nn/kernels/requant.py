"""Compiled requantization and quantization: :func:`pyapprox.nn.functional.requantize` and
:func:`pyapprox.nn.functional.quantize` element for element, without PyTorch's temporaries (one pass over the
tensor instead of about ten full-size tensor operations).

Requantization: ``acc`` [N, O, P] (int32 or int64), per output channel ``mult``, ``mneg`` (= ``mult`` without
LeakyReLU), ``shift``, ``lo``, ``hi`` (int64); ``out`` [N, O, P] int64. For each element: m = mneg if acc < 0
else mult; r = (acc m + 2^(s-1)) >> s for s > 0, acc m << -s otherwise (arithmetic shifts, |s| < 63);
out = max(min(r, hi), lo). The fused variant also dequantizes: int32 codes and float32 ``float32(code) * scale``
(``scale`` float32), what ``codes.to(torch.float32) * s_out`` gives.

Quantization: float32 ``x`` (flat) -> int32 ``clamp(rint(x / scale), qmin, qmax)`` with ``x / scale`` a float32
division, as PyTorch computes it; returns the number of NaNs met (their codes are left to PyTorch's rules).

Every element is computed by one iteration: the results do not depend on threads.
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import numba

QUANT_CHUNK = 1 << 16  # elements per parallel work item of the quantizer


def _requant_row(acc, mult, mneg, shift, lo, hi, out, i, c):
    m, mn, s, l, h = mult[c], mneg[c], shift[c], lo[c], hi[c]
    if s > 0:
        half = np.int64(1) << (s - 1)
        for j in range(acc.shape[2]):
            a = np.int64(acc[i, c, j])
            r = (a * (mn if a < 0 else m) + half) >> s
            out[i, c, j] = max(min(r, h), l)
    else:
        for j in range(acc.shape[2]):
            a = np.int64(acc[i, c, j])
            r = (a * (mn if a < 0 else m)) << (-s)
            out[i, c, j] = max(min(r, h), l)


def _requant_dequant_row(acc, mult, mneg, shift, lo, hi, scale, codes, y, i, c):
    m, mn, s, l, h = mult[c], mneg[c], shift[c], lo[c], hi[c]
    if s > 0:
        half = np.int64(1) << (s - 1)
        for j in range(acc.shape[2]):
            a = np.int64(acc[i, c, j])
            q = max(min((a * (mn if a < 0 else m) + half) >> s, h), l)
            codes[i, c, j] = np.int32(q)
            y[i, c, j] = np.float32(q) * scale
    else:
        for j in range(acc.shape[2]):
            a = np.int64(acc[i, c, j])
            q = max(min((a * (mn if a < 0 else m)) << (-s), h), l)
            codes[i, c, j] = np.int32(q)
            y[i, c, j] = np.float32(q) * scale


def _quant_range(x, scale, qmin, qmax, out, start, stop):
    nans = 0
    for j in range(start, stop):
        v = x[j] / scale
        if v != v:
            nans += 1
            continue
        out[j] = np.int32(min(max(np.rint(v), qmin), qmax))
    return nans


if numba is not None:
    _row = numba.njit(cache=True, inline="always")(_requant_row)
    _rqdq = numba.njit(cache=True, inline="always")(_requant_dequant_row)
    _quant = numba.njit(cache=True, inline="always", error_model="numpy")(_quant_range)

    @numba.njit(cache=True)
    def requant_ser(acc, mult, mneg, shift, lo, hi, out):  # pragma: no cover (numba)
        for i in range(acc.shape[0]):
            for c in range(acc.shape[1]):
                _row(acc, mult, mneg, shift, lo, hi, out, i, c)

    @numba.njit(cache=True, parallel=True)
    def requant_par(acc, mult, mneg, shift, lo, hi, out):  # pragma: no cover (numba)
        no = acc.shape[1]
        for idx in numba.prange(acc.shape[0] * no):
            _row(acc, mult, mneg, shift, lo, hi, out, idx // no, idx % no)

    @numba.njit(cache=True)
    def requant_dequant_ser(acc, mult, mneg, shift, lo, hi, scale, codes, y):  # pragma: no cover (numba)
        for i in range(acc.shape[0]):
            for c in range(acc.shape[1]):
                _rqdq(acc, mult, mneg, shift, lo, hi, scale, codes, y, i, c)

    @numba.njit(cache=True, parallel=True)
    def requant_dequant_par(acc, mult, mneg, shift, lo, hi, scale, codes, y):  # pragma: no cover (numba)
        no = acc.shape[1]
        for idx in numba.prange(acc.shape[0] * no):
            _rqdq(acc, mult, mneg, shift, lo, hi, scale, codes, y, idx // no, idx % no)

    @numba.njit(cache=True, error_model="numpy")
    def quant_ser(x, scale, qmin, qmax, out):  # pragma: no cover (numba)
        return _quant(x, scale, qmin, qmax, out, 0, x.shape[0])

    @numba.njit(cache=True, parallel=True, error_model="numpy")
    def quant_par(x, scale, qmin, qmax, out):  # pragma: no cover (numba)
        n = x.shape[0]
        nb = (n + QUANT_CHUNK - 1) // QUANT_CHUNK
        nans = np.zeros(nb, np.int64)
        for b in numba.prange(nb):
            nans[b] = _quant(x, scale, qmin, qmax, out, b * QUANT_CHUNK, min(n, (b + 1) * QUANT_CHUNK))
        return nans.sum()
