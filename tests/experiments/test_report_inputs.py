"""`pyapprox report` on bad inputs: output paths checked first, damaged stores refused by record, the input
never modified, and the HTML colours a change by whether it is an improvement."""

import json
import os
import re
import sqlite3

import pytest

from pyapprox import cli
from pyapprox.experiments import report as report_mod
from pyapprox.experiments.store import ResultStore

METRICS = {"a1": 0.8, "a2": 0.9, "a3": 0.95, "rel": 0.2, "rms": 0.5, "log10": 0.08}


def _layer_run(delta: dict) -> dict:
    return {"multiplier": "trunc6", "selector": "all", "baseline": {"key": "kb", "metrics": METRICS},
            "rows": [{"layer": "features.1.conv.0", "short": "f1.dw", "kind": "dw", "macs": 1000, "key": "k1",
                      "metrics": METRICS, "delta": delta}],
            "context": {"data": "synthetic", "limit": 1, "weights": "ab" * 32, "config": {}}}


def _search_run() -> dict:
    return {"budget": ["a1>=0.7"], "multipliers": ["trunc6"], "selector": "all", "plan": {"f.1": "trunc6"},
            "metrics": METRICS, "baseline": METRICS, "cost": 90.0, "exact_cost": 100.0, "saving": 0.1,
            "cost_metric": "transistors", "key": "ks", "evaluations": 3, "context": {}}


def _multiplier_run() -> dict:
    rows = [{"multiplier": "trunc6", "key": "k1", "metrics": METRICS, "delta": METRICS, "cost": 90.0,
             "unit_cost": 9.0, "pareto": True},
            {"multiplier": "exact", "key": "kb", "metrics": METRICS, "delta": METRICS, "cost": 100.0,
             "unit_cost": 10.0, "pareto": False}]
    return {"names": ["trunc6"], "template": [["all", "{multiplier}"]], "cost_metric": "transistors",
            "accuracy": "a1", "rows": rows, "baseline": {"key": "kb", "metrics": METRICS}, "context": {}}


@pytest.fixture
def good_store(tmp_path):
    s = ResultStore(tmp_path / "r.sqlite")
    s.add_run("sweep-layers", _layer_run({k: 0.0 for k in METRICS}))
    s.add_run("sweep-multipliers", _multiplier_run())
    s.add_run("search", _search_run())
    s.put("kb", {"metrics": METRICS, "plan": {}})
    s.close()
    return tmp_path / "r.sqlite"


