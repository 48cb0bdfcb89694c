"""Layer sensitivity, multiplier design-space sweeps and the cost-constrained plan search."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from pyapprox.experiments.engine import EvalContext, Job, evaluator, job_key, lut_digests, run_jobs
from pyapprox.experiments.predictor import Predictor, choose_probe, nsr_table, operand_profile, rank_correlation
from pyapprox.hw.cost import hardware_cost
from pyapprox.lut.library import is_lut_file
from pyapprox.lut.sidecar import recorded_sources
from pyapprox.lut.table import LUT
from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2
from pyapprox.models.network import is_default, load_network
from pyapprox.nn.layers import layer_table, rows_layer_set
from pyapprox.nn.plan import resolve_plan, select
from pyapprox.rtl import library
from pyapprox.sim.hdl import HdlDesign

COST_METRICS = ("transistors", "gates", "ice40_lut4", "xilinx_lut", "energy")
FRACTION_METRICS = ("a1", "a2", "a3")  # fractions of pixels, within [0, 1]; the other metrics are >= 0


def check_cost_metric(name: str, what: str = "cost metric") -> str:
    """``name`` if it is one of :data:`COST_METRICS`; else a PyapproxError naming ``what`` (the option)."""
    if name not in COST_METRICS:
        raise PyapproxError(f"{what} {name!r}: unknown cost metric; valid: {', '.join(COST_METRICS)}")
    return name


def check_metric(name: str, what: str = "accuracy metric") -> str:
    """``name`` if it is one of the depth metrics (METRIC_NAMES); else a PyapproxError naming ``what``."""
    if name not in METRIC_NAMES:
        raise PyapproxError(f"{what} {name!r}: unknown metric; valid: {', '.join(METRIC_NAMES)}")
    return name


def network_layers(model: str | None = None, height: int = 480, width: int = 640):
    """LayerInfo rows of the context's network (default densedepth_mbv2): names, kinds, MACs at the given size."""
    if is_default(model):
        with torch.device("meta"):
            net = DenseDepthMBV2()
    else:
        net = load_network(model)
    return layer_table(net, height, width, input_shape=getattr(net, "input_shape", None))


def selected_layers(selector: str, model: str | None = None) -> list:
    rows = network_layers(model)
    names = select(selector, rows_layer_set(rows))
    return [r for r in rows if r.name in set(names)]


def exact_name(ctx: EvalContext) -> str:
    return "exact_signed" if ctx.accel.operand_format == "int8" else "exact"


def compatible_library(ctx: EvalContext) -> list[str]:
    """Library multipliers usable with the context's operand format (sign-magnitude: unsigned designs)."""
    out = []
    for n in library.library_names():
        d = library.resolve(n)
        if (ctx.accel.operand_format == "int8") == d.signed:
            out.append(n)
    return out


def multiplier_cost(name: str, metric: str = "transistors") -> float | None:
    """Hardware cost of a multiplier's RTL (library name, or a LUT file whose sidecar names its sources)."""
    check_cost_metric(metric)
    if is_lut_file(name):
        meta = LUT.load(name).meta
        try:
            srcs = recorded_sources(meta, Path(name), f"multiplier {name}")
        except PyapproxError:
            return None  # its RTL is gone or changed: no cost, as for a bare table (never the cost of other RTL)
        if srcs is None:
            return None
        design = HdlDesign.create(srcs, meta["top"], meta.get("params"), meta.get("defines"))
    else:
        d = library.resolve(name)
        design = HdlDesign.create(d.files, d.top, dict(d.params), dict(d.defines))
    return float(hardware_cost(design)[metric])


def unit_cost(costs: dict, multiplier: str, layer: str) -> float | None:
    """A multiplier's cost per MAC on a layer: one figure per multiplier (hardware size), or one per layer
    (``energy``: energy per MAC on that layer's operand stream)."""
    c = costs.get(multiplier)
    return c.get(layer) if isinstance(c, dict) else c


def multiplier_costs(ctx: EvalContext, names, metric: str, progress=False) -> tuple[dict, dict]:
    """({name: cost per MAC, or per layer for energy}, {name: uniform vs network energy} for energy, else {})."""
    check_cost_metric(metric)
    if metric != "energy":
        return {m: multiplier_cost(m, metric) for m in names}, {}
    from pyapprox.experiments.power import energy_costs  # Yosys netlists and stream capture: only when asked

    say = (lambda m: print(f"energy: simulating {m}", flush=True)) if progress else None
    return energy_costs(ctx, sorted(names), progress=say)


