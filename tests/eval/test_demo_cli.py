"""`pyapprox demo` end to end on a few synthetic test images with the committed weights."""

import json
import os
import subprocess
import sys


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyapprox", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ))


def test_demo_prints_tables_and_writes_json_and_panels(tmp_path):
    out = tmp_path / "results"
    r = _cli("demo", "--limit", 2, "--float-images", 3, "--multipliers", "trunc6", "drum4", "--panels", 2,
             "--outdir", out, "--quiet")
    assert r.returncode == 0, r.stderr
    for row in ("float", "exact", "trunc6 @ encoder", "drum4 @ encoder"):
        assert row in r.stdout
    assert "float32 on synthetic:test: 3 images" in r.stdout
    res = json.loads((out / "demo.json").read_text())
    assert res["float_whole_split"]["images"] == 3 and res["data"]["images"] == 2
    assert set(res["variants"]) == {"float", "exact", "trunc6 @ encoder", "drum4 @ encoder"}
    assert res["multipliers"]["trunc6"]["metrics"]["MAE"] == 80.25  # sum_j (j+1) 2^j / 4 over the dropped columns j < 6
    # the approximate rows are computed, not copied: DRUM-4 in every encoder layer changes the predictions
    assert res["variants"]["drum4 @ encoder"]["metrics"] != res["variants"]["exact"]["metrics"]
    assert sorted(p.name for p in out.glob("panel_*.png")) == ["panel_000.png", "panel_001.png"]
    assert not list(out.glob("*.tmp*"))


def test_demo_refuses_empty_multiplier_list(tmp_path):
    r = _cli("demo", "--multipliers", "--outdir", tmp_path)
    assert r.returncode != 0
    assert "at least one" in (r.stderr + r.stdout) and "Traceback" not in r.stderr