def _report(capsys, *args):
    rc = cli.main(["report", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _no_work(monkeypatch):
    def boom(store):
        raise AssertionError("the report was built before the output path was checked")

    monkeypatch.setattr(report_mod, "build_report", boom)


def test_good_store_reports(good_store, tmp_path, capsys):
    rc, out, err = _report(capsys, good_store, "-o", tmp_path / "out.html")
    assert rc == 0, err
    text = (tmp_path / "out.html").read_text()
    assert "Layer sensitivity: trunc6" in text and "Search: a1&gt;=0.7" in text and "Multipliers" in text


def test_output_directory_refused_before_work(good_store, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    rc, _, err = _report(capsys, good_store, "-o", tmp_path)
    assert rc == 2
    assert err.strip() == f"pyapprox report: error: -o/--output {tmp_path}: is a directory; give a file name ending in .html or .htm"


def test_unwritable_output_refused_before_work(good_store, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    (tmp_path / "afile").write_text("x")
    rc, _, err = _report(capsys, good_store, "-o", tmp_path / "afile" / "report.html")
    assert rc == 2 and "is not a directory" in err and len(err.strip().splitlines()) == 1


def _damage(path, sql, *params):
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, params)
    db.close()


@pytest.mark.parametrize("sql, params, expected", [
    ("UPDATE runs SET record = ? WHERE id = 1", ("{not json",), r"run 1 \(sweep-layers\): .*not valid JSON"),
    ("UPDATE runs SET record = ? WHERE id = 1", ("[1, 2]",), r"run 1 \(sweep-layers\): .*not a JSON object"),
    ("UPDATE runs SET record = ? WHERE id = 2", (json.dumps({**_multiplier_run(), "rows": "garbage"}),),
     r"run 2 \(sweep-multipliers\): 'rows' .*list"),
    ("UPDATE runs SET record = ? WHERE id = 3", (json.dumps({k: v for k, v in _search_run().items() if k != "plan"}),),
     r"run 3 \(search\): 'plan' is missing"),
    ("UPDATE runs SET record = ? WHERE id = 3", (json.dumps({**_search_run(), "cost": "cheap"}),),
     r"run 3 \(search\): 'cost' .*number"),
    ("UPDATE runs SET record = ? WHERE id = 1",
     (json.dumps(_layer_run({**{k: 0.0 for k in METRICS}, "rel": None})),), r"run 1 \(sweep-layers\): 'rows\[0\]\.delta\.rel'"),
    ("UPDATE runs SET record = ? WHERE id = 1", (json.dumps({**_layer_run({}), "baseline": 3}),),
     r"run 1 \(sweep-layers\): 'baseline' .*object"),
    ("INSERT INTO artifacts VALUES ('ks', 'panel_0.png', ?)", ("not bytes",), r"artifact panel_0.png of ks"),
    ("DROP TABLE runs", (), r"cannot be read"),
])
def test_damaged_store_is_one_clear_line(good_store, tmp_path, capsys, sql, params, expected):
    _damage(good_store, sql, *params)
    rc, _, err = _report(capsys, good_store, "-o", tmp_path / "out.html")
    if expected is None:
        assert rc == 0, err
        return
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"pyapprox report: error: results file {good_store}: ")
    assert re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize("record, expected", [
    ("{oops", r"not valid JSON"),
    ("7", r"not a JSON object"),
    (json.dumps({"plan": {}}), r"'metrics' is missing"),
    ('{"metrics": [1]}', r"'metrics' .*object"),
    (json.dumps({"metrics": {**METRICS, "a1": "x"}}), r"'metrics\.a1' .*number"),
])
def test_store_reads_check_evaluation_records(good_store, record, expected):
    """The sweeps read evaluation records through get(): a damaged one is an error naming the store and key."""
    from pyapprox.errors import PyapproxError

    _damage(good_store, "UPDATE evals SET record = ? WHERE key = 'kb'", record)
    s = ResultStore(good_store)
    pattern = f"results file {re.escape(str(good_store))}: evaluation record kb: {expected}"
    with pytest.raises(PyapproxError, match=pattern):
        s.get("kb")
    with pytest.raises(PyapproxError, match=pattern):
        s.evals()
    assert s.get("missing") is None


def _snapshot(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_size


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\0" + b"\0" * 84, b"hello, not a database\n" * 50])
def test_report_on_a_non_store_leaves_it_untouched(tmp_path, capsys, content):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    rc, _, err = _report(capsys, path, "-o", tmp_path / "out.html")
    assert rc == 2
    assert "not a pyapprox results store" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


def test_report_on_a_foreign_sqlite_database_leaves_it_untouched(tmp_path, capsys):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    before = _snapshot(path)
    rc, _, err = _report(capsys, path, "-o", tmp_path / "out.html")
    assert rc == 2 and "not a pyapprox results store" in err
    assert _snapshot(path) == before


def test_report_does_not_modify_a_good_store(good_store, tmp_path, capsys):
    os.utime(good_store, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(good_store)
    files = sorted(p.name for p in tmp_path.iterdir())
    rc, _, err = _report(capsys, good_store, "-o", tmp_path / "out.html")
    assert rc == 0, err
    assert _snapshot(good_store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files + ["out.html"])  # no -wal/-shm left


def test_report_reads_a_store_while_a_sweep_writes_it(good_store, tmp_path, capsys):
    """A live writer (its -wal file present): the report sees the committed runs, including the newest."""
    writer = ResultStore(good_store)
    writer.add_run("search", {**_search_run(), "budget": ["rel<=0.5"]})
    assert (tmp_path / "r.sqlite-wal").exists()
    rc, _, err = _report(capsys, good_store, "-o", tmp_path / "out.html")
    writer.close()
    assert rc == 0, err
    assert "Search: rel&lt;=0.5" in (tmp_path / "out.html").read_text()


def test_readonly_store_refuses_writes(good_store):
    from pyapprox.errors import PyapproxError

    s = ResultStore(good_store, readonly=True)
    assert s.get("kb")["metrics"] == METRICS
    with pytest.raises(PyapproxError, match="opened read-only"):
        s.put("new", {"metrics": METRICS})
    s.close()


def _cell_classes(html_text: str, table_class: str) -> list[str]:
    table = html_text.split(f"<table class='{table_class}'>")[1].split("</table>")[0]
    return re.findall(r'<td class="(\w*)">[+-]', table)


def test_delta_colours_follow_improvement(tmp_path):
    """Lower rel/rms/log10 and higher a1..a3 are improvements (green, class better); the reverse is worse."""
    s = ResultStore(tmp_path / "c.sqlite")
    s.add_run("sweep-layers", _layer_run({"a1": -0.1, "a2": 0.1, "a3": 0.0, "rel": -0.1, "rms": 0.1, "log10": -0.2}))
    text = report_mod.build_report(s)
    assert _cell_classes(text, "ranking") == ["worse", "better", "", "better", "worse", "better"]
    assert ".better { color: #1e8449; }" in text and ".worse { color: #c0392b; }" in text


def test_layer_chart_marks_degradations_red(tmp_path, monkeypatch):
    import matplotlib.axes

    from pyapprox.experiments import plots

    colours = []
    real = matplotlib.axes.Axes.bar

    def record(self, x, height, *a, color=None, **k):
        colours.extend(color)
        return real(self, x, height, *a, color=color, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", record)
    rec = _layer_run({})
    rec["rows"] = [{**rec["rows"][0], "short": s, "delta": {"a1": d, "rel": d}} for s, d in (("x", -0.1), ("y", 0.1))]
    plots.layer_sweep_chart(rec, tmp_path / "a1.png", "a1")
    plots.layer_sweep_chart(rec, tmp_path / "rel.png", "rel")
    assert colours == ["#c0392b", "#2e86c1", "#2e86c1", "#c0392b"]  # a1 falling is worse; rel falling is better
