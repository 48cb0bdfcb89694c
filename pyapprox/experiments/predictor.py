"""Predicting what a multiplier does to each layer from its error table and the layer's real operands.

Contract:
- ``operand_profile(ctx)``: per quantized conv of the context's exact-quantized network, run on the context's
  images once: the histogram of its input codes per input channel, its weight codes and groups, and the mean
  square of its exact accumulators per output channel. Cached by content (network, weights, data, config).
- ``layer_nsr(profile_layer, ptable)``: the predicted accumulator error power over the accumulator power, with
  the activation at every tap drawn from its channel's histogram independently of the weight there: per output
  channel, bias = sum over taps of E[e(w, x)] and variance = sum of Var[e(w, x)], where e is the table's
  product minus the exact product. Exact for the mean error; the variance ignores correlation between taps.
- ``Predictor``: the predicted degradation of the budget's first metric when multiplier m runs layer l,
  d(l, m) = g_l * nsr(l, m), with the layer gain g_l calibrated from one measured single-layer evaluation (the
  probe multiplier); a plan's degradation is the sum over its layers (independent errors add in power, and a
  metric's expected loss is second order in small zero-mean noise). Predictions rank; only measurements accept.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox.io import atomic_path
from pyapprox.lut.library import get_lut
from pyapprox.models.densedepth_mbv2 import preprocess
from pyapprox.nn import functional as QF
from pyapprox.nn.quant import qconv_layers

PROFILE_VERSION = 1


@dataclass
class LayerProfile:
    hist: np.ndarray  #: [C, codes] counts of the layer's input codes per input channel (codes from -offset)
    weights: np.ndarray  #: [O, C/groups, kh, kw] weight codes
    groups: int
    acc_ms: np.ndarray  #: [O] mean square of the exact accumulators
    offset: int  #: code value of column 0 of ``hist`` is -offset


def _capture(evaluator, progress: bool) -> dict[str, LayerProfile]:
    qmodel, data = evaluator.qmodel, evaluator.data
    layers = qconv_layers(qmodel)
    off = 255 if evaluator.ctx.accel.operand_format == "sign-magnitude" else 128
    width = 2 * off + 1 if off == 255 else 256
    hist = {n: None for n, _ in layers}
    acc_sq = {n: None for n, _ in layers}
    acc_n = dict.fromkeys(hist, 0)
    handles = []

    def hook(name):
        def fn(module, inputs, output):  # one full-size temporary at a time (int32 indices: c * width < 2^31)
            codes = inputs[0]
            c = codes.shape[1]
            idx = (torch.arange(c, dtype=torch.int32).view(1, c, 1, 1) * width + off + codes.to(torch.int32)).reshape(-1)
            h = torch.bincount(idx, minlength=c * width).reshape(c, width)
            del idx
            hist[name] = h if hist[name] is None else hist[name] + h
            acc = output.to(torch.float64)
            sq = acc.square_().sum(dim=(0, 2, 3))
            del acc
            acc_sq[name] = sq if acc_sq[name] is None else acc_sq[name] + sq
            acc_n[name] += output.shape[0] * output.shape[2] * output.shape[3]
        return fn

    for n, m in layers:
        handles.append(m.conv.register_forward_hook(hook(n)))
    try:
        with torch.no_grad():
            for i in tqdm(range(len(data)), desc="operand profile", unit="img", disable=not progress, leave=False):
                rgb, _ = data[i]
                qmodel(preprocess(rgb))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for n, m in layers:
        if hist[n] is None:
            raise PyapproxError(f"layer {n} did not run on the profile images")
        out[n] = LayerProfile(hist[n].numpy(), m.conv.weight_codes.numpy().astype(np.int64), int(m.conv.groups),
                              (acc_sq[n] / max(acc_n[n], 1)).numpy(), off)
    return out


def operand_profile(ctx, evaluator_factory, progress: bool = True) -> dict[str, LayerProfile]:
    """The context's operand profile, from the cache or captured now (``evaluator_factory(ctx)`` builds the
    exact-quantized network and data). The cache file is an .npz read with ``allow_pickle=False``."""
    key = content_key({"v": PROFILE_VERSION, "ctx": ctx.identity()})
    path = cache_dir("profiles") / f"{key}.npz"
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, PyapproxError):
            pass  # a damaged cache entry is captured again
    prof = _capture(evaluator_factory(ctx), progress)
    arrays = {"names": np.array(list(prof))}
    for i, (n, p) in enumerate(prof.items()):
        arrays.update({f"h{i}": p.hist, f"w{i}": p.weights, f"a{i}": p.acc_ms,
                       f"g{i}": np.array([p.groups, p.offset])})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return prof


def _load(path) -> dict[str, LayerProfile]:
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        out = {}
        for i, n in enumerate(names):
            h, w, a, g = z[f"h{i}"], z[f"w{i}"], z[f"a{i}"], z[f"g{i}"]
            groups, off = int(g[0]), int(g[1])
            if (h.ndim != 2 or w.ndim != 4 or a.shape != (w.shape[0],) or groups < 1
                    or h.shape[0] != w.shape[1] * groups or off not in (128, 255)):
                raise PyapproxError(f"{path}: layer {n}: inconsistent profile arrays")
            out[n] = LayerProfile(h.astype(np.int64), w.astype(np.int64), groups, a.astype(np.float64), off)
    return out


def layer_nsr(p: LayerProfile, ptable: np.ndarray) -> float:
    """Predicted accumulator error power / exact accumulator power of one layer under a product table
    ``ptable`` (:func:`pyapprox.nn.functional.product_table`, indexed ``[w + off, x + off]``)."""
    exact, _ = QF.exact_product_table("sign-magnitude" if p.offset == 255 else "int8")
    err = (ptable - exact).astype(np.float64)  # [w, x]
    xs = np.flatnonzero(p.hist.sum(0))  # activation codes that occur, weight codes that occur
    ws, w_index = np.unique(p.weights + p.offset, return_inverse=True)
    e = err[np.ix_(ws, xs)]
    prob = p.hist[:, xs] / np.maximum(p.hist.sum(1, keepdims=True), 1)  # [C, x]
    m1 = prob @ e.T  # [C, w]: E_x e(w, x)
    m2 = prob @ (e * e).T
    o, cg, kh, kw = p.weights.shape
    ch = (np.arange(o)[:, None] // (o // p.groups)) * cg + np.arange(cg)[None, :]  # [O, Cg] input channel
    ch = np.broadcast_to(ch[:, :, None, None], p.weights.shape)
    w = w_index.reshape(p.weights.shape)
    mean = m1[ch, w].reshape(o, -1).sum(1)
    var = np.maximum(m2[ch, w] - m1[ch, w] ** 2, 0.0).reshape(o, -1).sum(1)
    power = float(p.acc_ms.sum())
    return float((mean ** 2 + var).sum() / power) if power > 0 else float((mean ** 2 + var).sum())


def nsr_table(profile: dict[str, LayerProfile], layers: list[str], multipliers: list[str], accel,
              progress: bool = False) -> dict[str, dict[str, float]]:
    """{multiplier: {layer: nsr}} for the named layers."""
    out = {}
    for m in tqdm(multipliers, desc="predict", unit="mult", disable=not progress, leave=False):
        pt, _ = QF.product_table(get_lut(m).table, accel.operand_format, accel.weight_port)
        out[m] = {name: layer_nsr(profile[name], pt) for name in layers}
    return out


def choose_probe(nsr: dict[str, dict[str, float]]) -> str:
    """The multiplier whose median NSR over the layers is the median among the candidates: errors large enough
    to move the metric measurably on sensitive layers, small enough not to wreck the network."""
    med = sorted((float(np.median(list(v.values()))), m) for m, v in nsr.items())
    return med[(len(med) - 1) // 2][1]


class Predictor:
    """d(l, m) = gain_l * nsr(l, m), gains from measured probe degradations ``{layer: degradation}``.

    A probe degradation at or below ``floor`` (the metric did not move) is taken as ``floor``: such a layer is
    insensitive to the probe's error power, not immune to every larger one."""

    def __init__(self, nsr: dict[str, dict[str, float]], probe: str, measured: dict[str, float], floor: float):
        self.nsr, self.probe = nsr, probe
        self.gain = {}
        for layer, d in measured.items():
            n = nsr[probe][layer]
            self.gain[layer] = max(d, floor) / n if n > 0 else 0.0

    def degradation(self, layer: str, multiplier: str) -> float:
        return self.gain[layer] * self.nsr[multiplier][layer]

    def plan(self, plan: dict[str, str]) -> float:
        return sum(self.degradation(layer, m) for layer, m in plan.items())


def rank_correlation(pred: list[float], measured: list[float]) -> float | None:
    """Spearman's rank correlation, or None with fewer than 3 pairs or a constant side."""
    if len(pred) < 3 or len(set(pred)) < 2 or len(set(measured)) < 2:
        return None
    return float(spearmanr(pred, measured).statistic)
