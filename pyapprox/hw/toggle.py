"""Bit-parallel zero-delay simulation of a :class:`~pyapprox.hw.netlist.GateNetlist` and per-net toggle counts.

A stream is a sequence of input vectors applied one per cycle (vector t in cycle t). Vector t sits in bit
``t % 64`` of word ``t // 64`` of every net, so one numpy operation evaluates a gate for 64 cycles per word,
and a net's transitions are ``popcount(v ^ (v shifted by one cycle))``. Counts are the functional transitions
between consecutive vectors (at most one per net per cycle; zero delay, so no glitches), which is what a
cycle-accurate simulator's activity dump records: Verilator's SAIF, or the settled values per time step of a
VCD (:mod:`pyapprox.hw.vcd`, the reference the tests compare with). The first vector has no predecessor and
counts no toggle. Streams are processed in chunks, so memory stays bounded for any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.hw import lanes as lane_engine
from pyapprox.hw.netlist import GateNetlist

CHUNK = 1 << 16  # vectors per chunk (1024 words per net)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class Activity:
    """Toggle counts of one stream: ``toggles[n]`` transitions of net n over ``vectors`` vectors."""

    toggles: np.ndarray  #: [nets] int64
    vectors: int

    def weighted(self, load: np.ndarray) -> float:
        """Sum over nets of toggles x load (the energy model's switched capacitance, in load units)."""
        return float(self.toggles @ load)

    def per_transition(self, load: np.ndarray) -> float:
        """Switched capacitance per operand transition (per cycle after the first)."""
        return self.weighted(load) / max(self.vectors - 1, 1)


def pack(values: np.ndarray, width: int) -> np.ndarray:
    """[width, ceil(T/64)] uint64: bit k of vector t at bit t % 64 of word t // 64 of row k. The tail of the last
    word repeats the last vector, so padding adds no transitions."""
    values = np.asarray(values).astype(np.uint64)
    t = len(values)
    words = -(-t // 64)
    padded = np.empty(words * 64, np.uint64)
    padded[:t] = values
    padded[t:] = values[-1] if t else 0
    bits = ((padded[None, :] >> np.arange(width, dtype=np.uint64)[:, None]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little").view("<u8").reshape(width, words)


def unpack(words: np.ndarray, t: int) -> np.ndarray:
    """Inverse of :func:`pack` for a [width, W] array: the values of the first ``t`` vectors (int64)."""
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8).reshape(words.shape[0], -1), axis=1,
                         bitorder="little")[:, :t]
    return (bits.astype(np.int64) << np.arange(words.shape[0], dtype=np.int64)[:, None]).sum(axis=0)


def _check_stream(net: GateNetlist, inputs: dict[str, np.ndarray], sequential: bool = False) -> int:
    if len(net.regs) and not sequential:
        raise PyapproxError(f"{net.top} has flip-flops: simulate it cycle by cycle (lanes_activity)")
    if set(inputs) != set(net.inputs):
        raise PyapproxError(f"{net.top}: a stream must drive exactly the input ports {sorted(net.inputs)}, "
                            f"got {sorted(inputs)}")
    lengths = {len(np.asarray(v)) for v in inputs.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise PyapproxError(f"{net.top}: every input port needs the same, non-zero number of vectors "
                            f"(got {sorted(lengths)})")
    for port, v in inputs.items():
        v = np.asarray(v)
        width = len(net.inputs[port])
        if not np.issubdtype(v.dtype, np.integer):
            raise PyapproxError(f"{net.top}: stream for port {port} must be integers, got {v.dtype}")
        if v.size and (v.min() < 0 or int(v.max()) >= 1 << width):
            raise PyapproxError(f"{net.top}: stream for port {port} ({width} bits) holds values outside "
                                f"0..{(1 << width) - 1} (min {v.min()}, max {v.max()})")
    return lengths.pop()


def _evaluate(net: GateNetlist, packed: dict[str, np.ndarray], state: np.ndarray | None = None) -> np.ndarray:
    """Every net's words for the input words ``packed`` (port -> [bits, W]) and flip-flop outputs ``state``."""
    words = next(iter(packed.values())).shape[-1]
    vals = np.empty((net.n_nets, words), np.uint64)
    vals[0] = 0
    vals[1] = _ONES
    for port, bits in net.inputs.items():
        vals[list(bits)] = packed[port]
    if len(net.regs):
        vals[net.regs[:, 1]] = 0 if state is None else state
    for kind, i0, i1, i2, out in net.ops.tolist():
        a = vals[i0]
        if kind == 0:
            vals[out] = a
        elif kind == 1:
            np.invert(a, out=vals[out])
        elif kind == 2:
            np.bitwise_and(a, vals[i1], out=vals[out])
        elif kind == 3:
            np.invert(a & vals[i1], out=vals[out])
        elif kind == 4:
            np.bitwise_or(a, vals[i1], out=vals[out])
        elif kind == 5:
            np.invert(a | vals[i1], out=vals[out])
        elif kind == 6:
            np.bitwise_xor(a, vals[i1], out=vals[out])
        elif kind == 7:
            np.invert(a ^ vals[i1], out=vals[out])
        elif kind == 8:
            np.bitwise_and(a, ~vals[i1], out=vals[out])
        elif kind == 9:
            np.bitwise_or(a, ~vals[i1], out=vals[out])
        else:  # MUX: S ? B : A
            s = vals[i2]
            np.bitwise_or(a & ~s, vals[i1] & s, out=vals[out])
    return vals


def _chunks(net: GateNetlist, inputs: dict[str, np.ndarray], t: int):
    for start in range(0, t, CHUNK):
        stop = min(start + CHUNK, t)
        packed = {p: pack(np.asarray(v)[start:stop], len(net.inputs[p])) for p, v in inputs.items()}
        yield start, stop, _evaluate(net, packed)


def outputs(net: GateNetlist, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The output ports' values (int64, unsigned) for each vector of ``inputs`` (port -> values)."""
    t = _check_stream(net, inputs)
    result = {p: np.empty(t, np.int64) for p in net.outputs}
    for start, stop, vals in _chunks(net, inputs, t):
        for p, bits in net.outputs.items():
            result[p][start:stop] = unpack(vals[list(bits)], stop - start)
    return result


def _transitions(net: GateNetlist, inputs: dict[str, np.ndarray], t: int):
    """(start, stop, words): bit j of ``words[n, i]`` is 1 when net n changed from vector start + 64i + j - 1 to
    start + 64i + j (never for vector 0, nor in the padding)."""
    last = None  # every net's value in the previous chunk's last vector
    for start, stop, vals in _chunks(net, inputs, t):
        carry = np.empty_like(vals)
        carry[:, 1:] = vals[:, :-1] >> np.uint64(63)
        carry[:, 0] = (vals[:, 0] & np.uint64(1)) if last is None else last
        yield start, stop, vals ^ ((vals << np.uint64(1)) | carry)
        tail = (stop - start - 1) % 64  # the last real vector's bit (padding repeats it)
        last = (vals[:, -1] >> np.uint64(tail)) & np.uint64(1)


def toggles(net: GateNetlist, inputs: dict[str, np.ndarray]) -> Activity:
    """Per-net transition counts of the stream ``inputs`` (port -> values, one vector per cycle)."""
    t = _check_stream(net, inputs)
    counts = np.zeros(net.n_nets, np.int64)
    for _, _, changed in _transitions(net, inputs, t):
        counts += np.bitwise_count(changed).sum(axis=1, dtype=np.int64)
    return Activity(counts, t)


def toggles_per_segment(net: GateNetlist, inputs: dict[str, np.ndarray], starts) -> np.ndarray:
    """[segments, nets] transition counts of a stream cut into independent segments beginning at the sorted
    indices ``starts`` (0 first): no transition is counted into a segment's first vector."""
    t = _check_stream(net, inputs)
    starts = np.asarray(starts, np.int64)
    if len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= t:
        raise PyapproxError("segment starts must be increasing indices into the stream, beginning at 0")
    if len(starts) == 1:
        return toggles(net, inputs).toggles[None, :]
    out = np.zeros((len(starts), net.n_nets), np.int64)
    for start, stop, changed in _transitions(net, inputs, t):
        bits = np.unpackbits(changed.view(np.uint8).reshape(net.n_nets, -1), axis=1,
                             bitorder="little")[:, :stop - start]
        bits[:, starts[(starts >= start) & (starts < stop)] - start] = 0
        seg = np.searchsorted(starts, np.arange(start, stop), side="right") - 1
        bounds = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
        out[seg[bounds]] += np.add.reduceat(bits, bounds, axis=1, dtype=np.int64).T
    return out


def lanes_activity(net: GateNetlist, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Cycle-by-cycle simulation of a netlist (with or without flip-flops) on independent lanes.

    ``inputs``: port -> [lanes, cycles] values; lane j is one stream, starting with every flip-flop at 0 (the
    state after a synchronous reset) and advancing one cycle per vector: in cycle t the gates see the cycle's
    inputs and the flip-flops' outputs, then every flip-flop takes its D. 64 lanes share a machine word.
    Returns (per-net transitions summed over lanes [nets], load-weighted transitions per lane [lanes]); as for
    :func:`toggles`, nothing is counted into cycle 0, and the clock net is not a net of the model.
    """
    shapes = {np.shape(v) for v in inputs.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise PyapproxError(f"{net.top}: lane streams must all be [lanes, cycles] arrays of one shape, got "
                            f"{sorted(shapes)}")
    lanes, cycles = next(iter(shapes))
    _check_stream(net, {p: np.asarray(v).reshape(-1) for p, v in inputs.items()}, sequential=True)
    words = -(-lanes // 64)
    in_nets, planes = [], []
    for port, v in inputs.items():
        lanes_t = np.zeros((cycles, words * 64), np.uint64)
        lanes_t[:, :lanes] = np.asarray(v).astype(np.uint64).T
        for k, bit_net in enumerate(net.inputs[port]):  # one bit plane at a time: no [bits, cycles, lanes] temp
            plane = ((lanes_t >> np.uint64(k)) & np.uint64(1)).astype(np.uint8)
            planes.append(np.packbits(plane, axis=1, bitorder="little").view("<u8").reshape(1, cycles, words))
            in_nets.append(bit_net)
    packed = np.concatenate(planes, axis=0).transpose(1, 0, 2)  # [cycles, input bits, words]
    mask = np.packbits((np.arange(words * 64) < lanes).astype(np.uint8), bitorder="little").view("<u8")
    per_net, per_lane = lane_engine.run(net.ops, net.regs, np.array(in_nets), packed, net.n_nets, net.load, mask)
    return per_net, per_lane[:lanes]
