"""``pyapprox compare``: float, exact-quantized and approximate versions of any network on your own inputs;
the output deviation per layer and at the output (no labels needed)."""

from __future__ import annotations

import time
from pathlib import Path

from pyapprox.commands.eval import accel_config, add_inputs_args, add_network_args, check_plan, plan_rules


def configure(p) -> None:
    add_inputs_args(p, "the inputs to compare on", required=True)
    p.add_argument("--limit", type=int, help="only the first N inputs")
    p.add_argument("--plan", help="approximation plan file (JSON)")
    p.add_argument("--approx", action="append", metavar="SELECTOR=MULTIPLIER",
                   help="approximate the selected layers, e.g. --approx all=mbm --approx linear=exact")
    add_network_args(p, "a network saved as FILE.onnx, or densedepth_mbv2 (the default)")
    p.add_argument("--calib-images", type=int, help="calibrate on the first N inputs (default 8)")
    p.add_argument("--json", metavar="OUT", help="write all numbers to this JSON file")


def run(args) -> int:
    from pyapprox import io as pio
    from pyapprox.data.inputs import load_inputs
    from pyapprox.errors import PyapproxError
    from pyapprox.eval.deviation import compare_variants, format_deviation
    from pyapprox.models.network import load_network
    from pyapprox.nn.plan import model_layers

    if args.json:
        pio.check_output_path(args.json, "--json", (".json",))
    for key in ("weight_port", "acc_bits", "acc_mode", "calibration"):
        setattr(args, key, None)
    cfg = accel_config(args)
    rules = plan_rules(args)
    model = load_network(args.model, args.weights)
    check_plan(model, rules, cfg)
    inputs = load_inputs(args.inputs, args.preprocess, args.limit)
    if len(inputs) < 1:
        raise PyapproxError(f"inputs {args.inputs}: empty")
    t0 = time.perf_counter()
    res = compare_variants(model, inputs, cfg, {"approx": rules} if rules else {})
    names = model_layers(model)
    print(f"model: {args.model}; inputs: {args.inputs} ({len(inputs)}, shape {tuple(inputs[0].shape)})")
    print(f"accelerator: {cfg.describe()}")
    if rules:
        print("plan: " + ", ".join(f"{s}={m}" for s, m in rules))
    print(format_deviation(res, short=lambda n: names.short(n) if n in names else n))
    if args.json:
        pio.write_json(Path(args.json), {"model": args.model, "inputs": str(args.inputs), "count": len(inputs),
                                         "accelerator": cfg.to_dict(), "plan": rules, **res,
                                         "seconds": round(time.perf_counter() - t0, 3)})
    return 0
