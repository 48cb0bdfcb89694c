"""Hand-written LLVM intrinsics of the LUT kernels, and the numba import and JIT options they all share.

The other kernel modules import from here and are themselves imported only when numba is (``numba`` is
None and ``NUMBA_ERROR`` says why otherwise). Numba's cache does not see edits of this file in the cached
kernels of :mod:`.scalar` and :mod:`.vector` that inline these intrinsics: after changing one, delete
``pyapprox/nn/kernels/__pycache__`` (or touch those files).
"""

from __future__ import annotations

try:  # numba is optional: ApproxConv2d falls back to the reference when it is missing
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    NUMBA_ERROR = None
except Exception as exc:  # pragma: no cover - depends on the environment
    numba = None
    NUMBA_ERROR = exc

JIT = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")  # options of every compiled kernel


def _transpose_masks():
    """shufflevector masks of the 4 rounds of a 16x16 transpose (round s swaps the off-diagonal s x s blocks)."""
    masks = {}
    for s in (8, 4, 2, 1):
        lo = [j if not j & s else 16 + j - s for j in range(16)]
        hi = [j + s if not j & s else 16 + j for j in range(16)]
        masks[s] = (lo, hi)
    return masks


_TMASKS = _transpose_masks()

if numba is not None:

    @intrinsic
    def fetch_add(typingctx, arr, idx, val):
        """Atomic ``old = arr[idx]; arr[idx] += val; return old`` on an int64 array."""
        if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
            return None
        sig = types.int64(arr, types.intp, types.int64)

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
            return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

        return sig, codegen

    @njit(inline="always", **JIT)
    def take_item(counter, it_blk, it_img):
        """The next work item of the atomic ``counter``: (item, its block, its image); item -1 when none is left."""
        item = fetch_add(counter, 0, 1)
        if item >= it_blk.shape[0]:
            return -1, 0, 0
        return item, it_blk[item], it_img[item]

    @intrinsic
    def vmac(typingctx, acc, aoff, P, tstride, X, starts, q, nvec):
        """``acc[aoff + j] += sum_i P[i * tstride + X[starts[i] + q] * ob + j]`` for j < ob = 16 nvec.

        Tap i's code at position q selects a row of ob int32 products in tap i's table; the rows are summed
        as <16 x i32> vectors (no gathers, bounds or alias checks). acc, P: int32 arrays; X: uint16 array;
        starts: a tuple of ints, one per tap; nvec: a compile-time constant.
        """
        if not (isinstance(starts, types.UniTuple) and isinstance(nvec, types.IntegerLiteral)
                and acc.dtype == P.dtype == types.int32 and X.dtype == types.uint16):
            return None
        nsrc, nv = starts.count, nvec.literal_value
        sig = types.void(acc, types.intp, P, types.intp, X, types.UniTuple(types.intp, nsrc), types.intp, nvec)

        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, args[0])
            p = context.make_array(sig.args[2])(context, builder, args[2])
            x = context.make_array(sig.args[4])(context, builder, args[4])
            aoff, tstride, q = args[1], args[3], args[6]
            i64 = ir.IntType(64)
            vty = ir.VectorType(ir.IntType(32), 16)
            rows = []
            for i, s in enumerate(cgutils.unpack_tuple(builder, args[5], nsrc)):
                code = builder.zext(builder.load(builder.gep(x.data, [builder.add(s, q)])), i64)
                rows.append(builder.add(builder.mul(code, ir.Constant(i64, 16 * nv)),
                                        builder.mul(tstride, ir.Constant(i64, i))))
            for k in range(nv):
                total = None
                for r in rows:
                    ptr = builder.gep(p.data, [builder.add(r, ir.Constant(i64, 16 * k))])
                    v = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4)
                    total = v if total is None else builder.add(total, v)
                aptr = builder.gep(a.data, [builder.add(aoff, ir.Constant(i64, 16 * k))])
                aptr = builder.bitcast(aptr, vty.as_pointer())
                builder.store(builder.add(builder.load(aptr, align=4), total), aptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def transpose16(typingctx, T, R, ridx, v0, P, dst, stride):
        """P[dst + i * stride + j] = T[R[ridx + j] + v0 + i] for i, j < 16: 16 table rows, 16 codes, transposed."""
        sig = types.void(T, R, types.intp, types.intp, P, types.intp, types.intp)

        def codegen(context, builder, sig, args):
            t = context.make_array(sig.args[0])(context, builder, args[0])
            r = context.make_array(sig.args[1])(context, builder, args[1])
            p = context.make_array(sig.args[4])(context, builder, args[4])
            ridx, v0, dst, stride = args[2], args[3], args[5], args[6]
            i64 = ir.IntType(64)
            vty = ir.VectorType(ir.IntType(32), 16)
            rows = []
            for i in range(16):
                start = builder.load(builder.gep(r.data, [builder.add(ridx, ir.Constant(i64, i))]))
                ptr = builder.gep(t.data, [builder.add(start, v0)])
                rows.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4))
            for s in (8, 4, 2, 1):
                lo, hi = _TMASKS[s]
                new = list(rows)
                for i in range(16):
                    if i & s:
                        continue
                    new[i] = builder.shuffle_vector(rows[i], rows[i + s], ir.Constant(vty, lo))
                    new[i + s] = builder.shuffle_vector(rows[i], rows[i + s], ir.Constant(vty, hi))
                rows = new
            for i in range(16):
                ptr = builder.gep(p.data, [builder.add(dst, builder.mul(stride, ir.Constant(i64, i)))])
                builder.store(rows[i], builder.bitcast(ptr, vty.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @njit(parallel=True, **JIT)
    def noop_par(a):
        """An (almost) empty parallel region: measures what a thread launch costs here."""
        for i in prange(a.shape[0]):
            a[i] += 1
