"""ApproxConv2d: an integer convolution whose every product comes from a multiplier LUT.

Input and weights are integer codes; the output is the accumulator (see :mod:`pyapprox.nn.config` for
the number model). Backends: ``reference`` (vectorised gather, any table), ``exact`` (float64 GEMM; only
for the exact product table), ``numba`` (compiled LUT kernels, CPU), ``torch`` (plain PyTorch ops on the
tensors' device: the GPU path). ``auto`` picks ``torch`` for CUDA inputs, else the fastest valid CPU one.
"""

from __future__ import annotations

import copy

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


_TABLES: dict = {}  # (content digest or "exact", operand format, weight port) -> (read-only table, offset, exact?)


def _shared_table(lut, operand_format: str, weight_port: str) -> tuple[np.ndarray, int, bool]:
    """The product table of ``lut`` (None: the exact product) for this operand format and weight port: one
    read-only array per content, shared by every layer and every copy of a model (2 MB each)."""
    key = ("exact" if lut is None else lut.digest(), operand_format, weight_port)
    hit = _TABLES.get(key)
    if hit is None:
        if lut is None:
            table, offset = QF.exact_product_table(operand_format)
            exact = True
        else:
            table, offset = QF.product_table(lut.table, operand_format, weight_port)
            exact = bool(np.array_equal(table, QF.exact_product_table(operand_format)[0]))
        table = np.array(table, dtype=np.int64, order="C")
        table.flags.writeable = False  # change a layer's table through set_lut only (kernels cache what it implies)
        if len(_TABLES) >= 64:
            _TABLES.clear()
        hit = _TABLES[key] = (table, offset, exact)
    return hit


def _same(a, b) -> bool:
    """Tensors and arrays: the same object; anything else: equal values of the same type."""
    if isinstance(a, (torch.Tensor, np.ndarray)):
        return a is b
    return type(a) is type(b) and a == b


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
            self.ptable, self.offset, self.exact_table = _shared_table(None, self.operand_format, self.weight_port)
            self.multiplier = "exact"
            self.lut_digest = None
        else:
            want = "signed" if self.operand_format == "int8" else "unsigned"
            ops = "unsigned" if lut.operands == "sign-magnitude" else lut.operands
            if ops != want:
                raise PyapproxError(f"multiplier {lut.name} has {lut.operands} operands but the accelerator uses "
                                    f"{self.operand_format} operands, which need {'an' if want == 'unsigned' else 'a'} {want} multiplier")
            self.ptable, self.offset, self.exact_table = _shared_table(lut, self.operand_format, self.weight_port)
            self.multiplier = lut.name
            self.lut_digest = lut.digest()

    def __deepcopy__(self, memo):
        """A deep copy that shares the (read-only) product table and leaves the kernel cache behind."""
        memo[id(self.ptable)] = self.ptable
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k != "_kernel_cache":
                new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    @property
    def kind(self) -> str:
        """``pw``, ``dw``, ``full``, ``grouped`` (:func:`conv_kind`), or ``linear`` for a linear layer."""
        if getattr(self, "linear", False):
            return "linear"
        o, cg, kh, kw = self.weight_codes.shape
        return conv_kind(self.groups, cg * self.groups, o, (kh, kw))

    def overflow_free(self) -> bool:
        """True when no running sum can leave the accumulator range, whatever the operands."""
        cache = self.kernel_cache()
        if "overflow_free" not in cache:
            k = int(np.prod(self.weight_codes.shape[1:]))
            bound = int(self.bias_codes.abs().max()) + k * int(np.abs(self.ptable).max())
            cache["overflow_free"] = bound <= (1 << (self.acc_bits - 1)) - 1
        return cache["overflow_free"]

    def kernel_cache(self) -> dict:
        """A dict for what depends on this layer's weights, bias, table and parameters only (the compiled kernels
        keep their per-layer work there): a new one whenever any of them changed (other tensors or arrays, an
        in-place change of a tensor, other attributes)."""
        try:
            key = (self.weight_codes, self.weight_codes._version, self.bias_codes, self.bias_codes._version,
                   self.ptable, self.offset, self.stride, self.padding, self.dilation, self.groups, self.acc_bits,
                   self.acc_mode)
        except RuntimeError:  # inference-mode tensors have no version counter: nothing is cached
            return {}
        held = self.__dict__.get("_kernel_cache")
        if held is None or not all(_same(a, b) for a, b in zip(held[0], key)):
            held = (key, {})
            self.__dict__["_kernel_cache"] = held  # holds the key's tensors: their ids cannot be reused meanwhile
        return held[1]

    def __getstate__(self):  # copies and pickles leave the kernel cache behind (it is rebuilt on first use)
        state = super().__getstate__()
        state.pop("_kernel_cache", None)
        return state

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
                                       self.dilation, self.groups, cache=self.kernel_cache())
        if backend == "torch":
            from pyapprox.nn.torch_backend import lut_conv2d_torch

            acc, ovf = lut_conv2d_torch(codes, self.weight_codes, self.ptable, self.offset, self.bias_codes,
                                        self.stride, self.padding, self.dilation, self.groups, self.acc_bits,
                                        self.acc_mode, overflow_free=self.overflow_free())
        elif backend == "numba":
            from pyapprox.nn import kernels

            acc, ovf = kernels.lut_conv2d(codes, self.weight_codes, self.ptable, self.offset, self.bias_codes,
                                          self.stride, self.padding, self.dilation, self.groups, self.acc_bits,
                                          self.acc_mode, overflow_free=self.overflow_free(),
                                          cache=self.kernel_cache())
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
