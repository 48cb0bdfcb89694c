"""``pyapprox demo``: the main job on the embedded default.

The committed synthetic-trained densedepth_mbv2 is scored as float32 on the whole synthetic test split,
then side by side as float32, exact-quantized, and with approximate multipliers in every encoder layer on
the first ``--limit`` test images (the quantized networks cost 1.5-2.5 s per image on 2 cores);
prints the tables and writes a PNG panel per image and a JSON of all numbers into ``results/``.
"""

from __future__ import annotations

import time

DEFAULT_MULTIPLIERS = ("mbm", "trunc6", "drum4")


def configure(p) -> None:
    p.add_argument("--outdir", default="results", help="where the table, panels and JSON go")
    p.add_argument("--limit", type=int, default=40,
                   help="test images scored side by side (default 40; the float model is also scored on the whole split)")
    p.add_argument("--float-images", type=int, default=None,
                   help="test images the float model alone is scored on (default: the whole split)")
    p.add_argument("--multipliers", nargs="+", default=list(DEFAULT_MULTIPLIERS),
                   help="library multipliers (or LUT files) applied to all encoder layers")
    p.add_argument("--layers", default="encoder", help="layer selector the multipliers are applied to")
    p.add_argument("--panels", type=int, default=8, help="PNG panels for this many images")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from pyapprox import io as pio
    from pyapprox.data import open_dataset
    from pyapprox.errors import PyapproxError
    from pyapprox.eval.evaluate import Variant, build_variants, evaluate, format_table
    from pyapprox.experiments.library_table import print_library_table
    from pyapprox.experiments.panels import write_panel
    from pyapprox.lut.library import get_lut
    from pyapprox.lut.metrics import error_metrics
    from pyapprox.models.weights import DEFAULT_WEIGHTS, load_model
    from pyapprox.nn.config import AccelConfig

    if not args.multipliers:
        raise PyapproxError("--multipliers needs at least one name")
    outdir = pio.check_output_dir(args.outdir, "--outdir")
    pio.check_output_path(outdir / "demo.json", "--outdir")
    t0 = time.perf_counter()
    print("== multiplier library (tables from Verilator + Icarus simulation, checked against golden models) ==")
    print_library_table(names=list(dict.fromkeys(["exact", *args.multipliers])))
    cfg = AccelConfig()
    model = load_model(None)
    split = open_dataset("synthetic", args.float_images, progress=not args.quiet)
    whole = evaluate([Variant("float", model)], split, progress=not args.quiet)["variants"]["float"]
    data = open_dataset("synthetic", args.limit, progress=not args.quiet)
    plans = {f"{m} @ {args.layers}": [(args.layers, m)] for m in args.multipliers}
    luts = {m: get_lut(m) for m in args.multipliers}
    variants = build_variants(model, data, cfg, plans, progress=not args.quiet)
    res = evaluate(variants, data, progress=not args.quiet, keep=args.panels)
    print(f"\n== float32 on {split.name}: {len(split)} images at 480x640, Eigen crop ==")
    print(format_table({"variants": {"float": whole}}))
    print(f"\n== side by side on the first {len(data)} images of {data.name} ==")
    print(f"accelerator: {cfg.describe()}")
    print(format_table(res))
    outdir.mkdir(parents=True, exist_ok=True)
    names = [v.name for v in variants]
    for i in range(min(args.panels, len(data))):
        rgb, gt = data[i]
        preds = {n: res["predictions"][n][i] for n in names}
        write_panel(outdir / f"panel_{i:03d}.png", rgb, gt, preds, f"{data.name} image {i}")
    out = {"data": {"name": data.name, "images": len(data)}, "weights": str(DEFAULT_WEIGHTS),
           "accelerator": cfg.to_dict(), "accelerator_text": cfg.describe(),
           "multipliers": {m: {"metrics": error_metrics(l), "digest": l.digest()} for m, l in luts.items()},
           "float_whole_split": {"images": whole["images"], "metrics": whole["metrics"]},
           "variants": res["variants"], "seconds": round(time.perf_counter() - t0, 1)}
    pio.write_json(outdir / "demo.json", out)
    print(f"\nwrote {outdir}/demo.json and {min(args.panels, len(data))} panels in {time.perf_counter() - t0:.0f} s")
    return 0
