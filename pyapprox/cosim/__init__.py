"""Bit-exact co-simulation of the RTL MAC array (``rtl/mac``) with pyapprox's arithmetic on real layer data.

Pipeline (:func:`cosim_model`): a real image goes through the calibrated quantized network with the multiplier
applied to the selected layers; forward hooks capture each selected layer's actual input codes and its own
accumulators (:mod:`.capture`); the layer is cut into array tiles of real operands (:mod:`.tiles`); the tiles
stream through ``mac_array`` built with exactly the multiplier RTL the LUT came from (:mod:`.rtl`,
:func:`pyapprox.sim.mac_array.run_stream`, cocotb on Icarus or Verilator); and every accumulator, overflow flag and
output code is compared with the layer's accumulators, the tile reference's overflow flags and
``QConv2d.output_codes`` (:mod:`.report`).

:func:`cosim_network` (:mod:`.whole`) does the same for every tile of every selected conv of the image, streamed
layer by layer through an in-process compiled Verilator model of the array (:mod:`pyapprox.sim.verilated`).
"""

from __future__ import annotations

import copy
from pathlib import Path

from pyapprox.cosim.capture import capture_layers, resolve_layers
from pyapprox.cosim.report import CosimReport, compare, format_report
from pyapprox.cosim.rtl import lut_file_rtl, multiplier_rtl
from pyapprox.cosim.tiles import check_fits, layer_tiles
from pyapprox.cosim.whole import cosim_network
from pyapprox.errors import PyapproxError
from pyapprox.nn.plan import approximate, model_layers
from pyapprox.nn.quant import qconv_layers
from pyapprox.sim.mac_array import (ARRAY_TOP, S_BITS, SIMULATORS, ArrayConfig, MultiplierRtl, Tile,
                                    check_array_args, run_stream, stream_arrays)

__all__ = ["ArrayConfig", "MultiplierRtl", "Tile", "CosimReport", "multiplier_rtl", "lut_file_rtl", "layer_tiles",
           "check_fits", "stream_arrays", "run_stream", "compare", "capture_layers", "resolve_layers", "cosim_model",
           "format_report", "check_array_args", "cosim_network"]


def cosim_model(qmodel, image, selectors, multiplier: str, *, rows: int = 8, cols: int = 8, tiles: int | None = 8,
                simulator: str = "verilator", build_dir: Path | None = None, rtl: MultiplierRtl | None = None,
                keep: int = 10, progress=None) -> CosimReport:
    """Co-simulate the selected layers of a calibrated quantized model (see the module docstring).

    ``qmodel`` is not modified (the multiplier is applied to a copy). ``image`` is [1, 3, H, W] preprocessed.
    ``tiles`` per layer (None: all). Every error that can be known before simulating is raised first.
    """
    say = progress or (lambda msg: None)
    cfg = getattr(qmodel, "accel_config", None)
    if cfg is None:
        raise PyapproxError("the model is not quantized (no accelerator configuration)")
    acfg = ArrayConfig(rows, cols, cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode,
                       cfg.requant_bits).check()
    if tiles is not None and tiles < 1:
        raise PyapproxError(f"--tiles must be at least 1, got {tiles}")
    if simulator not in SIMULATORS:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: {', '.join(SIMULATORS)}")
    rtl = rtl or multiplier_rtl(multiplier, cfg.operand_format)
    acfg = ArrayConfig(rows, cols, cfg.operand_format, cfg.weight_port, cfg.acc_bits, cfg.acc_mode,
                       cfg.requant_bits, S_BITS, rtl.p_bits).check()
    names = resolve_layers(qmodel, selectors)
    model = copy.deepcopy(qmodel)
    approximate(model, [(n, multiplier) for n in names])
    mods = dict(qconv_layers(model))
    layer_names = model_layers(model)
    for n in names:
        check_fits(n, mods[n], acfg)
    say(f"running the image through the quantized model ({len(names)} layer(s) captured)")
    captured = capture_layers(model, names, image)
    all_tiles: list[Tile] = []
    layer_info = []
    for n in names:
        ts, total, info = layer_tiles(n, mods[n], captured[n]["codes"], captured[n]["acc"], acfg, tiles)
        info.update({"name": n, "short": layer_names.short(n), "tiles": len(ts), "total_tiles": total,
                     "macs": int(sum(len(t.channels) * len(t.pixels) * t.k for t in ts))})
        layer_info.append(info)
        all_tiles += ts
    stream = stream_arrays(all_tiles, acfg)
    say(f"streaming {len(all_tiles)} tiles ({len(stream['beat_tile'])} beats) through {ARRAY_TOP} on {simulator}")
    res = run_stream(stream, rtl, acfg, simulator, build_dir)
    per_layer, first, fields = compare(all_tiles, res, keep)
    for info in layer_info:
        info.update(per_layer[info["name"]])
    beats = int(len(stream["beat_tile"]))
    array_macs = beats * acfg.rows * acfg.cols
    useful = int(sum(i["macs"] for i in layer_info))
    secs = float(res["seconds"])
    sim = {"beats": beats, "cycles": int(res["cycles"]), "seconds": round(secs, 3),
           "build_seconds": round(float(res["build_seconds"]), 3), "array_macs": array_macs, "macs": useful,
           "macs_per_s": round(array_macs / secs, 1) if secs > 0 else None,
           "useful_macs_per_s": round(useful / secs, 1) if secs > 0 else None,
           "cycles_per_s": round(int(res["cycles"]) / secs, 1) if secs > 0 else None}
    rep = CosimReport(multiplier, rtl.to_dict(), simulator, acfg.to_dict(), layer_info, len(all_tiles),
                      int(sum(i["outputs"] for i in layer_info)), int(sum(i["mismatches"] for i in layer_info)),
                      fields, first, int(sum(i["overflows"] for i in layer_info)), sim,
                      {"accelerator": cfg.to_dict(), "bench_error": res.get("error")})
    return rep
