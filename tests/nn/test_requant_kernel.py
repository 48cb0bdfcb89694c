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
