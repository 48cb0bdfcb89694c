"""Summary table of every cocotb bench run (design x parameters x simulator -> pairs, mismatches), then, when
PYAPPROX_SIM_COVERAGE is set (`make sim` sets it), the Verilator line/toggle coverage of rtl/mac and rtl/mult
merged over all the runs (also written to build/sim/coverage/summary.txt and summary.json)."""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("PYAPPROX_CACHE", str(Path(__file__).resolve().parents[1] / "build" / "cache"))

from benchlib import BUILD, RECORDS  # noqa: E402

from pyapprox.sim import coverage  # noqa: E402

if os.environ.get(coverage.ENV, "").strip() == "1":  # workers inherit it: every run collects into one place
    os.environ[coverage.ENV] = str(BUILD / "coverage")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(RECORDS, ignore_errors=True)
        cov_dir = coverage.coverage_dir()
        if cov_dir is not None and cov_dir.is_dir():
            for f in [*cov_dir.glob("*.dat"), *cov_dir.glob("summary.*")]:
                f.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput"):
        return
    _bench_table(terminalreporter)
    cov_dir = coverage.coverage_dir()
    lines = coverage.report(cov_dir) if cov_dir is not None and cov_dir.is_dir() else None
    if lines:
        terminalreporter.section("RTL coverage (Verilator, merged over all runs)")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"written to {cov_dir / 'summary.txt'} and summary.json")


def _bench_table(terminalreporter):
    if not RECORDS.exists():
        return
    recs = sorted((json.loads(p.read_text()) for p in RECORDS.glob("*.json")),
                  key=lambda r: (r["bench"], r["design"], r["simulator"]))
    if not recs:
        return
    tr = terminalreporter
    tr.section("RTL bench summary")
    tr.write_line(f"{'bench':<6} {'design':<18} {'parameters':<30} {'simulator':<10} {'checked':>10} {'mismatches':>10} {'s':>6}")
    for r in recs:
        params = ",".join(f"{k.replace('SM_INNER_PARAMS', 'inner')}={v}".replace("SM_INNER=", "")
                          for k, v in r["params"].items()) or "-"
        mm = "FAILED" if r["mismatches"] < 0 else str(r["mismatches"])
        tr.write_line(f"{r['bench']:<6} {r['design']:<18} {params:<30} {r['simulator']:<10} {r['pairs']:>10,} {mm:>10} {r['seconds']:>6.1f}")
    designs = {(r["bench"], r["design"]) for r in recs}
    total = sum(r["pairs"] for r in recs)
    bad = sum(1 for r in recs if r["mismatches"] != 0)
    tr.write_line(f"{len(designs)} designs/parameter sets, {len(recs)} simulator runs, {total:,} vectors checked, "
                  f"{bad} runs with mismatches")
