"""``pyapprox power``: energy per MAC and per inference from gate-level switching activity.

Two uses:

* designs (library names, and/or ``--verilog FILE.v ... --top T``): each multiplier's energy per MAC on uniform
  operand pairs and on the network's own operand streams (the exact-quantized network, every conv, or the convs
  ``--layers`` selects), relative to the exact array on uniform pairs; ranks on both, and the designs whose rank
  changes are flagged;
* a plan (``--plan P`` or ``--approx SELECTOR=MULT``): per-conv energy per MAC on the plan's own streams, and the
  energy per inference against the exact network's.

See :mod:`pyapprox.experiments.power` for the streams and :mod:`pyapprox.hw.energy` for the energy model.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyapprox.commands.lut import add_port_args, parse_sign_ports, parse_ties
from pyapprox.errors import PyapproxError

STREAMS = ("both", "uniform", "network")


def configure(p) -> None:
    from pyapprox.commands.cosim import add_image_args
    from pyapprox.commands.eval import add_model_args

    p.add_argument("designs", nargs="*", metavar="DESIGN",
                   help="library multipliers (mbm, trunc6, drum4, ...) or LUT files that record their RTL")
    p.add_argument("--verilog", nargs="+", metavar="FILE.v", help="a user multiplier's Verilog sources (with --top)")
    p.add_argument("--top", help="top module of --verilog")
    add_port_args(p)  # of --verilog
    p.add_argument("--plan", help="a plan file: energy per inference of the plan")
    p.add_argument("--approx", action="append", metavar="SELECTOR=MULTIPLIER", help="plan rules, as for eval")
    p.add_argument("--stream", choices=STREAMS, default="both", help="designs: which streams (default both)")
    p.add_argument("--pe", action="store_true",
                   help="the whole PE of rtl/mac (operand logic, multiplier, accumulator adder and registers, with "
                        "the accelerator's accumulator), relative to the exact multiplier's PE on uniform operands")
    p.add_argument("--layers", action="append", metavar="SELECTOR",
                   help="designs: the convs whose streams count (default every conv)")
    p.add_argument("--liberty", metavar="FILE.lib",
                   help="weigh each gate input by the input-pin capacitance of the library's matching cell "
                        "(default: every gate input is one unit)")
    p.add_argument("--rows", type=int, default=8, help="PE rows of the array (default 8)")
    p.add_argument("--cols", type=int, default=8, help="PE columns of the array (default 8)")
    p.add_argument("--segments", type=int, default=64, help="sampled PE stream segments per conv (default 64)")
    p.add_argument("--min-pairs", type=int, default=256, help="operand pairs per segment, at least (default 256)")
    p.add_argument("--pairs", type=int, default=1 << 20, help="uniform operand pairs (default 1048576)")
    p.add_argument("--seed", type=int, default=0, help="seed of the uniform stream and the sampling (default 0)")
    p.add_argument("--pj-per-unit", type=float, help="also print absolute energy: picojoules per exact-uniform MAC")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="designs: uniform vs network bars; plan: energy per conv")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    add_image_args(p, "streamed")
    add_model_args(p)


def _check(args) -> None:
    from pyapprox import io as pio
    from pyapprox.commands.cosim import check_image_args

    plan = bool(args.plan or args.approx)
    if plan and (args.designs or args.verilog):
        raise PyapproxError("give designs or a plan (--plan/--approx), not both")
    if not plan and not args.designs and not args.verilog:
        raise PyapproxError("nothing to measure: name library designs, --verilog FILE.v --top T, or a plan")
    if args.verilog and not args.top:
        raise PyapproxError("--verilog needs --top MODULE")
    if args.verilog and args.pe:
        raise PyapproxError("--pe takes library names or LUT files that record their RTL (`pyapprox lut gen` "
                            "writes one), not --verilog")
    for name, lo, hi in (("rows", 1, 256), ("cols", 1, 256), ("segments", 1, 100000), ("min_pairs", 2, 1 << 24),
                         ("pairs", 2, 1 << 28)):
        v = getattr(args, name)
        if not lo <= v <= hi:
            raise PyapproxError(f"--{name.replace('_', '-')} {v}: expected {lo} to {hi}")
    if args.pj_per_unit is not None and not (args.pj_per_unit > 0 and args.pj_per_unit < 1e6):
        raise PyapproxError(f"--pj-per-unit {args.pj_per_unit}: expected a positive number of picojoules")
    if args.json:
        pio.check_output_path(args.json, "--json", (".json",))
    if args.plot:
        pio.check_output_path(args.plot, "--plot", (".png",))
    check_image_args(args)


def _need_rtl(name: str, design):
    if design is None:
        raise PyapproxError(f"{name}: no RTL for its energy (a LUT file whose sidecar records no sources, or whose "
                            f"sources changed)")
    return design


def _designs(args, fmt: str, caps) -> list:
    from pyapprox.experiments.power import multiplier_design, user_design

    designs = [_need_rtl(n, multiplier_design(n, fmt, caps)) for n in args.designs]
    if args.verilog:
        signs = parse_sign_ports(args.sign_ports)
        designs.append(user_design(args.verilog, args.top, a=args.a, b=args.b, out=args.out,
                                   params=dict(args.param), defines=dict(args.define), ties=parse_ties(args.tie),
                                   sign_ports=signs, signed=args.signed, caps=caps))
    return designs


def run(args) -> int:
    from pyapprox import io as pio
    from pyapprox.commands.cosim import quantized_model_and_image
    from pyapprox.commands.eval import accel_config, check_plan, plan_rules
    from pyapprox.experiments import power as P

    _check(args)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"power: {msg}", flush=True))
    cfg = accel_config(args)
    fmt = cfg.operand_format
    t0 = time.perf_counter()
    caps = None
    if args.liberty:
        from pyapprox.hw.liberty import pin_capacitances

        caps = pin_capacitances(args.liberty)
        say(f"loads from {args.liberty}: " + ", ".join(f"{g} {'/'.join(f'{c:.4g}' for c in v)}"
                                                      for g, v in sorted(caps.items())))
    if args.pe:
        exact = P.pe_design("exact", cfg, caps)
        say(f"reference: the PE with the exact multiplier ({exact.netlist.describe()}) on uniform operands")
        reference = P.pe_energy(exact, P.uniform_pe_stream(fmt, seed=args.seed))
    else:
        exact = P.library_design(P.exact_name(fmt), fmt, caps)
        say(f"reference: {exact.label} ({exact.netlist.describe()}) on {args.pairs} uniform pairs")
        reference = P.uniform_energy(exact, fmt, args.pairs, args.seed)
    out = {"operand_format": fmt, "weight_port": cfg.weight_port, "pe": args.pe, "liberty": args.liberty,
           "reference": {
        "design": exact.label, "gates": exact.gates, "load_units_per_mac": reference.per_transition},
        "pairs": args.pairs, "seed": args.seed, "rows": args.rows, "cols": args.cols, "segments": args.segments,
        "min_pairs": args.min_pairs, "pj_per_unit": args.pj_per_unit}
    if args.plan or args.approx:
        rules = plan_rules(args)
        from pyapprox.nn.plan import approximate, model_layers

        qmodel, image, image_text, kinds = quantized_model_and_image(args, cfg, say)
        check_plan(qmodel, rules, cfg)
        assignment = approximate(qmodel, rules)
        designs = {"exact": exact}
        for mult in sorted(set(assignment.values()) - {"exact"}):
            designs[mult] = (P.pe_design(mult, cfg, caps) if args.pe
                             else _need_rtl(mult, P.multiplier_design(mult, fmt, caps)))
        say(f"capturing every conv's PE streams on {image_text}")
        streams = P.network_streams(qmodel, image, None, args.rows, args.cols, args.segments, args.min_pairs,
                                    args.seed)
        names = model_layers(qmodel)
        result = P.plan_energy(assignment, streams, designs, reference, fmt, cfg.weight_port, names.short)
        base = P.plan_energy({}, streams, designs, reference, fmt, cfg.weight_port, names.short)
        result["exact_energy_same_streams"] = base["energy"]
        out.update({"image": image_text, "rules": [list(r) for r in rules], "plan": result})
        if args.pe:
            print("whole PEs (operand logic, multiplier, accumulator adder and registers); 1.0 = the exact "
                  "multiplier's PE on uniform operands")
        _print_plan(result, args.pj_per_unit)
        if args.plot:
            _plot_plan(result, Path(args.plot))
    else:
        designs = None if args.pe else _designs(args, fmt, caps)
        streams = None
        if args.stream != "uniform":
            qmodel, image, image_text, kinds = quantized_model_and_image(args, cfg, say, args.layers or ())
            names = None
            if args.layers:
                from pyapprox.nn.plan import model_layers, select

                picked = {n for sel in args.layers for n in select(sel, kinds)}
                names = [n for n in model_layers(qmodel) if n in picked]
            say(f"capturing PE streams of {len(names) if names else 'every'} conv(s) on {image_text}")
            streams = P.network_streams(qmodel, image, names, args.rows, args.cols, args.segments, args.min_pairs,
                                        args.seed)
            out.update({"image": image_text, "layers": list(streams),
                        "stream_pairs": int(sum(s.pairs for s in streams.values()))})
        if args.pe:
            rows, _ = P.compare_pes(args.designs, cfg, streams if args.stream != "uniform" else None, args.seed,
                                    lambda d: say(f"simulating the PE with {d}"), caps)
        else:
            rows = P.compare_designs(designs, reference, streams, fmt, cfg.weight_port, args.pairs, args.seed,
                                     lambda d: say(f"simulating {d}"))
        if args.stream == "network":
            for r in rows:
                r.pop("uniform"), r.pop("rank_uniform"), r.pop("rank_flip", None)
        out["designs"] = rows
        _print_designs(rows, streams, args.pj_per_unit, args.pe)
        if args.plot:
            _plot_designs(rows, Path(args.plot))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    say(f"done in {out['seconds']:.1f} s")
    if args.json:
        pio.write_json(Path(args.json), out)
    return 0


def _fmt(d: dict | None) -> str:
    if d is None:
        return f"{'-':>16}"
    return f"{d['per_transition']:>8.3f} ±{d['ci95']:<6.3f}"


def _print_designs(rows, streams, pj, pe=False) -> None:
    net = streams is not None
    uni = "uniform" in rows[0]
    if pe:
        print("energy per cycle of the whole PE relative to the PE with the exact array on uniform operands "
              "(95% CI over sampled segments)")
    else:
        print("energy per MAC relative to the exact array on uniform operands (95% CI over sampled segments)")
    if net:
        pairs = sum(s.pairs for s in streams.values())
        print(f"network stream: {len(streams)} conv(s), {pairs} sampled operand pairs, weighted by MACs")
    head = f"{'design':<14}{'gates':>7}" + (f"{'uniform':>17}{'rank':>6}" if uni else "") + \
        (f"{'network':>17}{'rank':>6}" if net else "") + ("  flip" if net and uni else "")
    print(head)
    for r in rows:
        line = f"{r['design']:<14}{r['gates']:>7}"
        if uni:
            line += f" {_fmt(r['uniform'])}{r['rank_uniform']:>6}"
        if net:
            line += f" {_fmt(r['network'])}{r['rank_network']:>6}"
        if net and uni:
            line += "  <-" if r["rank_flip"] else ""
        print(line)
    if pj:
        print(f"(x {pj} pJ per unit: " + ", ".join(
            f"{r['design']} {r['network' if net else 'uniform']['per_transition'] * pj:.3f} pJ/MAC" for r in rows)
            + ")")


def _print_plan(result, pj) -> None:
    print(f"{'conv':<22}{'multiplier':<14}{'MACs':>13}{'E/MAC':>9}{'±95%':>8}{'share':>8}")
    for r in result["layers"]:
        print(f"{r['short']:<22}{r['multiplier']:<14}{r['macs']:>13,}{r['energy_per_mac']:>9.3f}"
              f"{r['ci95']:>8.3f}{r['share'] * 100:>7.1f}%")
    base = result["exact_energy_same_streams"]
    print(f"energy per inference: {result['energy'] / 1e9:.4f} G units ± {result['ci95'] / 1e9:.4f} "
          f"({result['energy_per_mac']:.3f} per MAC over {result['macs']:,} MACs); the exact multiplier on the same "
          f"streams: {base / 1e9:.4f} G units ({result['energy'] / base:.3f}x)")
    if pj:
        print(f"= {result['energy'] * pj / 1e6:.3f} uJ per inference at {pj} pJ per unit")


def _plot_designs(rows, path: Path) -> None:
    from pyapprox.experiments.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    for k, (key, colour) in enumerate((("uniform", "#999999"), ("network", "#1f77b4"))):
        if key in rows[0]:
            ax.bar([x + (k - 0.5) * 0.4 for x in xs], [r[key]["per_transition"] for r in rows], 0.4,
                   yerr=[r[key]["ci95"] for r in rows], color=colour, label=key, capsize=2)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xticks(list(xs), [r["design"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel("energy per MAC (exact, uniform = 1)")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _plot_plan(result, path: Path) -> None:
    from pyapprox.experiments.plots import _plt, _save

    plt = _plt()
    rows = result["layers"]
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(rows) + 2), 3.6))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(sorted({r["multiplier"] for r in rows}))}
    ax.bar(range(len(rows)), [r["energy"] / 1e6 for r in rows], color=[colours[r["multiplier"]] for r in rows])
    for m, c in colours.items():
        ax.bar([0], [0], color=c, label=m)
    ax.set_xlabel("conv (forward order)")
    ax.set_ylabel("energy (M units)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
