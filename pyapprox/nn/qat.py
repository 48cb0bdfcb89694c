"""Approximation-aware training: the accelerator's forward pass with a gradient, for fine-tuning through a plan.

:class:`QATNetwork` wraps a float network. Its forward pass is the quantized network's, bit for bit: each fused
conv group (conv, BatchNorm, activation; :func:`pyapprox.nn.fusion.fusion_groups`) becomes a :class:`QATConv`
that folds the BatchNorm (:func:`pyapprox.nn.quant.fold`) and runs a :class:`pyapprox.nn.quant.QConv2d` made
from the folded weights, with the scales of :func:`pyapprox.nn.quant.fuse_and_calibrate` and the plan's
multipliers: what ``quantize_model`` + ``approximate`` build from the same weights and calibration images.
The trainable parameters are the float network's own (conv weights and biases, BatchNorm affine parameters,
anything outside the convs); BatchNorm statistics stay frozen. :meth:`QATNetwork.float_state_dict` gives
them back under the float network's names: an ordinary weights file.

Backward pass, per layer, through the integer arithmetic:

* requantization and activation: the slope of the linearised requantizer, ``s_out * M / 2^S`` (``M_neg`` for
  negative accumulators of a LeakyReLU layer), zero where the output code was clamped; the last layer (no
  requantization): ``s_in * s_w`` times the float activation's slope;
* the LUT products, ``gradient="ste"``: the exact product's gradient (straight through: acc is treated as the
  exact integer convolution of the codes); ``gradient="lut"``: slope tables of the multiplier's own product
  table (:func:`gradient_tables`), so the network sees where this multiplier errs;
* quantization of inputs and weights: straight through (``1 / s``), zero for inputs that were clamped;
  the bias enters as ``round(b / (s_in s_w))``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.fusion import fusion_groups, leaky_slope
from pyapprox.nn.quant import FusedConv, QConv2d, _set_module, fold, fuse_and_calibrate

GRADIENTS = ("ste", "lut")
DEFAULT_GRAD_STEP = 4


def gradient_tables(ptable: np.ndarray, step: int = DEFAULT_GRAD_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Slopes of a signed product table ``P[w + off, x + off]`` along w and along x, float32 [S, S]:
    central differences ``(P[i + h] - P[i - h]) / 2h`` with step ``h`` (the mean slope over a window of 2h
    codes: a staircase of truncated products gets its average slope), one-sided within h of the table's edges.
    For the exact product both are exact: the slope along x is w, along w is x."""
    if not 1 <= int(step) <= 64:
        raise PyapproxError(f"gradient step {step!r}: expected an integer from 1 to 64")
    p = np.asarray(ptable, dtype=np.float64)
    s = p.shape[0]
    i = np.arange(s)
    hi, lo = np.minimum(i + step, s - 1), np.maximum(i - step, 0)
    span = (hi - lo).astype(np.float64)
    gw = (p[hi, :] - p[lo, :]) / span[:, None]
    gx = (p[:, hi] - p[:, lo]) / span[None, :]
    return gw.astype(np.float32), gx.astype(np.float32)


