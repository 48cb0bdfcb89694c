"""Multi-objective plan search: predicted accuracy loss vs hardware cost, by NSGA-II (pymoo); every plan it
returns is then measured on the data, and the Pareto set reported is the measured one.

Decision variables: one integer per selected layer, the index of its option (0 = the exact multiplier, then each
candidate that saves cost there). Objectives, both minimised and additive over layers: the calibrated predicted
loss of the accuracy metric (:class:`pyapprox.experiments.predictor.Predictor`, measured values where the store
holds them) and cost (the multiplier's cost per MAC on the layer x the layer's MACs). The initial population
holds the exact plan and the greedy saving-per-loss prefixes, the rest drawn from ``seed``.
"""

from __future__ import annotations

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import HIGHER_IS_BETTER
from pyapprox.experiments.engine import Job, run_jobs
from pyapprox.experiments.sweeps import (calibrate, check_cost_metric, check_metric, exact_name, known_costs,
                                         network_layers, pareto_front, plan_cost, selected_layers, unit_cost)


def _options(layers, multipliers, costs, exact, cal) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Per layer the option names, and [L, K] predicted loss and cost arrays (padded with +inf)."""
    opts = []
    for r in layers:
        base = unit_cost(costs, exact, r.name)
        opts.append([exact] + [m for m in multipliers if unit_cost(costs, m, r.name) < base])
    k = max(len(o) for o in opts)
    loss = np.full((len(layers), k), np.inf)
    cost = np.full((len(layers), k), np.inf)
    for i, (r, o) in enumerate(zip(layers, opts)):
        for j, m in enumerate(o):
            cost[i, j] = unit_cost(costs, m, r.name) * r.macs
            loss[i, j] = 0.0 if j == 0 else max(0.0, cal["measured"].get(
                (r.name, m), cal["predictor"].degradation(r.name, m)))
    return opts, loss, cost


def _greedy_prefixes(loss, cost, count: int) -> np.ndarray:
    """Plans taking the (layer, option) moves in order of cost saved per predicted loss, at ``count`` lengths."""
    moves = []
    for i in range(loss.shape[0]):
        for j in range(1, loss.shape[1]):
            if np.isfinite(cost[i, j]):
                moves.append(((cost[i, 0] - cost[i, j]) / (loss[i, j] + 1e-9), i, j))
    moves.sort(reverse=True)
    out = []
    for n in np.unique(np.linspace(0, len(moves), count).astype(int)):
        x = np.zeros(loss.shape[0], dtype=int)
        for _, i, j in moves[:n]:
            if cost[i, j] < cost[i, x[i]]:
                x[i] = j
        out.append(x)
    return np.array(out)


def _spread(loss: np.ndarray, points: int) -> list[int]:
    """Indices of up to ``points`` front members evenly spaced in log predicted loss (small losses, where
    acceptable plans lie, get as many measurements as the aggressive end)."""
    key = np.log10(loss + 1e-6 + 1e-3 * float(loss.max()))
    targets = np.linspace(key.min(), key.max(), points)
    return sorted({int(np.argmin(np.abs(key - t))) for t in targets})


def pareto_search(ctx, multipliers: list[str], selector: str, store, cost_metric="transistors", metric="a1",
                  points: int = 8, generations: int = 150, population: int = 80, workers=1, scheduler=None,
                  progress=True, validate: int = 24, seed: int = 0) -> dict:
    """The measured Pareto set of plans (``metric`` vs ``cost_metric``) from ``points`` plans spread along
    NSGA-II's predicted front, plus the exact plan. Returns (and stores as a ``search-pareto`` run) a record with
    every measured plan, its predicted loss, cost, metrics and whether it is on the measured front."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    if not multipliers:
        raise PyapproxError("the multiplier list is empty")
    check_cost_metric(cost_metric)
    check_metric(metric)
    if not 1 <= points <= 64:
        raise PyapproxError(f"--pareto {points}: expected 1 to 64 plans to measure")
    layers = selected_layers(selector, ctx.model)
    all_layers = network_layers(ctx.model)
    exact = exact_name(ctx)
    costs = known_costs(ctx, {exact, *multipliers}, cost_metric, progress)
    cal = calibrate(ctx, multipliers, selector, store, metric, workers, scheduler, progress, validate, seed)
    opts, loss, cost = _options(layers, multipliers, costs, exact, cal)
    upper = np.array([len(o) - 1 for o in opts])
    rows = np.arange(len(layers))

    class PlanProblem(Problem):
        def __init__(self):
            super().__init__(n_var=len(layers), n_obj=2, xl=np.zeros(len(layers)), xu=np.maximum(upper, 1e-9),
                             vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            x = np.minimum(np.rint(X).astype(int), upper)
            out["F"] = np.column_stack([loss[rows, x].sum(1), cost[rows, x].sum(1)])

    rng = np.random.default_rng(seed)
    greedy = _greedy_prefixes(loss, cost, min(population // 2, 40))
    rand = np.floor(rng.random((population - len(greedy), len(layers))) * (upper + 1)).astype(int)
    algorithm = NSGA2(pop_size=population, sampling=np.vstack([greedy, rand]).astype(float),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    res = minimize(PlanProblem(), algorithm, ("n_gen", generations), seed=seed, verbose=False)
    xs = np.minimum(np.rint(np.atleast_2d(res.X)).astype(int), upper)
    f = np.atleast_2d(res.F)
    order = np.argsort(f[:, 1])
    pick = _spread(f[:, 0], points)
    plans = [{r.name: opts[i][x[i]] for i, r in enumerate(layers) if x[i] > 0} for x in xs[pick]]
    jobs = [Job.of({}, panels=2)] + [Job.of(p) for p in plans]
    keys = run_jobs(ctx, jobs, store, workers, scheduler, progress, desc="measure front")
    base = store.get(keys[0])["metrics"]
    exact_total = plan_cost({}, all_layers, costs, exact)
    measured = []
    for p, k, fi in zip([{}] + plans, keys, [np.zeros(2)] + [f[i] for i in pick]):
        total = plan_cost(p, all_layers, costs, exact)
        measured.append({"plan": p, "key": k, "layers": len(p), "predicted_loss": float(fi[0]), "cost": total,
                         "saving": 1 - total / exact_total, "metrics": store.get(k)["metrics"]})
    flags = pareto_front([(m["cost"], m["metrics"][metric]) for m in measured], HIGHER_IS_BETTER[metric])
    for m, fl in zip(measured, flags):
        m["pareto"] = fl
    record = {"metric": metric, "cost_metric": cost_metric, "multipliers": multipliers, "selector": selector,
              "baseline": base, "exact_cost": exact_total, "plans": measured, "predictor": cal["record"],
              "optimizer": {"library": "pymoo", "algorithm": "NSGA2", "generations": generations,
                            "population": population, "seed": seed, "front": f[order].tolist()},
              "evaluations": cal["evaluations"] + len(set(keys)), "context": ctx.identity()}
    store.add_run("search-pareto", record)
    return record


def format_pareto(rec: dict) -> str:
    m = rec["metric"]
    lines = [f"{'layers':>6} {'saving':>8} {'pred. loss':>11} " + f"{m:>8} {'d' + m:>9} {'front':>6}"]
    for p in sorted(rec["plans"], key=lambda p: p["cost"]):
        d = p["metrics"][m] - rec["baseline"][m]
        lines.append(f"{p['layers']:>6} {100 * p['saving']:>7.1f}% {p['predicted_loss']:>11.4f} "
                     f"{p['metrics'][m]:>8.4f} {d:>+9.4f} {'*' if p['pareto'] else '':>6}")
    lines.append(f"* = on the measured Pareto front of {m} vs {rec['cost_metric']} "
                 f"(saving: less {rec['cost_metric']} x MACs than exact)")
    return "\n".join(lines)


def plot_pareto(rec: dict, path) -> None:
    """Measured plans (front highlighted) and the predicted front, accuracy vs cost saving."""
    from pyapprox.experiments.plots import _plt, _save

    plt = _plt()
    m, base = rec["metric"], rec["baseline"][rec["metric"]]
    sign = -1.0 if HIGHER_IS_BETTER[m] else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    front = np.array(rec["optimizer"]["front"])
    predicted = base + sign * front[:, 0]
    if m in ("a1", "a2", "a3"):
        predicted = np.clip(predicted, 0.0, 1.0)
    elif not HIGHER_IS_BETTER[m]:
        predicted = np.minimum(predicted, 4 * max(p["metrics"][m] for p in rec["plans"]))
    ax.plot(100 * (1 - front[:, 1] / rec["exact_cost"]), predicted, ".", color="0.7",
            label="NSGA-II front (predicted, calibrated)")
    pts = rec["plans"]
    for on, style in ((False, dict(color="tab:blue", marker="o", ls="")), (True, dict(color="tab:red", marker="*",
                                                                                        ms=11, ls=""))):
        sel = [p for p in pts if p["pareto"] == on]
        ax.plot([100 * p["saving"] for p in sel], [p["metrics"][m] for p in sel], **style,
                label="measured, on the front" if on else "measured")
    ax.set_xlabel(f"{rec['cost_metric']} x MACs saved vs exact (%)")
    ax.set_ylabel(m)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
