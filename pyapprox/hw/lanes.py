"""Compiled cycle-by-cycle simulation of a gate netlist on 64-lane words (the engine of
:func:`pyapprox.hw.toggle.lanes_activity`; numba when present, else the same loop in numpy).

Contract of :func:`run`: ``packed[t, i, w]`` holds input bit i (the nets ``in_nets[i]``) of lanes 64w..64w+63
in cycle t; flip-flops start at 0 and take their D after each cycle; transitions are counted from cycle 1 on,
only in the lanes ``mask`` keeps. Returns (per-net transitions summed over lanes, load-weighted transitions per
lane slot [W * 64], float64).
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional, as for the LUT kernels
    from numba import njit
except Exception:  # pragma: no cover - depends on the environment
    njit = None

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _run(ops, regs, in_nets, packed, n_nets, load, mask):
    cycles, n_in, words = packed.shape
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    one = np.uint64(1)
    vals = np.zeros((n_nets, words), np.uint64)
    prev = np.zeros((n_nets, words), np.uint64)
    state = np.zeros((regs.shape[0], words), np.uint64)
    per_net = np.zeros(n_nets, np.int64)
    per_lane = np.zeros(words * 64, np.float64)
    for t in range(cycles):
        for w in range(words):
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
                    x = (vals[n, w] ^ prev[n, w]) & mask[w]
                    if x != 0:
                        for j in range(64):
                            if (x >> np.uint64(j)) & one:
                                per_net[n] += 1
                                per_lane[w * 64 + j] += load[n]
            for n in range(n_nets):
                prev[n, w] = vals[n, w]
            for r in range(regs.shape[0]):
                state[r, w] = vals[regs[r, 0], w]
    return per_net, per_lane


_compiled = njit(cache=True, nogil=True, boundscheck=False)(_run) if njit is not None else None


def run(ops: np.ndarray, regs: np.ndarray, in_nets: np.ndarray, packed: np.ndarray, n_nets: int, load: np.ndarray,
        mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """See the module docstring."""
    args = (np.ascontiguousarray(ops, np.int64), np.ascontiguousarray(regs, np.int64).reshape(-1, 2),
            np.ascontiguousarray(in_nets, np.int64), np.ascontiguousarray(packed, np.uint64), int(n_nets),
            np.ascontiguousarray(load, np.float64), np.ascontiguousarray(mask, np.uint64))
    return (_compiled or _run)(*args)
