"""Every output of every selected conv of one image through the RTL MAC array, in process.

:func:`cosim_network` runs the image through the calibrated quantized network with the multiplier applied to the
selected layers. As each selected conv runs, a forward hook takes its actual input codes and its own accumulators,
cuts the whole layer into array tiles (the dataflow and tile order of :mod:`.tiles`), streams them through the
compiled Verilator model (:mod:`pyapprox.sim.verilated`) in pixel chunks, and compares every accumulator, overflow
flag and output code; the layer's data is then freed, so memory stays at one layer's.

The expected values: the accumulators are the layer's own (pyapprox's LUT kernels, the thing under test); before
they are used, an independent loop over the product table (:func:`reference`, numba) must reproduce them and gives
each output's overflow flag; the codes are ``QConv2d.output_codes``. On the first mismatch the failing tile is
simulated again alone on a traced build and written as a VCD (``wave``), with the command that re-runs it.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numba
import numpy as np
import torch
import torch.nn.functional as F

from pyapprox.cosim.report import CosimReport
from pyapprox.cosim.tiles import spread_tiles as spread
from pyapprox.cosim.tiles import check_fits, is_depthwise, layer_description, layer_requant
from pyapprox.errors import PyapproxError
from pyapprox.nn.plan import approximate, model_layers
from pyapprox.nn.quant import qconv_layers
from pyapprox.sim.mac_array import ArrayConfig, MultiplierRtl, decode_codes, encode_codes
from pyapprox.sim.verilated import ArrayJob, build_array

#: Activation elements (int16) per streamed chunk of a layer (bounds the memory of the largest im2col).
CHUNK_ELEMENTS = 1 << 23


@numba.njit(parallel=True, cache=True)
def _reference(w, x, ptable, offset, bias, dw, og, lo, hi, saturate, acc_out, ovf_out):  # pragma: no cover (numba)
    o_n, k_n = w.shape
    L = x.shape[2]
    span = hi - lo + 1
    for o in numba.prange(o_n):
        g = np.int64(o)
        if not dw:
            g = np.int64(o) // og
        acc = np.full(L, bias[o], np.int64)
        flag = np.zeros(L, np.bool_)
        for i in range(L):
            if acc[i] < lo or acc[i] > hi:
                flag[i] = True
        for k in range(k_n):
            row = ptable[w[o, k] + offset]
            xs = x[g, k]
            for i in range(L):
                a = acc[i] + row[xs[i] + offset]
                if a < lo or a > hi:
                    flag[i] = True
                    if saturate:
                        a = hi if a > hi else lo
                    else:
                        a = ((a - lo) % span) + lo
                acc[i] = a
        acc_out[o] = acc
        ovf_out[o] = flag


def reference(w: np.ndarray, x: np.ndarray, ptable: np.ndarray, offset: int, bias: np.ndarray, dw: bool,
              acc_bits: int, acc_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Accumulators and overflow flags [O, L] of a layer by the number model, one output at a time: start at the
    bias, add ``ptable[w + offset, x + offset]`` in im2col order, wrap or saturate after every addition, flag a
    running sum that left the range. ``w`` [O, K] and ``x`` [G, K, L] are integer codes."""
    o = w.shape[0]
    acc = np.zeros((o, x.shape[2]), np.int64)
    ovf = np.zeros((o, x.shape[2]), np.bool_)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    _reference(np.ascontiguousarray(w, np.int64), np.ascontiguousarray(x), np.ascontiguousarray(ptable),
               int(offset), np.ascontiguousarray(bias, np.int64), bool(dw), max(1, o // max(1, x.shape[0])), lo, hi,
               acc_mode == "saturate", acc, ovf)
    return acc, ovf


def layer_blocks(o: int, groups: int, L: int, dw: bool, acfg: ArrayConfig) -> np.ndarray:
    """[n, 4] tiles (group, r0, r1, c0) in the order of :func:`pyapprox.cosim.tiles.layer_tiles` (its tile
    indices index this array)."""
    rows, cols = acfg.rows, acfg.cols
    c0 = np.arange(0, L, cols, dtype=np.int64)
    if dw:
        r0 = np.arange(0, o, rows, dtype=np.int64)
        g, r1 = r0, np.minimum(r0 + rows, o)
    else:
        og = o // groups
        rb = np.arange(0, og, rows, dtype=np.int64)
        g = np.repeat(np.arange(groups, dtype=np.int64), len(rb))
        r0 = g * og + np.tile(rb, groups)
        r1 = np.minimum(r0 + rows, (g + 1) * og)
    n_r, n_c = len(r0), len(c0)
    return np.stack([np.repeat(g, n_c), np.repeat(r0, n_c), np.repeat(r1, n_c), np.tile(c0, n_r)], axis=1)


def _layer_data(qconv, codes):
    """Weight codes [O, K] (int64) and im2col activation codes [G, K, L] (int16, exact: codes are 9-bit; a float32
    unfold, not :func:`pyapprox.nn.functional.im2col`'s float64 and int64 copies, keeps the largest layer's
    columns at a quarter of the memory)."""
    conv = qconv.conv
    wc = conv.weight_codes.to(torch.int64)
    o, cg, kh, kw = wc.shape
    k = cg * kh * kw
    cols = F.unfold(codes.to(torch.float32), (kh, kw), dilation=conv.dilation, padding=conv.padding,
                    stride=conv.stride)[0]
    x = cols.to(torch.int16).view(conv.groups, k, cols.shape[1]).numpy()
    return wc.view(o, k).numpy(), x


def cosim_layer(name: str, qconv, codes, acc, arr, threads: int, tiles: list[int] | None = None, wave=None) -> dict:
    """Co-simulate one captured layer (all its tiles, or the tiles of index ``tiles``); per-layer counts, the first
    mismatches and simulation totals. ``wave``: a VCD path for a traced run (of one tile)."""
    acfg = arr.acfg
    conv = qconv.conv
    fmt = acfg.operand_format
    w, x = _layer_data(qconv, codes)
    o, k = w.shape
    L = x.shape[2]
    dw = is_depthwise(conv)
    acc_t = acc.to(torch.int64)
    acc = acc_t[0].reshape(o, L).numpy()
    t0 = time.perf_counter()
    ref_acc, ref_ovf = reference(w, x, conv.ptable, conv.offset, conv.bias_codes.numpy(), dw, acfg.acc_bits,
                                 acfg.acc_mode)
    if not np.array_equal(ref_acc, acc):
        bad = np.argwhere(ref_acc != acc)[0]
        raise PyapproxError(f"layer {name}: pyapprox's layer accumulators and the number model disagree at channel "
                            f"{bad[0]}, pixel {bad[1]} ({acc[tuple(bad)]} vs {ref_acc[tuple(bad)]})")
    ref_seconds = time.perf_counter() - t0
    requantized, rq = layer_requant(qconv, acfg)
    exp_q = qconv.output_codes(acc_t)[0].reshape(o, L).to(torch.int64).numpy() if requantized else None
    blocks = layer_blocks(o, conv.groups, L, dw, acfg)
    total = len(blocks)
    if tiles is not None:
        bad = [t for t in tiles if not 0 <= t < total]
        if bad:
            raise PyapproxError(f"layer {name}: --tile-index {bad[0]} is not a tile of this layer (0..{total - 1})")
        blocks = blocks[np.asarray(tiles, np.int64)]
    wire_w = encode_codes(w, fmt).astype(np.int16)
    bias = conv.bias_codes.to(torch.int64).numpy()
    got_acc = np.zeros_like(acc)
    got_ovf = np.zeros(acc.shape, bool)
    got_q = np.zeros(acc.shape, np.int64)
    done = np.zeros(acc.shape, bool)
    chunk = max(acfg.cols, (CHUNK_ELEMENTS // max(1, x.shape[0] * k)) // acfg.cols * acfg.cols)
    cycles, seconds = 0, 0.0
    for l0 in range(0, L, chunk):
        l1 = min(L, l0 + chunk)
        sel = blocks[(blocks[:, 3] >= l0) & (blocks[:, 3] < l1)]
        if not len(sel):
            continue
        sel = sel.copy()
        sel[:, 3] -= l0
        job = ArrayJob(wire_w, encode_codes(x[:, :, l0:l1], fmt).astype(np.int16), bias, rq, sel, dw)
        res = arr.run(job, threads, wave)
        cycles += res["cycles"]
        seconds += res["seconds"]
        if tiles is None:
            done[:, l0:l1] = True
        else:
            for _, r0, r1, c0 in sel:
                done[r0:r1, l0 + c0:l0 + min(c0 + acfg.cols, l1 - l0)] = True
        got_acc[:, l0:l1] = np.where(done[:, l0:l1], res["acc"], 0)
        got_ovf[:, l0:l1] = res["ovf"] & done[:, l0:l1]
        got_q[:, l0:l1] = decode_codes(res["q_wire"], fmt)
    bad_acc = (got_acc != acc) & done
    bad_ovf = (got_ovf != ref_ovf) & done
    bad_q = ((got_q != exp_q) & done) if exp_q is not None else np.zeros_like(done)
    bad = bad_acc | bad_ovf | bad_q
    beats = int(len(blocks)) * k
    stats = {"tiles": int(len(blocks)), "total_tiles": total, "outputs": int(done.sum()),
             "mismatches": int(bad.sum()), "overflows": int((ref_ovf & done).sum()), "acc": int(bad_acc.sum()),
             "ovf": int(bad_ovf.sum()), "q": int(bad_q.sum()), "unknown": 0,
             "macs": int(((blocks[:, 2] - blocks[:, 1]) * np.minimum(acfg.cols, L - blocks[:, 3])).sum()) * k,
             "beats": beats, "cycles": cycles, "seconds": round(seconds, 4), "reference_seconds": round(ref_seconds, 4)}
    first = []
    for r, c in np.argwhere(bad)[:10]:
        exp = {"acc": int(acc[r, c]), "ovf": bool(ref_ovf[r, c])}
        got = {"acc": int(got_acc[r, c]), "ovf": bool(got_ovf[r, c])}
        if exp_q is not None:
            exp["q"], got["q"] = int(exp_q[r, c]), int(got_q[r, c])
        first.append({"layer": name, "tile": int(_tile_of(r, c, o, conv.groups, L, dw, acfg)), "row": 0, "col": 0,
                      "channel": int(r), "pixel": int(c), "expected": exp, "got": got})
    for m in first:
        blk = layer_blocks(o, conv.groups, L, dw, acfg)[m["tile"]]
        m["row"], m["col"] = m["channel"] - int(blk[1]), m["pixel"] - int(blk[3])
    return {"stats": stats, "first": first}


def _shape(conv, output) -> tuple:
    """(O, groups, L, depthwise) of a conv from its output [1, O, Ho, Wo]."""
    return output.shape[1], conv.groups, output.shape[2] * output.shape[3], is_depthwise(conv)


def _tile_of(ch: int, px: int, o: int, groups: int, L: int, dw: bool, acfg: ArrayConfig) -> int:
    n_c = -(-L // acfg.cols)
    if dw:
        return (ch // acfg.rows) * n_c + px // acfg.cols
    og = o // groups
    n_r = -(-og // acfg.rows)
    g = ch // og
    return (g * n_r + (ch - g * og) // acfg.rows) * n_c + px // acfg.cols


def cosim_network(qmodel, image, selectors_or_names, multiplier: str, rtl: MultiplierRtl, *, rows: int = 8,
                  cols: int = 8, tiles: int | None = None, threads: int | None = None, tile_index: int | None = None,
                  wave: Path | None = None, on_mismatch=None, build_root: Path | None = None, progress=None,
                  bar: bool = False) -> CosimReport:
    """Co-simulate the tiles of the named convs (forward order) of a calibrated quantized model on one image
    [1, 3, H, W]: all of them, ``tiles`` per layer spread over it, or tile ``tile_index`` of one layer (traced
    into ``wave`` when given). ``on_mismatch(layer, tile)`` returns the VCD path to write the first failing tile to
    (None: no waveform); the report's ``extra["wave"]`` records it. ``build_root``: where the model is built."""
    say = progress or (lambda msg: None)
    cfg = getattr(qmodel, "accel_config", None)
    if cfg is None:
        raise PyapproxError("the model is not quantized (no accelerator configuration)")
    names = list(selectors_or_names)
    if tile_index is not None and len(names) != 1:
        raise PyapproxError(f"--tile-index selects a tile of one layer; {len(names)} layers are selected")
    acfg = ArrayConfig(rows, cols, cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode,
                       cfg.requant_bits, p_bits=rtl.p_bits).check()
    threads = max(1, threads or min(os.cpu_count() or 1, 8))
    model = copy.deepcopy(qmodel)
    approximate(model, [(n, multiplier) for n in names])
    mods = dict(qconv_layers(model))
    short = model_layers(model)
    for n in names:
        check_fits(n, mods[n], acfg)
    if tiles is not None and tiles < 1:
        raise PyapproxError(f"--tiles must be at least 1, got {tiles}")
    arr = build_array(rtl, acfg, trace=wave is not None and tile_index is not None, progress=say, root=build_root)
    layers, first, extra = [], [], {"accelerator": cfg.to_dict(), "bench_error": None, "wave": None}
    handles = []
    progress_bar = _bar(bar, len(names))

    def hook(name):
        def fn(module, inputs, output):
            with torch.no_grad():
                total = len(layer_blocks(*_shape(mods[name].conv, output), acfg))
                pick = [tile_index] if tile_index is not None else (spread(total, tiles) if tiles else None)
                out = cosim_layer(name, mods[name], inputs[0], output, arr, threads, pick,
                                  wave if tile_index is not None else None)
            info = layer_description(mods[name], output.shape[2:])
            info.update({"name": name, "short": short.short(name), **out["stats"]})
            layers.append(info)
            if out["first"] and not first and on_mismatch is not None and tile_index is None:
                extra["wave"] = _dump_first(out["first"][0], inputs[0], output, mods[name], rtl, acfg, on_mismatch,
                                            say, build_root)
            first.extend(out["first"][: max(0, 10 - len(first))])
            if progress_bar is not None:
                progress_bar.update(1)
                progress_bar.set_postfix_str(f"{short.short(name)}: {info['mismatches']} mismatches")
        return fn

    for n in names:
        handles.append(mods[n].conv.register_forward_hook(hook(n)))
    say(f"running the image through the quantized model; {len(names)} conv(s) stream through the Verilated array "
        f"({threads} thread(s))")
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            model(image)
    finally:
        for h in handles:
            h.remove()
        if progress_bar is not None:
            progress_bar.close()
    wall = time.perf_counter() - t0
    missing = [n for n in names if n not in {li["name"] for li in layers}]
    if missing:
        raise PyapproxError(f"layer {missing[0]} did not run on this image")
    if tile_index is not None and wave is not None:
        extra["wave"] = str(wave)
    beats = sum(li["beats"] for li in layers)
    secs = sum(li["seconds"] for li in layers)
    cycles = sum(li["cycles"] for li in layers)
    useful = sum(li["macs"] for li in layers)
    array_macs = beats * acfg.rows * acfg.cols
    sim = {"beats": beats, "cycles": cycles, "seconds": round(secs, 3), "build_seconds": round(arr.build_seconds, 3),
           "array_macs": array_macs, "macs": useful, "threads": threads, "wall_seconds": round(wall, 3),
           "macs_per_s": round(array_macs / secs, 1) if secs > 0 else None,
           "useful_macs_per_s": round(useful / secs, 1) if secs > 0 else None,
           "cycles_per_s": round(cycles / secs, 1) if secs > 0 else None}
    fields = {f: sum(li[f] for li in layers) for f in ("acc", "ovf", "q", "unknown")}
    return CosimReport(multiplier, rtl.to_dict(), "verilator-native", acfg.to_dict(), layers,
                       sum(li["tiles"] for li in layers), sum(li["outputs"] for li in layers),
                       sum(li["mismatches"] for li in layers), fields, first, sum(li["overflows"] for li in layers),
                       sim, extra)


def _dump_first(m: dict, codes, output, qconv, rtl, acfg, on_mismatch, say, build_root) -> str | None:
    path = on_mismatch(m["layer"], m["tile"])
    if path is None:
        return None
    path = Path(path)
    say(f"mismatch in layer {m['layer']} tile {m['tile']}: writing its waveform to {path}")
    traced = build_array(rtl, acfg, trace=True, progress=say, root=build_root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        cosim_layer(m["layer"], qconv, codes, output, traced, 1, [m["tile"]], tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return str(path)


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="conv", desc="cosim")
