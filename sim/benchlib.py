"""Shared pytest plumbing for the cocotb benches: build dirs, records for the `make sim` summary."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from pyapprox.errors import PyapproxError
from pyapprox.sim.cocotb_run import run_cocotb

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "sim"
RECORDS = BUILD / "records"
SIMULATORS = ("icarus", "verilator")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_record(bench: str, design: str, params: dict, simulator: str, pairs: int, mismatches: int,
                 seconds: float, extra: dict | None = None) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True)
    rec = {"bench": bench, "design": design, "params": params, "simulator": simulator, "pairs": pairs,
           "mismatches": mismatches, "seconds": round(seconds, 2), **(extra or {})}
    (RECORDS / f"{slug(bench)}-{slug(design)}-{simulator}.json").write_text(json.dumps(rec))


_MULT_CACHE: dict[tuple[str, str], np.ndarray] = {}


def run_mult_bench(name: str, simulator: str) -> np.ndarray:
    """Run the exhaustive multiplier bench for library design ``name``; return the captured table."""
    from pyapprox.rtl.library import resolve

    key = (name, simulator)
    if key in _MULT_CACHE:
        return _MULT_CACHE[key]
    design = resolve(name)
    build_dir = BUILD / "mult" / slug(name) / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    table_file, record_file = build_dir / "table.npy", build_dir / "record.json"
    for f in (table_file, record_file):
        f.unlink(missing_ok=True)
    t0 = time.perf_counter()
    error = None
    try:
        run_cocotb(simulator, design.files, design.top, "mult_bench", ROOT / "sim" / "mult", build_dir,
                   parameters=dict(design.params), defines=dict(design.defines),
                   extra_env={"PYAPPROX_DESIGN": name, "PYAPPROX_TABLE": str(table_file),
                              "PYAPPROX_RECORD": str(record_file)})
    except PyapproxError as exc:
        error = exc
    rec = json.loads(record_file.read_text()) if record_file.exists() else None
    write_record("mult", name, {**dict(design.params), **dict(design.defines)}, simulator, rec["pairs"] if rec else 0,
                 rec["mismatches"] if rec else -1, time.perf_counter() - t0)
    if error is not None:
        first = rec["first"] if rec else "no record written"
        pytest.fail(f"{name} on {simulator}: {error.message}; first mismatches: {first}\n{error.detail or ''}")
    table = np.load(table_file, allow_pickle=False)
    _MULT_CACHE[key] = table
    return table


def mult_cases(top: str, extra: tuple[str, ...] = ()) -> list:
    """Library names whose Verilog top is ``top`` (plus ``extra`` parameter sets), as pytest params
    grouped per design so that xdist keeps a design's runs on one worker."""
    from pyapprox.rtl.library import library_names, resolve

    names = [n for n in library_names() if resolve(n).top == top] + list(extra)
    return [pytest.param(n, marks=pytest.mark.xdist_group(slug(n)), id=n) for n in names]


def check_mult_module(top: str, name: str) -> None:
    """The body of every per-module bench test: both simulators, golden model, and each other."""
    tables = {sim: run_mult_bench(name, sim) for sim in SIMULATORS}
    assert np.array_equal(tables["icarus"], tables["verilator"]), f"{name}: Icarus and Verilator disagree"
