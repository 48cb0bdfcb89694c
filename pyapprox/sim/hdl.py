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

# What may reach a tool's command line or script (Yosys script, Icarus/Verilator argv, generated Verilog).
# Nothing else is ever pasted into one: names are plain Verilog identifiers (no `$`, no escaped identifiers);
# values are integers, based literals (8'd3, 4'sb1010, 'hFF), identifiers or short quoted words; source
# paths use a portable character set. Anything outside these sets is refused before a tool runs.
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_INT = r"-?\d{1,19}"
_BASED = r"\d{0,3}'[sS]?(?:[bB][01xXzZ_]+|[oO][0-7xXzZ_]+|[dD][0-9_]+|[hH][0-9a-fA-F_xXzZ]+)"
_LITERAL = re.compile(rf"""^(?:{_INT}|{_BASED}|"[A-Za-z0-9_.+-]{{0,64}}")$""")
_WORD = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_LIT = rf"""(?:{_INT}|{_BASED}|"[A-Za-z0-9_.+-]{{0,64}}")"""
_OVERRIDE = rf"#\(\.{_WORD}\({_LIT}\)(?:,\.{_WORD}\({_LIT}\))*\)"
_MACRO_VALUE = re.compile(rf"^(?:|{_INT}|{_BASED}|{_WORD}|{_OVERRIDE})$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+,=@~-]+$")
VALUE_RULES = ("an integer, a based literal such as 8'd3 or 'hFF, or a quoted word of letters, digits and _.+-")
MACRO_RULES = ("empty, an integer, a based literal such as 8'd3, an identifier, or a parameter override "
               "#(.NAME(VALUE),...) of such values")
PATH_RULES = "letters, digits and _ . / + , = @ ~ -"

# System tasks that reach the file system or the operating system. A design that calls one is refused before
# any simulator runs: simulating someone else's Verilog must not write, read or execute anything on this machine.
_SYSTEM_TASK = re.compile(r"\$[A-Za-z_][A-Za-z0-9_$]*")
_FORBIDDEN_TASKS = re.compile(
    r"^\$(?:f(?:open|close|write[bho]?|display[bho]?|strobe[bho]?|monitor[bho]?|flush|getc|gets|scanf|read|"
    r"seek|tell|eof|error|putc)|ungetc|rewind|readmem[bh]|writemem[bh]|dump\w*|system|sdf_annotate|save|restart|"
    r"incsave|input|log|nolog|key|nokey|list|scope|showvars|reset)$")
_COMMENTS_STRINGS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"', re.S)


def check_identifier(name, what: str) -> str:
    """``name`` if it is a plain Verilog identifier, else :class:`PyapproxError` naming ``what``."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise PyapproxError(f"{what} {name!r} is not a Verilog identifier (letters, digits and _, not starting "
                            f"with a digit, at most 128 characters)")
    return name


def check_param_value(name: str, value, what: str = "parameter") -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _LITERAL.fullmatch(text):
        raise PyapproxError(f"{what} {name}={value!r}: expected {VALUE_RULES}")
    return text


def check_macro_value(name: str, value, what: str = "macro") -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _MACRO_VALUE.fullmatch(text):
        raise PyapproxError(f"{what} {name}={value!r}: expected {MACRO_RULES}")
    return text


def check_source_path(path, what: str = "Verilog source") -> Path:
    """An existing regular file whose absolute path uses only :data:`PATH_RULES` characters."""
    text = str(path)
    p = Path(text)
    if not p.is_file():
        raise PyapproxError(f"{what} {text}: no such file")
    resolved = p.resolve()
    if not _SAFE_PATH.fullmatch(str(resolved)):
        bad = sorted({c for c in str(resolved) if not _SAFE_PATH.fullmatch(c)})
        raise PyapproxError(f"{what} {text}: its path contains {', '.join(map(repr, bad))}; simulator and Yosys "
                            f"paths may use only {PATH_RULES} (rename or move the file)")
    return resolved


def forbidden_system_tasks(text: str) -> list[str]:
    """File/OS system tasks (``$fopen``, ``$system``, ``$dumpfile``, ``$readmemh`` ...) called in Verilog ``text``
    (comments and string literals ignored)."""
    code = _COMMENTS_STRINGS.sub(" ", text)
    return sorted({t for t in _SYSTEM_TASK.findall(code) if _FORBIDDEN_TASKS.match(t)})


_COMMENTS = re.compile(r'//[^\n]*|/\*.*?\*/', re.S)
_INCLUDE = re.compile(r'`include\s*(\S*)')


def check_sources_safe(paths, max_files: int = 256) -> None:
    """Refuse sources that call file/OS system tasks, directly or in any `include'd file (every branch of
    every `ifdef is read), that paste tokens (``) or that include a file named by a macro or not found."""
    todo = [Path(p) for p in paths]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if len(seen) > max_files:
            raise PyapproxError(f"Verilog source {path}: more than {max_files} files through `include")
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise PyapproxError(f"Verilog source {path}: cannot be read ({exc.strerror})") from None
        bad = forbidden_system_tasks(text)
        if bad:
            raise PyapproxError(f"Verilog source {path}: calls {', '.join(bad)}; system tasks that reach files or "
                                f"the operating system are refused (a multiplier needs none)")
        code = _COMMENTS.sub(" ", text)
        if "``" in code:
            raise PyapproxError(f"Verilog source {path}: macro token pasting (``) is not accepted in designs")
        for arg in _INCLUDE.findall(code):
            m = re.fullmatch(r'"([^"\n]+)"', arg)
            if not m:
                raise PyapproxError(f"Verilog source {path}: `include {arg}: only a quoted file name is accepted")
            cands = [path.parent / m.group(1), Path.cwd() / m.group(1)]
            found = [c for c in cands if c.is_file()]
            if not found:
                raise PyapproxError(f"Verilog source {path}: `include \"{m.group(1)}\": file not found next to "
                                    f"the source or in the current directory")
            todo.extend(c.resolve() for c in found)


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

    def __post_init__(self):
        # every value that reaches a tool is checked here, however the object was built
        for p in self.sources:
            if not _SAFE_PATH.fullmatch(str(p)):
                raise PyapproxError(f"Verilog source {p}: paths may use only {PATH_RULES}")
        check_identifier(self.top, "top module")
        for k, v in self.params:
            check_identifier(k, "parameter name")
            if not _LITERAL.fullmatch(v):
                raise PyapproxError(f"parameter {k}={v!r}: expected {VALUE_RULES}")
        for k, v in self.defines:
            check_identifier(k, "macro name")
            if not _MACRO_VALUE.fullmatch(v):
                raise PyapproxError(f"macro {k}={v!r}: expected {MACRO_RULES}")

    @classmethod
    def create(cls, sources, top: str, params=None, defines=None) -> "HdlDesign":
        paths = [check_source_path(s) for s in sources]
        if not paths:
            raise PyapproxError("no Verilog source files given")
        check_sources_safe(paths)
        check_identifier(top, "top module")
        if not isinstance(params or {}, dict) or not isinstance(defines or {}, dict):
            raise PyapproxError("parameters and macros must be NAME=VALUE mappings")
        norm_params = [(check_identifier(k, "parameter name"), check_param_value(k, v))
                       for k, v in dict(params or {}).items()]
        norm_defines = [(check_identifier(k, "macro name"), check_macro_value(k, v))
                        for k, v in dict(defines or {}).items()]
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