def known_costs(ctx: EvalContext, names, metric: str, progress=False) -> dict:
    """:func:`multiplier_costs`, refusing any multiplier without a cost (a LUT file without its RTL sources)."""
    costs, _ = multiplier_costs(ctx, names, metric, progress)
    unknown = [m for m, c in costs.items() if c is None]
    if unknown:
        raise PyapproxError(f"no hardware cost for {', '.join(unknown)} (a LUT file without its RTL sources)")
    return costs


def plan_cost(assignment: dict[str, str], layers, costs: dict, exact: str) -> float | None:
    """Sum over layers of (cost per MAC of the layer's multiplier on it) x (the layer's MACs at 480x640)."""
    total = 0.0
    for r in layers:
        c = unit_cost(costs, assignment.get(r.name, exact), r.name)
        if c is None:
            return None
        total += c * r.macs
    return total


def _delta(metrics: dict, base: dict) -> dict:
    return {k: metrics[k] - base[k] for k in METRIC_NAMES}


# -- sweep layers ---------------------------------------------------------------------------------------
def sweep_layers(ctx: EvalContext, multiplier: str, selector: str, store, workers=1, scheduler=None,
                 progress=True) -> dict:
    layers = selected_layers(selector, ctx.model)
    jobs = [Job.of({}, panels=2)] + [Job.of({r.name: multiplier}) for r in layers]
    keys = run_jobs(ctx, jobs, store, workers, scheduler, progress, desc=f"sweep layers {multiplier}")
    base = store.get(keys[0])["metrics"]
    rows = []
    for r, k in zip(layers, keys[1:]):
        m = store.get(k)["metrics"]
        rows.append({"layer": r.name, "short": r.short, "kind": r.kind, "macs": r.macs, "key": k, "metrics": m,
                     "delta": _delta(m, base)})
    rows.sort(key=lambda x: x["delta"]["a1"])
    record = {"multiplier": multiplier, "selector": selector, "baseline": {"key": keys[0], "metrics": base},
              "rows": rows, "context": ctx.identity()}
    store.add_run("sweep-layers", record)
    return record


def format_layer_sweep(rec: dict) -> str:
    lines = [f"multiplier {rec['multiplier']} one layer at a time; baseline (exact-quantized) "
             + " ".join(f"{k}={v:.4f}" for k, v in rec["baseline"]["metrics"].items()),
             f"{'rank':>4} {'layer':<20} {'kind':<5} {'MACs':>13} " + "".join(f"{'d' + k:>9}" for k in METRIC_NAMES)]
    for i, r in enumerate(rec["rows"], 1):
        lines.append(f"{i:>4} {r['short']:<20} {r['kind']:<5} {r['macs']:>13,} "
                     + "".join(f"{r['delta'][k]:>+9.4f}" for k in METRIC_NAMES))
    return "\n".join(lines)


# -- sweep multipliers ----------------------------------------------------------------------------------
def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[bool]:
    """For (cost, accuracy) points: True where no other point is at most as costly and strictly better
    (or equally good and strictly cheaper)."""
    flags = []
    for i, (c, a) in enumerate(points):
        dominated = False
        for j, (c2, a2) in enumerate(points):
            if j == i:
                continue
            better = a2 > a if higher_is_better else a2 < a
            same = a2 == a
            if c2 <= c and (better or (same and c2 < c)):
                dominated = True
                break
        flags.append(not dominated)
    return flags


