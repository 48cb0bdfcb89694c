"""``pyapprox train``: train densedepth_mbv2 from scratch on the synthetic split (resumable)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path


def configure(p) -> None:
    from pyapprox.experiments.train import TrainConfig

    p.add_argument("--out", default="build/train", help="checkpoint folder (resumed if it holds a checkpoint)")
    for f in fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--export", metavar="WEIGHTS.pt", help="after training, store float16 weights + recipe here")
    p.add_argument("--test-images", type=int, default=200,
                   help="synthetic test images the exported float16 weights are scored on (recorded in the recipe)")


def run(args) -> int:
    from pyapprox.experiments.train import TrainConfig, export_weights, train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    final = train(Path(args.out), cfg, resume=not args.no_resume)
    print(f"trained weights: {final}")
    if args.export:
        meta = export_weights(final, Path(args.export), test_images=args.test_images)
        t = meta["synthetic_test"]
        print(f"exported {args.export} (sha256 {meta['sha256'][:16]}..., {len(meta['stages'])} training stages); "
              f"float on {t['images']} synthetic test images: a1 {t['a1']:.4f} rel {t['rel']:.4f} rms {t['rms']:.4f}")
    return 0
