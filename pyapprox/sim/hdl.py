"""A Verilog design as the user names it (files, top, parameters, macros) and its interface.

The interface is read with Yosys after parameters are applied, so port widths that depend on
parameters, non-ANSI port lists and multi-file hierarchies are all handled by a real front end.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.sim import tools

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
# integers, sized/based literals (8'd3, 4'sb1010, 'hFF) and simple strings
_LITERAL = re.compile(r"""^(-?\d+|\d*'[sS]?[bBoOdDhH][0-9a-fA-F_]+|"[^"\\\n]*")$""")

# Yosys cell types that hold state: a design containing any of them is not combinational.
_STATE_CELLS = re.compile(r"^\$(.*dff.*|.*dlatch.*|sr|mem.*|fsm)$")


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" | "output" | "inout"
    width: int


@dataclass(frozen=True)
class HdlDesign:
    """Sources, top module, HDL parameters and preprocessor macros of one design."""

    sources: tuple[Path, ...]
    top: str
    params: tuple[tuple[str, str], ...] = ()
    defines: tuple[tuple[str, str], ...] = ()
    _ports: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def create(cls, sources, top: str, params=None, defines=None) -> "HdlDesign":
        paths = []
        for s in sources:
            p = Path(s)
            if not p.is_file():
                raise PyapproxError(f"Verilog source {s}: no such file")
            if any(c in str(p) for c in '"\n'):
                raise PyapproxError(f"Verilog source {s}: file names with quotes or newlines are not supported")
            paths.append(p.resolve())
        if not paths:
            raise PyapproxError("no Verilog source files given")
        if not _IDENT.match(top or ""):
            raise PyapproxError(f"top module {top!r} is not a Verilog identifier")
        norm_params = []
        for name, value in dict(params or {}).items():
            value = str(value).strip()
            if not _IDENT.match(name):
                raise PyapproxError(f"parameter name {name!r} is not a Verilog identifier")
            if not _LITERAL.match(value):
                raise PyapproxError(
                    f"parameter {name}={value!r}: expected an integer, a based literal such as 8'd3, or a quoted string")
            norm_params.append((name, value))
        norm_defines = []
        for name, value in dict(defines or {}).items():
            if not _IDENT.match(name) or "\n" in str(value):
                raise PyapproxError(f"macro {name!r}: invalid name or value")
            norm_defines.append((name, str(value)))
        return cls(tuple(paths), top, tuple(norm_params), tuple(norm_defines))

    # -- identity -------------------------------------------------------------------------------
    def source_hashes(self) -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in self.sources}

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.top}" + (f" #({params})" if params else "")

    def where(self) -> str:
        names = ", ".join(p.name for p in self.sources)
        return f"module {self.top} in {names}"

    # -- interface ------------------------------------------------------------------------------
    def ports(self) -> dict[str, Port]:
        """Ports of the top module (after parameters), read with Yosys. Raises on HDL errors."""
        if not self._ports:
            self._ports.update(self._introspect())
        return dict(self._ports["ports"])

    def is_sequential(self) -> list[str]:
        """Names of state-holding cells (flip-flops, latches, memories) in the design; [] if combinational."""
        self.ports()
        return list(self._ports["state_cells"])

    def yosys_read_commands(self) -> list[str]:
        """Yosys commands that read the sources, apply the parameters and elaborate the top module
        (keeping its plain name, which parameterised elaboration would otherwise replace)."""
        lines = []
        for p in self.sources:
            sv = " -sv" if p.suffix.lower() in (".sv", ".svh") else ""
            defs = "".join(f' -D{k}={v}' if v != "" else f" -D{k}" for k, v in self.defines)
            lines.append(f'read_verilog{sv}{defs} "{p}"')
        if self.params:
            sets = " ".join(f"-set {k} {v}" for k, v in self.params)
            lines.append(f"chparam {sets} {self.top}")
        lines += [f"hierarchy -check -top {self.top}", f"rename -top {self.top}"]
        return lines

    def _yosys_script(self, json_path: Path) -> str:
        lines = self.yosys_read_commands() + ["proc", "flatten", "opt_clean", f'write_json "{json_path}"']
        return "\n".join(lines) + "\n"

    def _introspect(self) -> dict:
        yosys = tools.yosys()
        with tempfile.TemporaryDirectory(prefix="pyapprox-yosys-") as tmp:
            tmp = Path(tmp)
            script = tmp / "introspect.ys"
            out_json = tmp / "design.json"
            script.write_text(self._yosys_script(out_json))
            res = subprocess.run([yosys.path, "-q", "-s", str(script)], capture_output=True, text=True,
                                 timeout=600)
            log = (res.stdout + res.stderr).strip()
            if res.returncode != 0 or not out_json.exists():
                raise PyapproxError(f"{self.where()}: {summarise_yosys_error(log, self.top)}", log)
            data = json.loads(out_json.read_text())
        module = data["modules"].get(self.top)
        if module is None:
            raise PyapproxError(f"{self.where()}: module {self.top} not found after elaboration")
        ports = {name: Port(name, info["direction"], len(info["bits"]))
                 for name, info in module["ports"].items()}
        state = sorted({f"{cname} ({cell['type']})" for cname, cell in module.get("cells", {}).items()
                        if _STATE_CELLS.match(cell["type"])})
        return {"ports": ports, "state_cells": state}


def summarise_yosys_error(log: str, top: str) -> str:
    for line in log.splitlines():
        m = re.match(r"^(.*?):(\d+): ERROR: (.*)$", line)
        if m:
            return f"{Path(m.group(1)).name}:{m.group(2)}: {m.group(3)}"
        if line.startswith("ERROR:"):
            msg = line[len("ERROR:"):].strip()
            m = re.search(r"Module `\\?([^']+)' not found", msg) or re.search(r"top module `\\?([^']+)'", msg)
            if m and m.group(1) == top:
                return f"top module {top} is not defined in these files"
            return msg
    return "Yosys failed to read the design"


def format_ports(ports: dict[str, Port]) -> str:
    return ", ".join(f"{p.direction} [{p.width - 1}:0] {p.name}" if p.width > 1 else f"{p.direction} {p.name}"
                     for p in ports.values())
