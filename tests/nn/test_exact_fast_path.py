"""The exact-quantized network's fast path (functional.int_conv2d_exact from float32 convolutions) is bit-exact.

Randomized against an independent int64 reference (im2col + int64 matrix products per group) over the layer shapes
that take each path: one float32 convolution (small K), the w = 16 wh + wl split in one stacked convolution (K up
to about 4,000; grouped too), the split with input-channel chunks (K = 9,000), depthwise, strided/dilated/padded,
the grouped case whose bound cannot be kept (float64 fallback), codes at the extremes of both operand formats, and
a zero-size input.
"""

import numpy as np
import pytest
import torch

from pyapprox.nn import functional as QF


def _reference(x, w, bias, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    cols = torch.nn.functional.unfold(x.to(torch.float64), (kh, kw), dilation, padding, stride).to(torch.int64)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    cols = cols.view(n, groups, cg * kh * kw, -1)
    wm = w.to(torch.int64).view(groups, o // groups, cg * kh * kw)
    out = torch.stack([torch.stack([wm[g] @ cols[i, g] for g in range(groups)]) for i in range(n)])
    return out.reshape(n, o, ho, wo) + bias.to(torch.int64).view(1, -1, 1, 1)


CASES = [  # (n, c, h, w, o, kernel, stride, padding, dilation, groups, expected path)
    (2, 16, 9, 11, 24, 1, 1, 0, 1, 1, "single"),
    (1, 96, 8, 9, 40, 3, 1, 1, 1, 1, "split"),
    (1, 1000, 6, 7, 12, 3, 1, 1, 1, 1, "chunked"),
    (1, 32, 10, 12, 32, 3, 2, 1, 1, 32, "single"),
    (1, 40, 13, 14, 20, 3, 2, 2, 2, 1, "split"),
    (1, 400, 6, 7, 8, 3, 1, 1, 1, 4, "split"),  # grouped: the halves stacked per group
    (1, 1200, 5, 5, 4, 3, 1, 1, 1, 2, "float64"),
]


@pytest.mark.parametrize("fmt", ["sign-magnitude", "int8"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}ch-k{c[5]}-g{c[9]}-{c[10]}" for c in CASES])
def test_fast_exact_conv_equals_the_int64_reference(case, fmt):
    n, c, h, wd, o, k, stride, padding, dilation, groups, path = case
    lo, hi = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.integers(lo, hi + 1, (n, c, h, wd))
        w = rng.integers(lo, hi + 1, (o, c // groups, k, k))
        if seed == 1:  # the extremes: every partial sum as large as the bound allows
            x = np.where(rng.random(x.shape) < 0.5, lo, hi)
            w = np.full(w.shape, lo)
        x, w = torch.from_numpy(x).to(torch.int32), torch.from_numpy(w).to(torch.int32)
        bias = torch.from_numpy(rng.integers(-(1 << 20), 1 << 20, o))
        got = QF.int_conv2d_exact(x, w, bias, stride, padding, dilation, groups)
        assert got.dtype == torch.int64
        assert torch.equal(got, _reference(x, w, bias, stride, padding, dilation, groups)), (case, seed)
        if seed == 1:
            x1, w1 = x, w
    if fmt == "sign-magnitude":  # at the extremes (|x| = |w| = 255) each case takes the path it is named for
        x, w = x1, w1
        fast = QF._int_conv2d_f32(x, w, stride, padding, dilation, groups)
        bound = int(w.abs().max()) * int(x.abs().max()) * (c // groups) * k * k
        assert (fast is None) == (path == "float64")
        assert (bound < QF.F32_EXACT) == (path == "single")
        assert (16 * 255 * (c // groups) * k * k >= QF.F32_EXACT) == (path in ("chunked", "float64"))


def test_empty_input():
    x = torch.zeros(0, 3, 4, 4, dtype=torch.int32)
    w = torch.ones(2, 3, 1, 1, dtype=torch.int32)
    assert QF.int_conv2d_exact(x, w, None).shape == (0, 2, 4, 4)


def test_the_l1_bound_keeps_real_layers_on_one_convolution(monkeypatch):
    """Weights as trained layers have them (most codes small, a few at 255): max|x| max_o L1(w[o]) < 2^24 where
    max|x| max|w| K is not, so ONE float32 convolution is made, and it is exact."""
    rng = np.random.default_rng(7)
    c, o, k = 512, 16, 3
    w = np.clip(np.round(rng.laplace(0, 6, (o, c, k, k))), -255, 255)
    w[:, 0, 0, 0] = 255
    x = rng.integers(-255, 256, (1, c, 6, 7))
    x, w = torch.from_numpy(x).to(torch.int32), torch.from_numpy(w).to(torch.int32)
    assert 255 * 255 * c * k * k >= QF.F32_EXACT > 255 * int(w.abs().sum((1, 2, 3)).max())
    calls = []
    real = QF.F.conv2d
    monkeypatch.setattr(QF.F, "conv2d", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    got = QF.int_conv2d_exact(x, w, None, 1, 1, 1, 1)
    assert len(calls) == 1
    assert torch.equal(got, _reference(x, w, torch.zeros(o, dtype=torch.int64), 1, 1, 1, 1))
