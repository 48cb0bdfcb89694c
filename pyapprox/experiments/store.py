"""The results store: every evaluation keyed by a hash of what it depends on, in one SQLite file.

Keys cover the model weights, the data, the plan, the accelerator config and the LUT digests, so reruns are
skipped and interrupted sweeps resume. Each record is committed in its own transaction, so a crash loses at
most the evaluation in flight and never leaves a torn file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from pyapprox.errors import PyapproxError

SCHEMA = 1
APP = "pyapprox-results"


class ResultStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
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
            raise PyapproxError(f"results file {self.path}: not a pyapprox results store ({exc})") from None
        if meta.get("app") != APP:
            raise PyapproxError(f"results file {self.path}: not a pyapprox results store")
        if meta.get("schema") != str(SCHEMA):
            raise PyapproxError(f"results file {self.path}: written by an incompatible pyapprox version (schema "
                                f"{meta.get('schema')}, this version reads schema {SCHEMA}); use a new file")

    def close(self) -> None:
        self.db.close()

    # -- evaluations ----------------------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        row = self.db.execute("SELECT record FROM evals WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, record: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO evals VALUES (?, ?, ?)", (key, time.time(), json.dumps(record)))

    def evals(self) -> dict[str, dict]:
        return {k: json.loads(r) for k, r in self.db.execute("SELECT key, record FROM evals ORDER BY created")}

    # -- runs (a sweep or search and the evaluation keys it used) ----------------------------------
    def add_run(self, kind: str, record: dict) -> int:
        with self.db:
            cur = self.db.execute("INSERT INTO runs (kind, created, record) VALUES (?, ?, ?)",
                                  (kind, time.time(), json.dumps(record)))
            return int(cur.lastrowid)

    def runs(self, kind: str | None = None) -> list[dict]:
        q = "SELECT id, kind, created, record FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        rows = self.db.execute(q, (kind,) if kind else ()).fetchall()
        return [{"id": i, "kind": k, "created": c, **json.loads(r)} for i, k, c, r in rows]

    # -- artifacts (panel PNGs) ------------------------------------------------------------------
    def put_artifact(self, key: str, name: str, data: bytes) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", (key, name, data))

    def artifacts(self, key: str) -> dict[str, bytes]:
        return {n: bytes(d) for n, d in self.db.execute("SELECT name, data FROM artifacts WHERE key = ?", (key,))}
