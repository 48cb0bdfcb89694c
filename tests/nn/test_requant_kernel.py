"""The compiled requantization (pyapprox.nn.kernels.requantize, used by QConv2d.output_codes on the CPU) equals
functional.requantize bit for bit: random and extreme accumulators (int32 and int64, up to +-2^40), multipliers up
to 2^16 - 1, LeakyReLU's negative multiplier or none, shifts 0..40 and negative, clamps as integers or per-channel
tensors, the serial and the parallel loop, empty tensors; shifts of 63 or more are left to PyTorch."""

import numpy as np
import pytest
import torch

from pyapprox.nn import functional as QF
from pyapprox.nn import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba kernels not available")


def _case(rng, n, o, h, w, dtype, neg, clamp_tensor):
    big = (1 << 31) - 1 if dtype == torch.int32 else 1 << 40
    acc = rng.integers(-big, big, (n, o, h, w))
    pick = rng.random(acc.shape)
    acc = np.where(pick < 0.1, rng.choice([-big, big - 1, 0, 1, -1], acc.shape), acc)
    acc = np.where((pick > 0.1) & (pick < 0.6), rng.integers(-70000, 70000, acc.shape), acc)
    mult = torch.from_numpy(rng.integers(0, 1 << 16, o))
    shift = torch.from_numpy(rng.integers(-3, 41, o))
    shift[0] = 0
    mneg = torch.round(0.2 * mult).to(torch.int64) if neg else None
    if clamp_tensor:
        lo = torch.from_numpy(rng.integers(-255, 1, o))
        hi = torch.from_numpy(rng.integers(0, 256, o))
    else:
        lo, hi = int(rng.integers(-255, 1)), 255
    return torch.from_numpy(acc).to(dtype), mult, shift, mneg, lo, hi


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("neg", [False, True])
@pytest.mark.parametrize("clamp_tensor", [False, True])
def test_compiled_requantize_equals_the_reference(dtype, neg, clamp_tensor, monkeypatch):
    for seed, shape in enumerate([(1, 5, 7, 9), (2, 3, 1, 1), (1, 16, 33, 65)]):
        args = _case(np.random.default_rng(seed), *shape, dtype, neg, clamp_tensor)
        want = QF.requantize(*args)
        for parallel in (False, True):
            monkeypatch.setattr(kernels, "_parallel", lambda *a, p=parallel: p)
            got = kernels.requantize(*args)
            assert got.dtype == torch.int64 and torch.equal(got, want), (seed, parallel)


def test_out_of_range_shift_and_other_inputs_fall_back():
    acc = torch.zeros(1, 2, 3, 3, dtype=torch.int64)
    m, lo, hi = torch.ones(2, dtype=torch.int64), 0, 255
    assert kernels.requantize(acc, m, torch.tensor([1, 63]), None, lo, hi) is None
    assert kernels.requantize(acc.float(), m, torch.tensor([1, 2]), None, lo, hi) is None
    assert kernels.requantize(acc[0], m, torch.tensor([1, 2]), None, lo, hi) is None
    empty = torch.zeros(0, 2, 3, 3, dtype=torch.int64)
    assert kernels.requantize(empty, m, torch.tensor([1, 2]), None, lo, hi).shape == (0, 2, 3, 3)


@pytest.mark.parametrize("neg", [False, True])
def test_fused_requantize_dequantize_equals_the_reference(neg, monkeypatch):
    for seed, shape in enumerate([(1, 5, 7, 9), (2, 16, 33, 65)]):
        acc, mult, shift, mneg, lo, hi = _case(np.random.default_rng(seed), *shape, torch.int64, neg, True)
        scale = float(np.random.default_rng(seed).uniform(1e-4, 1.0))
        want = QF.requantize(acc, mult, shift, mneg, lo, hi)
        for parallel in (False, True):
            monkeypatch.setattr(kernels, "_parallel", lambda *a, p=parallel: p)
            codes, y = kernels.requantize(acc, mult, shift, mneg, lo, hi, scale=scale)
            assert codes.dtype == torch.int32 and torch.equal(codes.to(torch.int64), want)
            assert y.dtype == torch.float32 and torch.equal(y, want.to(torch.float32) * scale)


def _quantize_case(rng, n):
    scale = float(np.exp(rng.uniform(np.log(1e-4), np.log(10.0))))
    k = rng.integers(-400, 400, n).astype(np.float64)
    x = np.where(rng.random(n) < 0.3, (k + 0.5) * scale, rng.normal(0, 100 * scale, n))  # ties and the rest
    x = np.where(rng.random(n) < 0.02, rng.choice([np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e-40], n), x)
    return torch.from_numpy(x.astype(np.float32)), scale


@pytest.mark.parametrize("qrange", [(-255, 255), (-128, 127), (0, 255)])
def test_compiled_quantize_equals_the_reference(qrange, monkeypatch):
    for seed in range(4):
        x, scale = _quantize_case(np.random.default_rng(seed), 300_001)
        x = x[:300_000].view(1, 3, 1000, 100)[..., ::2] if seed == 3 else x  # a non-contiguous view too
        want = QF.quantize(x, scale, *qrange)
        for parallel in (False, True):
            monkeypatch.setattr(kernels, "_parallel", lambda *a, p=parallel: p)
            got = kernels.quantize(x, scale, *qrange)
            assert got.dtype == torch.int32 and got.shape == x.shape and torch.equal(got, want), (seed, parallel)


def test_quantize_leaves_nans_and_other_inputs_to_pytorch():
    x = torch.tensor([1.0, float("nan"), 2.0])
    assert kernels.quantize(x, 0.1, -255, 255) is None
    assert kernels.quantize(x.double(), 0.1, -255, 255) is None
    assert kernels.quantize(torch.zeros(0, 3), 0.1, -255, 255).shape == (0, 3)


def test_codes_survive_dequantize_then_quantize_for_every_code_and_scale():
    """The proof behind passing codes between layers (quant._passed_codes): quantize(float(c) * s, s) == c for
    every 8-bit code c (both operand formats) and scales spread over 16 decades, including powers of two."""
    rng = np.random.default_rng(0)
    scales = np.concatenate([np.exp(rng.uniform(np.log(1e-8), np.log(1e8), 3000)), 2.0 ** np.arange(-26, 27)])
    codes = torch.arange(-255, 256, dtype=torch.int32)
    for s in scales:
        y = codes.to(torch.float32) * float(s)
        assert torch.equal(QF.quantize(y, float(s), -255, 255), codes), s
