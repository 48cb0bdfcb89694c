"""``pyapprox eval``: depth metrics of float, exact-quantized and approximate networks side by side."""

from __future__ import annotations

import time
from pathlib import Path

from pyapprox.errors import PyapproxError

# pyapprox.eval.metrics.PROTOCOLS, spelled out because importing it pulls in torch (kept out of `--help`)
PROTOCOLS = ("per-image", "densedepth")
# pyapprox.data.inputs.PREPROCESS, for the same reason (a test checks the two agree)
PREPROCESS = ("imagenet", "unit", "none")


def add_network_args(p, model_help: str | None = None) -> None:
    """The network and accelerator options every command that quantizes a network takes."""
    p.add_argument("--model", help=model_help or "densedepth_mbv2 (default), or a network saved as FILE.onnx (for "
                                                 "eval, sweep and search: a depth network with densedepth_mbv2's "
                                                 "interface, normalised RGB in, DenseDepth depth out)")
    p.add_argument("--weights", help="densedepth_mbv2 checkpoint (default: the committed synthetic-trained weights; "
                                     "for an ONNX model: a state_dict of the converted network, e.g. from "
                                     "`pyapprox finetune`)")
    p.add_argument("--config", help="accelerator configuration JSON (see pyapprox.nn.config.AccelConfig)")
    p.add_argument("--operand-format", choices=["sign-magnitude", "int8"])


def add_inputs_args(p, purpose: str, required: bool = False) -> None:
    """``--inputs`` and ``--preprocess`` (see :mod:`pyapprox.data.inputs`, whose PREPROCESS they mirror)."""
    p.add_argument("--inputs", required=required, help=f"{purpose}: an .npy array [N, ...] of model inputs (or uint8 "
                                                       f"RGB images [N, H, W, 3]), or a folder of images")
    p.add_argument("--preprocess", default="imagenet", choices=PREPROCESS,
                   help="for images: ImageNet mean/std (default), [0, 1] (unit), or raw 0..255 (none)")


def add_model_args(p) -> None:
    """Options shared by every command that builds and runs the quantized network itself (eval, cosim)."""
    add_network_args(p)
    p.add_argument("--weight-port", choices=["a", "b"])
    p.add_argument("--acc-bits", type=int)
    p.add_argument("--acc-mode", choices=["wrap", "saturate"])
    p.add_argument("--calibration", choices=["max", "percentile", "mse"])
    p.add_argument("--calib-images", type=int)
    p.add_argument("--calib-data", help="data set for calibration (default: synthetic:val for synthetic data, "
                                        "else the first images of --data)")
    p.add_argument("--backend", choices=["auto", "reference", "exact", "numba", "torch"], default="auto",
                   help="conv backend (auto: GPU via PyTorch ops when CUDA is present, else numba / exact GEMM)")


def accel_config(args):
    from pyapprox.nn.config import AccelConfig

    base = AccelConfig.load(args.config).to_dict() if args.config else AccelConfig().to_dict()
    for key in ("operand_format", "weight_port", "acc_bits", "acc_mode", "calibration", "calib_images"):
        v = getattr(args, key, None)
        if v is not None:
            base[key] = v
    return AccelConfig.from_dict(base)


def plan_rules(args) -> list:
    from pyapprox.nn.plan import load_plan, parse_flag

    rules = load_plan(args.plan) if getattr(args, "plan", None) else []
    rules += [parse_flag(f) for f in getattr(args, "approx", None) or []]
    return rules


def check_multiplier(mult: str, cfg=None) -> None:
    """Fail fast on a multiplier that cannot be found or read (LUT files are loaded and validated), or whose
    operand format the accelerator ``cfg`` cannot use."""
    from pyapprox.lut.library import is_lut_file
    from pyapprox.lut.table import LUT
    from pyapprox.rtl import library

    if mult == "exact":
        return
    if is_lut_file(mult):
        operands = LUT.load(mult).operands
    else:
        d = library.resolve(mult)
        operands = "sign-magnitude" if d.sign_magnitude else ("signed" if d.signed else "unsigned")
    ops = "unsigned" if operands == "sign-magnitude" else operands
    if cfg is not None and ops != cfg.lut_operands:
        article = "an" if cfg.lut_operands == "unsigned" else "a"
        raise PyapproxError(f"multiplier {mult} has {operands} operands but the accelerator uses "
                            f"{cfg.operand_format} operands, which need {article} {cfg.lut_operands} multiplier")


def check_plan(model, rules, cfg=None) -> None:
    """Fail fast, before any work: selectors that match nothing and every multiplier (:func:`check_multiplier`)."""
    from pyapprox.nn.plan import model_layers, resolve_plan

    for mult in sorted(set(resolve_plan(rules, model_layers(model)).values())):
        check_multiplier(mult, cfg)


