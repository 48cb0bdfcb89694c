"""Property: a results store handed to `report` (or reopened by a sweep) yields a report or one PyapproxError
line; never another exception, never a change to the store file, never a file beside it (issue 11)."""

import json
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyapprox.errors import PyapproxError
from pyapprox.experiments.report import write_report
from pyapprox.experiments.store import ResultStore

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
        ["metrics", "plan", "rows", "kind", "a1", "rel", "delta", "name", "key", "multiplier", "x"]), c, max_size=4),
    max_leaves=10)
record_text = json_values.map(json.dumps) | st.text(max_size=20)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _make_store(path, meta, evals, runs, artifacts):
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("CREATE TABLE evals (key TEXT PRIMARY KEY, created REAL, record TEXT)")
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, created REAL, record TEXT)")
        db.execute("CREATE TABLE artifacts (key TEXT, name TEXT, data BLOB, PRIMARY KEY (key, name))")
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        db.executemany("INSERT OR REPLACE INTO evals VALUES (?, 0, ?)", evals)
        db.executemany("INSERT INTO runs (kind, created, record) VALUES (?, 0, ?)", runs)
        db.executemany("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", artifacts)
    db.close()


@SETTINGS
@given(meta=st.fixed_dictionaries({"app": st.sampled_from(["pyapprox-results", "other"]),
                                   "schema": st.sampled_from(["1", "2", "x"])}),
       evals=st.lists(st.tuples(st.text(max_size=5), record_text), max_size=3),
       runs=st.lists(st.tuples(st.sampled_from(["sweep-layers", "sweep-multipliers", "search", "other"]), record_text),
                     max_size=3),
       artifacts=st.lists(st.tuples(st.text(max_size=3), st.text(max_size=5), st.binary(max_size=10)), max_size=2),
       garbage=st.none() | st.binary(max_size=200))
def test_any_store_gives_a_report_or_one_line(tmp_path_factory, meta, evals, runs, artifacts, garbage):
    tmp = tmp_path_factory.mktemp("store")
    user, out = tmp / "user", tmp / "out"
    user.mkdir()
    out.mkdir()
    path = user / "r.sqlite"
    if garbage is not None:
        path.write_bytes(garbage)
    else:
        _make_store(path, meta, evals, runs, artifacts)
    before = path.read_bytes()
    try:
        store = ResultStore(path, readonly=True)
        try:
            write_report(store, out / "report.html")
            store.evals()
        finally:
            store.close()
    except PyapproxError as exc:
        assert exc.message and "\n" not in exc.message, exc.message
        assert not list(out.iterdir())  # nothing half-written
    assert path.read_bytes() == before
    assert sorted(p.name for p in user.iterdir()) == ["r.sqlite"]
