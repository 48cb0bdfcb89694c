"""The JSON sidecar of a ``.npy`` LUT: its schema, validation and digest.

A sidecar travels with a table between people, so it is untrusted input. Every field is checked here
before anything uses it:

* run-steering fields: ``operands`` (operand format), ``out_width`` (1..62, and every table value must fit
  it), ``top``, ``sources`` (path -> SHA-256), ``ports`` (role -> port), ``params``, ``defines``, ``ties``,
  whose names and values obey the same rules as the command line (:mod:`pyapprox.sim.hdl`: Verilog
  identifiers, integer/based-literal values), since they may reach Yosys, Icarus or Verilator again
  (``cosim``, hardware cost);
* descriptive fields (``name``, ``description``, ``simulators``, ``created`` ...): bounded plain text or
  numbers;
* ``digest``: SHA-256 of the arithmetic (operand format + table, :meth:`LUT.digest`), and
  ``sidecar_digest``: SHA-256 over every other field and ``digest``, so that no field can be changed
  without the file saying so.

Unknown fields are refused (a misspelt field must not be silently ignored).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.io import read_json
from pyapprox.sim.hdl import check_identifier, check_macro_value, check_param_value

SIDECAR_VERSION = 2
#: How a table's codes and values are read (see :mod:`pyapprox.lut.table`).
OPERAND_FORMATS = ("unsigned", "signed", "sign-magnitude")
PORT_ROLES = ("a", "b", "out", "a_sign", "b_sign", "out_sign")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TEXT_FIELDS = ("name", "description", "created", "cache_key", "cache", "source")
_STEERING = ("operands", "out_width", "top", "sources", "ports", "params", "defines", "ties")
FIELDS = ("sidecar", "digest", "sidecar_digest", "simulators", "sweep_seconds") + _TEXT_FIELDS + _STEERING
MAX_TEXT = 1000


def sidecar_digest(fields: dict) -> str:
    """SHA-256 over every field except ``sidecar_digest`` itself (canonical JSON)."""
    body = {k: v for k, v in fields.items() if k != "sidecar_digest"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(blob).hexdigest()


def make_sidecar(meta: dict, operands: str, out_width: int, digest: str) -> dict:
    """The sidecar of a table: ``meta``'s fields (validated) plus the arithmetic, both digests."""
    fields = {k: v for k, v in meta.items() if k not in ("operands", "out_width", "digest", "sidecar_digest")}
    fields.update(sidecar=SIDECAR_VERSION, operands=operands, out_width=out_width, digest=digest)
    fields = json.loads(json.dumps(fields, default=str))  # paths etc. as text, as they will be read back
    validate_fields(fields, "LUT metadata")
    fields["sidecar_digest"] = sidecar_digest(fields)
    return fields


def read_sidecar(path: Path) -> dict:
    """Decode and validate a sidecar file; returns its fields (digests checked against the fields)."""
    fields = read_json(path, "LUT sidecar")
    where = f"LUT sidecar {path}"
    if not isinstance(fields, dict):
        raise PyapproxError(f"{where}: expected a JSON object of fields, got a JSON {type(fields).__name__}")
    validate_fields(fields, where)
    for key in ("digest", "sidecar_digest"):
        if key not in fields:
            raise PyapproxError(f"{where}: field {key!r} is missing (write sidecars with `pyapprox lut convert` or "
                                f"`pyapprox lut gen`; a bare table needs no sidecar)")
    if fields.get("sidecar") != SIDECAR_VERSION:
        raise PyapproxError(f"{where}: sidecar version {fields.get('sidecar')!r} is not {SIDECAR_VERSION} "
                            f"(regenerate it with `pyapprox lut gen` or `pyapprox lut convert`)")
    if sidecar_digest(fields) != fields["sidecar_digest"]:
        raise PyapproxError(f"{where}: its fields do not match its sidecar_digest (the file was edited or torn)")
    return fields


