"""``pyapprox lut``: gen | list | stats | convert | table."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pyapprox.errors import PyapproxError


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def add_port_args(p: argparse.ArgumentParser) -> None:
    """How a user's Verilog multiplier is read: its ports, parameters, macros, ties and operand format (shared by
    ``lut gen`` and ``power``)."""
    p.add_argument("--a", help="operand a port (auto-detected when unambiguous)")
    p.add_argument("--b", help="operand b port")
    p.add_argument("--out", help="product port")
    p.add_argument("--param", action="append", type=_kv, default=[], metavar="NAME=VALUE")
    p.add_argument("--define", action="append", type=_kv, default=[], metavar="NAME=VALUE")
    p.add_argument("--tie", action="append", type=_kv, default=[], metavar="PORT=VALUE",
                   help="hold an extra input port at a constant")
    p.add_argument("--signed", action="store_true", help="operands and output are two's complement")
    p.add_argument("--sign-ports", metavar="A_SIGN,B_SIGN,P_SIGN",
                   help="sign-magnitude design: its 1-bit sign ports (magnitudes are --a/--b/--out)")


def parse_sign_ports(text: str | None) -> tuple[str, str, str] | None:
    """``--sign-ports A_SIGN,B_SIGN,P_SIGN`` as three names (None when not given)."""
    if not text:
        return None
    names = tuple(s.strip() for s in text.split(","))
    if len(names) != 3:
        raise PyapproxError(f"--sign-ports needs three names A_SIGN,B_SIGN,P_SIGN, got {text!r}")
    return names


def parse_ties(pairs) -> dict[str, int]:
    """``--tie PORT=VALUE`` pairs as {port: integer} (decimal, 0x, 0b or 0o)."""
    ties = {}
    for k, v in pairs:
        try:
            ties[k] = int(v, 0)
        except ValueError:
            raise PyapproxError(f"--tie {k}={v}: value must be an integer") from None
    return ties


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lut_cmd", metavar="ACTION")
    sub.required = True

    g = sub.add_parser("gen", help="simulate a Verilog multiplier exhaustively and write its LUT")
    g.add_argument("sources", nargs="*", metavar="FILE.v", help="Verilog sources (all files of the design)")
    g.add_argument("--top", help="top module name")
    g.add_argument("--name", help="a library design name instead of sources (e.g. mbm, trunc4, sm(drum4))")
    add_port_args(g)
    g.add_argument("--sim", choices=["both", "verilator", "icarus"], default="both",
                   help="simulators to run (default both; a table is only trusted when both agree)")
    g.add_argument("--no-cache", action="store_true")
    g.add_argument("-o", "--output", help="output file: .npy (+.json), .bin, .csv or .txt")

    sub.add_parser("list", help="list the library's multiplier names")

    s = sub.add_parser("stats", help="error metrics of a LUT (file or library name)")
    s.add_argument("lut")
    s.add_argument("--signed", action="store_true", help="read a .bin/.csv/.txt table as two's complement")
    s.add_argument("--json", action="store_true")
    s.add_argument("--plot", metavar="PNG", help="write the error heatmap and histogram")

    c = sub.add_parser("convert", help="convert a LUT between formats")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--signed", action="store_true")

    t = sub.add_parser("table", help="library table: metrics and hardware cost (Markdown + scatter plot)")
    t.add_argument("-o", "--outdir", default="results/luts")
    t.add_argument("--names", nargs="*", help="library names (default: the whole library)")
    t.add_argument("--no-hw", action="store_true", help="skip the Yosys cost columns")


def run(args) -> int:
    return {"gen": _gen, "list": _list, "stats": _stats, "convert": _convert, "table": _table}[args.lut_cmd](args)


def _gen(args) -> int:
    from pyapprox.lut.gen import generate
    from pyapprox.lut.library import library_lut

    from pyapprox.io import check_output_path
    from pyapprox.lut.table import FORMATS

    if args.output:
        check_output_path(args.output, "-o", FORMATS)
    t0 = time.perf_counter()
    sims = ("verilator", "icarus") if args.sim == "both" else (args.sim,)
    if args.name:
        if args.sources or args.top:
            raise PyapproxError("give either --name or FILE.v ... --top, not both")
        lut = library_lut(args.name, use_cache=not args.no_cache)
    else:
        if not args.sources or not args.top:
            raise PyapproxError("need Verilog sources and --top MODULE (or --name LIBRARY_NAME)")
        sign_ports = parse_sign_ports(args.sign_ports)
        ties = parse_ties(args.tie)
        lut = generate(args.sources, args.top, a=args.a, b=args.b, out=args.out, params=dict(args.param),
                       defines=dict(args.define), signed=args.signed, sign_ports=sign_ports, ties=ties,
                       simulators=sims, use_cache=not args.no_cache)
    dt = time.perf_counter() - t0
    if args.output:
        lut.save(args.output)
    sims_used = ", ".join(f"{k} {v}" for k, v in lut.meta.get("simulators", {}).items())
    print(f"{lut.name}: {lut.operands} 256x256 table, {lut.out_width}-bit output, "
          f"{'cached' if lut.meta.get('cache') == 'hit' else 'simulated on ' + sims_used} in {dt:.2f} s"
          + (f" -> {args.output}" if args.output else ""))
    return 0


def _list(args) -> int:
    from pyapprox.rtl import library

    print(f"{'name':<14} {'operands':<15} description")
    for name in library.library_names():
        d = library.resolve(name)
        ops = "sign-magnitude" if d.sign_magnitude else ("signed" if d.signed else "unsigned")
        print(f"{name:<14} {ops:<15} {d.description}")
    print(f"\nNames follow a grammar, so other parameter values work too: {library.GRAMMAR}")
    return 0


def _load(spec: str, signed: bool):
    from pyapprox.lut.library import get_lut, is_lut_file
    from pyapprox.lut.table import LUT

    if signed and is_lut_file(spec):
        return LUT.load(spec, operands="signed")
    return get_lut(spec)


def _stats(args) -> int:
    from pyapprox.lut.metrics import METRICS, error_metrics, plot_errors

    from pyapprox.io import check_output_path

    if args.plot:
        check_output_path(args.plot, "--plot", (".png", ".pdf", ".svg"))
    lut = _load(args.lut, args.signed)
    m = error_metrics(lut)
    if args.plot:
        plot_errors(lut, args.plot)
    if args.json:
        json.dump({"name": lut.name, "operands": lut.operands, "digest": lut.digest(), **m}, sys.stdout, indent=2)
        print()
    else:
        print(f"{lut.name} ({lut.operands})")
        for k in METRICS:
            print(f"  {k:<6} {m[k]:.6g}")
    return 0


def _convert(args) -> int:
    from pyapprox.io import check_output_path
    from pyapprox.lut.table import FORMATS

    check_output_path(args.output, "output", FORMATS)
    lut = _load(args.input, args.signed)
    lut.save(args.output)
    print(f"{args.input} -> {args.output}")
    return 0


def _table(args) -> int:
    from pyapprox.experiments.library_table import write_library_table
    from pyapprox.io import check_output_dir

    check_output_dir(args.outdir, "-o")
    write_library_table(Path(args.outdir), names=args.names, with_hw=not args.no_hw)
    return 0