def finetune_note(weights, variants, cfg) -> str | None:
    """For fine-tuned weights: what they were fine-tuned for, and a note when this run's plan, multiplier tables or
    accelerator differ (``variants`` from build_variants; the approximate one, else the exact one, is compared)."""
    from pyapprox.eval.recipe import finetune_recipe, plan_note

    recipe = finetune_recipe(weights)
    if recipe is None:
        return None
    run = next((v for v in variants if v.name not in ("float", "exact")), None)
    assignment = run.assignment if run else {}
    digests = {}
    if run:
        from pyapprox.nn.quant import qconv_layers

        digests = {m.multiplier: m.conv.lut_digest for _, m in qconv_layers(run.model) if m.conv.lut_digest}
    trained = ", ".join(f"{s}={m}" for s, m in recipe["plan"]["rules"]) or "exact"
    line = f"weights fine-tuned for: {trained} ({recipe['finetune'].get('gradient', '?')} gradients)"
    note = plan_note(recipe, assignment, cfg.to_dict(), digests)
    return line + ("\n" + note if note else "")


def configure(p) -> None:
    p.add_argument("--data", default="synthetic", help="synthetic[:split], nyu_test.zip, an eigen .npy folder or an .h5 folder")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--plan", help="approximation plan file (JSON)")
    p.add_argument("--approx", action="append", metavar="SELECTOR=MULTIPLIER",
                   help="approximate the selected layers, e.g. --approx encoder=mbm --approx 0.0=trunc4")
    p.add_argument("--json", metavar="OUT", help="write all numbers to this JSON file (name ending in .json)")
    p.add_argument("--no-float", action="store_true", help="do not score the float32 network")
    p.add_argument("--no-exact", action="store_true", help="do not score the exact-quantized network")
    p.add_argument("--protocol", choices=PROTOCOLS, default="per-image",
                   help="per-image: metrics per image, averaged over images, rel = |gt-pred|/gt (DenseDepth's "
                        "Tensorflow/evaluate.py); densedepth: all pixels of the set pooled, rel = |gt-pred|/pred "
                        "(DenseDepth's utils.evaluate, which swaps gt and prediction)")
    p.add_argument("--flip", action="store_true",
                   help="also predict each image mirrored left-right and average the two depth maps, as DenseDepth does")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_args(p)


def run(args) -> int:
    """Check the output path and that something is to be scored, then score and print (and write --json)."""
    from pyapprox import io as pio

    if args.json is not None:
        pio.check_output_path(args.json, "--json", (".json",))
    if args.no_float and args.no_exact and not (args.plan or args.approx):
        raise PyapproxError("nothing to evaluate: --no-float and --no-exact leave no variant; "
                            "add --plan or --approx, or drop one of them")

    from pyapprox.data import open_dataset
    from pyapprox.eval.evaluate import build_variants, evaluate, format_table
    from pyapprox.models.network import load_network

    cfg = accel_config(args)
    rules = plan_rules(args)
    model = load_network(args.model, args.weights)
    check_plan(model, rules, cfg)
    data = open_dataset(args.data, args.limit, progress=not args.quiet)
    plans = {"approx": rules} if rules else {}
    variants = build_variants(model, data, cfg, plans, args.calib_data, args.backend, not args.no_float,
                              not args.no_exact, progress=not args.quiet)
    res = evaluate(variants, data, progress=not args.quiet, protocol=args.protocol, flip=args.flip)
    print(f"data: {data.name} ({len(data)} images, Eigen crop); model: {args.model or 'densedepth_mbv2'}; "
          f"weights: {args.weights or ('default (synthetic)' if not args.model else 'in the model file')}")
    print(f"accelerator: {cfg.describe()}")
    if rules:
        print("plan: " + ", ".join(f"{s}={m}" for s, m in rules))
    note = finetune_note(args.weights, variants, cfg)
    if note:
        print(note)
    print(format_table(res))
    for name, r in res["variants"].items():
        if r["overflows"]:
            print(f"{name}: accumulator overflows in {len(r['overflows'])} layers: "
                  + ", ".join(f"{k}={v}" for k, v in list(r["overflows"].items())[:5]))
    if args.json:
        out = {"data": {"name": data.name, "source": str(getattr(data, 'source', '')), "images": len(data)},
               "weights": args.weights or "default", "accelerator": cfg.to_dict(), "accelerator_text": cfg.describe(),
               "protocol": args.protocol, "flip": args.flip,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": res["variants"]}
        pio.write_json(Path(args.json), out)
    return 0
