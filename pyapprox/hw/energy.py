"""Switching energy of a multiplier's gate netlist on an operand stream.

Energy model (simple on purpose, stated in the README): the dynamic energy of one cycle is proportional to the
capacitance switched in it, ``sum over nets of toggles(net) x load(net)``, where ``load`` counts the gate inputs
a net drives (plus one for a product bit, which drives the accumulator): every gate input is one unit of
capacitance, wires and gate types are not told apart. Results are *relative*: a design's energy per operand
transition divided by that of the exact multiplier (``exact``, the structural array) on uniform operands
(EvoApproxLib's characterisation stream), which is 1.0; ``--pj-per-unit`` turns units into an absolute figure
the user vouches for.

A stream is a sequence of (weight code, activation code) pairs in the order one PE sees them, with optional
segment starts (independent stretches: no transition is counted into the first pair of a segment). Codes follow
the accelerator's operand format: sign-magnitude codes -255..255 reach the multiplier as magnitudes (and, for
designs with sign ports, as signs), int8 codes as their two's-complement byte. ``weight_port`` says which
multiplier port takes the weight (``"a"`` or ``"b"``), as in ``AccelConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.hw import toggle
from pyapprox.hw.netlist import GateNetlist

UNIFORM_PAIRS = 1 << 20
OPERAND_FORMATS = ("sign-magnitude", "int8")


@dataclass(frozen=True)
class Estimate:
    """Switched capacitance per transition (load units) of a sampled stream, with a 95% confidence interval
    over its segments (ratio estimator; 0 half-width for a single segment)."""

    per_transition: float
    half_width: float
    transitions: int
    segments: int

    def scaled(self, factor: float) -> "Estimate":
        return Estimate(self.per_transition * factor, self.half_width * factor, self.transitions, self.segments)

    def to_dict(self) -> dict:
        return {"per_transition": self.per_transition, "ci95": self.half_width, "transitions": self.transitions,
                "segments": self.segments}


@dataclass(frozen=True)
class MultiplierPorts:
    """Which ports of the netlist take the operands (magnitudes or bytes), their signs, and constant ties."""

    a: str
    b: str
    a_sign: str | None = None
    b_sign: str | None = None
    ties: dict = field(default_factory=dict)

    def check(self, net: GateNetlist) -> "MultiplierPorts":
        named = [p for p in (self.a, self.b, self.a_sign, self.b_sign, *self.ties) if p is not None]
        for p in named:
            if p not in net.inputs:
                raise PyapproxError(f"{net.top}: no input port {p!r}; inputs are {', '.join(net.inputs)}")
        if len(set(named)) != len(named):
            raise PyapproxError(f"{net.top}: a port has two roles ({', '.join(named)})")
        free = sorted(set(net.inputs) - set(named))
        if free:
            raise PyapproxError(f"{net.top}: input port(s) {', '.join(free)} are neither operands, signs nor tied")
        for p in (self.a, self.b):
            if len(net.inputs[p]) != 8:
                raise PyapproxError(f"{net.top}: operand port {p} has {len(net.inputs[p])} bits, expected 8")
        for p in (self.a_sign, self.b_sign):
            if p is not None and len(net.inputs[p]) != 1:
                raise PyapproxError(f"{net.top}: sign port {p} has {len(net.inputs[p])} bits, expected 1")
        for p, v in self.ties.items():
            if not 0 <= int(v) < 1 << len(net.inputs[p]):
                raise PyapproxError(f"{net.top}: tie {p}={v} does not fit {len(net.inputs[p])} bits")
        return self


def operand_inputs(net: GateNetlist, ports: MultiplierPorts, w: np.ndarray, x: np.ndarray, operand_format: str,
                   weight_port: str) -> dict[str, np.ndarray]:
    """The netlist's input streams for weight codes ``w`` and activation codes ``x`` (see the module docstring)."""
    if operand_format not in OPERAND_FORMATS:
        raise PyapproxError(f"operand format {operand_format!r}: expected one of {', '.join(OPERAND_FORMATS)}")
    if weight_port not in ("a", "b"):
        raise PyapproxError(f"weight port {weight_port!r}: expected a or b")
    w, x = np.asarray(w, np.int64), np.asarray(x, np.int64)
    lo, hi = (-255, 255) if operand_format == "sign-magnitude" else (-128, 127)
    for what, v in (("weight", w), ("activation", x)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise PyapproxError(f"{what} codes outside {lo}..{hi} for {operand_format} operands "
                                f"(min {v.min()}, max {v.max()})")
    first, second = (w, x) if weight_port == "a" else (x, w)
    if operand_format == "sign-magnitude":
        inputs = {ports.a: np.abs(first), ports.b: np.abs(second)}
        if ports.a_sign is not None:
            inputs[ports.a_sign] = (first < 0).astype(np.int64)
        if ports.b_sign is not None:
            inputs[ports.b_sign] = (second < 0).astype(np.int64)
    else:
        inputs = {ports.a: first & 0xFF, ports.b: second & 0xFF}
        if ports.a_sign is not None or ports.b_sign is not None:
            raise PyapproxError(f"{net.top} has sign ports (a sign-magnitude design); the int8 format needs a "
                                f"two's-complement multiplier")
    for p, v in ports.ties.items():
        inputs[p] = np.full(len(w), int(v), np.int64)
    return inputs


def uniform_stream(n: int = UNIFORM_PAIRS, seed: int = 0, operand_format: str = "sign-magnitude",
                   signs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random operand pairs, EvoApproxLib-style: independent magnitudes 0..255 (bytes for int8), with
    random signs only when ``signs`` (a design with sign ports)."""
    rng = np.random.default_rng(seed)
    if operand_format == "int8":
        return rng.integers(-128, 128, n), rng.integers(-128, 128, n)
    w, x = rng.integers(0, 256, n), rng.integers(0, 256, n)
    if signs:
        w = np.where(rng.random(n) < 0.5, -w, w)
        x = np.where(rng.random(n) < 0.5, -x, x)
    return w, x


def switched(net: GateNetlist, inputs: dict[str, np.ndarray], starts: np.ndarray | None = None) -> Estimate:
    """Switched capacitance per transition of a stream cut into segments beginning at ``starts`` (sorted
    indices, 0 first; None: one segment), with its 95% confidence interval over segments."""
    t = len(next(iter(inputs.values())))
    starts = np.array([0] if starts is None else starts, np.int64)
    per_net = toggle.toggles_per_segment(net, inputs, starts)  # [segments, nets]; checks the starts
    ends = np.append(starts[1:], t)
    weighted = per_net @ net.load
    trans = ends - starts - 1
    total_t = int(trans.sum())
    if total_t == 0:
        raise PyapproxError("a stream needs at least two pairs in one segment")
    ratio = float(weighted.sum() / total_t)
    n = len(starts)
    if n > 1:
        resid = (weighted - ratio * trans) / trans.mean()
        half = 1.96 * float(np.sqrt((resid ** 2).sum() / (n * (n - 1))))
    else:
        half = 0.0
    return Estimate(ratio, half, total_t, n)
