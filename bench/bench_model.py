"""Whole-network benchmark: float32 vs exact-quantized vs every conv through the LUT, side by side.

    .venv/bin/python bench/bench_model.py [--json] [--batches 1 4] [--repeat 3]

Each configuration runs in its own subprocess (so that its peak memory is its own) on the same 480x640
input, one after the other in this run. Prints time per batch, approximate-MAC/s, the ratio to float32,
peak RSS, the projected time of the 654-image NYU test set, a per-stage profile of each quantized
configuration (conv kernels, input quantization, requantization with dequantization, the rest of each layer,
the work between layers) and the slowest 10 layers. ``--json`` prints all of it as JSON (ratios included), for a
regression guard: a later change that slows the network shows in ``ratio_to_float32``; ``--baseline FILE`` (such a
JSON, e.g. ``bench/baseline_model.json``) exits 1 when a configuration's ratio to float32 is more than
``--tolerance`` (default 25%) above the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    "float32": "PyTorch float32 (oneDNN)",
    "exact-quantized": "quantized, exact multiplier (float64 integer GEMM where provably exact)",
    "lut-exact": "every conv through the LUT kernels, exact table",
    "lut-mbm": "every conv through the LUT kernels, MBM table",
}
NYU_IMAGES = 654


def _model_and_input(height, width, batch):
    import numpy as np
    import torch

    from pyapprox.data.synthetic import render
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2, preprocess
    from pyapprox.models.weights import DEFAULT_WEIGHTS, load_model

    model = load_model(None) if DEFAULT_WEIGHTS.exists() else DenseDepthMBV2().eval()
    rgb, _ = render(2_000_000, height, width)
    x = preprocess(np.repeat(rgb[None], batch, 0))
    return model, x


def run_one(config: str, batch: int, height: int, width: int, repeat: int) -> dict:
    import torch

    from pyapprox.lut.table import LUT
    from pyapprox.heap import keep_large_blocks
    from pyapprox.nn.config import AccelConfig
    from pyapprox.nn.quant import qconv_layers, quantize_model

    keep_large_blocks()  # as the CLI and the evaluation workers run
    model, x = _model_and_input(height, width, batch)
    layer_times: dict[str, float] = {}
    stages: dict[str, float] = {}
    if config != "float32":
        net = quantize_model(model, [x[:1]], AccelConfig(calib_images=1))
        if config.startswith("lut-"):
            if config == "lut-mbm":
                from pyapprox.lut.library import get_lut

                lut = get_lut("mbm")
            else:
                import numpy as np

                lut = LUT(np.outer(np.arange(256), np.arange(256)), meta={"name": "exact"})
            for _, m in qconv_layers(net):
                m.set_lut(lut)
                m.conv.backend = "numba"
        for name, m in qconv_layers(net):
            def timed(codes, f=m.conv.forward, name=name):
                t = time.perf_counter()
                out = f(codes)
                layer_times[name] = layer_times.get(name, 0.0) + time.perf_counter() - t
                return out
            m.conv.forward = timed
            for stage, attr in (("quantize input", "quantize_input"), ("requantize + dequantize", "dequantize"),
                                ("whole layer", "forward_codes")):
                setattr(m, attr, _stage_timer(stages, stage, getattr(m, attr)))
    else:
        net = model
    times = []
    with torch.no_grad():
        net(x)  # warm-up (JIT compile, caches)
        per_run = []
        for _ in range(repeat):
            layer_times.clear()
            stages.clear()
            t = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t)
            per_run.append((times[-1], dict(layer_times), dict(stages)))
    best = min(times)
    _, best_layers, best_stages = min(per_run, key=lambda r: r[0])
    profile = {}
    if best_stages:
        kernel = sum(best_layers.values())
        whole = best_stages.pop("whole layer")
        profile = {"conv kernels (LUT / integer GEMM)": kernel, "quantize input": best_stages["quantize input"],
                   "requantize + dequantize": best_stages.get("requantize + dequantize", 0.0),
                   "activation, bookkeeping": whole - kernel - sum(best_stages.values()),
                   "between layers (resize, concat, add, ...)": best - whole}
        top10 = sum(sorted(best_layers.values())[-10:])
        profile["(of the kernels: the 10 slowest convs)"] = top10
    slowest = sorted(layer_times.items(), key=lambda kv: -kv[1])[:10]
    return {"config": config, "batch": batch, "seconds": best, "all_seconds": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "slowest_layers": slowest, "layer_0_0": layer_times.get("encoder.original_model.features.0.0"),
            "profile": profile}


def _stage_timer(stages: dict, stage: str, f):
    def timed(*a, **k):
        t = time.perf_counter()
        out = f(*a, **k)
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - t
        return out
    return timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--baseline", help="JSON of an earlier --json run: exit 1 when a ratio to float32 regressed")
    ap.add_argument("--tolerance", type=float, default=0.25, help="allowed ratio increase over --baseline")
    ap.add_argument("--one", nargs=2, metavar=("CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        _regressions([], args.baseline, args.tolerance)  # a bad baseline file fails now, not after the runs
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.height, args.width, args.repeat)))
        return 0

    from pyapprox.nn.layers import layer_table
    import torch

    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2

    with torch.device("meta"):
        macs = sum(r.macs for r in layer_table(DenseDepthMBV2(), args.height, args.width))
    results = []
    for batch in args.batches:
        for config in args.configs:
            out = subprocess.run([sys.executable, __file__, "--one", config, str(batch), "--repeat", str(args.repeat),
                                  "--height", str(args.height), "--width", str(args.width)],
                                 capture_output=True, text=True, env=dict(os.environ))
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    float_time = {r["batch"]: r["seconds"] for r in results if r["config"] == "float32"}
    for r in results:
        r["macs"] = macs * r["batch"]
        r["gmac_per_s"] = r["macs"] / r["seconds"] / 1e9
        r["ratio_to_float32"] = r["seconds"] / float_time[r["batch"]] if r["batch"] in float_time else None
        r["nyu_654_minutes"] = r["seconds"] / r["batch"] * NYU_IMAGES / 60
    regressions = _regressions(results, args.baseline, args.tolerance) if args.baseline else []
    if args.json:
        print(json.dumps({"height": args.height, "width": args.width, "macs_per_image": macs, "cpu_threads":
                          torch.get_num_threads(), "results": results}, indent=2))
        return 1 if regressions else 0
    print(f"densedepth_mbv2 at {args.height}x{args.width}: {macs / 1e9:.3f} GMAC per image; "
          f"{torch.get_num_threads()} threads; best of {args.repeat}")
    print(f"{'config':<17} {'batch':>5} {'s/batch':>9} {'GMAC/s':>8} {'x float32':>10} {'peak MB':>8} "
          f"{'NYU 654 min':>11} {'layer 0.0 ms':>12}")
    for r in results:
        l00 = f"{1e3 * r['layer_0_0']:.1f}" if r["layer_0_0"] else "-"
        ratio = f"{r['ratio_to_float32']:.2f}" if r["ratio_to_float32"] else "-"
        print(f"{r['config']:<17} {r['batch']:>5} {r['seconds']:>9.3f} {r['gmac_per_s']:>8.2f} {ratio:>10} "
              f"{r['peak_rss_mb']:>8.0f} {r['nyu_654_minutes']:>11.2f} {l00:>12}")
    for r in results:
        if r["profile"] and r["batch"] == args.batches[0]:
            print(f"\nper-stage profile, {r['config']} batch {r['batch']} (best run, {r['seconds']:.3f} s):")
            for stage, t in r["profile"].items():
                print(f"  {1e3 * t:8.1f} ms {100 * t / r['seconds']:5.1f}%  {stage}")
    for r in results:
        if r["config"] == "lut-mbm" and r["batch"] == args.batches[0]:
            print(f"\nslowest layers, lut-mbm batch {r['batch']}:")
            for name, t in r["slowest_layers"]:
                print(f"  {1e3 * t:8.1f} ms  {name}")
    if args.baseline:
        print(f"\nagainst {args.baseline} (tolerance {100 * args.tolerance:.0f}%): "
              + ("; ".join(regressions) if regressions else "no ratio regressed"))
    return 1 if regressions else 0


def _regressions(results: list[dict], baseline: str, tolerance: float) -> list[str]:
    """'config batch B: ratio R > baseline R0' for every configuration slower relative to float32 than the
    baseline JSON allows (configurations the baseline lacks are not judged)."""
    try:
        with open(baseline, encoding="utf-8") as f:
            base = {(r["config"], r["batch"]): float(r["ratio_to_float32"] or 0) for r in json.load(f)["results"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"bench_model: --baseline {baseline}: not a bench_model --json file ({exc})") from None
    out = []
    for r in results:
        ref = base.get((r["config"], r["batch"]))
        if ref and r["ratio_to_float32"] and r["ratio_to_float32"] > ref * (1 + tolerance):
            out.append(f"{r['config']} batch {r['batch']}: ratio {r['ratio_to_float32']:.2f} > baseline {ref:.2f}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
