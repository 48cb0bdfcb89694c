"""Build and run a cocotb test module on Icarus Verilog or Verilator (cocotb 2.x runner API).

Verilator builds always get :data:`pyapprox.sim.tools.VERILATOR_SAFE_FLAGS` (``-fno-dfg`` ...).
Output goes to a log file in the build directory; on failure its tail is attached to the error.
When ``PYAPPROX_SIM_COVERAGE`` is set (see :mod:`pyapprox.sim.coverage`), Verilator builds add line and toggle
coverage and each run's ``coverage.dat`` is moved, under a unique name, into the coverage directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.sim import coverage, tools
from pyapprox.sim.hdl import check_identifier, check_macro_value, check_param_value, check_source_path


def run_cocotb(simulator: str, sources, top: str, test_module: str, test_dir: Path, build_dir: Path,
               parameters: dict | None = None, defines: dict | None = None,
               extra_env: dict | None = None) -> Path:
    """Build ``top`` from ``sources`` and run ``test_module``; return the results XML. Raises on failure.

    Names must be Verilog identifiers and values integers or the literal/macro forms of
    :mod:`pyapprox.sim.hdl` (checked here again, whoever built them): they reach the simulators' command lines.
    """
    check_identifier(top, "top module")
    for k, v in (parameters or {}).items():
        check_identifier(k, "parameter name")
        check_param_value(k, v)
    for k, v in (defines or {}).items():
        check_identifier(k, "macro name")
        check_macro_value(k, v)
    sources = [check_source_path(s) for s in sources]
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    build_args: list[str] = []
    env_overrides: dict[str, str] = {}
    cov_dir = None
    if simulator == "verilator":
        tool = tools.verilator()
        env_overrides = dict(tool.env)  # the runner looks Verilator up on PATH / VERILATOR_ROOT
        build_args = [*tools.VERILATOR_SAFE_FLAGS, "-Wno-TIMESCALEMOD", "-CFLAGS", "-O0"]
        cov_dir = coverage.coverage_dir()
        if cov_dir is not None:
            build_args += list(coverage.VERILATOR_FLAGS)
        _drop_other_mode_objects(build_dir, cov_dir is not None)
    elif simulator == "icarus":
        tools.icarus()
    else:
        raise PyapproxError(f"unknown simulator {simulator!r}; valid: icarus, verilator")
    with _environ(env_overrides):
        return _run(simulator, sources, top, test_module, test_dir, build_dir, parameters, defines, extra_env,
                    build_args, cov_dir)


def _drop_other_mode_objects(build_dir: Path, with_coverage: bool) -> None:
    """Delete a previous Verilator build made with the other coverage setting, so that ``make`` (which goes by
    timestamps) cannot link objects compiled for the other ``VM_COVERAGE``, e.g. cocotb's main, into this one."""
    classes = build_dir / "Vtop_classes.mk"
    if not classes.exists():
        return
    m = re.search(r"^VM_COVERAGE = (\d)", classes.read_text(), re.M)
    if m and m.group(1) == str(int(with_coverage)):
        return
    for pattern in ("Vtop*", "*.o", "*.d", "*.a"):
        for f in build_dir.glob(pattern):
            f.unlink(missing_ok=True)


@contextlib.contextmanager
def _environ(overrides: dict[str, str]):
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(simulator, sources, top, test_module, test_dir, build_dir, parameters, defines, extra_env,
         build_args, cov_dir=None) -> Path:
    from cocotb_tools.runner import get_results, get_runner
    runner = get_runner(simulator)
    build_log = build_dir / "build.log"
    test_log = build_dir / "test.log"
    try:
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=top, build_dir=str(build_dir),
                     parameters=parameters or {}, defines=defines or {}, build_args=build_args,
                     timescale=("1ns", "1ps"), log_file=str(build_log), always=True)
    except (Exception, SystemExit) as exc:  # the runner raises CalledProcessError or SystemExit
        tail = build_log.read_text()[-4000:] if build_log.exists() else str(exc)
        raise PyapproxError(f"{simulator} could not build {top}", tail) from exc
    xml = build_dir / "results.xml"
    if xml.exists():
        xml.unlink()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(test_dir), os.environ.get("PYTHONPATH", "")]))}
    env.update(extra_env or {})
    cov_file = build_dir / "coverage.dat"  # the runner's cwd is test_dir, shared by parallel runs: name it here
    cov_file.unlink(missing_ok=True)
    plusargs = [f"+verilator+coverage+file+{cov_file}"] if cov_dir is not None else []
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=str(build_dir), test_dir=str(test_dir),
                    parameters=parameters or {}, extra_env=env, results_xml=str(xml), plusargs=plusargs,
                    timescale=("1ns", "1ps"), log_file=str(test_log))
    except (Exception, SystemExit) as exc:  # a failing cocotb test makes the runner exit
        tail = test_log.read_text()[-4000:] if test_log.exists() else str(exc)
        raise PyapproxError(f"{simulator} run of {test_module} on {top} failed", tail) from exc
    finally:
        if cov_dir is not None and cov_file.exists():
            cov_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(cov_file, cov_dir / f"{top}-{uuid.uuid4().hex}.dat")
    n, failed = get_results(xml)
    if n == 0 or failed:
        tail = test_log.read_text()[-4000:] if test_log.exists() else ""
        raise PyapproxError(f"{simulator}: {failed} of {n} cocotb tests failed for {top}", tail)
    return xml
