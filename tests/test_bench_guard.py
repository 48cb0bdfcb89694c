"""bench/bench_model.py --baseline: a configuration whose ratio to float32 grew beyond the tolerance is reported
(and makes the run exit 1); one within it, or one the baseline lacks, is not."""

import importlib.util
import json
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("bench_model", Path(__file__).parents[1] / "bench" / "bench_model.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_regression_guard(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"results": [{"config": "lut-mbm", "batch": 1, "ratio_to_float32": 2.0},
                                            {"config": "float32", "batch": 1, "ratio_to_float32": 1.0}]}))
    run = [{"config": "lut-mbm", "batch": 1, "ratio_to_float32": 2.4}, {"config": "float32", "batch": 1,
           "ratio_to_float32": 1.0}, {"config": "lut-exact", "batch": 4, "ratio_to_float32": 9.0}]
    assert bench._regressions(run, str(base), 0.25) == []
    run[0]["ratio_to_float32"] = 2.6
    assert bench._regressions(run, str(base), 0.25) == ["lut-mbm batch 1: ratio 2.60 > baseline 2.00"]
