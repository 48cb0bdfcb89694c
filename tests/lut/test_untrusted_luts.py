"""Regression tests for issue 11's silent wrong values and tracebacks in LUT, plan, weights and image inputs.

Each case failed before the fix (a traceback, or a value accepted without a word).
"""

import json
import time

import numpy as np
import pytest
import torch

from pyapprox.cli import main
from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT

EXACT = np.outer(np.arange(256), np.arange(256))


def _one_line_error(capsys, rc) -> str:
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _csv(path, override):
    rows = ["A,B,P"] + [f"{a},{b},{override.get((a, b), a * b)}" for a in range(256) for b in range(256)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_sidecar_that_is_a_json_list(tmp_path, capsys):
    LUT(EXACT, "unsigned", 16, {"name": "x"}).save(tmp_path / "x.npy")
    (tmp_path / "x.json").write_text("[1, 2, 3]")
    with pytest.raises(PyapproxError, match=r"x\.json: expected a JSON object of fields, got a JSON list"):
        LUT.load(tmp_path / "x.npy")
    msg = _one_line_error(capsys, main(["lut", "stats", str(tmp_path / "x.npy")]))
    assert "got a JSON list" in msg
    # through a plan and through cosim's multiplier lookup: the same single line, before any work
    (tmp_path / "plan.json").write_text(json.dumps({"rules": [{"layers": "0.0", "multiplier": str(tmp_path / "x.npy")}]}))
    from pyapprox.nn.plan import load_plan
    from pyapprox.cosim import multiplier_rtl

    assert load_plan(tmp_path / "plan.json")[0][1].endswith("x.npy")
    with pytest.raises(PyapproxError, match="got a JSON list"):
        multiplier_rtl(str(tmp_path / "x.npy"))


@pytest.mark.parametrize("value,message", [
    (99999999999, r"product 99999999999 at codes \(3, 4\) needs 37 bits"),
    (-5, r"product -5 at A=3, B=4 does not fit a 16-bit unsigned output .* needs a signed table"),
])
def test_csv_products_outside_an_unsigned_8x8_table(tmp_path, capsys, value, message):
    path = _csv(tmp_path / "t.csv", {(3, 4): value})
    with pytest.raises(PyapproxError, match=message):
        LUT.load(path)
    _one_line_error(capsys, main(["lut", "stats", str(path)]))


def test_npy_without_sidecar_with_negative_products_is_not_read_as_unsigned(tmp_path):
    t = EXACT.copy()
    t[1, 255] = -7
    np.save(tmp_path / "neg.npy", t)
    lut = LUT.load(tmp_path / "neg.npy")
    assert lut.operands == "signed"  # the only format with negative products; never silently unsigned
    from pyapprox.nn.approx_conv import ApproxConv2d

    conv = ApproxConv2d(torch.zeros(1, 1, 1, 1, dtype=torch.int32), None, operand_format="sign-magnitude")
    with pytest.raises(PyapproxError, match="has signed operands but the accelerator uses sign-magnitude"):
        conv.set_lut(lut)


def test_sidecar_width_narrower_than_the_table(tmp_path, capsys):
    from pyapprox.lut.sidecar import sidecar_digest

    LUT(EXACT, "unsigned", 16, {"name": "x"}).save(tmp_path / "x.npy")
    side = json.loads((tmp_path / "x.json").read_text())
    side["out_width"] = 8
    side["sidecar_digest"] = sidecar_digest(side)
    (tmp_path / "x.json").write_text(json.dumps(side))
    with pytest.raises(PyapproxError, match=r"product 256 at A=1, B=0|does not fit a 8-bit unsigned output"):
        LUT.load(tmp_path / "x.npy")
    _one_line_error(capsys, main(["lut", "convert", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]))
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "y.json").exists()


def test_sidecar_unknown_or_misspelt_field(tmp_path):
    from pyapprox.lut.sidecar import sidecar_digest

    LUT(EXACT, "unsigned", 16, {"name": "x"}).save(tmp_path / "x.npy")
    side = json.loads((tmp_path / "x.json").read_text())
    side["operand"] = "signed"
    side["sidecar_digest"] = sidecar_digest(side)
    (tmp_path / "x.json").write_text(json.dumps(side))
    with pytest.raises(PyapproxError, match=r"unknown field\(s\) 'operand'"):
        LUT.load(tmp_path / "x.npy")


@pytest.mark.parametrize("plan,message", [
    ({"rules": [{"layers": "0.0", "mutliplier": "mbm"}]}, r"rule 0: unknown key 'mutliplier' \(did you mean 'multiplier'\?\)"),
    ({"rules": [{"layers": "0.0", "multiplier": "mbm"}], "budget": 1}, r"top-level: unknown key 'budget'"),
])
def test_plan_with_misspelt_or_unknown_key(tmp_path, capsys, plan, message):
    (tmp_path / "p.json").write_text(json.dumps(plan))
    msg = _one_line_error(capsys, main(["eval", "--plan", str(tmp_path / "p.json"), "--limit", "1", "--quiet"]))
    assert __import__("re").search(message, msg), msg


def test_weights_cast_to_int32_are_refused(tmp_path, capsys):
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2

    sd = {k: (v.to(torch.int32) if v.is_floating_point() else v) for k, v in DenseDepthMBV2().state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    msg = _one_line_error(capsys, main(["eval", "--weights", str(tmp_path / "w.pt"), "--limit", "1", "--quiet"]))
    assert "tensors must be floating point" in msg and "int32" in msg


def test_cosim_image_index_out_of_range_fails_at_once(capsys):
    t0 = time.monotonic()
    msg = _one_line_error(capsys, main(["cosim", "--layer", "0.0", "--multiplier", "mbm", "--image", "synthetic:99999"]))
    assert "test image index from 0 to 199" in msg and time.monotonic() - t0 < 30
    msg = _one_line_error(capsys, main(["cosim", "--layer", "0.0", "--multiplier", "mbm", "--height", "100000"]))
    assert "height 100000 is outside 32..2048" in msg
