"""ApproxConv2d / the reference LUT convolution against independent references."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyapprox.lut.table import LUT, code_values
from pyapprox.nn import functional as QF
from pyapprox.nn.approx_conv import ApproxConv2d

rng = np.random.default_rng(0)


def naive_conv(x, w, lut_fn, bias, stride, padding, dilation, groups, acc_bits, mode):
    """Pure-Python loops: the definition of the accelerator's convolution, written independently."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    out = np.zeros((n, o, ho, wo), np.int64)
    overflow = 0
    og = o // groups
    for b, oc, i, j in itertools.product(range(n), range(o), range(ho), range(wo)):
        g = oc // og
        acc = int(bias[oc])
        flag = not lo <= acc <= hi
        if mode == "saturate":
            acc = min(max(acc, lo), hi)
        for ci in range(cg):
            for u in range(kh):
                for v in range(kw):
                    y, xx = i * stride - padding + u * dilation, j * stride - padding + v * dilation
                    code = int(x[b, g * cg + ci, y, xx]) if 0 <= y < h and 0 <= xx < wd else 0
                    acc += lut_fn(int(w[oc, ci, u, v]), code)
                    if not lo <= acc <= hi:
                        flag = True
                        if mode == "saturate":
                            acc = min(max(acc, lo), hi)
        if mode == "wrap":
            acc = ((acc - lo) % (1 << acc_bits)) + lo
        out[b, oc, i, j] = acc
        overflow += flag
    return out, overflow


def sm_product(table, port):
    def f(wc, xc):
        a, b = (abs(wc), abs(xc)) if port == "a" else (abs(xc), abs(wc))
        s = (1 if wc >= 0 else -1) * (1 if xc >= 0 else -1)
        return s * int(table[a, b])
    return f


def int8_product(table, port):
    def f(wc, xc):
        a, b = (wc & 255, xc & 255) if port == "a" else (xc & 255, wc & 255)
        return int(table[a, b])
    return f


CASES = [  # (c, o, k, stride, padding, dilation, groups)
    (3, 4, 3, 2, 1, 1, 1),
    (4, 4, 3, 1, 1, 1, 4),
    (4, 6, 1, 1, 1, 1, 1),
    (4, 4, 3, 1, 2, 2, 2),
    (2, 3, 2, 2, 0, 1, 1),
]


