"""``pyapprox report RESULTS -o report.html``: one self-contained HTML page of sweeps and searches.

The results store is opened read-only and never modified; the output path is checked before any work.
"""

from __future__ import annotations

from pyapprox import io as pio


def configure(p) -> None:
    p.add_argument("results", help="results store (SQLite) written by sweep/search")
    p.add_argument("-o", "--output", default="results/report.html", help="the HTML file (.html or .htm)")


def run(args) -> int:
    from pyapprox.experiments.report import write_report
    from pyapprox.experiments.store import ResultStore

    output = pio.check_output_path(args.output, "-o/--output", (".html", ".htm"))
    store = ResultStore(args.results, readonly=True)
    try:
        path = write_report(store, output)
    finally:
        store.close()
    print(f"wrote {path}")
    return 0
