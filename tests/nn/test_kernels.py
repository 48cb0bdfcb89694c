"""Compiled LUT conv kernels (numba) and the PyTorch backend, bit for bit against the reference."""

import numpy as np
import pytest
import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.nn import torch_backend as TB

from pyapprox.nn import kernels as K

needs_numba = pytest.mark.skipif(not K.available(), reason="numba kernels unavailable")

PATHS = ("auto", "vector", "scalar")


def random_table(rng, fmt="sign-magnitude", port="a", hi=65025):
    """A random 256x256 multiplier LUT (unsigned magnitudes or signed values) as a signed product table."""
    if fmt == "int8":
        t = rng.integers(-hi // 2, hi // 2 + 1, size=(256, 256))
    else:
        t = rng.integers(0, hi + 1, size=(256, 256))
    return QF.product_table(t, fmt, port)


def operands(rng, n, c, h, w, o, cg, k, fmt="sign-magnitude", bias=5000, relu=False):
    lo, hi = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    x = rng.integers(0 if relu else lo, hi + 1, size=(n, c, h, w))
    if relu:
        x[rng.random(x.shape) < 0.4] = 0
    wt = rng.integers(lo, hi + 1, size=(o, cg) + tuple(k))
    b = rng.integers(-bias, bias + 1, size=o)
    return torch.from_numpy(x).to(torch.int32), torch.from_numpy(wt).to(torch.int32), torch.from_numpy(b)


def check(x, w, pt, off, b, stride=1, padding=0, dilation=1, groups=1, bits=32, mode="wrap", path="auto",
          overflow_free=False, monkeypatch=None, ref=None):
    if ref is None:
        ref = QF.lut_conv2d_reference(x, w, pt, off, b, stride, padding, dilation, groups, bits, mode)
    if monkeypatch is not None:
        monkeypatch.setattr(K, "FORCE_PATH", None if path == "auto" else path)
    got = K.lut_conv2d(x, w, pt, off, b, stride, padding, dilation, groups, bits, mode, overflow_free=overflow_free)
    assert got[0].dtype == torch.int64 and got[0].shape == ref[0].shape
    assert torch.equal(got[0], ref[0]), f"accumulators differ ({path})"
    assert got[1] == (0 if overflow_free else ref[1]), f"overflow count {got[1]} != {ref[1]} ({path})"
    return ref


def test_available():
    pytest.importorskip("numba")
    assert K.available()


# (n, c, h, w, o, kernel, stride, padding, dilation, groups)
SHAPES = [
    pytest.param(1, 5, 9, 11, 40, (3, 3), 1, 1, 1, 1, id="full3x3-s1-p1"),
    pytest.param(2, 4, 10, 9, 20, (3, 3), 2, 1, 1, 1, id="full3x3-s2-p1-batch2"),
    pytest.param(1, 3, 12, 13, 33, (3, 3), 1, 0, 1, 1, id="full3x3-p0"),
    pytest.param(1, 3, 12, 13, 18, (3, 3), 1, 2, 2, 1, id="full3x3-p2-d2"),
    pytest.param(1, 4, 11, 12, 17, (3, 3), 2, 2, 1, 1, id="full3x3-s2-p2"),
    pytest.param(1, 19, 7, 8, 36, (1, 1), 1, 0, 1, 1, id="pointwise"),
    pytest.param(1, 21, 5, 6, 24, (1, 1), 1, 1, 1, 1, id="pointwise-pad1"),
    pytest.param(1, 12, 10, 11, 12, (3, 3), 1, 1, 1, 12, id="depthwise-s1"),
    pytest.param(2, 8, 11, 10, 8, (3, 3), 2, 1, 1, 8, id="depthwise-s2"),
    pytest.param(1, 8, 9, 10, 20, (3, 3), 1, 1, 1, 2, id="grouped2"),
    pytest.param(1, 16, 8, 9, 36, (1, 3), 1, (0, 1), 1, 4, id="grouped4-1x3"),
    pytest.param(1, 6, 10, 9, 11, (2, 3), (2, 1), (0, 2), (2, 1), 1, id="nonsquare-mixed"),
    pytest.param(1, 3, 9, 14, 16, (5, 2), (1, 3), (2, 1), (1, 2), 1, id="5x2-s13-d12"),
    pytest.param(2, 4, 7, 7, 3, (3, 3), 1, 1, 1, 1, id="few-outputs"),
]


@needs_numba
@pytest.mark.parametrize("n,c,h,w,o,k,s,p,d,g", SHAPES)
@pytest.mark.parametrize("path", PATHS)
def test_shapes_bit_identical(monkeypatch, path, n, c, h, w, o, k, s, p, d, g):
    rng = np.random.default_rng(hash((n, c, h, w, o, k, g)) % 2**32)
    pt, off = random_table(rng)
    x, wt, b = operands(rng, n, c, h, w, o, c // g, k)
    check(x, wt, pt, off, b, s, p, d, g, path=path, monkeypatch=monkeypatch)


@needs_numba
@pytest.mark.parametrize("fmt", ["sign-magnitude", "int8"])
@pytest.mark.parametrize("port", ["a", "b"])
@pytest.mark.parametrize("path", PATHS)
def test_random_luts_formats_ports(monkeypatch, fmt, port, path):
    rng = np.random.default_rng(7)
    pt, off = random_table(rng, fmt, port)
    x, wt, b = operands(rng, 1, 6, 12, 10, 35, 6, (3, 3), fmt)
    check(x, wt, pt, off, b, 1, 1, path=path, monkeypatch=monkeypatch)
    x, wt, b = operands(rng, 1, 10, 6, 7, 17, 10, (1, 1), fmt)
    check(x, wt, pt, off, b, 1, 1, path=path, monkeypatch=monkeypatch)


@needs_numba
@pytest.mark.parametrize("fmt", ["sign-magnitude", "int8"])
def test_exact_table_equals_integer_conv(monkeypatch, fmt):
    rng = np.random.default_rng(3)
    pt, off = QF.exact_product_table(fmt)
    x, wt, b = operands(rng, 1, 7, 13, 12, 40, 7, (3, 3), fmt)
    for path in PATHS:
        check(x, wt, pt, off, b, 2, 1, path=path, monkeypatch=monkeypatch)
    exact = QF.int_conv2d_exact(x, wt, b, 2, 1)
    assert torch.equal(K.lut_conv2d(x, wt, pt, off, b, 2, 1)[0], exact)


@needs_numba
def test_padding_enters_the_multiplier_as_code_zero():
    # only products with activation code 0 are non-zero: the output counts the zero (and padded) taps
    pt = np.zeros((511, 511), np.int64)
    pt[:, 255] = np.arange(511) - 1000
    x = torch.ones(1, 2, 5, 6, dtype=torch.int32)
    w = torch.full((20, 2, 3, 3), 7, dtype=torch.int32)
    ref = check(x, w, pt, 255, None, 1, 1)
    assert int(ref[0][0, 0, 0, 0]) == 10 * (7 + 255 - 1000)  # corner: 5 padded taps per channel
    assert int(ref[0][0, 0, 2, 2]) == 0


@needs_numba
@pytest.mark.parametrize("bits", [17, 18, 19, 20])
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_narrow_accumulators_and_overflow_counts(monkeypatch, bits, mode):
    rng = np.random.default_rng(bits)
    pt, off = random_table(rng)
    x, wt, b = operands(rng, 1, 6, 9, 10, 19, 6, (3, 3), bias=3 << (bits - 2))
    wt[:5] = 0  # weight code 0: all products 0, so these channels cannot overflow (fast loops beside checked ones)
    b[:4] = torch.tensor([0, 1, -1, 2])
    for path in PATHS:
        ref = check(x, wt, pt, off, b, 1, 1, bits=bits, mode=mode, path=path, monkeypatch=monkeypatch)
    assert ref[1] > 0


@needs_numba
def test_bias_out_of_range_counts_and_clamps():
    rng = np.random.default_rng(11)
    pt, off = random_table(rng, hi=100)
    x, wt, _ = operands(rng, 1, 2, 5, 5, 4, 2, (1, 1))
    b = torch.tensor([1 << 20, -(1 << 20), 5, (1 << 16) - 1], dtype=torch.int64)
    for mode in ("wrap", "saturate"):
        ref = check(x, wt, pt, off, b, bits=17, mode=mode)
        assert ref[1] >= 2 * 25


@needs_numba
def test_overflow_free_fast_path(monkeypatch):
    rng = np.random.default_rng(5)
    pt, off = random_table(rng)
    x, wt, b = operands(rng, 2, 9, 11, 12, 40, 9, (3, 3))
    for path in PATHS:
        for mode in ("wrap", "saturate"):
            check(x, wt, pt, off, b, 1, 1, mode=mode, path=path, overflow_free=True, monkeypatch=monkeypatch)


@needs_numba
def test_products_beyond_int32(monkeypatch):
    # products that do not fit int32 (handed to the PyTorch backend): a 62-bit accumulator never overflows,
    # a 34-bit one does
    rng = np.random.default_rng(9)
    pt = rng.integers(-(1 << 33), 1 << 33, size=(511, 511))
    x, wt, b = operands(rng, 1, 4, 8, 9, 18, 4, (3, 3))
    for path in PATHS:
        check(x, wt, pt, 255, b, 1, 1, bits=62, path=path, monkeypatch=monkeypatch)
        check(x, wt, pt, 255, b, 1, 1, bits=34, path=path, monkeypatch=monkeypatch)


@needs_numba
def test_sums_beyond_int32_with_a_wide_accumulator(monkeypatch):
    pt = np.full((511, 511), (1 << 31) - 1, np.int64)
    x, wt, b = operands(np.random.default_rng(1), 1, 3, 6, 6, 20, 3, (3, 3))
    for path in PATHS:
        check(x, wt, pt, 255, b, 1, 1, bits=62, path=path, monkeypatch=monkeypatch)


def _library_tables():
    from pyapprox.rtl.library import library_names, resolve

    for name in library_names():
        design = resolve(name)
        yield name, design.golden_table(), ("int8" if design.signed else "sign-magnitude")


@needs_numba
def test_every_library_multiplier(monkeypatch):
    rng = np.random.default_rng(21)
    tables = list(_library_tables())
    assert len(tables) >= 10
    for name, table, fmt in tables:
        for port in ("a", "b"):
            pt, off = QF.product_table(table, fmt, port)
            x, wt, b = operands(rng, 1, 4, 7, 8, 20, 4, (3, 3), fmt, relu=port == "b")
            ref = None
            for path in PATHS:
                ref = check(x, wt, pt, off, b, 1, 1, path=path, monkeypatch=monkeypatch, ref=ref)


@needs_numba
def test_realistic_layer_sizes_use_both_paths(monkeypatch):
    """Layers big enough for multi-range work items, packed scalar loops and parallel launches."""
    rng = np.random.default_rng(4)
    pt, off = random_table(rng)
    monkeypatch.setattr(K, "PARALLEL_MIN_LOOKUPS", 0)
    monkeypatch.setattr(K, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(K, "_LAUNCH_S", 0.0)
    x, wt, b = operands(rng, 1, 3, 70, 66, 40, 3, (3, 3), relu=True)
    for path in PATHS:
        check(x, wt, pt, off, b, 1, 1, path=path, monkeypatch=monkeypatch)
        check(x, wt, pt, off, b, 2, 1, path=path, monkeypatch=monkeypatch)


@needs_numba
def test_deterministic_and_thread_count_independent(monkeypatch):
    rng = np.random.default_rng(8)
    pt, off = random_table(rng)
    monkeypatch.setattr(K, "PARALLEL_MIN_LOOKUPS", 0)
    monkeypatch.setattr(K, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(K, "_LAUNCH_S", 0.0)
    x, wt, b = operands(rng, 2, 6, 40, 41, 36, 6, (3, 3))
    import numba

    saved = numba.get_num_threads()
    try:
        for path in PATHS:
            monkeypatch.setattr(K, "FORCE_PATH", None if path == "auto" else path)
            for bits, mode in ((32, "wrap"), (19, "wrap"), (19, "saturate")):
                results = []
                for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
                    numba.set_num_threads(threads)
                    results += [K.lut_conv2d(x, wt, pt, off, b, 1, 1, acc_bits=bits, acc_mode=mode) for _ in range(2)]
                for r in results[1:]:
                    assert torch.equal(r[0], results[0][0]) and r[1] == results[0][1]
    finally:
        numba.set_num_threads(saved)


@needs_numba
def test_code_outside_table_raises():
    pt, off = QF.exact_product_table("int8")
    x = torch.full((1, 1, 3, 3), 128, dtype=torch.int32)
    w = torch.ones(1, 1, 1, 1, dtype=torch.int32)
    with pytest.raises(PyapproxError, match="outside the table"):
        K.lut_conv2d(x, w, pt, off, None)
    with pytest.raises(PyapproxError, match="outside the table"):
        K.lut_conv2d(-x, 200 * w, pt, off, None)
    with pytest.raises(PyapproxError, match="outside the table"):
        TB.lut_conv2d_torch(x, w, pt, off, None)
    with pytest.raises(PyapproxError, match="do not fit"):
        K.lut_conv2d(torch.zeros(1, 3, 4, 4, dtype=torch.int32), torch.zeros(2, 2, 1, 1, dtype=torch.int32), pt, off,
                     None, groups=2)


# ---------------------------------------------------------------------------------------------------------------
# PyTorch backend


@pytest.mark.parametrize("n,c,h,w,o,k,s,p,d,g", [SHAPES[i] for i in (0, 1, 3, 6, 8, 10, 11)])
def test_torch_backend_shapes(n, c, h, w, o, k, s, p, d, g):
    rng = np.random.default_rng(17)
    pt, off = random_table(rng, "int8", "b")
    x, wt, b = operands(rng, n, c, h, w, o, c // g, k, "int8")
    ref = QF.lut_conv2d_reference(x, wt, pt, off, b, s, p, d, g)
    got = TB.lut_conv2d_torch(x, wt, pt, off, b, s, p, d, g, max_elements=4000)
    assert torch.equal(got[0], ref[0]) and got[1] == ref[1] == 0


@pytest.mark.parametrize("bits", [17, 19])
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_torch_backend_narrow_accumulators(bits, mode):
    rng = np.random.default_rng(bits + 100)
    pt, off = random_table(rng)
    x, wt, b = operands(rng, 2, 5, 7, 8, 9, 5, (3, 3), bias=3 << (bits - 2))
    ref = QF.lut_conv2d_reference(x, wt, pt, off, b, 1, 1, 1, 1, bits, mode)
    got = TB.lut_conv2d_torch(x, wt, pt, off, b, 1, 1, 1, 1, bits, mode, max_elements=3000)
    assert torch.equal(got[0], ref[0]) and got[1] == ref[1] > 0
    fast = TB.lut_conv2d_torch(x, wt, pt, off, b, 1, 1, 1, 1, 62, mode, overflow_free=True)
    assert torch.equal(fast[0], QF.lut_conv2d_reference(x, wt, pt, off, b, 1, 1, 1, 1, 62, mode)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_backend_cuda_matches_reference():
    rng = np.random.default_rng(23)
    pt, off = random_table(rng)
    for bits, mode in ((32, "wrap"), (18, "wrap"), (18, "saturate")):
        x, wt, b = operands(rng, 2, 6, 13, 11, 20, 6, (3, 3), bias=1 << 16)
        ref = QF.lut_conv2d_reference(x, wt, pt, off, b, 1, 1, 1, 1, bits, mode)
        got = TB.lut_conv2d_torch(x.cuda(), wt.cuda(), pt, off, b.cuda(), 1, 1, 1, 1, bits, mode)
        assert got[0].is_cuda
        assert torch.equal(got[0].cpu(), ref[0]) and got[1] == ref[1]
    assert TB.cuda_available()


@needs_numba
@pytest.mark.parametrize("ni", [2, 3, 5, "auto"])
def test_images_of_a_batch_share_product_vectors(monkeypatch, ni):
    """Work items over several images of a batch (one built product vector each, the OR of their code masks, the
    last item with fewer images) == the reference; 'auto' is the planner's own choice for a small grid."""
    from pyapprox.nn.kernels import vector

    rng = np.random.default_rng(11)
    pt, off = random_table(rng)
    x, wt, b = operands(rng, 5, 24, 9, 11, 40, 24, (3, 3), relu=True)
    x[1] = torch.where(x[1] > 0, x[1] // 8, x[1])  # images with different codes present
    x[3] = -x[3]
    real, used = vector.plan, []

    def plan(*a):
        p = real(*a)
        if ni != "auto":
            p["ni"] = ni
        used.append(p["ni"])
        return p

    monkeypatch.setattr(vector, "plan", plan)
    monkeypatch.setattr(K, "_LAUNCH_S", 0.0)
    monkeypatch.setattr(K, "PARALLEL_MIN_LOOKUPS", 0)
    for stride, padding in ((1, 1), (2, 0)):
        check(x, wt, pt, off, b, stride, padding, path="vector", monkeypatch=monkeypatch)
    assert used and min(used) > 1
