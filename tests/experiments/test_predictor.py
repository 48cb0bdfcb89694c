"""The layer error predictor: against the measured error of real integer convolutions, and in the search."""
import numpy as np
import pytest
import torch

from pyapprox.experiments.engine import EvalContext, Job, job_key, lut_digests
from pyapprox.experiments.predictor import LayerProfile, Predictor, layer_nsr, operand_profile, rank_correlation
from pyapprox.experiments.store import ResultStore
from pyapprox.experiments.sweeps import parse_budget, search
from pyapprox.nn import functional as QF

from .helpers import random_weights

pytestmark = pytest.mark.xdist_group("experiments")


def _random_layer(rng, c, o, k, groups, off):
    """Inputs drawn i.i.d. per channel from skewed per-channel distributions; weights random codes."""
    h = w_ = 16
    probs = rng.dirichlet(np.full(2 * off + 1 if off == 255 else 256, 0.05), size=c)
    x = np.stack([rng.choice(probs.shape[1], size=(h, w_), p=probs[i]) for i in range(c)]) - off
    weights = rng.integers(-100, 101, size=(o, c // groups, k, k))
    return torch.from_numpy(x[None]), torch.from_numpy(weights), probs


@pytest.mark.parametrize("fmt,groups", [("sign-magnitude", 1), ("sign-magnitude", 8), ("int8", 1)])
def test_predicted_error_power_matches_measured_convolutions(fmt, groups):
    """For inputs drawn independently per tap, the predicted accumulator error power over accumulator power
    matches the error of the real convolution (computed by the reference LUT conv) within sampling error."""
    rng = np.random.default_rng(1)
    off = 255 if fmt == "sign-magnitude" else 128
    exact, _ = QF.exact_product_table(fmt)
    n = exact.shape[0]
    bias = rng.integers(-40, 41, size=(n, 1))  # a per-weight bias and random noise: mean and variance terms
    ptable = exact + bias + rng.integers(-300, 301, size=exact.shape)
    c, o, k = 8, 8, 3
    x, w, _ = _random_layer(rng, c, o, k, groups, off)
    xs = torch.cat([_random_layer(np.random.default_rng(s), c, o, k, groups, off)[0] for s in range(2, 40)])
    xs = torch.cat([x, xs])
    approx = QF.lut_conv2d_reference(xs, w, ptable, off, None, 1, 0, 1, groups, 40)[0].double()
    ref = QF.lut_conv2d_reference(xs, w, exact, off, None, 1, 0, 1, groups, 40)[0].double()
    hist = np.stack([np.bincount((xs[:, i] + off).reshape(-1).numpy(), minlength=exact.shape[0])
                     for i in range(c)])
    prof = LayerProfile(hist, w.numpy(), groups, (ref ** 2).mean(dim=(0, 2, 3)).numpy(), off)
    predicted = layer_nsr(prof, ptable)
    measured = float(((approx - ref) ** 2).sum() / (ref ** 2).sum())
    assert measured > 0
    assert abs(predicted / measured - 1) < 0.15, (predicted, measured)
    assert layer_nsr(prof, exact) == 0.0


def test_predictor_gain_composition_and_rank_correlation():
    nsr = {"p": {"l1": 0.01, "l2": 0.1}, "q": {"l1": 0.02, "l2": 0.05}}
    pred = Predictor(nsr, "p", {"l1": 0.004, "l2": -0.001}, floor=1e-4)
    assert pred.degradation("l1", "q") == pytest.approx(0.008)
    assert pred.degradation("l2", "q") == pytest.approx(1e-4 * 0.5)  # a probe that did not move the metric: floor
    assert pred.plan({"l1": "q", "l2": "p"}) == pytest.approx(0.008 + 1e-4)
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2], [1, 2]) is None and rank_correlation([1, 1, 1], [1, 2, 3]) is None


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from pyapprox.nn.config import AccelConfig

    weights = random_weights(tmp_path_factory.mktemp("w") / "random.pt")
    return EvalContext.create("synthetic@240x320", 1, weights, AccelConfig(calib_images=1))


