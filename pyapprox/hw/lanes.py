"""Compiled cycle-by-cycle simulation of a gate netlist on 64-lane words (the engine of
:func:`pyapprox.hw.toggle.lanes_activity`; numba when present, else the same loop in numpy).

Contract of :func:`run`: ``packed[t, i, w]`` holds input bit i (the nets ``in_nets[i]``) of lanes 64w..64w+63
in cycle t; flip-flops start at 0 and take their D after each cycle; transitions are counted from cycle 1 on,
only in the lanes ``mask`` keeps, in bit-sliced counters (one word per bit of the count, 64 lanes at once, a
ripple carry per increment), so counting costs a few word operations per net and cycle however many lanes
toggle. Returns (per-net transitions summed over lanes, load-weighted transitions per
lane slot [W * 64], float64).
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional, as for the LUT kernels
    from numba import njit, prange
except Exception:  # pragma: no cover - depends on the environment
    njit, prange = None, range

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
SLICES = 40  # bit-sliced transition counters: up to 2^40 cycles per lane


def _run(ops, regs, in_nets, packed, n_nets, mask, slices):
    cycles, n_in, words = packed.shape
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    vals = np.zeros((n_nets, words), np.uint64)
    prev = np.zeros((n_nets, words), np.uint64)
    state = np.zeros((regs.shape[0], words), np.uint64)
    counters = np.zeros((n_nets, words, slices), np.uint64)  # bit k of every lane's count of each net
    for w in prange(words):  # words are independent lanes: threads take whole words
        for t in range(cycles):
            vals[0, w] = 0
            vals[1, w] = ones
            for i in range(n_in):
                vals[in_nets[i], w] = packed[t, i, w]
            for r in range(regs.shape[0]):
                vals[regs[r, 1], w] = state[r, w]
            for o in range(ops.shape[0]):
                kind, a, b, c, out = ops[o, 0], ops[o, 1], ops[o, 2], ops[o, 3], ops[o, 4]
                va = vals[a, w]
                if kind == 0:
                    v = va
                elif kind == 1:
                    v = ~va
                elif kind == 2:
                    v = va & vals[b, w]
                elif kind == 3:
                    v = ~(va & vals[b, w])
                elif kind == 4:
                    v = va | vals[b, w]
                elif kind == 5:
                    v = ~(va | vals[b, w])
                elif kind == 6:
                    v = va ^ vals[b, w]
                elif kind == 7:
                    v = ~(va ^ vals[b, w])
                elif kind == 8:
                    v = va & ~vals[b, w]
                elif kind == 9:
                    v = va | ~vals[b, w]
                else:
                    s = vals[c, w]
                    v = (va & ~s) | (vals[b, w] & s)
                vals[out, w] = v
            if t > 0:
                for n in range(n_nets):
                    carry = (vals[n, w] ^ prev[n, w]) & mask[w]  # lanes where net n changed
                    k = 0
                    while carry != 0:  # add 1 in those lanes: a ripple carry through the bit slices
                        both = counters[n, w, k] & carry
                        counters[n, w, k] ^= carry
                        carry = both
                        k += 1
            for n in range(n_nets):
                prev[n, w] = vals[n, w]
            for r in range(regs.shape[0]):
                state[r, w] = vals[regs[r, 0], w]
    return counters


_compiled = njit(cache=True, nogil=True, boundscheck=False, parallel=True)(_run) if njit is not None else None


def run(ops: np.ndarray, regs: np.ndarray, in_nets: np.ndarray, packed: np.ndarray, n_nets: int, load: np.ndarray,
        mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """See the module docstring."""
    args = (np.ascontiguousarray(ops, np.int64), np.ascontiguousarray(regs, np.int64).reshape(-1, 2),
            np.ascontiguousarray(in_nets, np.int64), np.ascontiguousarray(packed, np.uint64), int(n_nets),
            np.ascontiguousarray(mask, np.uint64), SLICES)
    counters = (_compiled or _run)(*args)  # [nets, words, slices]
    bits = np.unpackbits(counters.view(np.uint8).reshape(n_nets, counters.shape[1], SLICES, 8), axis=3,
                         bitorder="little")  # [nets, words, slices, 64 lanes]
    weights = (np.uint64(1) << np.arange(SLICES, dtype=np.uint64)).astype(np.float64)
    counts = np.einsum("nwkj,k->nwj", bits, weights).reshape(n_nets, -1)  # [nets, lanes]
    return counts.sum(axis=1).astype(np.int64), np.asarray(load, np.float64) @ counts
