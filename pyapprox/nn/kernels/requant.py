"""Compiled requantization: :func:`pyapprox.nn.functional.requantize` element for element, without PyTorch's int64
temporaries (one pass over the accumulators instead of about ten full-size tensor operations).

``acc`` [N, O, P] (int32 or int64), per output channel ``mult``, ``mneg`` (= ``mult`` without LeakyReLU), ``shift``,
``lo``, ``hi`` (int64); ``out`` [N, O, P] int64. For each element: m = mneg if acc < 0 else mult;
r = (acc m + 2^(s-1)) >> s for s > 0, acc m << -s otherwise (arithmetic shifts, |s| < 63);
out = max(min(r, hi), lo). Every element is computed by one iteration: the result does not depend on threads.
"""

from __future__ import annotations

import numpy as np

from pyapprox.nn.kernels.intrinsics import numba


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


if numba is not None:
    _row = numba.njit(cache=True, inline="always")(_requant_row)

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
