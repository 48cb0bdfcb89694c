"""Co-simulation speed of the RTL MAC array: the cocotb path and the in-process Verilated model side by side.

    .venv/bin/python bench/bench_cosim.py [--multipliers exact mbm] [--tiles 48] [--height 240 --width 320]
                                          [--whole] [--json OUT]

The default network (default weights), calibrated on synthetic images, runs one synthetic image; for each
multiplier the same real tiles (``--tiles`` spread over each of a full 3x3 conv, a depthwise and a pointwise conv)
stream through the same 8x8 ``mac_array`` RTL through cocotb on Verilator, and through the in-process model on one
and on two threads. Printed: simulated array MAC/s of each (streaming only; builds are cached and not counted) and
the ratios. ``--whole``: then every tile of every conv of the image through the in-process model (wall time,
MAC/s, mismatches). Every run also compares every output: a bench that mismatches says so.
"""

from __future__ import annotations

import argparse
import json
import time

LAYERS = ["0.0", "2.conv.1.0", "3.conv.2"]  # full 3x3 stride 2, depthwise, pointwise


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--multipliers", nargs="+", default=["exact", "mbm"])
    p.add_argument("--tiles", type=int, default=48, help="tiles per layer for the side-by-side comparison")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--whole", action="store_true", help="also every conv of the whole image (native)")
    p.add_argument("--json", help="write the numbers as JSON")
    args = p.parse_args()

    import torch

    from pyapprox.cosim import cosim_model, cosim_network, multiplier_rtl, resolve_layers
    from pyapprox.data.synthetic import render
    from pyapprox.eval.evaluate import calibration_images
    from pyapprox.models.densedepth_mbv2 import preprocess
    from pyapprox.models.weights import load_model
    from pyapprox.nn.config import AccelConfig
    from pyapprox.nn.quant import quantize_model

    torch.set_num_threads(2)
    cfg = AccelConfig()
    with torch.no_grad():
        q = quantize_model(load_model(), calibration_images(None, cfg, "synthetic:val", False), cfg)
    image = preprocess(render(0, args.height, args.width)[0])
    names = resolve_layers(q, LAYERS)
    out = {"resolution": [args.height, args.width], "tiles_per_layer": args.tiles, "layers": LAYERS, "rows": {}}
    print(f"same {args.tiles} tiles of each of {', '.join(LAYERS)} ({args.height}x{args.width}), 8x8 array; "
          f"array MAC/s while streaming")
    print(f"{'multiplier':<11}{'cocotb verilator':>18}{'native 1 thread':>17}{'native 2 threads':>18}"
          f"{'native/cocotb':>15}{'mismatches':>12}")
    for mult in args.multipliers:
        rtl = multiplier_rtl(mult)
        cocotb_rep = cosim_model(q, image, names, mult, tiles=args.tiles, simulator="verilator", rtl=rtl)
        cosim_network(q, image, names, mult, rtl, tiles=1)  # build (cached) and load before timing
        nat = {t: cosim_network(q, image, names, mult, rtl, tiles=args.tiles, threads=t) for t in (1, 2)}
        assert nat[1].tiles == cocotb_rep.tiles, (nat[1].tiles, cocotb_rep.tiles)
        c_rate = cocotb_rep.sim["macs_per_s"]
        n_rate = {t: r.sim["macs_per_s"] for t, r in nat.items()}
        bad = cocotb_rep.mismatches + sum(r.mismatches for r in nat.values())
        print(f"{mult:<11}{c_rate / 1e6:>16.2f} M{n_rate[1] / 1e6:>15.1f} M{n_rate[2] / 1e6:>16.1f} M"
              f"{n_rate[2] / c_rate:>14.0f}x{bad:>12}")
        out["rows"][mult] = {"cocotb_verilator_macs_per_s": c_rate, "native_1_thread_macs_per_s": n_rate[1],
                             "native_2_threads_macs_per_s": n_rate[2], "ratio": n_rate[2] / c_rate,
                             "mismatches": bad, "tiles": cocotb_rep.tiles, "array_macs": cocotb_rep.sim["array_macs"]}
    if args.whole:
        every = resolve_layers(q, ["*"])
        print(f"\nevery tile of every conv ({len(every)}), {args.height}x{args.width}, 8x8 array, native, 2 threads")
        print(f"{'multiplier':<11}{'outputs':>12}{'useful MACs':>16}{'sim s':>8}{'M MAC/s':>9}{'wall s':>8}"
              f"{'mismatches':>12}")
        for mult in args.multipliers:
            t0 = time.perf_counter()
            rep = cosim_network(q, image, every, mult, multiplier_rtl(mult), threads=2)
            wall = time.perf_counter() - t0
            s = rep.sim
            print(f"{mult:<11}{rep.outputs:>12,}{s['macs']:>16,}{s['seconds']:>8.1f}{s['macs_per_s'] / 1e6:>9.1f}"
                  f"{wall:>8.1f}{rep.mismatches:>12}")
            out["rows"][mult]["whole"] = {"outputs": rep.outputs, "macs": s["macs"], "seconds": s["seconds"],
                                          "macs_per_s": s["macs_per_s"], "wall_seconds": wall,
                                          "mismatches": rep.mismatches}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
