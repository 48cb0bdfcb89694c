"""LUT convolution in plain PyTorch ops: runs wherever the tensors live (CPU or CUDA).

Same semantics, bit for bit, as :func:`pyapprox.nn.functional.lut_conv2d_reference` and
:func:`pyapprox.nn.kernels.lut_conv2d` (see :mod:`pyapprox.nn.config` for the arithmetic).

Per group and image the input codes are unfolded (im2col, zero padding = code 0) and, for a chunk of output
positions, every product is one gather from the flat product table (int32 when its values fit):
``table[(w + off) * S + (x + off)]`` -> ``[og, K, chunk]``. Chunks are sized to bound the memory of the
gathered products (``max_elements``). Accumulation:

* channels whose running sums provably stay in range (``|bias| + sum_k max_x |table[w_k, x]|`` fits) are
  summed directly in int64 (any order: the sum is exact);
* otherwise ``wrap``: running sums by ``cumsum`` in int64 (range flags on every prefix), result wrapped;
  ``saturate``: the products are added one tap at a time in im2col order with a clamp after each.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox.errors import PyapproxError

__all__ = ["lut_conv2d_torch", "cuda_available"]

_pair = torch.nn.modules.utils._pair


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


_TABLES: dict = {}


def _device_table(ptable, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """(flat table on ``device``, int32 when the products fit; max |product| of each row as numpy), cached."""
    pt = np.asarray(ptable)
    key = (id(ptable), str(device))
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is ptable and np.array_equal(hit[1], pt):
        return hit[2], hit[3]
    pt64 = np.ascontiguousarray(pt, dtype=np.int64)
    fits32 = bool(pt64.min() >= -(1 << 31) and pt64.max() < (1 << 31)) if pt64.size else True
    flat = torch.from_numpy(pt64.reshape(-1).astype(np.int32 if fits32 else np.int64)).to(device)
    rowmax = np.abs(pt64).max(axis=1) if pt64.size else np.zeros(0, np.int64)
    if len(_TABLES) >= 8:
        _TABLES.clear()
    _TABLES[key] = (ptable, pt64.copy(), flat, rowmax)
    return flat, rowmax


def lut_conv2d_torch(x: torch.Tensor, w: torch.Tensor, ptable, offset: int, bias: torch.Tensor | None,
                     stride=1, padding=0, dilation=1, groups=1, acc_bits=32, acc_mode="wrap", overflow_free=False,
                     max_elements: int = 1 << 25) -> tuple[torch.Tensor, int]:
    """LUT convolution on ``x.device``: (accumulators int64 [N, O, Ho, Wo] on that device, overflow count).

    ``ptable`` is the numpy (or torch) [S, S] signed product table indexed ``[w + offset, x + offset]``;
    ``overflow_free=True`` promises that no running sum can leave the ``acc_bits`` range (no checks, count 0).
    """
    if acc_mode not in ("wrap", "saturate"):
        raise PyapproxError(f"unknown accumulator mode {acc_mode!r}; expected wrap or saturate")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    device = x.device
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups or o % groups:
        raise PyapproxError(f"conv shapes do not fit: input {c} channels, weight {tuple(w.shape)}, groups {groups}")
    if isinstance(ptable, torch.Tensor):
        ptable = ptable.detach().cpu().numpy()
    table, rowmax = _device_table(ptable, device)
    size = int(np.asarray(ptable).shape[0])
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho <= 0 or wo <= 0:
        raise PyapproxError(f"conv output would be empty: input {h}x{wd}, kernel {kh}x{kw}")
    og, k, nl = o // groups, cg * kh * kw, ho * wo
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1

    wc = w.detach().reshape(o, k).to(device=device, dtype=torch.int64) + offset
    if wc.numel() and (int(wc.min()) < 0 or int(wc.max()) >= size):
        raise PyapproxError("operand code outside the table's range")
    if x.numel():
        xmin, xmax = (int(v) for v in torch.aminmax(x.detach()))
        if xmin + offset < 0 or xmax + offset >= size:
            raise PyapproxError("operand code outside the table's range")
    b = torch.zeros(o, dtype=torch.int64, device=device) if bias is None else \
        bias.detach().to(device=device, dtype=torch.int64).reshape(o)
    out = torch.empty((n, o, nl), dtype=torch.int64, device=device)
    if out.numel() == 0:
        return out.view(n, o, ho, wo), 0

    # which channels can skip the range checks
    wc_np = wc.cpu().numpy()
    bound = np.abs(b.cpu().numpy()) + rowmax[wc_np].sum(axis=1)
    all_safe = overflow_free or bool((bound <= hi).all())

    overflow = torch.zeros((), dtype=torch.int64, device=device)
    rows = wc * size  # [O, K] flat row starts
    # positions per chunk: og * K * chunk gathered products at most
    chunk = max(1, min(nl, max_elements // max(1, og * k)))
    for g in range(groups):
        wg = rows[g * og:(g + 1) * og]  # [og, K]
        bg = b[g * og:(g + 1) * og]
        for i in range(n):
            xg = x[i:i + 1, g * cg:(g + 1) * cg].to(torch.float32)  # codes are exact in float32
            cols = F.unfold(xg, (kh, kw), dilation=dilation, padding=padding, stride=stride)[0]  # [K, L]
            for s in range(0, nl, chunk):
                xc = cols[:, s:s + chunk].to(torch.int64) + offset  # [K, Lc] table columns
                prod = table[wg[:, :, None] + xc[None, :, :]]  # [og, K, Lc]
                if all_safe:
                    res = prod.sum(1, dtype=torch.int64) + bg[:, None]
                elif acc_mode == "wrap":
                    run = torch.cumsum(prod.to(torch.int64), 1) + bg[:, None, None]  # running sums after each tap
                    flagged = ((run < lo) | (run > hi)).any(1) | ((bg < lo) | (bg > hi))[:, None]
                    half = 1 << (acc_bits - 1)
                    res = torch.remainder(run[:, -1] + half, 1 << acc_bits) - half if k else \
                        torch.remainder(bg[:, None].expand(og, xc.shape[1]) + half, 1 << acc_bits) - half
                    overflow += flagged.sum()
                else:
                    acc = bg[:, None].expand(og, xc.shape[1]).clamp(lo, hi).clone()
                    flagged = ((bg < lo) | (bg > hi))[:, None].expand(og, xc.shape[1]).clone()
                    for j in range(k):
                        acc += prod[:, j]
                        flagged |= (acc < lo) | (acc > hi)
                        acc.clamp_(lo, hi)
                    res = acc
                    overflow += flagged.sum()
                out[i, g * og:(g + 1) * og, s:s + chunk] = res
    return out.view(n, o, ho, wo), int(overflow)
