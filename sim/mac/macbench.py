"""Shared plumbing of the MAC benches (rtl/mac): build a module with a multiplier, run a cocotb test module
on vectors, return what it recorded, and write a record for the `make sim` summary table."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from benchlib import BUILD, SIMULATORS, slug, write_record

from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.sim.cocotb_run import run_cocotb
from pyapprox.cosim import multiplier_rtl
from pyapprox.sim.mac_array import MAC_DIR

HERE = Path(__file__).resolve().parent

__all__ = ["SIMULATORS", "run_tb", "case", "record", "product_table_of", "mac_sources", "extremes"]


def case(case_id: str, **values):
    """A pytest parameter grouped per case, so that xdist keeps its two simulator runs on one worker."""
    return pytest.param(values, marks=pytest.mark.xdist_group("mac-" + slug(case_id)), id=case_id)


def extremes(operand_format: str) -> list[int]:
    """Directed operand codes: zero, one, the largest magnitudes, both signs."""
    if operand_format == "sign-magnitude":
        return [0, 1, -1, 2, -2, 127, -128, 128, 254, -254, 255, -255]
    return [0, 1, -1, 2, -2, 64, -64, 126, -127, 127, -128]


def product_table_of(name: str, operand_format: str, weight_port: str):
    """The signed product table the number model uses for this multiplier (from its golden model)."""
    from pyapprox.rtl.library import resolve

    lib = "exact_signed" if (name == "exact" and operand_format == "int8") else name
    return QF.product_table(resolve(lib).golden_table(), operand_format, weight_port)


def run_tb(bench: str, case_id: str, simulator: str, files, top: str, tb_module: str, parameters: dict,
           defines: dict, vectors: dict, build_subdir: str | None = None, test_dir: Path = HERE) -> tuple[dict, float]:
    """Build ``top`` and run ``tb_module`` (found in ``test_dir``) on ``vectors``; return (the TB's results,
    seconds)."""
    build_dir = BUILD / "mac" / slug(bench) / slug(build_subdir or case_id) / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    vec, out = build_dir / "vectors.npz", build_dir / "result.npz"
    out.unlink(missing_ok=True)
    np.savez(vec, **vectors)
    t0 = time.perf_counter()
    try:
        run_cocotb(simulator, [str(f) for f in files], top, tb_module, test_dir, build_dir, parameters, defines,
                   {"PYAPPROX_VECTORS": str(vec), "PYAPPROX_STREAM": str(vec), "PYAPPROX_RESULT": str(out)})
    except PyapproxError as exc:
        write_record("mac", f"{bench} {case_id}", parameters, simulator, 0, -1, time.perf_counter() - t0)
        pytest.fail(f"{bench} {case_id} on {simulator}: {exc}")
    with np.load(out) as z:
        res = {k: z[k] for k in z.files}
    return res, time.perf_counter() - t0


def record(bench: str, case_id: str, parameters: dict, simulator: str, checked: int, mismatches: int,
           seconds: float) -> None:
    write_record("mac", f"{bench} {case_id}", parameters, simulator, checked, mismatches, seconds)


def mac_sources(multiplier: str, operand_format: str, *files: str):
    """(Verilog files, macros, multiplier RTL) to build rtl/mac ``files`` with a library multiplier."""
    rtl = multiplier_rtl(multiplier, operand_format)
    return [MAC_DIR / f for f in files] + [Path(s) for s in rtl.sources], rtl.build_defines(), rtl
