"""Quantize a float network into the accelerator's arithmetic (see :mod:`pyapprox.nn.config`).

Works on any ``nn.Module``: fold BatchNorm and fuse activations (:func:`fuse`, groups from
:mod:`pyapprox.nn.fusion`), run calibration inputs through the fused float network to find every tensor's scale
(:func:`calibrate`), then replace each conv and linear layer by a :class:`QConv2d` (:func:`quantize_model`).
Everything else the model does (residual adds, concatenations, pooling, upsampling, unfused activations) stays
as it is, in float32, between quantized layers. Module names stay those of the float model, so layer
selectors and ``state_dict`` keys keep meaning the same layers.
"""

from __future__ import annotations

import copy
import math
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.nn.approx_conv import ApproxConv2d
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.fusion import fusion_groups, leaky_slope

_SAMPLES_PER_IMAGE = 1 << 16


def _activate(y: torch.Tensor, act: str | None) -> torch.Tensor:
    if act == "relu6":
        return F.relu6(y)
    if act == "relu":
        return F.relu(y)
    slope = leaky_slope(act)
    if slope is not None:
        return F.leaky_relu(y, slope)
    return y


def fold(conv: nn.Conv2d | nn.Linear, bn: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight [O, I, kh, kw] (a linear layer's as 1x1) and bias [O] with ``bn`` (eval statistics)
    folded in: computed in float64, rounded once to float32. Differentiable in the parameters."""
    w = conv.weight.to(torch.float64)
    if isinstance(conv, nn.Linear):
        w = w[:, :, None, None]
    b = conv.bias.to(torch.float64) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(bn.running_var, dtype=torch.float64)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(bn.running_var, dtype=torch.float64)
        scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - bn.running_mean.double()) * scale + beta
    return w.float(), b.float()


class FusedConv(nn.Module):
    """Float conv (or linear layer, as a 1x1 conv) with BatchNorm folded in (:func:`fold`) and its activation
    fused: the layer the accelerator computes."""

    def __init__(self, conv: nn.Conv2d | nn.Linear, bn: nn.Module | None, act: str | None):
        super().__init__()
        self.linear = isinstance(conv, nn.Linear)
        with torch.no_grad():
            w, b = fold(conv, bn)
        self.register_buffer("weight", w)
        self.register_buffer("bias", b)
        if self.linear:
            self.stride, self.padding, self.dilation, self.groups = (1, 1), (0, 0), (1, 1), 1
        else:
            self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.linear:
            return _activate(F.linear(x, self.weight[:, :, 0, 0], self.bias), self.act)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return _activate(y, self.act)


def _kernels():
    """The compiled kernels when they work here (numba), else None; imported on first use."""
    from pyapprox.nn import kernels

    return kernels if kernels.available() else None


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def fuse(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) whose convs and linear layers are :class:`FusedConv` and whose BN/activation
    modules that were fused are identities (groups from :func:`pyapprox.nn.fusion.fusion_groups`). Computes the
    same function as ``model`` up to float rounding."""
    model = copy.deepcopy(model).eval()
    mods = dict(model.named_modules())
    for conv_name, bn_name, act_name, act in fusion_groups(model):
        _set_module(model, conv_name, FusedConv(mods[conv_name], mods[bn_name] if bn_name else None, act))
        for extra in (bn_name, act_name):
            if extra:
                _set_module(model, extra, nn.Identity())
    return model


# -- calibration --------------------------------------------------------------------------------------
@dataclass
class _Stats:
    maxabs: float = 0.0
    samples: list = field(default_factory=list)

    def add(self, x: torch.Tensor) -> None:
        a = x.detach().abs().flatten()
        self.maxabs = max(self.maxabs, float(a.max()) if a.numel() else 0.0)
        step = max(1, a.numel() // _SAMPLES_PER_IMAGE)
        # a copy of the samples only: a strided view would keep the whole activation alive (GBs at 480x640)
        self.samples.append(a[::step].to(torch.float32).contiguous().clone().numpy())

    def scale(self, cfg: AccelConfig) -> float:
        q = cfg.qmax
        if self.maxabs <= 0 or not math.isfinite(self.maxabs):
            return 1.0
        if cfg.calibration == "max":
            clip = self.maxabs
        else:
            data = np.concatenate(self.samples + [np.array([self.maxabs], np.float32)]).astype(np.float64)
            if cfg.calibration == "percentile":
                clip = float(np.percentile(data, cfg.percentile))
            else:  # mse: clip value minimising the quantization error on the samples
                best, clip = math.inf, self.maxabs
                for c in np.linspace(self.maxabs / 32, self.maxabs, 128):
                    s = c / q
                    err = float(np.mean((np.minimum(data, c) - np.round(np.minimum(data, c) / s) * s) ** 2
                                        + np.maximum(data - c, 0) ** 2))
                    if err < best:
                        best, clip = err, float(c)
        clip = clip if clip > 0 else self.maxabs
        return clip / q


@dataclass
class Calibration:
    """Per conv: input scale, output scale, and which conv (if any) directly produces its input."""

    input_scale: dict
    output_scale: dict
    chained_from: dict
    order: list
    config: AccelConfig


@torch.no_grad()
def calibrate(fused: nn.Module, images: list[torch.Tensor], cfg: AccelConfig) -> Calibration:
    """Run ``images`` (each [N, 3, H, W], preprocessed) through ``fused`` and derive all activation scales."""
    if not images:
        raise PyapproxError("calibration needs at least one image")
    convs = [(n, m) for n, m in fused.named_modules() if isinstance(m, FusedConv)]
    names = {id(m): n for n, m in convs}
    in_stats = {n: _Stats() for n, _ in convs}
    out_stats = {n: _Stats() for n, _ in convs}
    chained: dict[str, str | None] = {}
    order: list[str] = []
    state = {"prev": None, "prev_out": None}

    def hook(module, inputs, output):
        name = names[id(module)]
        x = inputs[0]
        src = state["prev"] if state["prev_out"] is not None and x is state["prev_out"] else None
        if chained.setdefault(name, src) != src:
            raise PyapproxError(f"layer {name}: inconsistent dataflow between calibration images")
        if name not in order:
            order.append(name)
        in_stats[name].add(x)
        out_stats[name].add(output)
        state["prev"], state["prev_out"] = name, output

    handles = [m.register_forward_hook(hook) for _, m in convs]
    try:
        for img in images:
            if not torch.isfinite(img).all():
                raise PyapproxError("calibration image contains NaN or infinite values")
            state["prev"] = state["prev_out"] = None
            fused(img)
    finally:
        for h in handles:
            h.remove()
    output_scale = {n: out_stats[n].scale(cfg) for n in order}
    input_scale = {n: (output_scale[chained[n]] if chained[n] else in_stats[n].scale(cfg)) for n in order}
    return Calibration(input_scale, output_scale, chained, order, cfg)


# -- codes passed from layer to layer ------------------------------------------------------------------
_PASSED = threading.local()  # the last dequantized output of this thread: (weakref, version, scale, lo, hi, codes)


def _pass_codes(y: torch.Tensor, codes: torch.Tensor, scale: float, lo: int, hi: int) -> None:
    """Remember that ``y`` is ``codes.float() * scale`` with codes in lo..hi (one output per thread)."""
    try:
        version = y._version
    except RuntimeError:  # an inference-mode tensor has no version counter: in-place changes would go unseen
        _PASSED.slot = None
        return
    _PASSED.slot = (weakref.ref(y), version, scale, lo, hi, codes)


def _passed_codes(x: torch.Tensor, scale: float, qmin: int, qmax: int) -> torch.Tensor | None:
    """The codes of ``x`` when it is the last :func:`_pass_codes` output, unchanged since (same version counter),
    with the same scale, codes within qmin..qmax: then ``QF.quantize(x, scale, qmin, qmax)`` is those codes, for
    float32 c * s / s is c (1 + e) with |e| < 2^-22, which rounds to c for |c| < 2^21 and a normal scale
    (proven exhaustively for 8-bit codes in the tests). Else None."""
    slot = getattr(_PASSED, "slot", None)
    if slot is None or slot[0]() is not x:
        return None
    _, version, s, lo, hi, codes = slot
    if (x._version != version or s != scale or lo < qmin or hi > qmax or max(-lo, hi) >= 1 << 21
            or not 1e-30 < scale < 1e30):
        return None
    return codes


# -- the quantized layer ------------------------------------------------------------------------------
class QConv2d(nn.Module):
    """Quantize input -> integer conv (LUT products) -> requantize with fused activation -> dequantize.

    The float interface keeps non-conv operations (residual add, upsampling, concat) in float32, while a
    conv feeding another conv directly passes exact integer codes (both use the same tensor scale).
    """

    def __init__(self, fused: FusedConv, s_in: float, s_out: float | None, cfg: AccelConfig, name: str = "",
                 backend: str = "auto"):
        super().__init__()
        self.name = name
        self.cfg = cfg
        self.act = fused.act
        self.linear = fused.linear
        self.s_in = float(s_in)
        self.s_out = None if s_out is None else float(s_out)
        zeros = torch.zeros(fused.weight.shape, dtype=torch.int32)
        self.conv = ApproxConv2d(zeros, None, fused.stride, fused.padding, fused.dilation, fused.groups,
                                 cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode, backend)
        self.conv.linear = self.linear
        if s_out is not None:
            self.qlo = 0 if self.act in ("relu", "relu6") else cfg.qmin
            self.qhi = min(cfg.qmax, int(round(6.0 / s_out))) if self.act == "relu6" else cfg.qmax
        self.set_weights(fused.weight, fused.bias)
        self.macs = 0

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Everything that depends on the fused float weights [O, I, kh, kw] and bias [O]: weight scales and
        codes, bias codes, requantization multipliers (the scales s_in, s_out stay)."""
        cfg = self.cfg
        w = weight.detach().double()
        o = w.shape[0]
        wmax = w.abs().reshape(o, -1).max(1).values
        s_w = torch.where(wmax > 0, wmax / cfg.qmax, torch.ones_like(wmax))
        w_codes = torch.clamp(torch.round(w / s_w.view(-1, 1, 1, 1)), -cfg.qmax, cfg.qmax).to(torch.int32)
        acc_scale = self.s_in * s_w  # float value of one accumulator unit, per output channel
        lo, hi = -(1 << (cfg.acc_bits - 1)), (1 << (cfg.acc_bits - 1)) - 1
        bias_codes = torch.round(bias.detach().double() / acc_scale).clamp(lo, hi).to(torch.int64)
        self.conv.weight_codes = w_codes.contiguous()
        self.conv.bias_codes = bias_codes.contiguous()
        self._buffer("weight_scale", s_w.float())
        self._buffer("acc_scale", acc_scale.to(torch.float64))
        if self.s_out is not None:
            dev = w.device
            mult, shift = QF.requant_params((acc_scale / self.s_out).cpu().numpy(), cfg.requant_bits)
            self._buffer("rq_mult", torch.from_numpy(mult).to(dev))
            self._buffer("rq_shift", torch.from_numpy(shift).to(dev))
            slope = leaky_slope(self.act)
            neg = torch.from_numpy(np.round(slope * mult).astype(np.int64)).to(dev) if slope is not None else None
            self._buffer("rq_mult_neg", neg)  # a buffer (None without LeakyReLU): moves with .to(device)

    def _buffer(self, name: str, value: torch.Tensor) -> None:
        if name in self._buffers:
            setattr(self, name, value)
        else:
            self.register_buffer(name, value)

    @property
    def multiplier(self) -> str:
        return self.conv.multiplier

    def set_lut(self, lut) -> None:
        self.conv.set_lut(lut)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """``QF.quantize(x, s_in, qmin, qmax)``: the codes themselves when ``x`` is, unchanged, the float output of
        a layer with output scale ``s_in`` (:meth:`dequantize`), else one compiled pass on the CPU."""
        codes = _passed_codes(x, self.s_in, self.cfg.qmin, self.cfg.qmax)
        if codes is None and x.device.type == "cpu" and _kernels() is not None:
            codes = _kernels().quantize(x, self.s_in, self.cfg.qmin, self.cfg.qmax)
        return codes if codes is not None else QF.quantize(x, self.s_in, self.cfg.qmin, self.cfg.qmax)

    def output_codes(self, acc: torch.Tensor) -> torch.Tensor:
        if acc.device.type == "cpu" and _kernels() is not None:
            codes = _kernels().requantize(acc, self.rq_mult, self.rq_shift, self.rq_mult_neg, self.qlo, self.qhi)
            if codes is not None:
                return codes
        return QF.requantize(acc, self.rq_mult, self.rq_shift, self.rq_mult_neg, self.qlo, self.qhi)

    def dequantize(self, acc: torch.Tensor) -> torch.Tensor:
        """The float output ``output_codes(acc).float() * s_out`` (one compiled pass on the CPU). Its codes are
        kept for a next layer with input scale ``s_out`` (:meth:`quantize_input`) while the tensor is unchanged."""
        out = None
        if acc.device.type == "cpu" and _kernels() is not None:
            out = _kernels().requantize(acc, self.rq_mult, self.rq_shift, self.rq_mult_neg, self.qlo, self.qhi,
                                        scale=self.s_out)
        if out is None:
            codes = self.output_codes(acc)
            out = codes, codes.to(torch.float32) * self.s_out
        codes, y = out
        _pass_codes(y, codes, self.s_out, self.qlo, self.qhi)
        return y

    def as_conv_input(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input as the conv sees it: a linear layer's [..., C] rows become one [1, C, M, 1] image."""
        if not self.linear:
            return x
        return x.reshape(-1, x.shape[-1]).t().reshape(1, x.shape[-1], -1, 1)

    def from_conv_output(self, y: torch.Tensor, lead: tuple | None) -> torch.Tensor:
        """Inverse of :meth:`as_conv_input` for the output: a linear layer's [1, O, M, 1] back to [..., O]."""
        if lead is None:
            return y
        o = y.shape[1]
        return y.reshape(o, -1).t().reshape(*lead, o)

    def forward_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input codes, accumulators, float output) of the layer for an input in conv form."""
        codes = self.quantize_input(x)
        acc = self.conv(codes)
        o, cg, kh, kw = self.conv.weight_codes.shape
        self.macs += acc.numel() * cg * kh * kw
        if self.s_out is None:  # the network's last layer: its accumulator is the output (activation in float)
            y = _activate((acc.to(torch.float64) * self.acc_scale.view(1, -1, 1, 1)).float(), self.act)
        else:
            y = self.dequantize(acc)
        return codes, acc, y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1] if self.linear else None
        _, _, y = self.forward_codes(self.as_conv_input(x))
        return self.from_conv_output(y, lead)

    def extra_repr(self) -> str:
        return f"s_in={self.s_in:.4g}, s_out={self.s_out}, act={self.act}"


def fuse_and_calibrate(model: nn.Module, calib_images: list[torch.Tensor], cfg: AccelConfig
                       ) -> tuple[nn.Module, Calibration]:
    """:func:`fuse` then :func:`calibrate` on one thread (float reductions in a fixed order, so that the scales
    do not depend on the thread count)."""
    fused = fuse(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fused, calibrate(fused, calib_images, cfg)
    finally:
        torch.set_num_threads(threads)


def quantize_model(model: nn.Module, calib_images: list[torch.Tensor], cfg: AccelConfig | None = None,
                   backend: str = "auto") -> nn.Module:
    """The accelerator version of ``model``: every conv a :class:`QConv2d` computing with the exact product
    (use :func:`pyapprox.nn.plan.approximate` to swap in approximate multipliers)."""
    cfg = cfg or AccelConfig()
    fused, cal = fuse_and_calibrate(model, calib_images, cfg)
    qmodel = fused
    convs = [(n, m) for n, m in fused.named_modules() if isinstance(m, FusedConv)]
    missing = [n for n, _ in convs if n not in cal.input_scale]
    if not convs:
        raise PyapproxError("the model has no nn.Conv2d or nn.Linear layer to quantize")
    if missing:
        raise PyapproxError(f"calibration never ran layer(s) {', '.join(missing[:3])}")
    last = cal.order[-1]
    for name, m in convs:
        s_out = None if name == last else cal.output_scale[name]
        _set_module(qmodel, name, QConv2d(m, cal.input_scale[name], s_out, cfg, name, backend))
    qmodel.accel_config = cfg
    qmodel.calibration = cal
    return qmodel


def qconv_layers(qmodel: nn.Module) -> list[tuple[str, QConv2d]]:
    return [(n, m) for n, m in qmodel.named_modules() if isinstance(m, QConv2d)]
