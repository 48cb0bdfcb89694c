"""``pyapprox search``: a multiplier per layer, minimising hardware cost within an accuracy budget."""

from __future__ import annotations

from pyapprox import io as pio
from pyapprox.commands.eval import check_multiplier
from pyapprox.commands.sweep import add_context_args, context


def configure(p) -> None:
    p.add_argument("--budget", required=True, help="e.g. 'a1>=0.98*exact' or 'rel<=1.1*exact, a1>=0.85'")
    p.add_argument("--multipliers", nargs="*", help="candidates (default: the compatible approximate library)")
    p.add_argument("--layers", default="all", help="layers that may be approximated (selector)")
    p.add_argument("--cost-metric", default="transistors",
                   help="transistors, gates, ice40_lut4 or xilinx_lut (default transistors)")
    p.add_argument("--refine", type=int, default=8, help="greedy single-move attempts after the bisection")
    p.add_argument("--plan-out", default="results/plan.json", help="where the plan file goes (.json)")
    add_context_args(p)


def run(args) -> int:
    from pyapprox.errors import PyapproxError
    from pyapprox.experiments.engine import check_scheduler
    from pyapprox.experiments.store import ResultStore
    from pyapprox.experiments.sweeps import check_cost_metric, compatible_library, exact_name, parse_budget, search
    from pyapprox.nn.plan import write_plan

    check_scheduler(args.scheduler)  # first: a bad or unreachable --scheduler fails before any work
    budget = parse_budget(args.budget)
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
    store = ResultStore(args.store)
    rec = search(ctx, budget, names, args.layers, store, args.cost_metric, args.refine, args.workers,
                 args.scheduler, not args.quiet)
    write_plan(plan_out, rec["plan"], {"budget": rec["budget"], "metrics": rec["metrics"],
                                       "cost_saving": rec["saving"]})
    print(f"budget {', '.join(rec['budget'])}: met with {len(rec['plan'])} approximate layers, "
          f"{100 * rec['saving']:.1f}% less {rec['cost_metric']} x MACs than exact "
          f"({rec['evaluations']} whole-network evaluations)")
    print("metrics: " + " ".join(f"{k}={v:.4f}" for k, v in rec["metrics"].items()))
    print("exact:   " + " ".join(f"{k}={v:.4f}" for k, v in rec["baseline"].items()))
    print(f"plan written to {args.plan_out} (pyapprox eval --plan {args.plan_out})")
    return 0
