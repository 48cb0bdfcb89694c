"""Verilator line and toggle coverage of the RTL, merged over many simulator runs.

Contract:

* ``PYAPPROX_SIM_COVERAGE`` switches coverage on: unset, empty or ``0`` is off; ``1`` means the directory
  ``build/sim/coverage`` under the current directory; anything else is the directory itself
  (:func:`coverage_dir`). :func:`pyapprox.sim.cocotb_run.run_cocotb` then builds Verilator models with
  :data:`VERILATOR_FLAGS` and moves each run's ``coverage.dat`` into that directory under a unique name.
* :func:`parse` reads one ``coverage.dat`` (lines ``C '<\\x01key\\x02value...>' <count>``); points are identified
  by all their keys except the hierarchy ``h`` and the ``page`` (which names the module's parameterization), so
  all instances and parameterizations of a module share points (coverage per source line); :func:`merge` sums
  the counts of several files: a point is covered if its count is positive in any run.
* :func:`summarize` keeps the Verilog files under ``roots`` (every ``*.v`` there is listed, those no run built
  as not simulated). Line coverage is Verilator's line and branch points (statements of procedural blocks,
  ``if``/``else``/``case`` arms, ``?:`` arms; continuous assignments have none): a source line spanned by such
  points (key ``S``, else ``l``) is covered when all of them were hit; the body of a function none of whose
  points was hit (a constant function, evaluated at elaboration) is left out and listed apart. Toggle points
  (one per signal bit and direction) are counted as they are.
* :func:`report` does all of it for a directory of ``*.dat`` files, writes ``summary.txt`` and
  ``summary.json`` there atomically and returns the text lines.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pyapprox.io import write_json, write_text
from pyapprox.rtl import RTL_DIR

ENV = "PYAPPROX_SIM_COVERAGE"
#: Extra Verilator build flags of a coverage build.
VERILATOR_FLAGS = ("--coverage-line", "--coverage-toggle")
DEFAULT_ROOTS = (RTL_DIR / "mac", RTL_DIR / "mult")

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")
_FUNC = re.compile(r"\s*(function|endfunction)\b")
Point = tuple[tuple[str, str], ...]  # sorted (key, value) pairs without "h" and "page"


def coverage_dir() -> Path | None:
    """The directory that collects coverage data, or None when coverage is off (see module docstring)."""
    value = os.environ.get(ENV, "").strip()
    if value in ("", "0"):
        return None
    return Path("build/sim/coverage" if value == "1" else value).resolve()


def parse(path: str | os.PathLike) -> dict[Point, int]:
    """Points of one coverage.dat with their counts (instances of a point summed); malformed lines skipped."""
    points: dict[Point, int] = defaultdict(int)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LINE.match(line)
            if not m:
                continue
            fields = dict(kv.split("\x02", 1) for kv in m.group(1).split("\x01") if "\x02" in kv)
            fields.pop("h", None)
            page = fields.pop("page", "")  # v_line/<module>__<parameters>: one per parameterization
            fields.setdefault("t", page.partition("/")[0].removeprefix("v_"))
            if "f" in fields and "l" in fields:
                points[tuple(sorted(fields.items()))] += int(m.group(2))
    return dict(points)


def merge(paths) -> dict[Point, int]:
    """Sum the counts of every point over several coverage.dat files."""
    total: dict[Point, int] = defaultdict(int)
    for p in paths:
        for point, count in parse(p).items():
            total[point] += count
    return dict(total)


@dataclass
class FileCoverage:
    path: str                                              # as displayed (relative to the base directory)
    simulated: bool = False
    lines: dict[int, bool] = field(default_factory=dict)   # source line -> covered
    toggles: int = 0
    toggles_hit: int = 0
    uncovered_toggles: list[str] = field(default_factory=list)  # "line:signal[bit]:0->1"
    uncalled: list[tuple[int, int, str]] = field(default_factory=list)  # functions left out: (first, last, name)

    @property
    def lines_hit(self) -> int:
        return sum(self.lines.values())

    def uncovered_groups(self) -> list[tuple[int, int]]:
        """Runs of consecutive uncovered lines as (first, last)."""
        groups: list[tuple[int, int]] = []
        for n in sorted(k for k, hit in self.lines.items() if not hit):
            if groups and groups[-1][1] == n - 1:
                groups[-1] = (groups[-1][0], n)
            else:
                groups.append((n, n))
        return groups


def point_lines(fields: dict[str, str]) -> list[int]:
    """The source lines a line/branch point spans (its ``S`` key: ``10-11``, ``19,21-24``; else its ``l``)."""
    out: list[int] = []
    for part in fields.get("S", fields["l"]).split(","):
        lo, _, hi = part.partition("-")
        if lo.strip().isdigit():
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out or [int(fields["l"])]


def summarize(points: dict[Point, int], roots=DEFAULT_ROOTS, base: Path = RTL_DIR.parent) -> list[FileCoverage]:
    """Per-file coverage of the ``*.v`` files under ``roots``, sorted by path."""
    roots = [Path(r).resolve() for r in roots]
    out = {f.resolve(): FileCoverage(os.path.relpath(f.resolve(), base)) for r in roots for f in r.rglob("*.v")}
    hits: dict[Path, dict[int, bool]] = defaultdict(dict)
    for point, count in points.items():
        fields = dict(point)
        f = Path(fields["f"])
        if not f.is_absolute():
            continue  # relative to some build directory: not one of ours
        f = f.resolve()
        if f not in out and not any(f.is_relative_to(r) for r in roots):
            continue
        fc = out.setdefault(f, FileCoverage(os.path.relpath(f, base)))
        fc.simulated = True
        kind = fields["t"]
        if kind == "toggle":
            fc.toggles += 1
            fc.toggles_hit += count > 0
            if count == 0:
                fc.uncovered_toggles.append(f"{fields['l']}:{fields.get('o', '?')}")
        elif kind in ("line", "branch"):
            for n in point_lines(fields):
                hits[f][n] = hits[f].get(n, True) and count > 0
    for f, lines in hits.items():
        for lo, hi, name in _functions(_source(f)):  # never called: a constant function (or dead code)
            inside = [n for n in lines if lo <= n <= hi]
            if inside and not any(lines[n] for n in inside):
                for n in inside:
                    del lines[n]
                out[f].uncalled.append((lo, hi, name))
        out[f].lines = dict(sorted(lines.items()))
    for fc in out.values():
        fc.uncovered_toggles.sort(key=lambda s: (int(s.split(":", 1)[0]), s))
    return sorted(out.values(), key=lambda fc: fc.path)


def _functions(src: list[str]) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of each function of a Verilog source."""
    out, start = [], None
    for n, text in enumerate(src, 1):
        m = _FUNC.match(text)
        if m and m.group(1) == "function" and start is None:
            start, name = n, (re.findall(r"(\w+)\s*[;(]", text) or ["?"])[0]
        elif m and m.group(1) == "endfunction" and start is not None:
            out.append((start, n, name))
            start = None
    return out


