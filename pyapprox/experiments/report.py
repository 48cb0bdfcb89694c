"""One self-contained HTML page from a results store: tables, plots and depth-map panels (inline PNGs)."""

from __future__ import annotations

import base64
import html
import tempfile
import time
from pathlib import Path

from pyapprox import io as pio
from pyapprox.eval.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from pyapprox.experiments import plots
from pyapprox.experiments.store import ANY, METRICS, NUMBER, NUMBER_OR_NULL, MapOf, OneOf, Opt

_CONTEXT = Opt({"data": Opt(ANY), "limit": Opt(ANY), "weights": Opt(ANY), "config": Opt(ANY)})
# what the report (and its plots) read of each kind of run; a run not matching is refused by the store
RUN_SCHEMAS = {
    "sweep-layers": {"multiplier": str, "context": _CONTEXT, "baseline": {"key": str, "metrics": METRICS},
                     "rows": [{"short": str, "kind": str, "macs": NUMBER, "delta": METRICS}]},
    "sweep-multipliers": {"cost_metric": str, "accuracy": OneOf(METRIC_NAMES), "context": _CONTEXT,
                          "rows": [{"multiplier": str, "key": str, "cost": NUMBER_OR_NULL, "pareto": Opt(ANY),
                                    "metrics": METRICS, "energy_uniform": Opt(NUMBER), "energy_network": Opt(NUMBER),
                                    "rank_uniform": Opt(int), "rank_network": Opt(int), "rank_flip": Opt(ANY)}]},
    "search": {"budget": [str], "plan": MapOf(str), "cost": NUMBER, "exact_cost": NUMBER, "saving": NUMBER,
               "evaluations": ANY, "baseline": METRICS, "metrics": METRICS, "key": str, "context": _CONTEXT,
               "weights": Opt(ANY), "finetuned": Opt([{"layers": int, "cost": NUMBER, "before": METRICS,
                                                        "after": METRICS, "ok": ANY, "weights": str}])},
    "finetune": {"plan": MapOf(str), "weights": str, "gradient": str, "steps": int, "data": str,
                 "images": Opt(ANY), "train_seconds": NUMBER, "before": Opt({"exact": METRICS, "plan": METRICS}),
                 "after": Opt({"plan": METRICS}), "curve": [{"step": int, "loss": NUMBER_OR_NULL, "val_a1": Opt(NUMBER)}]},
}

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .8em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
tr.pareto td { background: #fdecea; } .worse { color: #c0392b; } .better { color: #1e8449; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; } .meta { color: #666; font-size: .85em; }
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _png_of(fn, rec) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return fn(rec, Path(d) / "p.png").read_bytes()


def change_class(metric: str, change: float) -> str:
    """CSS class of a metric change: ``better`` (an improvement), ``worse``, or ``""`` (none)."""
    if change == 0:
        return ""
    return "better" if (change > 0) == HIGHER_IS_BETTER[metric] else "worse"


def _metrics_cells(m: dict, delta: bool = False) -> str:
    if not delta:
        return "".join(f"<td>{m[k]:.4f}</td>" for k in METRIC_NAMES)
    return "".join(f'<td class="{change_class(k, m[k])}">{m[k]:+.4f}</td>' for k in METRIC_NAMES)


def build_report(store) -> str:
    """The HTML page of every run in ``store``; a run that is not what pyapprox wrote is a PyapproxError."""
    parts = [f"<h1>pyapprox results</h1><p class='meta'>store {html.escape(str(store.path))}, "
             f"generated {time.strftime('%Y-%m-%d %H:%M')}</p>"]
    runs = store.runs(schemas=RUN_SCHEMAS)
    if not runs:
        parts.append("<p>No sweeps, searches or fine-tuning runs in this store yet.</p>")
    head = "".join(f"<th>{k}</th>" for k in METRIC_NAMES)
    panels_done = set()

    def panels(key, title):
        if key in panels_done:
            return ""
        arts = store.artifacts(key)
        panels_done.add(key)
        if not arts:
            return ""
        return f"<h3>{html.escape(title)}</h3>" + "".join(_img(v, f"{title} {k}") for k, v in sorted(arts.items()))

    for run in runs:
        ctx = run.get("context", {})
        meta = (f"<p class='meta'>data {html.escape(str(ctx.get('data')))} ({html.escape(str(ctx.get('limit')))} "
                f"images), weights sha256 {html.escape(str(ctx.get('weights'))[:12])}, accelerator "
                f"{html.escape(str(ctx.get('config')))}</p>")
        if run["kind"] == "sweep-layers":
            parts.append(f"<h2 id='run{run['id']}'>Layer sensitivity: {html.escape(run['multiplier'])}</h2>{meta}")
            parts.append("<p>Baseline (exact-quantized): " + ", ".join(
                f"{k} {run['baseline']['metrics'][k]:.4f}" for k in METRIC_NAMES) + "</p>")
            parts.append(_img(_png_of(plots.layer_sweep_chart, run), "layer sweep chart"))
            rows = "".join(f"<tr><td>{i}</td><td class='l'>{html.escape(r['short'])}</td>"
                           f"<td class='l'>{html.escape(r['kind'])}</td><td>{r['macs']:,}</td>{_metrics_cells(r['delta'], True)}</tr>"
                           for i, r in enumerate(run["rows"], 1))
            parts.append(f"<table class='ranking'><tr><th>rank</th><th class='l'>layer</th><th class='l'>kind</th>"
                         f"<th>MACs</th>{''.join(f'<th>&Delta;{k}</th>' for k in METRIC_NAMES)}</tr>{rows}</table>")
            parts.append(panels(run["baseline"]["key"], "exact-quantized predictions"))
        elif run["kind"] == "sweep-multipliers":
            parts.append(f"<h2 id='run{run['id']}'>Multipliers: accuracy vs cost</h2>{meta}")
            parts.append(_img(_png_of(plots.pareto_chart, run), "pareto chart"))
            rows = "".join(
                f"<tr class='{'pareto' if r.get('pareto') else ''}'><td class='l'>{html.escape(r['multiplier'])}</td>"
                f"<td>{'%.4g' % r['cost'] if r['cost'] is not None else 'unknown'}</td>"
                f"<td>{'yes' if r.get('pareto') else ''}</td>{_metrics_cells(r['metrics'])}</tr>"
                for r in sorted(run["rows"], key=lambda r: (r["cost"] is None, r["cost"] or 0)))
            parts.append(f"<table class='multipliers'><tr><th class='l'>multiplier</th>"
                         f"<th>cost ({html.escape(run['cost_metric'])} x MACs)</th><th>Pareto</th>{head}</tr>{rows}</table>")
            energy = sorted((r for r in run["rows"] if "energy_uniform" in r), key=lambda r: r["rank_uniform"])
            if energy:
                rows = "".join(
                    f"<tr class='{'pareto' if r.get('rank_flip') else ''}'><td class='l'>{html.escape(r['multiplier'])}"
                    f"</td><td>{r['energy_uniform']:.3f}</td><td>{r['rank_uniform']}</td>"
                    f"<td>{r['energy_network']:.3f}</td><td>{r['rank_network']}</td>"
                    f"<td>{'yes' if r.get('rank_flip') else ''}</td></tr>" for r in energy)
                parts.append("<p>Energy per MAC from gate-level switching activity, relative to the exact array on "
                             "uniform operand pairs: on uniform pairs (EvoApproxLib's stream) and on the network's "
                             "own operand streams (MAC-weighted over the convs). Highlighted: the ranking flips.</p>"
                             "<table class='energy'><tr><th class='l'>multiplier</th><th>uniform</th><th>rank</th>"
                             f"<th>network</th><th>rank</th><th>rank flips</th></tr>{rows}</table>")
            for r in run["rows"]:
                parts.append(panels(r["key"], f"{r['multiplier']} predictions"))
        elif run["kind"] == "search":
            parts.append(f"<h2 id='run{run['id']}'>Search: {html.escape(', '.join(run['budget']))}</h2>{meta}")
            parts.append(f"<p>{len(run['plan'])} approximate layers, cost {run['cost']:.4g} vs exact "
                         f"{run['exact_cost']:.4g} ({100 * run['saving']:.1f}% saved), "
                         f"{html.escape(str(run['evaluations']))} whole-network evaluations.</p>")
            parts.append(f"<table><tr><th class='l'>variant</th>{head}</tr>"
                         f"<tr><td class='l'>exact-quantized</td>{_metrics_cells(run['baseline'])}</tr>"
                         f"<tr><td class='l'>plan</td>{_metrics_cells(run['metrics'])}</tr></table>")
            rows = "".join(f"<tr><td class='l'>{html.escape(l)}</td><td class='l'>{html.escape(m)}</td></tr>"
                           for l, m in run["plan"].items())
            parts.append(f"<table class='plan'><tr><th class='l'>layer</th><th class='l'>multiplier</th></tr>{rows}</table>")
            if run.get("finetuned"):
                rows = "".join(
                    f"<tr><td>{t['layers']}</td><td>{100 * (1 - t['cost'] / run['exact_cost']):.1f}%</td>"
                    f"<td>{t['before']['a1']:.4f}</td><td>{t['after']['a1']:.4f}</td>"
                    f"<td>{'met' if t['ok'] else 'missed'}</td><td class='l'>{html.escape(t['weights'])}</td></tr>"
                    for t in run["finetuned"])
                parts.append("<p>Plans the budget rejected, fine-tuned and measured again:</p><table><tr>"
                             "<th>approximate layers</th><th>saved</th><th>a1 before</th><th>a1 fine-tuned</th>"
                             f"<th>budget</th><th class='l'>weights</th></tr>{rows}</table>")
            if run.get("weights"):
                parts.append(f"<p>The plan uses fine-tuned weights: {html.escape(str(run['weights']))}</p>")
            parts.append(panels(run["key"], "plan predictions"))
        elif run["kind"] == "finetune":
            parts.append(finetune_section(run, head))
    tuned = [r for r in runs if r["kind"] == "finetune" and r.get("before") and r.get("after")]
    if tuned:
        parts.append(finetune_summary(tuned))
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>pyapprox results</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def _plan_text(plan: dict) -> str:
    mults = sorted(set(plan.values()))
    return f"{len(plan)} layers: {', '.join(mults)}" if plan else "exact"


def finetune_section(run: dict, head: str) -> str:
    """One fine-tuning run: before/after table and the training curve."""
    out = [f"<h2 id='run{run['id']}'>Fine-tuning ({html.escape(run['gradient'])}): "
           f"{html.escape(_plan_text(run['plan']))}</h2>",
           f"<p class='meta'>{run['steps']} steps in {run['train_seconds'] / 60:.1f} min; weights "
           f"{html.escape(run['weights'])}; scored on {html.escape(str(run.get('images')))} images of "
           f"{html.escape(run['data'])}</p>"]
    if run.get("before") and run.get("after"):
        b, a = run["before"], run["after"]["plan"]
        delta = {k: a[k] - b["plan"][k] for k in METRIC_NAMES}
        out.append(f"<table><tr><th class='l'>network</th>{head}</tr>"
                   f"<tr><td class='l'>exact-quantized (base weights)</td>{_metrics_cells(b['exact'])}</tr>"
                   f"<tr><td class='l'>plan, base weights</td>{_metrics_cells(b['plan'])}</tr>"
                   f"<tr><td class='l'>plan, fine-tuned</td>{_metrics_cells(a)}</tr>"
                   f"<tr><td class='l'>change by fine-tuning</td>{_metrics_cells(delta, True)}</tr></table>")
    if run["curve"]:
        out.append(_img(_png_of(plots.finetune_curve, run), "fine-tuning curve"))
    return "".join(out)


def finetune_summary(runs: list[dict]) -> str:
    """ste vs lut side by side: a1 before and after, and the share of the a1 lost to the plan won back."""
    rows = []
    for r in sorted(runs, key=lambda r: (_plan_text(r["plan"]), r["gradient"])):
        ex, b, a = r["before"]["exact"]["a1"], r["before"]["plan"]["a1"], r["after"]["plan"]["a1"]
        lost = ex - b
        back = f"{100 * (a - b) / lost:.0f}%" if lost > 1e-9 else "-"
        rows.append(f"<tr><td class='l'>{html.escape(_plan_text(r['plan']))}</td><td class='l'>"
                    f"{html.escape(r['gradient'])}</td><td>{r['steps']}</td><td>{ex:.4f}</td><td>{b:.4f}</td>"
                    f"<td>{a:.4f}</td><td>{back}</td></tr>")
    return ("<h2>Fine-tuning: ste vs lut gradients</h2><table><tr><th class='l'>plan</th><th class='l'>gradient</th>"
            "<th>steps</th><th>a1 exact-quantized</th><th>a1 plan</th><th>a1 fine-tuned</th>"
            "<th>a1 lost won back</th></tr>" + "".join(rows) + "</table>")


def write_report(store, path: Path) -> Path:
    pio.write_text(path, build_report(store))
    return Path(path)