def test_profile_is_cached_and_refuses_nothing_it_cannot_check(ctx, monkeypatch, tmp_path):
    monkeypatch.setenv("PYAPPROX_CACHE", str(tmp_path / "cache"))
    from pyapprox.experiments.engine import Evaluator

    built = []

    def factory(c):
        built.append(c)
        return Evaluator(c)

    a = operand_profile(ctx, factory, progress=False)
    b = operand_profile(ctx, factory, progress=False)
    assert len(built) == 1 and list(a) == list(b)
    for n in a:
        assert np.array_equal(a[n].hist, b[n].hist) and np.array_equal(a[n].weights, b[n].weights)
        assert a[n].hist.sum() > 0 and (a[n].acc_ms >= 0).all()
    (f,) = (tmp_path / "cache" / "profiles").glob("*.npz")
    f.write_bytes(b"not an npz")  # a damaged cache entry is captured again, never trusted
    operand_profile(ctx, factory, progress=False)
    assert len(built) == 2


def test_predicted_search_measures_probe_and_check_pairs_only(ctx, tmp_path):
    """Predicted sensitivity: the probe multiplier on every selected layer plus --check pairs are measured
    (not every pair); the correlation is stored; the accepted plan meets the budget by measurement."""
    store = ResultStore(tmp_path / "r.sqlite")
    mults = ["trunc6", "drum4", "mbm"]
    layers = "[12].conv*"
    rec = search(ctx, parse_budget("rel<=1.5*exact"), mults, layers, store, refine=1, progress=False,
                 validate=2, seed=3)
    cal = rec["predictor"]
    assert rec["sensitivity"] == "predicted" and cal["probe"] in mults and cal["pairs"] == 2
    assert all(r["multiplier"] != cal["probe"] for r in cal["check"])
    from pyapprox.experiments.sweeps import selected_layers

    n_sel = len(selected_layers(layers))
    assert n_sel >= 4
    singles = [r for r in store.evals().values() if len(r["plan"]) == 1]
    measured = {(next(iter(r["plan"])), next(iter(r["plan"].values()))) for r in singles}
    assert len(measured) < 3 * n_sel  # the selected layers x three multipliers would be the measured mode
    assert rec["metrics"]["rel"] <= 1.5 * rec["baseline"]["rel"]
    again = search(ctx, parse_budget("rel<=1.5*exact"), mults, layers, store, refine=1, progress=False,
                   validate=2, seed=3)
    assert again["plan"] == rec["plan"] and again["predictor"]["spearman"] == cal["spearman"]
    assert again["predictor"]["pairs"] == 2  # the store's own single-layer runs join the check; none new here
    ident = ctx.identity()
    jobs = [Job.of({layer: m}) for layer, m in measured]
    d = lut_digests(jobs)
    assert all(store.get(job_key(ident, j, d)) is not None for j in jobs)


def test_pareto_search_measures_a_front_and_the_cli_writes_plans(ctx, tmp_path, monkeypatch, capsys):
    """--pareto: NSGA-II (pymoo) over predicted loss and cost; every returned plan is measured, the front flags
    are the measured ones, and the CLI writes the front's plans, a plot, and the budget's cheapest plan."""
    from pyapprox.cli import main
    from pyapprox.experiments.pareto import pareto_search
    from pyapprox.experiments.sweeps import pareto_front

    store = ResultStore(tmp_path / "r.sqlite")
    rec = pareto_search(ctx, ["trunc6", "drum4"], "[12].conv*", store, metric="a1", points=4, generations=20,
                        population=16, progress=False, validate=2, seed=1)
    plans = rec["plans"]
    assert plans[0]["plan"] == {} and 2 <= len(plans) <= 5
    flags = pareto_front([(p["cost"], p["metrics"]["a1"]) for p in plans], True)
    assert [p["pareto"] for p in plans] == flags and any(flags)
    assert all(store.get(p["key"])["metrics"] == p["metrics"] for p in plans)  # measured, not predicted
    assert rec["optimizer"]["library"] == "pymoo" and store.runs("search-pareto")
    out = tmp_path / "front"
    w = ctx.weights
    rc = main(["search", "--pareto", "3", "--generations", "10", "--multipliers", "trunc6", "drum4",
               "--layers", "[12].conv*", "--check", "2", "--budget", "a1>=0.5*exact", "--data", "synthetic@240x320",
               "--limit", "1", "--weights", w, "--workers", "1", "--quiet",
               "--store", str(tmp_path / "r.sqlite"), "--pareto-out", str(out), "--plan-out", str(tmp_path / "p.json")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG" and list(out.glob("plan_*.json"))
    assert "measured Pareto front" in text and (tmp_path / "p.json").exists()
    assert main(["search", "--multipliers", "trunc6", "--quiet"]) == 2  # no budget and no --pareto
