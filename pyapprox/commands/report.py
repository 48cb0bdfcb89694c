"""``pyapprox report RESULTS -o report.html``: one self-contained HTML page of sweeps and searches."""

from __future__ import annotations

from pathlib import Path


def configure(p) -> None:
    p.add_argument("results", help="results store (SQLite) written by sweep/search")
    p.add_argument("-o", "--output", default="results/report.html")


def run(args) -> int:
    from pyapprox.errors import PyapproxError
    from pyapprox.experiments.report import write_report
    from pyapprox.experiments.store import ResultStore

    if not Path(args.results).is_file():
        raise PyapproxError(f"results file {args.results}: no such file")
    path = write_report(ResultStore(args.results), Path(args.output))
    print(f"wrote {path}")
    return 0
