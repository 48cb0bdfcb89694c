"""Fine-tuning step time: float32 training vs approximation-aware training with ste and lut gradients, side by side.

    .venv/bin/python bench/bench_finetune.py [--multiplier mbm] [--batch 2] [--height 480 --width 640] [--repeat 3]

One training step (forward, loss, backward, optimizer step) of densedepth_mbv2 on the same batch, every conv
through the multiplier's table for the QAT variants. Prints the median time per step of each configuration, split
into forward and backward, and the ratio to float32, measured one after the other in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--multiplier", default="mbm")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    import copy

    import numpy as np
    import torch
    import torch.nn.functional as F

    from pyapprox.data.synthetic import render
    from pyapprox.eval.evaluate import calibration_images
    from pyapprox.experiments.train import depth_to_target, log_depth_loss
    from pyapprox.lut.library import get_lut
    from pyapprox.models.densedepth_mbv2 import preprocess
    from pyapprox.models.weights import load_model
    from pyapprox.nn.config import AccelConfig
    from pyapprox.nn.plan import model_layers
    from pyapprox.nn.qat import QATNetwork

    torch.set_num_threads(2)
    model = load_model()
    rgb, depth = zip(*(render(3_000_000 + i, args.height, args.width) for i in range(args.batch)))
    x = preprocess(np.stack(rgb))
    target = F.avg_pool2d(depth_to_target(torch.from_numpy(np.stack(depth))[:, None]), 2)
    cfg = AccelConfig()
    calib = calibration_images(None, cfg, "synthetic:val", False)
    lut = get_lut(args.multiplier)
    luts = {n: lut for n in model_layers(model)}
    nets = {"float32": copy.deepcopy(model).train(),
            "qat-ste": QATNetwork(model, calib, cfg, luts, "ste"),
            "qat-lut": QATNetwork(model, calib, cfg, luts, "lut")}
    rows = {}
    for name, net in nets.items():
        opt = torch.optim.AdamW(net.parameters(), lr=1e-6)
        fwd, bwd = [], []
        for i in range(args.repeat + 1):  # the first step compiles and warms up
            t0 = time.perf_counter()
            loss = log_depth_loss(net(x), target)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t2 = time.perf_counter()
            if i:
                fwd.append(t1 - t0)
                bwd.append(t2 - t1)
        rows[name] = (statistics.median(fwd), statistics.median(bwd))
    base = sum(rows["float32"])
    print(f"one training step, batch {args.batch} at {args.height}x{args.width}, every conv through "
          f"{args.multiplier} for QAT; median of {args.repeat}")
    print(f"{'configuration':<10} {'forward s':>10} {'backward s':>11} {'step s':>8} {'x float32':>10}")
    for name, (f, b) in rows.items():
        print(f"{name:<10} {f:>10.2f} {b:>11.2f} {f + b:>8.2f} {(f + b) / base:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