def _pct(hit: int, total: int) -> str:
    return f"{100.0 * hit / total:6.1f}%" if total else "      -"


def _source(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def format_summary(files: list[FileCoverage], base: Path = RTL_DIR.parent, width: int = 110) -> list[str]:
    """The coverage table, a total row, then the uncovered lines grouped into runs (file:first-last text)."""
    w = max([len(fc.path) for fc in files] + [4])
    out = [f"{'file':<{w}} {'lines':>11} {'line %':>7} {'toggles':>13} {'toggle %':>8}"]
    for fc in files:
        if not fc.simulated:
            out.append(f"{fc.path:<{w}} {'-':>11} {'-':>7} {'-':>13} {'-':>8}  not simulated")
            continue
        out.append(f"{fc.path:<{w}} {f'{fc.lines_hit}/{len(fc.lines)}':>11} {_pct(fc.lines_hit, len(fc.lines)):>7} "
                   f"{f'{fc.toggles_hit}/{fc.toggles}':>13} {_pct(fc.toggles_hit, fc.toggles):>8}")
    lh, lt = sum(fc.lines_hit for fc in files), sum(len(fc.lines) for fc in files)
    th, tt = sum(fc.toggles_hit for fc in files), sum(fc.toggles for fc in files)
    out.append(f"{'total':<{w}} {f'{lh}/{lt}':>11} {_pct(lh, lt):>7} {f'{th}/{tt}':>13} {_pct(th, tt):>8}")
    uncovered = sum(len(fc.lines) - fc.lines_hit for fc in files)
    out.append(f"uncovered lines: {uncovered}")
    rows = []
    for fc in files:
        src = _source(base / fc.path)
        for lo, hi in fc.uncovered_groups():
            text = " | ".join(src[n - 1].strip() for n in range(lo, hi + 1) if 0 < n <= len(src))
            rows.append((f"{fc.path}:{lo}" + (f"-{hi}" if hi > lo else ""), text))
    lw = max([len(loc) for loc, _ in rows] + [0])
    for loc, text in rows:
        line = f"  {loc:<{lw}}  {text}"
        out.append(line if len(line) <= width else line[:width - 3] + "...")
    if any(fc.uncalled for fc in files):
        out.append("not counted: functions never called at run time (constant functions, evaluated at elaboration):")
        out += [f"  {fc.path}: " + ", ".join(f"{name} {lo}-{hi}" for lo, hi, name in fc.uncalled)
                for fc in files if fc.uncalled]
    return out


def to_json(files: list[FileCoverage]) -> dict:
    return {"files": [{"path": fc.path, "simulated": fc.simulated, "lines": len(fc.lines),
                       "lines_hit": fc.lines_hit, "toggles": fc.toggles, "toggles_hit": fc.toggles_hit,
                       "uncovered_lines": [n for n, hit in fc.lines.items() if not hit],
                       "uncovered_toggles": fc.uncovered_toggles,
                       "uncalled_functions": [{"name": n, "lines": [lo, hi]} for lo, hi, n in fc.uncalled]}
                      for fc in files],
            "lines": sum(len(fc.lines) for fc in files), "lines_hit": sum(fc.lines_hit for fc in files),
            "toggles": sum(fc.toggles for fc in files), "toggles_hit": sum(fc.toggles_hit for fc in files)}


def report(directory: str | os.PathLike, roots=DEFAULT_ROOTS, base: Path = RTL_DIR.parent) -> list[str] | None:
    """Merge every ``*.dat`` of ``directory``, write summary.txt/summary.json there; None if there is no data."""
    directory = Path(directory)
    runs = sorted(directory.glob("*.dat"))
    if not runs:
        return None
    files = summarize(merge(runs), roots, base)
    lines = [f"Verilator coverage of {len(runs)} runs", *format_summary(files, base)]
    write_text(directory / "summary.txt", "\n".join(lines) + "\n")
    write_json(directory / "summary.json", {"runs": len(runs), **to_json(files)})
    return lines
