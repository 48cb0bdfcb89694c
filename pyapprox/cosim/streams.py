"""The operand pairs one PE of the MAC array sees, cycle by cycle, on a real layer: sampled streams for energy.

Dataflow (``rtl/mac/mac_array.v``, output-stationary): a layer is cut into tiles like :mod:`.tiles` does, one
tile per (group or channel block of ROWS, pixel block of COLS), enumerated group, channel block, then pixel
block; PE (r, c) computes output (channel r0 + r, pixel c0 + c) of each tile in turn, taking in cycle k of the
tile the weight ``w[r0 + r, k]`` and the activation ``im2col[k, c0 + c]`` (k = input channel within the group,
kernel row, kernel column; depthwise: its own channel's taps). Rows or columns past the layer's edge see zeros.
So both operands of a PE change every cycle, and the weight sequence repeats for every pixel block.

Sampling (:func:`pe_streams`): ``segments`` random (PE, first tile) positions, each followed for enough
consecutive tiles to hold at least ``min_pairs`` cycles; segments are independent stretches (no transition is
counted between them), so the sample's mean and confidence interval are over segments. Reproducible from
``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF


@dataclass
class PeStream:
    """Sampled PE stream of one layer: weight and activation codes per cycle, segment starts, and the layer's
    MACs (per image, as the array computes them: padding rows and columns excluded)."""

    layer: str
    w: np.ndarray
    x: np.ndarray
    starts: np.ndarray
    bias: np.ndarray  #: per cycle: the bias code of the output the PE computes (loaded on a tile's first cycle)
    k: int  #: cycles per tile (a tile's first cycle is at a multiple of k within its segment)
    macs: int
    tiles: int  #: tiles of the layer (the population sampled from)
    positions: list  #: per segment: (PE row, PE column, first tile index, tiles)

    @property
    def pairs(self) -> int:
        return len(self.w)


def pe_streams(name: str, qconv, codes: torch.Tensor, rows: int = 8, cols: int = 8, segments: int = 64,
               min_pairs: int = 256, seed: int = 0) -> PeStream:
    """Sampled per-PE operand streams of one quantized conv on its captured input ``codes`` [1, C, H, W]."""
    if rows < 1 or cols < 1 or segments < 1 or min_pairs < 2:
        raise PyapproxError(f"layer {name}: rows, cols and segments must be positive and min_pairs at least 2")
    if codes.dim() != 4 or codes.shape[0] != 1:
        raise PyapproxError(f"layer {name}: expected one image's input codes [1, C, H, W], got {tuple(codes.shape)}")
    conv = qconv.conv
    wc = conv.weight_codes.to(torch.int64)
    o, cg, kh, kw = wc.shape
    groups = conv.groups
    og = o // groups
    k = cg * kh * kw
    im = QF.im2col(codes.to(torch.int64), (kh, kw), conv.stride, conv.padding, conv.dilation)[0]  # [C*k', L]
    L = im.shape[1]
    im = im.view(groups, k, L).numpy()
    wmat = wc.view(o, k).numpy()
    dw = og == 1 and groups > 1
    if dw:
        blocks = [(None, rb, cb) for rb in range(0, o, rows) for cb in range(0, L, cols)]
    else:
        blocks = [(g, g * og + rb, cb) for g in range(groups) for rb in range(0, og, rows) for cb in range(0, L, cols)]
    per_seg = max(1, -(-min_pairs // k))  # tiles per segment
    rng = np.random.default_rng(seed)
    bias_codes = conv.bias_codes.to(torch.int64).numpy()
    ws, xs, bs, starts, positions = [], [], [], [], []
    total = 0
    for _ in range(segments):
        r, c = int(rng.integers(rows)), int(rng.integers(cols))
        b0 = int(rng.integers(max(len(blocks) - per_seg + 1, 1)))
        starts.append(total)
        positions.append((r, c, b0, len(blocks[b0:b0 + per_seg])))
        for g, r0, c0 in blocks[b0:b0 + per_seg]:
            end = (g + 1) * og if g is not None else o
            ch, px = r0 + r, c0 + c
            w = wmat[ch] if ch < end else np.zeros(k, np.int64)
            if px >= L or ch >= end:
                x = np.zeros(k, np.int64)
            else:
                x = im[ch if dw else g, :, px]
            ws.append(w)
            xs.append(x)
            bs.append(np.full(k, bias_codes[ch] if ch < end else 0, np.int64))
            total += k
    macs = o * L * k
    return PeStream(name, np.concatenate(ws), np.concatenate(xs), np.array(starts, np.int64), np.concatenate(bs), k,
                    int(macs), len(blocks), positions)
