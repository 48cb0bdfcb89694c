"""``pyapprox search``: a multiplier per layer, minimising hardware cost within an accuracy budget."""

from __future__ import annotations

from pyapprox import io as pio
from pyapprox.commands.eval import check_multiplier
from pyapprox.commands.sweep import add_context_args, context


def configure(p) -> None:
    p.add_argument("--budget", help="e.g. 'a1>=0.98*exact' or 'rel<=1.1*exact, a1>=0.85' (required, except with "
                                     "--pareto, where it picks the cheapest measured plan that meets it)")
    p.add_argument("--multipliers", nargs="*", help="candidates (default: the compatible approximate library)")
    p.add_argument("--layers", default="all", help="layers that may be approximated (selector)")
    p.add_argument("--cost-metric", default="transistors",
                   help="transistors, gates, ice40_lut4, xilinx_lut, or energy (switching energy per MAC on "
                         "each conv's own operand stream, see `pyapprox power`; default transistors)")
    p.add_argument("--sensitivity", choices=["predicted", "measured"], default="predicted",
                   help="predicted (default): each layer's error from its multiplier's table and the layer's real "
                        "operands, calibrated by one probe multiplier on every layer; measured: every (layer, "
                        "multiplier) evaluated alone (layers x multipliers evaluations)")
    p.add_argument("--check", type=int, default=24, metavar="N",
                   help="predicted: N further single-layer runs, drawn with --seed, to report the predictor's rank "
                        "correlation (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --check draw (default 0)")
    p.add_argument("--pareto", type=int, metavar="N",
                   help="multi-objective mode: NSGA-II (pymoo) over predicted loss and cost, then N plans spread along "
                        "its front measured on the data; prints and stores the measured Pareto set")
    p.add_argument("--pareto-metric", default="a1", help="accuracy objective of --pareto (default a1)")
    p.add_argument("--pareto-out", default="results/pareto",
                   help="--pareto: folder for each measured front plan (plan_<k>.json) and pareto.png")
    p.add_argument("--generations", type=int, default=150, help="--pareto: NSGA-II generations (default 150)")
    p.add_argument("--refine", type=int, default=8, help="greedy single-move attempts after the bisection")
    p.add_argument("--plan-out", default="results/plan.json", help="where the plan file goes (.json)")
    p.add_argument("--finetune", action="store_true",
                   help="also fine-tune the more aggressive plans the budget rejected (bisection, at most "
                        "--finetune-max runs) and check the budget after fine-tuning")
    p.add_argument("--finetune-max", type=int, default=3, help="fine-tuning runs at most (default 3)")
    p.add_argument("--finetune-steps", type=int, default=400, help="steps per fine-tuning run (default 400)")
    p.add_argument("--finetune-gradient", choices=["ste", "lut"], default="ste")
    p.add_argument("--finetune-lr", type=float, default=3e-5)
    p.add_argument("--finetune-out", default="results/finetune", help="folder of the fine-tuned weights")
    add_context_args(p)


