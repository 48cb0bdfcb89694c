"""Toggle-simulation speed and the cost of a whole-network energy estimate, measured in one run.

    .venv/bin/python bench/bench_power.py [--multiplier mbm] [--pairs 4194304] [--height 480 --width 640]

Prints, for the multiplier alone (time-parallel words) and for its whole PE (cycle-by-cycle lanes): operand pairs
simulated per second; then the wall time of a whole-network energy estimate for one multiplier at the given
resolution (calibration and capture of every conv's PE streams, then the simulation), its sample size and its
confidence interval.
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--multiplier", default="mbm")
    p.add_argument("--pairs", type=int, default=1 << 22)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    args = p.parse_args()

    import numpy as np
    import torch

    from pyapprox.data.synthetic import render
    from pyapprox.eval.evaluate import calibration_images
    from pyapprox.experiments import power as P
    from pyapprox.hw import toggle
    from pyapprox.hw.energy import operand_inputs, uniform_stream
    from pyapprox.models.densedepth_mbv2 import preprocess
    from pyapprox.models.weights import load_model
    from pyapprox.nn.config import AccelConfig
    from pyapprox.nn.quant import quantize_model

    torch.set_num_threads(2)
    cfg = AccelConfig()
    d = P.library_design(args.multiplier, cfg.operand_format)
    w, x = uniform_stream(args.pairs, 0, cfg.operand_format)
    ins = operand_inputs(d.netlist, d.ports, w, x, cfg.operand_format, "a")
    toggle.toggles(d.netlist, {k: v[:1000] for k, v in ins.items()})
    t0 = time.perf_counter()
    toggle.toggles(d.netlist, ins)
    mult_rate = args.pairs / (time.perf_counter() - t0)

    pe = P.pe_design(args.multiplier, cfg)
    stream = P.uniform_pe_stream(cfg.operand_format, segments=512, cycles=2048)
    P.pe_energy(pe, P.uniform_pe_stream(cfg.operand_format, segments=2, cycles=16))  # compile
    t0 = time.perf_counter()
    P.pe_energy(pe, stream)
    pe_rate = stream.pairs / (time.perf_counter() - t0)
    print(f"{'simulation':<36}{'gates':>7}{'M pairs/s':>11}")
    print(f"{args.multiplier + ' multiplier (time-parallel)':<36}{d.gates:>7}{mult_rate / 1e6:>11.2f}")
    print(f"{args.multiplier + ' whole PE (lanes, compiled)':<36}{pe.gates:>7}{pe_rate / 1e6:>11.2f}")

    t0 = time.perf_counter()
    model = load_model()
    calib = calibration_images(None, cfg, "synthetic:val", False)
    with torch.no_grad():
        qmodel = quantize_model(model, calib, cfg)
    image = preprocess(render(4_000_000, args.height, args.width)[0])
    t1 = time.perf_counter()
    streams = P.network_streams(qmodel, image)
    t2 = time.perf_counter()
    exact = P.library_design("exact", cfg.operand_format)
    ref = P.uniform_energy(exact, cfg.operand_format, 1 << 20, 0)
    rows = P.compare_designs([d], ref, streams, cfg.operand_format, cfg.weight_port, 1 << 20, 0)
    t3 = time.perf_counter()
    net = rows[0]["network"]
    pairs = sum(s.pairs for s in streams.values())
    print(f"whole network at {args.height}x{args.width}, {len(streams)} convs, {pairs:,} sampled pairs "
          f"({net['segments']} segments): {args.multiplier} energy per MAC {net['per_transition']:.4f} "
          f"± {net['ci95']:.4f} (95%)")
    print(f"  calibration {t1 - t0:.1f} s, capture + sampling {t2 - t1:.1f} s, simulation (uniform reference and "
          f"network) {t3 - t2:.1f} s; estimate without calibration {t3 - t1:.1f} s, total {t3 - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
