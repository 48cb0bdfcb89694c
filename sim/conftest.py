"""Summary table of every cocotb bench run (design x parameters x simulator -> pairs, mismatches)."""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("PYAPPROX_CACHE", str(Path(__file__).resolve().parents[1] / "build" / "cache"))

from benchlib import RECORDS  # noqa: E402


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(RECORDS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput") or not RECORDS.exists():
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