def validate_fields(fields: dict, where: str) -> None:
    """Type and value checks of every field; raises :class:`PyapproxError` naming the field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise PyapproxError(f"{where}: unknown field(s) {', '.join(map(repr, unknown[:5]))}; valid fields: "
                            f"{', '.join(FIELDS)}")

    def bad(key, want):
        raise PyapproxError(f"{where}: field {key!r} = {_short(fields[key])}: expected {want}")

    def text(key, value):
        if not isinstance(value, str) or len(value) > MAX_TEXT or "\0" in value:
            bad(key, f"a string of at most {MAX_TEXT} characters")

    def mapping(key):
        if not isinstance(fields[key], dict):
            bad(key, "a JSON object")
        return fields[key]

    for key in _TEXT_FIELDS:
        if key in fields:
            text(key, fields[key])
    if "sidecar" in fields and (type(fields["sidecar"]) is not int):
        bad("sidecar", "an integer format version")
    for key in ("digest", "sidecar_digest"):
        if key in fields and not (isinstance(fields[key], str) and _HEX64.fullmatch(fields[key])):
            bad(key, "64 lower-case hex digits (SHA-256)")
    if "operands" in fields and fields["operands"] not in OPERAND_FORMATS:
        bad("operands", " or ".join(OPERAND_FORMATS))
    if "out_width" in fields and not (type(fields["out_width"]) is int and 1 <= fields["out_width"] <= 62):
        bad("out_width", "an integer from 1 to 62")
    if "sweep_seconds" in fields and not (type(fields["sweep_seconds"]) in (int, float)
                                          and 0 <= fields["sweep_seconds"] < 1e9):
        bad("sweep_seconds", "a non-negative number")
    if "simulators" in fields:
        for k, v in mapping("simulators").items():
            if k not in ("icarus", "verilator"):
                bad("simulators", "keys icarus or verilator")
            text("simulators", v)
    if "top" in fields:
        _named(fields["top"], f"{where}: field 'top':", "module")
    if "sources" in fields:
        srcs = mapping("sources")
        if len(srcs) > 256:
            bad("sources", "at most 256 files")
        for p, digest in srcs.items():
            text("sources", p)
            if not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
                bad("sources", "file path -> SHA-256 (64 hex digits)")
    if "ports" in fields:
        for role, port in mapping("ports").items():
            if role not in PORT_ROLES:
                bad("ports", f"roles among {', '.join(PORT_ROLES)}")
            _named(port, f"{where}: field 'ports' ({role}):", "port")
    if "params" in fields:
        for k, v in mapping("params").items():
            _named(k, f"{where}: field 'params':", "parameter name")
            _checked(check_param_value, k, v, f"{where}: field 'params':")
    if "defines" in fields:
        for k, v in mapping("defines").items():
            _named(k, f"{where}: field 'defines':", "macro name")
            _checked(check_macro_value, k, v, f"{where}: field 'defines':")
    if "ties" in fields:
        for k, v in mapping("ties").items():
            _named(k, f"{where}: field 'ties':", "port")
            if type(v) is not int or not 0 <= v < 2 ** 62:
                bad("ties", "port -> a non-negative integer")


def _named(name, prefix: str, what: str) -> None:
    try:
        check_identifier(name, what)
    except PyapproxError as exc:
        raise PyapproxError(f"{prefix} {exc}") from None


def _checked(fn, k, v, prefix: str) -> None:
    try:
        fn(k, v)
    except PyapproxError as exc:
        raise PyapproxError(f"{prefix} {exc}") from None


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def recorded_sources(meta: dict, lut_path: Path, what: str) -> list[Path] | None:
    """The Verilog files a LUT's sidecar records, each found at its recorded path or next to the LUT (a LUT
    moved with its sources) and only when its SHA-256 matches the record; None when the sidecar records none.

    Raises :class:`PyapproxError` (naming ``what``) when a recorded file is missing or has changed.
    """
    if "top" not in meta or not meta.get("sources"):
        return None
    found = []
    for src, digest in meta["sources"].items():
        cands = [c for c in (Path(src), Path(lut_path).parent / Path(src).name) if c.is_file()]
        if not cands:
            raise PyapproxError(f"{what}: its RTL source {src} (recorded in {Path(lut_path).with_suffix('.json').name}) "
                                f"is missing")
        match = [c for c in cands if hashlib.sha256(c.read_bytes()).hexdigest() == digest]
        if not match:
            raise PyapproxError(f"{what}: RTL source {cands[0]} changed since the LUT was derived from it "
                                f"(SHA-256 differs); regenerate the LUT with `pyapprox lut gen`")
        found.append(match[0].resolve())
    return found
