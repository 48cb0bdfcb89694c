"""Cutting a real quantized layer into array tiles of its actual operands, with the outputs it must produce.

For a convolution whose output channels each read several input channels (pointwise, full, grouped with more
than one output channel per group) a tile is ROWS output channels of one group x COLS output pixels, K = (input
channels per group) x kh x kw steps in im2col order. For one output channel per group (depthwise) a tile is
ROWS channels x COLS pixels in the per-PE activation mode. Every tile's expected accumulators are the layer's
own; the tile reference (:func:`pyapprox.sim.mac_array.tile_reference`) must reproduce them before a tile is
used, and gives the per-output overflow flags.
"""

from __future__ import annotations

import numpy as np
import torch

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.sim.mac_array import ArrayConfig, Tile, tile_reference


def spread_tiles(total: int, n: int | None) -> list[int]:
    """Indices of ``n`` tiles spread evenly over ``total`` (all of them when ``n`` is None or at least ``total``)."""
    if n is None or n >= total:
        return list(range(total))
    if n <= 1:
        return [0]
    return sorted(set(np.linspace(0, total - 1, n).round().astype(int).tolist()))


def layer_tiles(name: str, qconv, codes, acc, acfg: ArrayConfig, n_tiles: int | None) -> tuple[list[Tile], int, dict]:
    """Tiles of real operands of one layer (see the module docstring), with the expected outputs.

    ``codes`` [1, C, H, W] are the layer's input codes and ``acc`` [1, O, Ho, Wo] its own accumulators.
    Returns (tiles, total number of tiles of the layer, layer description).
    """
    conv = qconv.conv
    wc = conv.weight_codes.to(torch.int64)
    o, cg, kh, kw = wc.shape
    groups = conv.groups
    og = o // groups
    _, _, ho, wo = acc.shape
    cols = QF.im2col(codes, (kh, kw), conv.stride, conv.padding, conv.dilation)[0]  # [C*kh*kw, L]
    L = cols.shape[1]
    k = cg * kh * kw
    cols = cols.view(groups, k, L).numpy()
    wmat = wc.view(o, k).numpy()
    bias = conv.bias_codes.to(torch.int64).numpy()
    acc_flat = acc[0].reshape(o, L).to(torch.int64).numpy()
    q_flat = qconv.output_codes(acc.to(torch.int64))[0].reshape(o, L).to(torch.int64).numpy() \
        if qconv.s_out is not None else None
    _, rqp = layer_requant(qconv, acfg)
    m, mneg, shift, qlo, qhi = (rqp[key] for key in ("m", "mneg", "shift", "qlo", "qhi"))
    rows, ccount = acfg.rows, acfg.cols
    dw = is_depthwise(conv)
    # enumerate tiles: (group or channel block, pixel block)
    blocks = []
    if dw:
        for rb in range(0, o, rows):
            for cb in range(0, L, ccount):
                blocks.append((None, rb, cb))
    else:
        for g in range(groups):
            for rb in range(0, og, rows):
                for cb in range(0, L, ccount):
                    blocks.append((g, g * og + rb, cb))
    total = len(blocks)
    tiles = []
    for idx in spread_tiles(total, n_tiles):
        g, r0, c0 = blocks[idx]
        r1 = min(r0 + rows, (g + 1) * og if g is not None else o)
        c1 = min(c0 + ccount, L)
        nr, nc = r1 - r0, c1 - c0
        chans = np.arange(r0, r1)
        pix = np.arange(c0, c1)
        w = np.zeros((rows, k), np.int64)
        w[:nr] = wmat[r0:r1]
        b = np.zeros(rows, np.int64)
        b[:nr] = bias[r0:r1]
        rq = {}
        for key, arr, fill in (("m", m, 1), ("mneg", mneg, 1), ("shift", shift, 0), ("qlo", qlo, 0), ("qhi", qhi, 0)):
            v = np.full(rows, fill, np.int64)
            v[:nr] = arr[r0:r1]
            rq[key] = v
        if dw:
            xpe = np.zeros((rows, k, ccount), np.int64)
            xpe[:nr, :, :nc] = cols[r0:r1, :, c0:c1]  # channel c reads group c
            tile = Tile(name, idx, True, w, None, xpe, b, rq, chans, pix)
        else:
            x = np.zeros((k, ccount), np.int64)
            x[:, :nc] = cols[g, :, c0:c1]
            tile = Tile(name, idx, False, w, x, None, b, rq, chans, pix)
        tile.exp_acc = acc_flat[r0:r1, c0:c1]
        ref_acc, ref_ovf = tile_reference(tile, conv.ptable, conv.offset, acfg.acc_bits, acfg.acc_mode)
        if not np.array_equal(ref_acc[:nr, :nc], tile.exp_acc):
            bad = np.argwhere(ref_acc[:nr, :nc] != tile.exp_acc)[0]
            raise PyapproxError(f"layer {name}: pyapprox's layer accumulators and its tile reference disagree at "
                                f"channel {chans[bad[0]]}, pixel {pix[bad[1]]} ({tile.exp_acc[tuple(bad)]} vs "
                                f"{ref_acc[tuple(bad)]}); the number model is inconsistent")
        tile.exp_ovf = ref_ovf[:nr, :nc]
        tile.exp_q = q_flat[r0:r1, c0:c1] if q_flat is not None else None
        tiles.append(tile)
    return tiles, total, layer_description(qconv, (ho, wo))