@pytest.mark.parametrize("fmt", ["sign-magnitude", "int8"])
@pytest.mark.parametrize("port", ["a", "b"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "c{}o{}k{}s{}p{}d{}g{}".format(*c))
def test_reference_matches_naive_loops(fmt, port, case):
    c, o, k, s, p, d, g = case
    table = rng.integers(-3000, 70000, (256, 256))
    qlo, qhi = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    if fmt == "sign-magnitude":
        table = np.abs(table)
    x = torch.from_numpy(rng.integers(qlo, qhi + 1, (2, c, 6, 7))).to(torch.int32)
    w = torch.from_numpy(rng.integers(qlo, qhi + 1, (o, c // g, k, k))).to(torch.int32)
    bias = torch.from_numpy(rng.integers(-100000, 100000, o))
    pt, off = QF.product_table(table, fmt, port)
    fn = sm_product(table, port) if fmt == "sign-magnitude" else int8_product(table, port)
    for bits, mode in [(32, "wrap"), (20, "wrap"), (20, "saturate")]:
        got, ovf = QF.lut_conv2d_reference(x, w, pt, off, bias, s, p, d, g, bits, mode)
        want, wovf = naive_conv(x.numpy(), w.numpy(), fn, bias.numpy(), s, p, d, g, bits, mode)
        assert np.array_equal(got.numpy(), want), (bits, mode)
        assert ovf == wovf


def test_exact_table_equals_integer_conv_exhaustive_codes():
    # every sign-magnitude code as activation against every code as weight: 511 x 511 products
    codes = torch.arange(-255, 256, dtype=torch.int32)
    x = codes.view(1, 511, 1, 1)
    w = codes.view(511, 1, 1, 1).repeat(1, 511, 1, 1) * 0
    # weight o has a single non-zero tap at channel o: output[o] = code[o] * code[o]... use all pairs instead:
    x = codes.view(1, 1, 1, 511)
    w = codes.view(511, 1, 1, 1)
    conv = ApproxConv2d(w, None, backend="reference")
    exact = LUT(np.outer(np.arange(256), np.arange(256)))
    conv.set_lut(exact)
    got = conv(x)[0, :, 0, :]
    assert torch.equal(got, codes.view(-1, 1).long() * codes.view(1, -1).long())
    s = code_values("signed")
    conv8 = ApproxConv2d(torch.arange(-128, 128, dtype=torch.int32).view(256, 1, 1, 1), None,
                         operand_format="int8", backend="reference")
    conv8.set_lut(LUT(np.outer(s, s), "signed"))
    x8 = torch.arange(-128, 128, dtype=torch.int32).view(1, 1, 1, 256)
    assert torch.equal(conv8(x8)[0, :, 0, :], torch.arange(-128, 128).view(-1, 1) * torch.arange(-128, 128).view(1, -1))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "c{}o{}k{}s{}p{}d{}g{}".format(*c))
def test_exact_lut_is_bit_identical_to_torch_integer_conv(case):
    c, o, k, s, p, d, g = case
    x = torch.from_numpy(rng.integers(-255, 256, (2, c, 9, 11))).to(torch.int32)
    w = torch.from_numpy(rng.integers(-255, 256, (o, c // g, k, k))).to(torch.int32)
    bias = torch.from_numpy(rng.integers(-10 ** 6, 10 ** 6, o))
    conv = ApproxConv2d(w, bias, s, p, d, g, backend="reference")
    conv.set_lut(LUT(np.outer(np.arange(256), np.arange(256))))
    want = F.conv2d(x.double(), w.double(), bias.double(), s, p, d, g).long()
    assert torch.equal(conv(x), want)
    assert conv.exact_table and conv.resolved_backend() in ("exact", "numba", "reference")


def test_zero_padding_goes_through_the_multiplier():
    # a multiplier with a constant offset: padded taps contribute table[w, 0]
    table = np.outer(np.arange(256), np.arange(256)) + 5
    x = torch.zeros(1, 1, 1, 1, dtype=torch.int32)
    w = torch.ones(1, 1, 3, 3, dtype=torch.int32)
    conv = ApproxConv2d(w, None, padding=1, backend="reference")
    conv.set_lut(LUT(table))
    assert int(conv(x)) == 9 * 5


def test_requantize_rounding_rule():
    acc = torch.tensor([-7, -6, -5, -1, 0, 1, 5, 6, 7, 1000], dtype=torch.int64).view(1, -1, 1, 1)
    mult = torch.full((10,), 3, dtype=torch.int64)
    shift = torch.full((10,), 2, dtype=torch.int64)
    got = QF.requantize(acc, mult, shift, None, -1000, 1000).view(-1).tolist()
    want = [(a * 3 + 2) >> 2 for a in [-7, -6, -5, -1, 0, 1, 5, 6, 7, 1000]]  # round half up, Python ints
    assert got == want
    neg = torch.full((10,), 1, dtype=torch.int64)
    got = QF.requantize(acc, mult, shift, neg, -3, 255).view(-1).tolist()
    want = [max(-3, min(255, ((a * (1 if a < 0 else 3)) + 2) >> 2)) for a in [-7, -6, -5, -1, 0, 1, 5, 6, 7, 1000]]
    assert got == want


def test_requant_params_accuracy():
    m = np.array([1e-4, 0.0123, 0.5, 0.999, 1.5, 37.0])
    mult, shift = QF.requant_params(m, 16)
    assert ((mult >= 1 << 15) & (mult < 1 << 16)).all()
    assert np.allclose(mult / np.exp2(shift), m, rtol=2 ** -15)