def run(args) -> int:
    from pyapprox.errors import PyapproxError
    from pyapprox.experiments.engine import check_scheduler
    from pyapprox.experiments.store import ResultStore
    from pyapprox.experiments.sweeps import check_cost_metric, compatible_library, exact_name, parse_budget, search
    from pyapprox.nn.plan import write_plan

    check_scheduler(args.scheduler)  # first: a bad or unreachable --scheduler fails before any work
    if args.budget is None and args.pareto is None:
        raise PyapproxError("--budget is required (e.g. --budget 'a1>=0.98*exact'), unless --pareto N is given")
    budget = parse_budget(args.budget) if args.budget is not None else []
    check_cost_metric(args.cost_metric, "--cost-metric")
    plan_out = pio.check_output_path(args.plan_out, "--plan-out", (".json",))
    pio.check_output_path(args.store, "--store")
    ctx = context(args)
    if args.multipliers is not None and not args.multipliers:
        raise PyapproxError("--multipliers was given but is empty; name at least one multiplier")
    names = args.multipliers or [n for n in compatible_library(ctx) if not n.startswith(("exact", "sm(exact"))
                                 and n != exact_name(ctx)]
    for name in names:
        check_multiplier(name, ctx.accel)
    finetuner = None
    if args.finetune:
        from pyapprox.experiments.finetune import FinetuneConfig, PlanFinetuner

        if not 1 <= args.finetune_max <= 20:
            raise PyapproxError(f"--finetune-max {args.finetune_max}: expected 1 to 20")
        pio.check_output_dir(args.finetune_out, "--finetune-out")
        ft = FinetuneConfig(steps=args.finetune_steps, gradient=args.finetune_gradient, lr=args.finetune_lr,
                            warmup=min(20, args.finetune_steps - 1) if args.finetune_steps > 0 else 0)
    if not 0 <= args.check <= 10000:
        raise PyapproxError(f"--check {args.check}: expected 0 to 10000")
    if args.pareto is not None:
        return _run_pareto(args, ctx, names, budget)
    store = ResultStore(args.store)
    if args.finetune:
        finetuner = PlanFinetuner(ctx, ft, args.finetune_out, store, args.workers, not args.quiet)
    rec = search(ctx, budget, names, args.layers, store, args.cost_metric, args.refine, args.workers,
                 args.scheduler, not args.quiet, finetuner, args.finetune_max, args.sensitivity, args.check, args.seed)
    meta = {"budget": rec["budget"], "metrics": rec["metrics"], "cost_saving": rec["saving"]}
    if rec["weights"]:
        meta["weights"] = rec["weights"]
    write_plan(plan_out, rec["plan"], meta)
    print(f"budget {', '.join(rec['budget'])}: met with {len(rec['plan'])} approximate layers, "
          f"{100 * rec['saving']:.1f}% less {rec['cost_metric']} x MACs than exact "
          f"({rec['evaluations']} whole-network evaluations)")
    from pyapprox.eval.recipe import finetune_recipe

    recipe = finetune_recipe(args.weights)
    if recipe is not None:
        print("note: the search started from weights fine-tuned for "
              + (", ".join(f"{s}={m}" for s, m in recipe["plan"]["rules"]) or "exact")
              + "; its plans use other multipliers on some layers")
    if rec["predictor"]:
        from pyapprox.experiments.sweeps import format_calibration

        print(format_calibration(rec["predictor"]))
    print(f"sensitivity: {rec['sensitivity_evaluations']} single-layer evaluations ({rec['sensitivity']})")
    print("metrics: " + " ".join(f"{k}={v:.4f}" for k, v in rec["metrics"].items()))
    print("exact:   " + " ".join(f"{k}={v:.4f}" for k, v in rec["baseline"].items()))
    for t in rec["finetuned"]:
        print(f"fine-tuned {t['layers']} approximate layers ({100 * (1 - t['cost'] / rec['exact_cost']):.1f}% saved): "
              f"{budget[0].metric} {t['before'][budget[0].metric]:.4f} -> {t['after'][budget[0].metric]:.4f}, "
              f"budget {'met' if t['ok'] else 'missed'} ({t['weights']})")
    weights = f" --weights {rec['weights']}" if rec["weights"] else ""
    print(f"plan written to {args.plan_out} (pyapprox eval --plan {args.plan_out}{weights})")
    return 0


def _run_pareto(args, ctx, names, budget) -> int:
    from pathlib import Path

    from pyapprox.errors import PyapproxError
    from pyapprox.experiments.pareto import format_pareto, pareto_search, plot_pareto
    from pyapprox.experiments.store import ResultStore
    from pyapprox.experiments.sweeps import check_metric, format_calibration
    from pyapprox.nn.plan import write_plan

    check_metric(args.pareto_metric, "--pareto-metric")
    if not 1 <= args.generations <= 10000:
        raise PyapproxError(f"--generations {args.generations}: expected 1 to 10000")
    if not 1 <= args.pareto <= 64:
        raise PyapproxError(f"--pareto {args.pareto}: expected 1 to 64 plans to measure")
    if args.finetune:
        raise PyapproxError("--finetune works with the single-budget search, not with --pareto")
    out = pio.check_output_dir(args.pareto_out, "--pareto-out")
    rec = pareto_search(ctx, names, args.layers, ResultStore(args.store), args.cost_metric, args.pareto_metric,
                        args.pareto, args.generations, 80, args.workers, args.scheduler, not args.quiet,
                        args.check, args.seed)
    print(format_calibration(rec["predictor"]))
    print(format_pareto(rec))
    front = sorted((p for p in rec["plans"] if p["pareto"]), key=lambda p: p["cost"])
    for k, p in enumerate(front):
        write_plan(Path(out) / f"plan_{k}.json", p["plan"], {"metrics": p["metrics"], "cost_saving": p["saving"]})
    plot_pareto(rec, Path(out) / "pareto.png")
    print(f"{len(front)} plans on the measured front written to {out}/plan_<k>.json (plan_0 is the "
          f"cheapest); plot {out}/pareto.png; {rec['evaluations']} evaluations")
    if budget:
        ok = [p for p in rec["plans"] if all(c.ok(p["metrics"], rec["baseline"]) for c in budget)]
        if not ok:  # the exact plan is among them: the budget is beyond the exact network itself
            raise PyapproxError(f"budget {', '.join(str(c) for c in budget)}: not met by any measured plan, the "
                                f"exact-quantized network included ({rec['metric']}={rec['baseline'][rec['metric']]:.4f}); "
                                "loosen the budget")
        best = min(ok, key=lambda p: p["cost"])
        plan_out = pio.check_output_path(args.plan_out, "--plan-out", (".json",))
        write_plan(plan_out, best["plan"], {"budget": [str(c) for c in budget], "metrics": best["metrics"],
                                            "cost_saving": best["saving"]})
        print(f"budget {', '.join(str(c) for c in budget)}: cheapest measured plan saves {100 * best['saving']:.1f}% "
              f"({len(best['plan'])} approximate layers), written to {args.plan_out}")
    return 0
