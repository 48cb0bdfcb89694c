"""``pyapprox hw``: hardware cost of a Verilog design (or a library name) from Yosys."""

from __future__ import annotations

import json
import sys

from pyapprox.commands.lut import _kv
from pyapprox.errors import PyapproxError


def configure(p) -> None:
    p.add_argument("sources", nargs="*", metavar="FILE.v")
    p.add_argument("--top", help="top module")
    p.add_argument("--name", help="a library design name instead of sources")
    p.add_argument("--param", action="append", type=_kv, default=[], metavar="NAME=VALUE")
    p.add_argument("--define", action="append", type=_kv, default=[], metavar="NAME=VALUE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true")


def design_from_args(args):
    from pyapprox.sim.hdl import HdlDesign

    if args.name:
        if args.sources or args.top:
            raise PyapproxError("give either --name or FILE.v ... --top, not both")
        from pyapprox.rtl import library

        d = library.resolve(args.name)
        return HdlDesign.create(d.files, d.top, dict(d.params), dict(d.defines))
    if not args.sources or not args.top:
        raise PyapproxError("need Verilog sources and --top MODULE (or --name LIBRARY_NAME)")
    return HdlDesign.create(args.sources, args.top, dict(args.param), dict(args.define))


def run(args) -> int:
    from pyapprox.hw.cost import COST_KEYS, hardware_cost

    design = design_from_args(args)
    cost = hardware_cost(design, use_cache=not args.no_cache)
    if args.json:
        json.dump({"design": design.describe(), **cost}, sys.stdout, indent=2)
        print()
    else:
        print(design.describe())
        for k in COST_KEYS:
            print(f"  {k:<13} {cost[k]}")
    return 0