def sweep_multipliers(ctx: EvalContext, names: list[str], template: list[tuple[str, str]], store,
                      cost_metric="transistors", accuracy="a1", workers=1, scheduler=None, progress=True) -> dict:
    """Whole-network accuracy of each multiplier applied with ``template`` (rules whose multiplier is the
    placeholder ``{multiplier}``), with its hardware cost."""
    if not names:
        raise PyapproxError("the multiplier list is empty; name at least one (library names or LUT files)")
    check_cost_metric(cost_metric)
    check_metric(accuracy)
    layers = network_layers(ctx.model)
    kinds = rows_layer_set(layers)
    exact = exact_name(ctx)
    plans = {}
    for n in names:
        rules = [(sel, n if m == "{multiplier}" else m) for sel, m in template]
        plans[n] = resolve_plan(rules, kinds)
    jobs = [Job.of({}, panels=2)] + [Job.of(plans[n], panels=1) for n in names]
    keys = run_jobs(ctx, jobs, store, workers, scheduler, progress, desc="sweep multipliers")
    costs, energy = multiplier_costs(ctx, {exact, *[v for p in plans.values() for v in p.values()]}, cost_metric,
                                     progress)
    base = store.get(keys[0])["metrics"]
    rows = []
    for n, k in zip(names, keys[1:]):
        m = store.get(k)["metrics"]
        rows.append({"multiplier": n, "key": k, "metrics": m, "delta": _delta(m, base),
                     "cost": plan_cost(plans[n], layers, costs, exact), "unit_cost": _unit(costs, energy, n)})
    exact_cost = plan_cost({}, layers, costs, exact)
    if exact not in names:  # the baseline row, unless the exact design was named and is a row already
        rows.append({"multiplier": exact, "key": keys[0], "metrics": base, "delta": _delta(base, base),
                     "cost": exact_cost, "unit_cost": _unit(costs, energy, exact)})
    if energy:
        _energy_columns(rows, energy)
    known = [r for r in rows if r["cost"] is not None]
    flags = pareto_front([(r["cost"], r["metrics"][accuracy]) for r in known], HIGHER_IS_BETTER[accuracy])
    for r, f in zip(known, flags):
        r["pareto"] = f
    record = {"names": names, "template": template, "cost_metric": cost_metric, "accuracy": accuracy,
              "rows": rows, "baseline": {"key": keys[0], "metrics": base}, "context": ctx.identity()}
    store.add_run("sweep-multipliers", record)
    return record


def _unit(costs: dict, energy: dict, name: str) -> float | None:
    return energy[name]["network"] if energy and energy.get(name) else (None if energy else costs.get(name))


def _energy_columns(rows: list[dict], energy: dict) -> None:
    """Energy per MAC on uniform pairs and on the network's streams, their ranks, and the rows whose rank flips."""
    known = [r for r in rows if energy.get(r["multiplier"])]
    for key in ("uniform", "network"):
        order = sorted(known, key=lambda r: energy[r["multiplier"]][key])
        for rank, r in enumerate(order, 1):
            r[f"energy_{key}"] = energy[r["multiplier"]][key]
            r[f"rank_{key}"] = rank
    for r in known:
        r["rank_flip"] = r["rank_uniform"] != r["rank_network"]


def format_multiplier_sweep(rec: dict) -> str:
    acc = rec["accuracy"]
    lines = [f"{'multiplier':<14} {'cost (' + rec['cost_metric'] + ' x MACs)':>28} {'pareto':>7} "
             + "".join(f"{k:>9}" for k in METRIC_NAMES)]
    for r in sorted(rec["rows"], key=lambda r: (r["cost"] is None, r["cost"] or 0)):
        cost = f"{r['cost']:.4g}" if r["cost"] is not None else "unknown"
        lines.append(f"{r['multiplier']:<14} {cost:>28} {('*' if r.get('pareto') else ''):>7} "
                     + "".join(f"{r['metrics'][k]:>9.4f}" for k in METRIC_NAMES))
    lines.append(f"* = on the Pareto front of {acc} vs cost")
    rows = [r for r in rec["rows"] if "energy_uniform" in r]
    if rows:
        lines.append("energy per MAC relative to the exact array on uniform pairs (network: MAC-weighted over the "
                     "convs, on the exact-quantized network's operand streams):")
        lines.append(f"{'multiplier':<14} {'uniform':>9} {'rank':>5} {'network':>9} {'rank':>5}")
        for r in sorted(rows, key=lambda r: r["rank_uniform"]):
            lines.append(f"{r['multiplier']:<14} {r['energy_uniform']:>9.3f} {r['rank_uniform']:>5} "
                         f"{r['energy_network']:>9.3f} {r['rank_network']:>5}" + ("  rank flips" if r["rank_flip"] else ""))
    return "\n".join(lines)


