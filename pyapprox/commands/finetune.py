"""``pyapprox finetune``: approximation-aware fine-tuning through a plan's bit-exact arithmetic (resumable)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import fields
from pathlib import Path

from pyapprox.commands.eval import accel_config, add_network_args, check_plan, plan_rules
from pyapprox.errors import PyapproxError

# pyapprox.experiments.finetune.FinetuneConfig's settings, declared here so that `--help` does not import torch
# (a test checks that the two agree): name -> (type, default, help)
SETTINGS = {
    "steps": (int, 400, "optimizer steps"),
    "batch": (int, 2, "images per step"),
    "crop_h": (int, 480, "training crop height (480: whole frames)"),
    "crop_w": (int, 640, "training crop width (640: whole frames)"),
    "lr": (float, 3e-5, "peak learning rate (AdamW; warm-up, then cosine decay to 5%%)"),
    "weight_decay": (float, 0.0, "AdamW weight decay"),
    "warmup": (int, 20, "warm-up steps"),
    "train_images": (int, 1500, "synthetic training images drawn from"),
    "val_images": (int, 8, "synthetic validation images scored during training"),
    "val_every": (int, 100, "validate every N steps"),
    "ckpt_every": (int, 25, "checkpoint every N steps (and on Ctrl-C)"),
    "recalibrate_every": (int, 50, "recalibrate activation scales from the current weights every N steps"),
    "gradient": (str, "ste", "ste (the exact product's gradient) or lut (slopes of the multiplier's own table)"),
    "grad_step": (int, 4, "lut gradients: central-difference step in codes"),
    "loss": (str, "log", "log (L1 of log depth and its gradients) or densedepth (SSIM + gradients + L1)"),
    "bias_correction": (int, 8, "before step 1, shift each approximate layer's bias by its mean error on this many "
                                "whole training frames, kept if it lowers their loss (0: none)"),
    "seed": (int, 0, "random seed (batches, crops, flips, colour jitter)"),
    "threads": (int, 2, "CPU threads"),
}


def configure(p) -> None:
    p.add_argument("--plan", help="approximation plan file (JSON)")
    p.add_argument("--approx", action="append", metavar="SELECTOR=MULTIPLIER",
                   help="approximate the selected layers, e.g. --approx encoder=trunc6")
    add_network_args(p)
    p.add_argument("--calib-data", help="calibration data set (default synthetic:val, as eval uses for synthetic data)")
    p.add_argument("--store", default="results/results.sqlite",
                   help="results store the before/after scores are cached in (shared with sweep and search)")
    p.add_argument("--workers", type=int, default=2, help="processes that score the test split (default 2)")
    p.add_argument("--out", default="build/finetune", help="checkpoint folder (resumed if it holds a checkpoint)")
    p.add_argument("--export", metavar="WEIGHTS.pt",
                   help="fine-tuned weights (float32 state_dict) + WEIGHTS.json recipe (default OUT/finetuned.pt)")
    p.add_argument("--test-images", type=int, default=200,
                   help="synthetic test images scored before and after (0: skip; recorded in the recipe)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    for name, (typ, default, text) in SETTINGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=default, help=f"{text} (default {default})")


def run(args) -> int:
    from pyapprox import io as pio

    export = Path(args.export) if args.export else Path(args.out) / "finetuned.pt"
    pio.check_output_path(export, "--export", (".pt",))
    pio.check_output_path(export.with_suffix(".json"), "--export recipe")
    pio.check_output_dir(args.out, "--out")
    if args.test_images:
        pio.check_output_path(args.store, "--store")
    if not 1 <= args.workers <= 64:
        raise PyapproxError(f"--workers {args.workers}: expected 1 to 64")
    if args.test_images < 0 or args.test_images > 654:
        raise PyapproxError(f"--test-images {args.test_images}: expected 0 (skip) to 654")

    from pyapprox.eval.evaluate import calibration_images
    from pyapprox.experiments.finetune import FinetuneConfig, make_setup, run_finetune
    from pyapprox.experiments.store import ResultStore
    from pyapprox.models.network import is_default, load_network
    from pyapprox.models.weights import DEFAULT_WEIGHTS

    ft = FinetuneConfig(**{f.name: getattr(args, f.name) for f in fields(FinetuneConfig)})
    cfg = accel_config(args)
    rules = plan_rules(args)
    model = load_network(args.model, args.weights)
    check_plan(model, rules, cfg)
    progress = not args.quiet
    calib = calibration_images(None, cfg, args.calib_data or "synthetic:val", progress)
    wfile = args.weights or (args.model if not is_default(args.model) else str(DEFAULT_WEIGHTS))
    setup = make_setup(model, args.model or "densedepth_mbv2", args.weights or "default", wfile, rules, cfg, calib,
                       args.calib_data or "synthetic:val")
    luts, assignment = setup.luts, setup.assignment
    print(f"fine-tuning {args.model or 'densedepth_mbv2'} ({len(luts)} of {len(assignment)} layers approximate: "
          + (", ".join(f"{s}={m}" for s, m in rules) or "exact") + f"); gradient {ft.gradient}, {ft.steps} steps of "
          f"{ft.batch} {ft.crop_h}x{ft.crop_w} images; accelerator: {cfg.describe()}")

    store = ResultStore(args.store) if args.test_images else None
    meta = run_finetune(setup, ft, Path(args.out), export, store, "synthetic", args.test_images, args.calib_data,
                        args.workers, not args.no_resume, progress, _command_line())
    scores = meta["scores"]
    before, after, scoring = scores["before"], scores["after"], scores["scoring_seconds"]
    print(f"fine-tuned in {meta['train_seconds'] / 60:.1f} min ({meta['log'][-1]['step']} steps); weights {export} "
          f"(sha256 {meta['sha256'][:16]}...), recipe {export.with_suffix('.json')}")
    if before:
        cols = ("a1", "a2", "a3", "rel", "rms", "log10")
        print(f"synthetic test, {args.test_images} images (scored in {scoring / 60:.1f} min):")
        print(f"{'network':<28}" + "".join(f"{c:>9}" for c in cols))
        rows = [("exact-quantized (base)", before["exact"]), ("plan, base weights", before["plan"]),
                ("plan, fine-tuned", after["plan"])]
        for label, m in rows:
            print(f"{label:<28}" + "".join(f"{m[c]:>9.4f}" for c in cols))
    print(f"use: pyapprox eval --weights {export} " + " ".join(f"--approx {shlex.quote(f'{s}={m}')}" for s, m in rules)
          + (f" --model {args.model}" if args.model else ""))
    return 0


def _command_line() -> str | None:
    """This run's command line as typed (None when not run from the ``pyapprox`` command line)."""
    argv = sys.argv[1:]
    if "finetune" not in argv:
        return None
    return "pyapprox " + " ".join(shlex.quote(a) for a in argv)
