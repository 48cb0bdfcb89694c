"""``pyapprox demo``: the main job on the embedded default."""

from __future__ import annotations


def configure(p) -> None:
    p.add_argument("--outdir", default="results", help="where tables, panels and JSON go")


def run(args) -> int:
    from pyapprox.experiments.library_table import print_library_table

    print_library_table()
    return 0