# -- search -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    value: float
    relative: bool

    def bound(self, baseline: dict) -> float:
        return self.value * baseline[self.metric] if self.relative else self.value

    def ok(self, metrics: dict, baseline: dict) -> bool:
        b, v = self.bound(baseline), metrics[self.metric]
        return {">=": v >= b, "<=": v <= b, ">": v > b, "<": v < b}[self.op]

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}" + ("*exact" if self.relative else "")

    def never_met(self) -> str | None:
        """Why no network can meet this constraint (whatever the exact network scores), or None."""
        if self.op == "<" and self.value <= 0:
            return f"{self.metric} is never negative"
        if not self.relative and self.metric in FRACTION_METRICS and (
                (self.op == ">=" and self.value > 1) or (self.op == ">" and self.value >= 1)):
            return f"{self.metric} is a fraction of pixels, at most 1"
        return None


_BUDGET = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(\*\s*exact)?\s*$")


def parse_budget(text: str) -> list[Constraint]:
    """``"a1>=0.98*exact"``, ``"rel<=1.1*exact, a1>=0.85"``: metric, comparison, number, optional ``*exact``.

    A constraint no network can meet (``a1>=1.5``, ``rel<0``) is refused here."""
    out = []
    for part in (text or "").split(","):
        m = _BUDGET.match(part)
        if not m:
            raise PyapproxError(f"malformed budget {part.strip()!r}: expected METRIC OP NUMBER[*exact], e.g. "
                                f"'a1>=0.98*exact' or 'rel<=0.2' (metrics: {', '.join(METRIC_NAMES)})")
        metric, op, num, rel = m.groups()
        if metric not in METRIC_NAMES:
            raise PyapproxError(f"budget {part.strip()!r}: unknown metric {metric!r}; valid: {', '.join(METRIC_NAMES)}")
        c = Constraint(metric, op, float(num), bool(rel))
        why = c.never_met()
        if why:
            raise PyapproxError(f"budget {part.strip()!r} can never be met: {why}")
        out.append(c)
    return out


def check_budget_feasible(budget: list[Constraint], base_record: dict, data: str) -> None:
    """Refuse a budget the exact-quantized network (``base_record``, its evaluation) does not meet itself:
    no plan is searched for then, since the empty plan is the search's starting point."""
    base = base_record["metrics"]
    for c in budget:
        if not c.ok(base, base):
            bound = f" (the bound is {c.bound(base):.4f})" if c.relative else ""
            n = base_record.get("images")
            where = f"{n} image{'s' * (n != 1)} of {data}" if isinstance(n, int) else data
            raise PyapproxError(f"budget {c} cannot be met: the exact-quantized network itself has "
                                f"{c.metric}={base[c.metric]:.4f}{bound} on {where}; loosen the budget")


def calibrate(ctx: EvalContext, multipliers: list[str], selector: str, store, metric: str, workers=1,
              scheduler=None, progress=True, validate: int = 24, seed: int = 0) -> dict:
    """A :class:`Predictor` of single-layer degradation of ``metric`` for every (selected layer, multiplier),
    calibrated on measurements: the probe multiplier on every layer (a ``sweep layers`` run), then ``validate``
    further pairs drawn with ``seed`` plus every single-layer evaluation the store already holds, on which the
    rank correlation of predicted and measured degradation is computed (the probe's own layers are fitted, so
    they are left out of it). Returns {"predictor", "measured": {(layer, m): degradation}, "baseline", "record"}."""
    layers = [r.name for r in selected_layers(selector, ctx.model)]
    profile = operand_profile(ctx, evaluator, progress)
    nsr = nsr_table(profile, layers, sorted(set(multipliers)), ctx.accel, progress)
    probe = choose_probe(nsr)
    sweep = sweep_layers(ctx, probe, selector, store, workers, scheduler, progress)
    base = sweep["baseline"]["metrics"]
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def degradation(metrics: dict) -> float:
        return sign * (base[metric] - metrics[metric])

    measured = {(r["layer"], probe): degradation(r["metrics"]) for r in sweep["rows"]}
    floor = 1e-4 * max(abs(base[metric]), 1e-9)
    pred = Predictor(nsr, probe, {layer: measured[(layer, probe)] for layer in layers}, floor)
    others = [(layer, m) for m in sorted(set(multipliers)) if m != probe for layer in layers]
    sample = random.Random(seed).sample(others, min(max(validate, 0), len(others)))
    jobs = [Job.of({layer: m}) for layer, m in others]
    ident, digests = ctx.identity(), lut_digests(jobs)
    held = {pair for pair, j in zip(others, jobs) if store.get(job_key(ident, j, digests)) is not None}
    check = sorted(set(sample) | held, key=others.index)
    keys = run_jobs(ctx, [Job.of({layer: m}) for layer, m in check], store, workers, scheduler, progress,
                    desc="predictor check")
    for pair, k in zip(check, keys):
        measured[pair] = degradation(store.get(k)["metrics"])
    p = [pred.degradation(layer, m) for layer, m in check]
    q = [measured[pair] for pair in check]
    record = {"probe": probe, "metric": metric, "pairs": len(check), "drawn": len(sample), "seed": seed,
              "spearman": rank_correlation(p, q),
              "spearman_nsr": rank_correlation([nsr[m][layer] for layer, m in check], q),
              "check": [{"layer": layer, "multiplier": m, "predicted": a, "measured": b}
                        for (layer, m), a, b in zip(check, p, q)]}
    return {"predictor": pred, "measured": measured, "baseline": base, "record": record,
            "evaluations": len(layers) + 1 + len(check)}


