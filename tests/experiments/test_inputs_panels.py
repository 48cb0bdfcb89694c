"""Depth panels are a readable grid: each map at least 400 px wide, every prediction beside its error map,
titles naming each variant with its a1/rel on the image, grey where there is no ground truth."""

import matplotlib.axes
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from pyapprox.errors import PyapproxError
from pyapprox.experiments.panels import DEPTH_CMAP, ERROR_CMAP, write_panel


def _longest_run(png: np.ndarray, colour, tol: int = 6) -> tuple[int, int]:
    """(longest horizontal run of ``colour`` in any pixel row, number of rows containing such a run of >= 100)."""
    match = (np.abs(png[..., :3].astype(int) - np.array(colour)) <= tol).all(axis=-1)
    best, rows = 0, 0
    for line in match:
        edges = np.diff(np.concatenate([[0], line.astype(int), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        longest = int(runs.max()) if runs.size else 0
        best = max(best, longest)
        rows += longest >= 100
    return best, rows


def _rgb255(cmap_name: str, x: float):
    return [round(255 * c) for c in colormaps[cmap_name](x)[:3]]


@pytest.fixture
def scene():
    h, w = 48, 64  # tiny on purpose: the maps are drawn at a fixed, readable size whatever the array size
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    gt = np.tile(np.linspace(1.0, 4.0, w, dtype=np.float32), (h, 1))
    gt[:8, :8] = 0  # no ground truth here
    preds = {"float": gt * 1.02 + 0.01, "exact": gt * 0.98 + 0.02, "far": gt + 5.0}
    return rgb, gt, preds


def test_panel_is_a_readable_grid(tmp_path, scene, monkeypatch):
    rgb, gt, preds = scene
    titles = []
    real = matplotlib.axes.Axes.set_title

    def record(self, label, *a, **k):
        titles.append(label)
        return real(self, label, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", record)
    out = write_panel(tmp_path / "p.png", rgb, gt, preds, "tiny image 0")
    png = np.asarray(Image.open(out).convert("RGB"))
    height, width = png.shape[:2]
    assert width >= 2 * 400 and height >= 4 * 300  # two columns; input/gt row plus a row per prediction
    # "far" lies beyond the depth scale (the darkest end) and its error, 5 m everywhere, tops the error scale
    run, rows = _longest_run(png, _rgb255(DEPTH_CMAP, 1.0))
    assert run >= 400 and rows >= 250
    run, rows = _longest_run(png, _rgb255(ERROR_CMAP, 1.0))
    assert run >= 400 and rows >= 250
    assert _longest_run(png, (0xBB, 0xBB, 0xBB), tol=2)[0] >= 40  # the masked corner, grey
    assert titles[:2] == ["input", "ground truth"]
    assert [t.split(":")[0] for t in titles if ": a1 " in t] == ["float", "exact", "far"]
    assert "|far - ground truth|" in titles and "|float - ground truth|" in titles
    assert [t for t in titles if t.startswith("exact:")] == ["exact: a1 1.000, rel 0.011"]  # 2% low + 2 cm: rel = 0.02 mean(|gt-1|/gt)


def test_panel_error_maps_only_for_named_predictions(tmp_path, scene, monkeypatch):
    rgb, gt, preds = scene
    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, *a, **k: (titles.append(t), real(self, t, *a, **k))[1])
    write_panel(tmp_path / "p.png", rgb, gt, {"plan": preds["exact"]}, error_of=["plan"])
    assert titles == ["input", "ground truth", "plan: a1 1.000, rel 0.011", "|plan - ground truth|"]
    titles.clear()
    write_panel(tmp_path / "q.png", rgb, gt, preds, error_of=["far"])
    assert [t for t in titles if t.startswith("|")] == ["|far - ground truth|"]


def test_panel_refuses_mismatched_shapes(tmp_path, scene):
    rgb, gt, preds = scene
    with pytest.raises(PyapproxError, match=r"prediction 'half' has shape \(24, 32\), the ground truth \(48, 64\)"):
        write_panel(tmp_path / "p.png", rgb, gt, {"half": gt[::2, ::2]})
    assert not (tmp_path / "p.png").exists()
