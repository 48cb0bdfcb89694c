"""``pyapprox sweep layers|multipliers``: layer sensitivity and multiplier design-space exploration."""

from __future__ import annotations

import re
from pathlib import Path

from pyapprox import io as pio
from pyapprox.commands.eval import accel_config, add_network_args, check_multiplier


def add_context_args(p) -> None:
    p.add_argument("--data", default="synthetic", help="data set name or path (see pyapprox eval)")
    p.add_argument("--limit", type=int, default=8, help="images per evaluation (default 8)")
    add_network_args(p)
    p.add_argument("--calib-data", help="data set for calibration (default: synthetic:val for synthetic data)")
    p.add_argument("--store", default="results/results.sqlite", help="results store (SQLite; resumable)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address (tcp://host:8786) instead of local processes")
    p.add_argument("-o", "--outdir", default="results", help="where tables and plots go")
    p.add_argument("--quiet", action="store_true")


def context(args):
    from pyapprox.experiments.engine import EvalContext

    for k in ("weight_port", "acc_bits", "acc_mode", "calibration", "calib_images"):
        if not hasattr(args, k):
            setattr(args, k, None)
    return EvalContext.create(args.data, args.limit, args.weights, accel_config(args), args.calib_data,
                              model=args.model)


def configure(p) -> None:
    sub = p.add_subparsers(dest="sweep_cmd", metavar="KIND")
    sub.required = True
    la = sub.add_parser("layers", help="approximate one conv layer at a time; metric change per layer")
    la.add_argument("--multiplier", required=True, help="library name or LUT file")
    la.add_argument("--layers", default="all", help="layer selector (default all)")
    add_context_args(la)
    mu = sub.add_parser("multipliers", help="whole-network accuracy vs hardware cost for many multipliers")
    mu.add_argument("--names", nargs="*", help="library names or LUT files (default: the compatible library)")
    mu.add_argument("--plan-template", default="all",
                    help="layer selector the multiplier is applied to, or a plan JSON whose multiplier "
                         "entries may be the placeholder {multiplier} (default all)")
    mu.add_argument("--cost-metric", default="transistors",
                    help="transistors, gates, ice40_lut4, xilinx_lut, or energy (switching energy per MAC on "
                         "each conv's own operand stream, see `pyapprox power`; default transistors)")
    mu.add_argument("--accuracy", default="a1", help="metric of the Pareto front: a1, a2, a3, rel, rms or log10")
    add_context_args(mu)


def template_rules(text: str) -> list:
    from pyapprox.nn.plan import load_plan

    if text.endswith(".json") or Path(text).is_file():
        return load_plan(text)
    return [(text, "{multiplier}")]


def check_outputs(args, plot_name: str) -> Path:
    """Refuse unusable ``-o/--outdir`` and ``--store`` paths before any work; returns the plot's path."""
    outdir = pio.check_output_dir(args.outdir, "-o/--outdir")
    png = pio.check_output_path(outdir / plot_name, "-o/--outdir")
    pio.check_output_path(args.store, "--store")
    return png


def run(args) -> int:
    from pyapprox.experiments import plots
    from pyapprox.experiments.engine import check_scheduler
    from pyapprox.experiments.store import ResultStore
    from pyapprox.experiments.sweeps import (check_cost_metric, check_metric, compatible_library, format_layer_sweep,
                                             format_multiplier_sweep, sweep_layers, sweep_multipliers)
    from pyapprox.errors import PyapproxError

    check_scheduler(args.scheduler)  # first: a bad or unreachable --scheduler fails before any work
    if args.sweep_cmd == "layers":
        png_path = check_outputs(args, f"sweep_layers_{_slug(args.multiplier)}.png")
    else:
        png_path = check_outputs(args, "sweep_multipliers.png")
        check_cost_metric(args.cost_metric, "--cost-metric")
        check_metric(args.accuracy, "--accuracy")
    ctx = context(args)
    if args.sweep_cmd == "layers":
        names = [args.multiplier]
    else:
        names = args.names if args.names is not None else compatible_library(ctx)
        if not names:
            raise PyapproxError("--names was given but is empty; name at least one multiplier")
        template_rules(args.plan_template)  # a bad template fails here, before the store is opened
    for name in names:
        check_multiplier(name, ctx.accel)  # unknown, unreadable or incompatible multipliers fail before any work
    store = ResultStore(args.store)
    if args.sweep_cmd == "layers":
        rec = sweep_layers(ctx, args.multiplier, args.layers, store, args.workers, args.scheduler, not args.quiet)
        print(format_layer_sweep(rec))
        png = plots.layer_sweep_chart(rec, png_path)
    else:
        rec = sweep_multipliers(ctx, names, template_rules(args.plan_template), store, args.cost_metric,
                                args.accuracy, args.workers, args.scheduler, not args.quiet)
        print(format_multiplier_sweep(rec))
        png = plots.pareto_chart(rec, png_path)
    print(f"results in {args.store}; plot {png}")
    return 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