def is_depthwise(conv) -> bool:
    """One output channel per group (and more than one group): the array's per-PE activation mode."""
    return conv.weight_codes.shape[0] // conv.groups == 1 and conv.groups > 1


def layer_description(qconv, output_hw) -> dict:
    conv = qconv.conv
    o, cg, kh, kw = conv.weight_codes.shape
    return {"kind": conv.kind, "in_channels": cg * conv.groups, "out_channels": o, "kernel": [kh, kw],
            "stride": list(conv.stride), "padding": list(conv.padding), "dilation": list(conv.dilation),
            "groups": conv.groups, "output": list(output_hw), "k": cg * kh * kw,
            "mode": "depthwise" if is_depthwise(conv) else "dense", "requantized": qconv.s_out is not None,
            "act": qconv.act, "multiplier": conv.multiplier}


def layer_requant(qconv, acfg: ArrayConfig) -> tuple[bool, dict]:
    """(requantized?, per output channel m, mneg, shift, qlo, qhi as the array's requantization unit takes them).
    A layer that is not requantized passes its accumulator through: m = 1, shift 0, the operand code range."""
    o = qconv.conv.weight_codes.shape[0]
    if qconv.s_out is not None:
        m = qconv.rq_mult.to(torch.int64).numpy()
        mneg = qconv.rq_mult_neg.to(torch.int64).numpy() if qconv.rq_mult_neg is not None else m
        return True, {"m": m, "mneg": mneg, "shift": qconv.rq_shift.to(torch.int64).numpy(),
                      "qlo": np.full(o, int(qconv.qlo), np.int64), "qhi": np.full(o, int(qconv.qhi), np.int64)}
    qmin, qmax = (-128, 127) if acfg.operand_format == "int8" else (-255, 255)
    return False, {"m": np.ones(o, np.int64), "mneg": np.ones(o, np.int64), "shift": np.zeros(o, np.int64),
                   "qlo": np.full(o, qmin, np.int64), "qhi": np.full(o, qmax, np.int64)}


def check_fits(name: str, qconv, acfg: ArrayConfig) -> None:
    """Raise before any simulation when the layer's arithmetic does not fit the array configuration."""
    conv = qconv.conv
    if conv.acc_bits != acfg.acc_bits or conv.acc_mode != acfg.acc_mode:
        raise PyapproxError(f"layer {name}: the model accumulates in {conv.acc_bits} bits ({conv.acc_mode}) but the "
                            f"array in {acfg.acc_bits} bits ({acfg.acc_mode})")
    if conv.operand_format != acfg.operand_format or conv.weight_port != acfg.weight_port:
        raise PyapproxError(f"layer {name}: operand format / weight port of the model ({conv.operand_format}, "
                            f"{conv.weight_port}) differ from the array's ({acfg.operand_format}, {acfg.weight_port})")
    pmax = int(np.abs(conv.ptable).max())
    if pmax.bit_length() + 1 > acfg.acc_bits:
        raise PyapproxError(f"layer {name}: a product of {pmax} needs {pmax.bit_length() + 1} bits with its sign, more "
                            f"than the {acfg.acc_bits}-bit accumulator")
    if pmax >= (1 << acfg.p_bits):
        raise PyapproxError(f"layer {name}: products up to {pmax} do not fit the multiplier's {acfg.p_bits}-bit output")
    if qconv.s_out is not None:
        mult = qconv.rq_mult.numpy()
        shift = qconv.rq_shift.numpy()
        if int(mult.max()) >= (1 << acfg.m_bits) or int(mult.min()) < 0:
            raise PyapproxError(f"layer {name}: requantization multipliers up to {int(mult.max())} do not fit "
                                f"{acfg.m_bits} bits")
        if int(shift.min()) < 0 or int(shift.max()) >= (1 << acfg.s_bits):
            raise PyapproxError(f"layer {name}: requantization shifts {int(shift.min())}..{int(shift.max())} are outside "
                                f"the requantization unit's 0..{(1 << acfg.s_bits) - 1}")