def format_calibration(rec: dict) -> str:
    rho, raw = rec["spearman"], rec["spearman_nsr"]
    f = (lambda v: "n/a" if v is None else f"{v:+.3f}")
    return (f"predictor: probe {rec['probe']} on every layer; on {rec['pairs']} other measured single-layer runs "
            f"the rank correlation of predicted and measured {rec['metric']} loss is {f(rho)} "
            f"(raw error power alone: {f(raw)})")


def search(ctx: EvalContext, budget: list[Constraint], multipliers: list[str], selector: str, store,
           cost_metric="transistors", refine: int = 8, workers=1, scheduler=None, progress=True,
           finetuner=None, finetune_max: int = 3, sensitivity: str = "predicted", validate: int = 24,
           seed: int = 0) -> dict:
    """Assign a multiplier per layer minimising total cost within the budget.

    1. Sensitivity: ``measured``: every (layer, multiplier) alone (the ``sweep layers`` data, from the store when
       present); ``predicted``: the predictor of :func:`calibrate` for the pairs not
       measured (its rank correlation with measurement is printed and stored).
    2. Moves sorted by cost saved per unit of degradation of the budget's first metric.
    3. Bisection on the length of the sorted prefix of moves (later moves on a layer replace earlier ones),
       evaluating whole plans; then up to ``refine`` single moves are tried greedily beyond that prefix.
    Every accepted plan is evaluated on the data, so the result meets the budget by measurement. The exact
    network is evaluated first: a budget it misses itself is refused before any search.
    4. With a ``finetuner`` (:class:`pyapprox.experiments.finetune.PlanFinetuner`): the longer prefixes the
       budget rejected are bisected again, each probe fine-tuned and then measured (at most ``finetune_max``
       fine-tunings); the budget is checked after fine-tuning, against the exact-quantized base network, so a
       plan rejected before may be accepted with its fine-tuned weights.
    """
    if not multipliers:
        raise PyapproxError("the multiplier list is empty")
    if not budget:
        raise PyapproxError("an empty budget; e.g. --budget 'a1>=0.98*exact'")
    check_cost_metric(cost_metric)
    selected_layers(selector, ctx.model)  # an unknown selector fails here, before any evaluation
    all_layers = network_layers(ctx.model)
    exact = exact_name(ctx)
    costs = known_costs(ctx, {exact, *multipliers}, cost_metric, progress)
    base_key = run_jobs(ctx, [Job.of({}, panels=2)], store, 1, scheduler, False)[0]  # the first evaluation
    check_budget_feasible(budget, store.get(base_key), ctx.data)
    primary = budget[0].metric
    sign = 1.0 if HIGHER_IS_BETTER[primary] else -1.0
    if sensitivity not in ("measured", "predicted"):
        raise PyapproxError(f"sensitivity {sensitivity!r}: expected measured or predicted")
    loss: dict[tuple[str, str], float] = {}
    calibration, sens_evals = None, 0
    if sensitivity == "measured":
        sens = {m: sweep_layers(ctx, m, selector, store, workers, scheduler, progress) for m in multipliers}
        base = next(iter(sens.values()))["baseline"]["metrics"]
        for m in multipliers:
            for row in sens[m]["rows"]:
                loss[(row["layer"], m)] = sign * (base[primary] - row["metrics"][primary])
        sens_evals = 1 + sum(len(v["rows"]) for v in sens.values())
    else:
        cal = calibrate(ctx, multipliers, selector, store, primary, workers, scheduler, progress, validate, seed)
        base, calibration, sens_evals = cal["baseline"], cal["record"], cal["evaluations"]
        if progress:
            print(format_calibration(calibration), flush=True)
        for row in selected_layers(selector, ctx.model):
            for m in multipliers:
                loss[(row.name, m)] = cal["measured"].get((row.name, m), cal["predictor"].degradation(row.name, m))
    macs = {r.name: r.macs for r in all_layers}
    moves = []
    for (layer, m), d in loss.items():
        saving = (unit_cost(costs, exact, layer) - unit_cost(costs, m, layer)) * macs[layer]
        if saving <= 0:
            continue
        moves.append((saving / (max(0.0, d) + 1e-6), layer, m, saving))
    moves.sort(key=lambda t: (-t[0], t[1], t[2]))

    def plan_of(ms) -> dict:
        plan: dict[str, str] = {}
        for _, layer, m, _ in ms:
            if layer not in plan or unit_cost(costs, m, layer) < unit_cost(costs, plan[layer], layer):
                plan[layer] = m
        return plan

    evaluated: dict[int, tuple[dict, bool]] = {}

    def check(plan: dict) -> tuple[dict, bool]:
        key = run_jobs(ctx, [Job.of(plan)], store, 1, scheduler, False)[0]
        metrics = store.get(key)["metrics"]
        return metrics, all(c.ok(metrics, base) for c in budget)

    lo, hi = 0, len(moves)  # plan_of(moves[:lo]) meets the budget (the empty plan is the baseline itself)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        metrics, ok = check(plan_of(moves[:mid]))
        evaluated[mid] = (metrics, ok)
        if ok:
            lo = mid
        else:
            hi = mid - 1
    chosen = list(moves[:lo])
    tried = 0
    for mv in moves[lo:]:
        if tried >= refine:
            break
        cand = plan_of(chosen + [mv])
        if cand == plan_of(chosen):
            continue
        tried += 1
        metrics, ok = check(cand)
        if ok:
            chosen.append(mv)
    plan = plan_of(chosen)
    metrics, ok = check(plan)
    if not ok:  # cannot happen unless evaluation is non-deterministic: be explicit rather than silent
        raise PyapproxError("the selected plan does not meet the budget when re-evaluated")
    key = run_jobs(ctx, [Job.of(plan, panels=2)], store, 1, scheduler, False)[0]
    tuned, weights = [], None
    if finetuner is not None:
        flo, fhi = lo, len(moves)
        while flo < fhi and len(tuned) < finetune_max:
            mid = (flo + fhi + 1) // 2
            cand = plan_of(moves[:mid])
            before, _ = check(cand)
            after, meta = finetuner(cand)
            good = all(c.ok(after, base) for c in budget)
            tuned.append({"prefix": mid, "layers": len(cand), "cost": plan_cost(cand, all_layers, costs, exact),
                          "before": before, "after": after, "ok": good, "weights": meta["weights"]})
            if good:
                flo = mid
                plan, metrics, weights = cand, after, meta["weights"]
            else:
                fhi = mid - 1
        if weights is not None:  # the accepted plan's evaluation with its fine-tuned weights
            key = run_jobs(replace(ctx, weights=weights), [Job.of(plan, panels=2)], store, 1, scheduler, False)[0]
    total = plan_cost(plan, all_layers, costs, exact)
    exact_total = plan_cost({}, all_layers, costs, exact)
    record = {"budget": [str(c) for c in budget], "multipliers": multipliers, "selector": selector,
              "plan": plan, "metrics": metrics, "baseline": base, "cost": total, "exact_cost": exact_total,
              "saving": 1 - total / exact_total, "cost_metric": cost_metric, "key": key,
              "evaluations": len(evaluated) + tried + 1, "context": ctx.identity(), "finetuned": tuned,
              "weights": weights, "sensitivity": sensitivity, "sensitivity_evaluations": sens_evals,
              "predictor": calibration}
    store.add_run("search", record)
    return record
