"""ApproxConv2d: an integer convolution whose every product comes from a multiplier LUT.

Input and weights are integer codes; the output is the accumulator (see :mod:`pyapprox.nn.config` for
the number model). Backends: ``reference`` (vectorised gather, any table), ``exact`` (float64 GEMM; only
for the exact product table), ``numba`` (compiled LUT kernels, CPU), ``torch`` (plain PyTorch ops on the
tensors' device: the GPU path). ``auto`` picks ``torch`` for CUDA inputs, else the fastest valid CPU one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF

BACKENDS = ("auto", "reference", "exact", "numba", "torch")


def conv_kind(groups: int, in_channels: int, out_channels: int, kernel_size) -> str:
    if groups > 1 and groups == in_channels == out_channels:
        return "dw"
    if groups > 1:
        return "grouped"
    if tuple(kernel_size) == (1, 1):
        return "pw"
    return "full"


class ApproxConv2d(nn.Module):
    """Integer conv: ``forward(codes [N, C, H, W]) -> accumulators [N, O, Ho, Wo]`` (int64)."""

    def __init__(self, weight_codes: torch.Tensor, bias_codes: torch.Tensor | None, stride=1, padding=0, dilation=1,
                 groups=1, operand_format="sign-magnitude", weight_port="a", acc_bits=32, acc_mode="wrap",
                 backend="auto"):
        super().__init__()
        pair = torch.nn.modules.utils._pair
        self.register_buffer("weight_codes", weight_codes.to(torch.int32).contiguous())
        o = weight_codes.shape[0]
        b = torch.zeros(o, dtype=torch.int64) if bias_codes is None else bias_codes.to(torch.int64)
        self.register_buffer("bias_codes", b.contiguous())
        self.stride, self.padding, self.dilation = pair(stride), pair(padding), pair(dilation)
        self.groups = groups
        self.operand_format = operand_format
        self.weight_port = weight_port
        self.acc_bits = acc_bits
        self.acc_mode = acc_mode
        if backend not in BACKENDS:
            raise PyapproxError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        self.backend = backend
        self.overflows = 0
        self.set_lut(None)

    # -- configuration --------------------------------------------------------------------------
    def set_lut(self, lut) -> None:
        """Use ``lut`` (a :class:`pyapprox.lut.LUT`) for every product, or the exact product when None."""
        if lut is None:
            self.ptable, self.offset = QF.exact_product_table(self.operand_format)
            self.multiplier = "exact"
            self.lut_digest = None
            self.exact_table = True
        else:
            want = "signed" if self.operand_format == "int8" else "unsigned"
            ops = "unsigned" if lut.operands == "sign-magnitude" else lut.operands
            if ops != want:
                raise PyapproxError(f"multiplier {lut.name} has {lut.operands} operands but the accelerator uses "
                                    f"{self.operand_format} operands, which need {'an' if want == 'unsigned' else 'a'} {want} multiplier")
            self.ptable, self.offset = QF.product_table(lut.table, self.operand_format, self.weight_port)
            self.multiplier = lut.name
            self.lut_digest = lut.digest()
            exact, _ = QF.exact_product_table(self.operand_format)
            self.exact_table = bool(np.array_equal(self.ptable, exact))
        self.ptable = np.ascontiguousarray(self.ptable, dtype=np.int64)

    @property
    def kind(self) -> str:
        """``pw``, ``dw``, ``full``, ``grouped`` (:func:`conv_kind`), or ``linear`` for a linear layer."""
        if getattr(self, "linear", False):
            return "linear"
        o, cg, kh, kw = self.weight_codes.shape
        return conv_kind(self.groups, cg * self.groups, o, (kh, kw))

    def overflow_free(self) -> bool:
        """True when no running sum can leave the accumulator range, whatever the operands."""
        k = int(np.prod(self.weight_codes.shape[1:]))
        bound = int(self.bias_codes.abs().max()) + k * int(np.abs(self.ptable).max())
        return bound <= (1 << (self.acc_bits - 1)) - 1

    def resolved_backend(self, device: torch.device | None = None) -> str:
        if self.backend != "auto":
            return self.backend
        if device is not None and device.type == "cuda":
            return "torch"
        if self.exact_table and self.overflow_free():
            return "exact"
        try:
            from pyapprox.nn import kernels
        except ImportError:
            return "reference"
        return "numba" if kernels.available() else "reference"

    # -- compute --------------------------------------------------------------------------------
    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        backend = self.resolved_backend(codes.device)
        if backend == "exact":
            if not (self.exact_table and self.overflow_free()):
                raise PyapproxError("the exact backend needs the exact table and an accumulator that cannot overflow")
            return QF.int_conv2d_exact(codes, self.weight_codes, self.bias_codes, self.stride, self.padding,
                                       self.dilation, self.groups)
        if backend == "torch":
            from pyapprox.nn.torch_backend import lut_conv2d_torch

            acc, ovf = lut_conv2d_torch(codes, self.weight_codes, self.ptable, self.offset, self.bias_codes,
                                        self.stride, self.padding, self.dilation, self.groups, self.acc_bits,
                                        self.acc_mode, overflow_free=self.overflow_free())
        elif backend == "numba":
            from pyapprox.nn import kernels

            acc, ovf = kernels.lut_conv2d(codes, self.weight_codes, self.ptable, self.offset, self.bias_codes,
                                          self.stride, self.padding, self.dilation, self.groups, self.acc_bits,
                                          self.acc_mode, overflow_free=self.overflow_free())
        else:
            acc, ovf = QF.lut_conv2d_reference(codes, self.weight_codes, self.ptable, self.offset, self.bias_codes,
                                               self.stride, self.padding, self.dilation, self.groups,
                                               self.acc_bits, self.acc_mode)
        self.overflows += ovf
        return acc

    def extra_repr(self) -> str:
        o, cg, kh, kw = self.weight_codes.shape
        return (f"{cg * self.groups}, {o}, kernel=({kh}, {kw}), stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups}, multiplier={self.multiplier}")
