"""The results store: every evaluation keyed by a hash of what it depends on, in one SQLite file.

Keys cover the model weights, the data, the plan, the accelerator config and the LUT digests, so reruns are
skipped and interrupted sweeps resume. Each record is committed in its own transaction, so a crash loses at
most the evaluation in flight and never leaves a torn file. Records are checked when read: a damaged one
is a :class:`~pyapprox.errors.PyapproxError` naming the store and the record, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.eval.metrics import METRIC_NAMES

SCHEMA = 1
APP = "pyapprox-results"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- record shapes ------------------------------------------------------------------------------------------
class MapOf:
    """Schema of a JSON object whose values all have schema ``value`` (any keys)."""

    def __init__(self, value):
        self.value = value


class Opt:
    """Schema of an object member that may be absent (but, when present, has schema ``inner``)."""

    def __init__(self, inner):
        self.inner = inner


class OneOf:
    """Schema of a string that must be one of ``values``."""

    def __init__(self, values):
        self.values = tuple(values)


NUMBER = "number"
NUMBER_OR_NULL = "number or null"
ANY = "any"
METRICS = {k: NUMBER for k in METRIC_NAMES}
EVAL_RECORD = {"metrics": METRICS}


def _type_name(v) -> str:
    if v is None:
        return "null"
    return {bool: "true/false", int: "number", float: "number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def schema_problem(value, schema, where: str = "") -> str | None:
    """The first way ``value`` departs from ``schema`` as ``"'rows[0].cost' is a string, expected a number"``,
    or None. Schemas: a dict (an object with those members; more are allowed), ``[s]`` (a list of ``s``),
    :class:`MapOf`, :class:`Opt`, :class:`OneOf`, ``str``, ``int``, ``NUMBER``, ``NUMBER_OR_NULL``, ``ANY``."""
    name = f"'{where}'" if where else "the record"

    def wrong(expected: str) -> str:
        return f"{name} is {_type_name(value)}, expected {expected}"

    if schema is ANY:
        return None
    if schema is NUMBER or schema is NUMBER_OR_NULL:
        if _is_number(value) or (schema is NUMBER_OR_NULL and value is None):
            return None
        return wrong("a number" + (" or null" if schema is NUMBER_OR_NULL else ""))
    if schema is str:
        return None if isinstance(value, str) else wrong("a string")
    if schema is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else wrong("an integer")
    if isinstance(schema, OneOf):
        if value in schema.values:
            return None
        return f"{name} is {value!r}, expected one of {', '.join(map(str, schema.values))}"
    if isinstance(schema, (list, MapOf)):  # a list of, or an object whose every value is, one schema
        is_list = isinstance(schema, list)
        if not isinstance(value, list if is_list else dict):
            return wrong("a list" if is_list else "an object")
        inner = schema[0] if is_list else schema.value
        for k, item in (enumerate(value) if is_list else value.items()):
            problem = schema_problem(item, inner, f"{where}[{k}]" if is_list else (f"{where}.{k}" if where else k))
            if problem:
                return problem
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return wrong("an object")
        for k, sub in schema.items():
            optional = isinstance(sub, Opt)
            if k not in value:
                if optional:
                    continue
                return f"'{where + '.' if where else ''}{k}' is missing"
            problem = schema_problem(value[k], sub.inner if optional else sub, f"{where}.{k}" if where else k)
            if problem:
                return problem
        return None
    raise TypeError(f"unknown schema {schema!r}")


# -- the store ------------------------------------------------------------------------------------------------
class ResultStore:
    """One SQLite results file. A missing or 0-byte file becomes a new store, unless ``readonly``: then the
    file must already be a store, and nothing is ever written to it (reports)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise PyapproxError(f"results file {self.path}: " + ("not a file" if self.path.exists() else
                                                                      "no such file"))
            if self.path.stat().st_size == 0:
                raise PyapproxError(f"results file {self.path}: not a pyapprox results store (an empty file)")
            new = False
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            if readonly:
                # without a -wal file no writer is active: immutable=1 reads without creating -wal/-shm files
                live = Path(f"{self.path}-wal").exists()
                uri = self.path.resolve().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
                self.db = sqlite3.connect(uri, uri=True, timeout=60)
            else:
                self.db = sqlite3.connect(self.path, timeout=60)
                self.db.execute("PRAGMA journal_mode=WAL")
            if new:
                with self.db:
                    self.db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
                    self.db.execute("CREATE TABLE evals (key TEXT PRIMARY KEY, created REAL, record TEXT)")
                    self.db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, "
                                    "created REAL, record TEXT)")
                    self.db.execute("CREATE TABLE artifacts (key TEXT, name TEXT, data BLOB, PRIMARY KEY (key, name))")
                    self.db.executemany("INSERT INTO meta VALUES (?, ?)", [("app", APP), ("schema", str(SCHEMA))])
            meta = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "db"):
                self.db.close()
            raise PyapproxError(f"results file {self.path}: not a pyapprox results store ({exc})") from None
        if meta.get("app") != APP:
            self.db.close()
            raise PyapproxError(f"results file {self.path}: not a pyapprox results store")
        if meta.get("schema") != str(SCHEMA):
            self.db.close()
            raise PyapproxError(f"results file {self.path}: written by an incompatible pyapprox version (schema "
                                f"{meta.get('schema')}, this version reads schema {SCHEMA}); use a new file")

    def close(self) -> None:
        self.db.close()

    # -- helpers ----------------------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise PyapproxError(f"results file {self.path}: cannot be read ({exc})") from None

    def _write(self, sql: str, params: tuple) -> int:
        if self.readonly:
            raise PyapproxError(f"results file {self.path}: opened read-only; nothing can be added to it")
        try:
            with self.db:
                return int(self.db.execute(sql, params).lastrowid or 0)
        except sqlite3.DatabaseError as exc:
            raise PyapproxError(f"results file {self.path}: cannot be written ({exc})") from None

    def damaged(self, what: str, problem: str) -> PyapproxError:
        """The error for a record that is not what pyapprox wrote (``what``: "run 3 (search)")."""
        return PyapproxError(f"results file {self.path}: {what}: {problem} (a damaged record; "
                             f"re-run into a new --store)")

    def parse(self, text, what: str, schema=None) -> dict:
        """A record's JSON text as a dict checked against ``schema`` (see :func:`schema_problem`)."""
        try:
            rec = json.loads(text)
        except (TypeError, ValueError):
            raise self.damaged(what, "not valid JSON") from None
        if not isinstance(rec, dict):
            raise self.damaged(what, f"not a JSON object but {_type_name(rec)}")
        problem = schema_problem(rec, schema) if schema is not None else None
        if problem:
            raise self.damaged(what, problem)
        return rec

    # -- evaluations ----------------------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        """The evaluation record of ``key`` (an object with ``metrics``), or None when there is none."""
        rows = self._query("SELECT record FROM evals WHERE key = ?", (key,))
        return self.parse(rows[0][0], f"evaluation record {key}", EVAL_RECORD) if rows else None

    def put(self, key: str, record: dict) -> None:
        self._write("INSERT OR REPLACE INTO evals VALUES (?, ?, ?)", (key, time.time(), json.dumps(record)))

    def evals(self) -> dict[str, dict]:
        rows = self._query("SELECT key, record FROM evals ORDER BY created")
        return {k: self.parse(r, f"evaluation record {k}", EVAL_RECORD) for k, r in rows}

    # -- runs (a sweep or search and the evaluation keys it used) ----------------------------------
    def add_run(self, kind: str, record: dict) -> int:
        return self._write("INSERT INTO runs (kind, created, record) VALUES (?, ?, ?)",
                           (kind, time.time(), json.dumps(record)))

    def runs(self, kind: str | None = None, schemas: dict | None = None) -> list[dict]:
        """Run records in order, each with ``id``, ``kind`` and ``created``; a run whose kind is in ``schemas``
        is checked against that schema (so callers may index it freely)."""
        q = "SELECT id, kind, created, record FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        out = []
        for i, k, c, r in self._query(q, (kind,) if kind else ()):
            rec = self.parse(r, f"run {i} ({k})", (schemas or {}).get(k))
            out.append({**rec, "id": i, "kind": k, "created": c})
        return out

    # -- artifacts (panel PNGs) ------------------------------------------------------------------
    def put_artifact(self, key: str, name: str, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", (key, name, data))

    def artifacts(self, key: str) -> dict[str, bytes]:
        """The PNGs stored for evaluation ``key``, by name."""
        out = {}
        for n, d in self._query("SELECT name, data FROM artifacts WHERE key = ?", (key,)):
            if not isinstance(d, bytes) or not d.startswith(PNG_SIGNATURE):
                raise self.damaged(f"artifact {n} of {key}", f"not a PNG image but {_type_name(d)}")
            out[n] = d
        return out