def lut_backward_torch(codes: torch.Tensor, wcodes: torch.Tensor, gacc: torch.Tensor, gw: torch.Tensor,
                       gx: torch.Tensor, offset: int, stride, padding, dilation, groups: int,
                       max_elements: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad of the input codes, grad of the weight codes) of a LUT conv with slope tables ``gw`` / ``gx``
    ([S, S] float32 torch tensors on the device), in plain PyTorch ops (GPU, and the CPU reference)."""
    n, c, h, wd = codes.shape
    o, cg, kh, kw = wcodes.shape
    og, k = o // groups, cg * kh * kw
    size = gw.shape[0]
    ho, wo = gacc.shape[2], gacc.shape[3]
    nl = ho * wo
    rows = (wcodes.reshape(o, k).to(torch.int64) + offset) * size
    gwf, gxf = gw.reshape(-1), gx.reshape(-1)
    grad_w = torch.zeros((o, k), dtype=torch.float32, device=codes.device)
    grad_x = torch.zeros_like(codes, dtype=torch.float32)
    chunk = max(1, min(nl, max_elements // max(1, og * k)))
    for gi in range(groups):
        wg = rows[gi * og:(gi + 1) * og]
        for i in range(n):
            cols = F.unfold(codes[i:i + 1, gi * cg:(gi + 1) * cg].to(torch.float32), (kh, kw), dilation=dilation,
                            padding=padding, stride=stride)[0].to(torch.int64) + offset  # [K, L]
            gcols = torch.zeros((k, nl), dtype=torch.float32, device=codes.device)
            gi_out = gacc[i, gi * og:(gi + 1) * og].reshape(og, nl)
            for s in range(0, nl, chunk):
                idx = wg[:, :, None] + cols[None, :, s:s + chunk]  # [og, K, Lc]
                g = gi_out[:, None, s:s + chunk]
                gcols[:, s:s + chunk] = (gxf[idx] * g).sum(0)
                grad_w[gi * og:(gi + 1) * og] += (gwf[idx] * g).sum(2)
            grad_x[i:i + 1, gi * cg:(gi + 1) * cg] = F.fold(gcols[None], (h, wd), (kh, kw), dilation=dilation,
                                                             padding=padding, stride=stride)
    return grad_x, grad_w.reshape(o, cg, kh, kw)


def _lut_backward(codes, wcodes, gacc, tables, offset, stride, padding, dilation, groups, need_x=True, need_w=True):
    """Dispatch of the ``lut`` backward: compiled kernels on the CPU, PyTorch ops elsewhere."""
    gw, gx = (t.to(codes.device) for t in tables[:2])
    if codes.device.type == "cpu":
        try:
            from pyapprox.nn.kernels import grad as kgrad
            from pyapprox.nn.kernels.intrinsics import numba
        except ImportError:
            numba = None
        if numba is not None:
            ph, pw = padding
            xcols = F.pad(codes, (pw, pw, ph, ph)).numpy() + offset  # zero padding is code 0
            g = gacc.permute(0, 2, 3, 1).contiguous().numpy()
            gxp, gwc = kgrad.lut_conv2d_backward(xcols, wcodes.numpy() + offset, g, tables[2], tables[3],
                                                 stride, dilation, groups, need_x, need_w)
            h, w = codes.shape[2], codes.shape[3]
            return torch.from_numpy(gxp)[:, :, ph:ph + h, pw:pw + w], torch.from_numpy(gwc)
    return lut_backward_torch(codes, wcodes, gacc, gw, gx, offset, stride, padding, dilation, groups)


def _activation_slope(y: torch.Tensor, act: str | None) -> torch.Tensor:
    if act == "relu":
        return (y > 0).float()
    if act == "relu6":
        return ((y > 0) & (y < 6)).float()
    slope = leaky_slope(act)
    if slope is not None:
        return torch.where(y < 0, torch.full_like(y, slope), torch.ones_like(y))
    return torch.ones_like(y)


class _QATFunction(torch.autograd.Function):
    """y = the quantized layer's output for input x (conv form) and fused float weight/bias; see module doc."""

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        q = layer.q
        codes, acc, y = q.forward_codes(x)
        cfg = q.cfg
        shape = (1, -1, 1, 1)
        if q.s_out is None:
            lin = (acc.to(torch.float64) * q.acc_scale.view(shape)).float()
            slope, neg = (q.acc_scale.view(shape) * _activation_slope(lin, q.act)).float(), None
        else:
            # d y / d acc = s_out * M / 2^S (M_neg for negative accumulators), 0 where the code was clamped:
            # acc * m outside [qlo - 1/2, qhi + 1/2], i.e. acc outside per-channel integer bounds
            m = q.rq_mult.double() * torch.exp2(-q.rq_shift.double())
            mneg = q.rq_mult_neg.double() * torch.exp2(-q.rq_shift.double()) if q.rq_mult_neg is not None else m
            lo = torch.ceil((q.qlo - 0.5) / (mneg if q.qlo < 0 else m)).to(torch.int64)
            hi = torch.floor((q.qhi + 0.5) / m).to(torch.int64)
            inside = (acc >= lo.view(shape)) & (acc <= hi.view(shape))
            neg = (acc < 0) & inside if q.rq_mult_neg is not None else None
            slope = (inside, (q.s_out * m).float().view(shape), (q.s_out * mneg).float().view(shape))
        x_inside = (x >= (cfg.qmin - 0.5) * q.s_in) & (x <= (cfg.qmax + 0.5) * q.s_in)
        ctx.layer, ctx.slope = layer, slope
        ctx.save_for_backward(codes, q.conv.weight_codes, q.weight_scale, q.acc_scale, x_inside,
                              neg if neg is not None else torch.empty(0, dtype=torch.bool))
        return y

    @staticmethod
    def backward(ctx, gy):
        codes, wcodes, s_w, acc_scale, x_inside, neg = ctx.saved_tensors
        layer = ctx.layer
        q, conv = layer.q, layer.q.conv
        if isinstance(ctx.slope, tuple):
            inside, m, mneg = ctx.slope
            gacc = gy.float() * inside * m
            if neg.numel():
                gacc = torch.where(neg, gy.float() * mneg, gacc)
        else:
            gacc = gy.float() * ctx.slope
        gacc = gacc.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if layer.gradient == "lut":
            gxq, gwq = _lut_backward(codes, wcodes, gacc, layer.tables(), conv.offset, conv.stride, conv.padding,
                                     conv.dilation, conv.groups, need_x, need_w)
        else:
            cf, wf = codes.to(torch.float32), wcodes.to(torch.float32)
            gxq = torch.nn.grad.conv2d_input(codes.shape, wf, gacc, conv.stride, conv.padding, conv.dilation,
                                             conv.groups) if need_x else None
            gwq = torch.nn.grad.conv2d_weight(cf, wcodes.shape, gacc, conv.stride, conv.padding, conv.dilation,
                                              conv.groups) if need_w else None
        grad_x = gxq * x_inside / q.s_in if need_x else None
        grad_w = gwq / s_w.view(-1, 1, 1, 1) if need_w else None
        grad_b = (gacc.sum((0, 2, 3)).double() / acc_scale).float() if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class QATConv(nn.Module):
    """A fused conv group (conv, optional BatchNorm, activation) computed as the accelerator computes it."""

    def __init__(self, conv: nn.Conv2d | nn.Linear, bn: nn.Module | None, act: str | None, name: str,
                 gradient: str = "ste", grad_step: int = DEFAULT_GRAD_STEP):
        super().__init__()
        if gradient not in GRADIENTS:
            raise PyapproxError(f"gradient {gradient!r}: expected one of {', '.join(GRADIENTS)}")
        self.conv, self.bn, self.act, self.name = conv, bn, act, name
        self.gradient, self.grad_step = gradient, int(grad_step)
        self.lut = None
        self._tables = None
        self.correcting = False
        object.__setattr__(self, "q", None)  # the QConv2d: not a submodule (its codes are derived state)

    def configure(self, s_in: float, s_out: float | None, cfg: AccelConfig, lut, backend: str = "auto") -> None:
        """(Re)build the quantized layer for these scales and this multiplier (None: exact)."""
        q = QConv2d(FusedConv(self.conv, self.bn, self.act), s_in, s_out, cfg, self.name, backend)
        q.set_lut(lut)
        object.__setattr__(self, "q", q)
        if lut is not self.lut:
            self.lut, self._tables = lut, None

    def tables(self) -> tuple:
        """Slope tables (along w, along x) as tensors, then (along x, along w) transposed for the kernels."""
        if self._tables is None:
            gw, gx = gradient_tables(self.q.conv.ptable, self.grad_step)
            self._tables = (torch.from_numpy(gw), torch.from_numpy(gx), np.ascontiguousarray(gx.T),
                            np.ascontiguousarray(gw.T))
        return self._tables

    @torch.no_grad()
    def correct_bias(self, x: torch.Tensor) -> None:
        """Shift the bias by minus the mean error (approximate minus exact accumulator, per output channel) that
        the multiplier makes on input ``x``: BatchNorm's beta when there is one, else the conv's bias."""
        w, b = fold(self.conv, self.bn)
        self.q.set_weights(w, b)
        codes = self.q.quantize_input(self.q.as_conv_input(x))
        conv = self.q.conv
        acc = conv(codes)
        exact = QF.int_conv2d_exact(codes, conv.weight_codes, conv.bias_codes, conv.stride, conv.padding,
                                    conv.dilation, conv.groups)
        delta = -((acc - exact).double().mean((0, 2, 3)) * self.q.acc_scale).float()
        if self.bn is not None and self.bn.bias is not None:  # the folded bias moves 1:1 with beta
            self.bn.bias += delta.to(self.bn.bias.device)
        elif self.bn is None and self.conv.bias is not None:
            self.conv.bias += delta.to(self.conv.bias.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.q is None:
            raise PyapproxError(f"layer {self.name}: not calibrated (QATNetwork.recalibrate)")
        if self.correcting:
            self.correct_bias(x)
        w, b = fold(self.conv, self.bn)
        if self.q.weight_scale.device != w.device:
            self.q.to(w.device)
        self.q.set_weights(w.detach(), b.detach())
        lead = x.shape[:-1] if self.q.linear else None
        y = _QATFunction.apply(self.q.as_conv_input(x), w, b, self)
        return self.q.from_conv_output(y, lead)


class QATNetwork(nn.Module):
    """A float network trained through the accelerator's arithmetic (see module doc).

    ``luts`` maps layer names (the float model's module names) to a LUT, or None for the exact product;
    layers not named compute exactly. Call :meth:`recalibrate` after changing the weights to get the scales
    ``quantize_model`` would derive for them.
    """

    def __init__(self, model: nn.Module, calib_images: list[torch.Tensor], cfg: AccelConfig, luts: dict,
                 gradient: str = "ste", grad_step: int = DEFAULT_GRAD_STEP, backend: str = "auto"):
        super().__init__()
        self.cfg, self.backend = cfg, backend
        self.base = [copy.deepcopy(model).eval()]  # structure for float_model() (a list: not a submodule)
        net = copy.deepcopy(model).eval()
        self.groups = fusion_groups(net)
        unknown = sorted(set(luts) - {g[0] for g in self.groups})
        if unknown:
            raise PyapproxError(f"plan names layer(s) the network does not quantize: {', '.join(unknown[:3])}")
        self.luts = dict(luts)
        for conv_name, bn_name, act_name, act in self.groups:
            bn = net.get_submodule(bn_name) if bn_name else None
            _set_module(net, conv_name, QATConv(net.get_submodule(conv_name), bn, act, conv_name, gradient, grad_step))
            for extra in (bn_name, act_name):
                if extra:
                    _set_module(net, extra, nn.Identity())
        self.net = net.eval()
        self.recalibrate(calib_images)

    @torch.no_grad()
    def correct_bias(self, images: torch.Tensor, calib_images: list[torch.Tensor]) -> None:
        """Bias correction: in one pass over ``images``, in forward order, each layer's bias absorbs the mean error
        of its multiplier on the inputs it then receives (layers before it already corrected); then the scales
        are recalibrated. Exact layers are left alone (their error is zero)."""
        layers = [m for _, m in self.layers() if m.lut is not None]
        for m in layers:
            m.correcting = True
        try:
            self.net(images)
        finally:
            for m in layers:
                m.correcting = False
        self.recalibrate(calib_images)

    def layers(self) -> list[tuple[str, QATConv]]:
        return [(n, m) for n, m in self.net.named_modules() if isinstance(m, QATConv)]

    def train(self, mode: bool = True):
        """Stays in eval mode: BatchNorm statistics are frozen (they are folded into the integer weights)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _float_names(self) -> dict[str, str]:
        """Key prefixes of the training network -> the float network's (``conv.conv.`` -> ``conv.``, ...)."""
        rename = {}
        for conv_name, bn_name, _, _ in self.groups:
            rename[conv_name + ".conv."] = conv_name + "."
            if bn_name:
                rename[conv_name + ".bn."] = bn_name + "."
        return rename

    def float_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under the float network's names, in its order (a state_dict it loads strictly)."""
        rename = self._float_names()
        out = {}
        for key, value in self.net.state_dict().items():
            for old, new in rename.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = value.detach().clone()
        order = list(self.base[0].state_dict())
        missing = [k for k in order if k not in out]
        if missing:
            raise PyapproxError(f"internal: weights {missing[:3]} not found in the training network")
        return {k: out[k] for k in order}

    def load_float_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights given under the float network's names (the inverse of :meth:`float_state_dict`)."""
        rename = {new: old for old, new in self._float_names().items()}
        mapped = {}
        for key, value in state.items():
            for old, new in sorted(rename.items(), key=lambda kv: -len(kv[0])):
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            mapped[key] = value
        self.net.load_state_dict(mapped, strict=True)

    def scales(self) -> dict[str, list]:
        """Each layer's [s_in, s_out] (s_out None for the last layer): the calibration in use."""
        return {n: [m.q.s_in, m.q.s_out] for n, m in self.layers()}

    def set_scales(self, scales: dict[str, list]) -> None:
        """Use these scales (from :meth:`scales`, e.g. a checkpoint) instead of calibrating."""
        layers = dict(self.layers())
        if set(scales) != set(layers):
            raise PyapproxError("saved scales do not name this network's layers")
        for name, (s_in, s_out) in scales.items():
            layers[name].configure(float(s_in), None if s_out is None else float(s_out), self.cfg,
                                   self.luts.get(name), self.backend)

    def float_model(self) -> nn.Module:
        """The float network with the current weights."""
        model = copy.deepcopy(self.base[0])
        model.load_state_dict(self.float_state_dict(), strict=True)
        return model.eval()

    @torch.no_grad()
    def recalibrate(self, calib_images: list[torch.Tensor]) -> None:
        """Scales from the current weights, exactly as :func:`pyapprox.nn.quant.quantize_model` derives them."""
        _, cal = fuse_and_calibrate(self.float_model(), calib_images, self.cfg)
        last = cal.order[-1]
        for name, layer in self.layers():
            if name not in cal.input_scale:
                raise PyapproxError(f"calibration never ran layer {name}")
            s_out = None if name == last else cal.output_scale[name]
            layer.configure(cal.input_scale[name], s_out, self.cfg, self.luts.get(name), self.backend)
        self.calibration = cal
