"""sweep/search/demo refuse bad options before any evaluation, and search refuses a budget the exact network
misses itself right after evaluating it, before searching."""

import pytest

from pyapprox import cli
from pyapprox.errors import PyapproxError
from pyapprox.experiments import engine, library_table, sweeps
from pyapprox.experiments.engine import EvalContext
from pyapprox.experiments.store import ResultStore
from pyapprox.experiments.sweeps import parse_budget, search

from .helpers import random_weights

LAYERS = "1.conv*"


@pytest.fixture
def no_work(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(sweeps, "run_jobs", boom)
    monkeypatch.setattr(engine, "run_jobs", boom)
    monkeypatch.setattr(library_table, "print_library_table", boom)


def _cli(capsys, *args):
    rc = cli.main([*map(str, args)])
    err = capsys.readouterr().err
    return rc, err.strip()


@pytest.mark.parametrize("option, value, message", [
    ("--cost-metric", "bogus", "--cost-metric 'bogus': unknown cost metric; valid: transistors, gates, ice40_lut4, "
                               "xilinx_lut, energy"),
    ("--accuracy", "acc", "--accuracy 'acc': unknown metric; valid: a1, a2, a3, rel, rms, log10"),
])
def test_sweep_multipliers_checks_metrics_first(tmp_path, capsys, no_work, option, value, message):
    rc, err = _cli(capsys, "sweep", "multipliers", "--names", "trunc6", option, value, "--store",
                   tmp_path / "s.sqlite", "-o", tmp_path / "out", "--quiet")
    assert rc == 2 and err == f"pyapprox sweep: error: {message}"
    assert list(tmp_path.iterdir()) == []  # not even the store was created


def test_search_checks_cost_metric_first(tmp_path, capsys, no_work):
    rc, err = _cli(capsys, "search", "--budget", "a1>=0.5", "--multipliers", "trunc6", "--cost-metric", "area",
                   "--store", tmp_path / "s.sqlite", "--plan-out", tmp_path / "plan.json", "--quiet")
    assert rc == 2 and err.startswith("pyapprox search: error: --cost-metric 'area': unknown cost metric")
    assert list(tmp_path.iterdir()) == []


def test_sweep_outdir_checked_first(tmp_path, capsys, no_work):
    (tmp_path / "afile").write_text("x")
    for kind in (["layers", "--multiplier", "trunc6"], ["multipliers", "--names", "trunc6"]):
        rc, err = _cli(capsys, "sweep", *kind, "--store", tmp_path / "s.sqlite", "-o", tmp_path / "afile")
        assert rc == 2 and err == f"pyapprox sweep: error: -o/--outdir {tmp_path / 'afile'}: exists and is not a directory"
    rc, err = _cli(capsys, "sweep", "layers", "--multiplier", "trunc6", "--store", tmp_path, "-o", tmp_path / "o")
    assert rc == 2 and err == f"pyapprox sweep: error: --store {tmp_path}: is a directory; give a file name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_search_plan_out_checked_first(tmp_path, capsys, no_work):
    common = ["search", "--budget", "a1>=0.5", "--multipliers", "trunc6", "--store", tmp_path / "s.sqlite"]
    rc, err = _cli(capsys, *common, "--plan-out", tmp_path)
    assert rc == 2 and err == f"pyapprox search: error: --plan-out {tmp_path}: is a directory; give a file name ending in .json"
    (tmp_path / "afile").write_text("x")
    rc, err = _cli(capsys, *common, "--plan-out", tmp_path / "afile" / "plan.json")
    assert rc == 2 and "is not a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_demo_outdir_checked_first(tmp_path, capsys, no_work):
    (tmp_path / "afile").write_text("x")
    rc, err = _cli(capsys, "demo", "--outdir", tmp_path / "afile", "--quiet")
    assert rc == 2 and err == f"pyapprox demo: error: --outdir {tmp_path / 'afile'}: exists and is not a directory"


@pytest.mark.parametrize("text, why", [
    ("a1>=1.5", "a1 is a fraction of pixels, at most 1"),
    ("a3>1", "a3 is a fraction of pixels, at most 1"),
    ("rel<0", "rel is never negative"),
    ("a1>=0.9, log10<0*exact", "log10 is never negative"),
])
def test_budget_impossible_on_its_face(text, why):
    with pytest.raises(PyapproxError, match=f"can never be met: {why}$"):
        parse_budget(text)


def test_budget_at_the_limits_is_accepted():
    assert [str(c) for c in parse_budget("a1>=1, rel<=0, a2>=1.5*exact")] == ["a1>=1", "rel<=0", "a2>=1.5*exact"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from pyapprox.nn.config import AccelConfig

    path = random_weights(tmp_path_factory.mktemp("w") / "random.pt")
    return EvalContext.create("synthetic@240x320", 1, path, AccelConfig(calib_images=1))


def test_search_refuses_a_budget_the_exact_network_misses(ctx, tmp_path, monkeypatch):
    calls = []
    real = engine.Evaluator.run

    def counting(self, job):
        calls.append(job)
        return real(self, job)

    monkeypatch.setattr(engine.Evaluator, "run", counting)
    store = ResultStore(tmp_path / "s.sqlite")
    with pytest.raises(PyapproxError) as info:
        search(ctx, parse_budget("a1>=0.9999"), ["trunc6"], LAYERS, store, progress=False)
    base = next(iter(store.evals().values()))["metrics"]
    assert str(info.value) == (f"budget a1>=0.9999 cannot be met: the exact-quantized network itself has "
                               f"a1={base['a1']:.4f} on 1 image of synthetic@240x320; loosen the budget")
    assert len(calls) == 1 and calls[0].plan == ()  # only the exact network was evaluated
    with pytest.raises(PyapproxError, match=r"budget rel<0.5\*exact cannot be met: the exact-quantized network "
                                            r"itself has rel=[0-9.]+ \(the bound is [0-9.]+\)"):
        search(ctx, parse_budget("a1>=0, rel<0.5*exact"), ["trunc6"], LAYERS, store, progress=False)
    assert len(calls) == 1  # the baseline came from the store
