"""``pyapprox finetune`` (issue 13): resumable and deterministic, honest about what it trained for, and one clear
error with nothing on disk for bad input."""

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from pyapprox.cli import main
from pyapprox.commands.finetune import SETTINGS
from pyapprox.data.synthetic import load_split
from pyapprox.errors import PyapproxError
from pyapprox.eval.recipe import finetune_recipe, plan_note
from pyapprox.experiments import finetune as FT
from pyapprox.models.densedepth_mbv2 import preprocess
from pyapprox.models.weights import DEFAULT_WEIGHTS, load_model
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate
from pyapprox.nn.qat import QATNetwork
from pyapprox.nn.quant import quantize_model

CFG = AccelConfig(calib_images=2)
SMALL = dict(steps=4, batch=1, crop_h=64, crop_w=96, warmup=1, val_every=2, ckpt_every=100, recalibrate_every=2,
             train_images=6, val_images=2, threads=2)


@pytest.fixture(scope="module")
def data():
    rgb, depth = load_split("train", 6, 64, 96, progress=False)
    vrgb, vdepth = load_split("val", 2, 64, 96, progress=False)
    return rgb, depth, vrgb, vdepth


@pytest.fixture(scope="module")
def setup(data):
    calib = [preprocess(data[2][i:i + 1]) for i in range(2)]
    return FT.make_setup(load_model(), "densedepth_mbv2", "default", DEFAULT_WEIGHTS, [("encoder", "trunc6")], CFG,
                         calib, "synthetic:val@64x96")


def test_command_settings_mirror_the_config():
    assert {f.name: f.default for f in fields(FT.FinetuneConfig)} == {k: v[1] for k, v in SETTINGS.items()}


def test_resume_after_interruption_gives_the_same_weights(tmp_path, data, setup, monkeypatch):
    ft = FT.FinetuneConfig(gradient="lut", **SMALL)
    whole = FT.finetune(tmp_path / "a", setup, ft, progress=False, data=data)
    assert whole["steps"] == 4 and [e["step"] for e in whole["log"]] == [0, 1, 2, 3, 4]
    assert all("val_a1" in whole["log"][i] for i in (0, 2, 4)) and "val_a1" not in whole["log"][1]
    bc = whole["log"][0]["bias_correction"]  # kept only if it lowered the loss on its frames
    assert bc["result"] == ("kept" if bc["loss_after"] < bc["loss_before"] else "reverted")

    calls = {"n": 0}
    forward = QATNetwork.forward

    def interrupted(self, x):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 3:  # Ctrl-C in the middle of step 3 (no periodic checkpoint yet: ckpt_every=100)
                raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(QATNetwork, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        FT.finetune(tmp_path / "b", setup, ft, progress=False, data=data)
    state = torch.load(tmp_path / "b" / "finetune_checkpoint.pt", weights_only=True)
    assert state["step"] == 2  # the last finished step was saved on the interrupt: nothing lost
    monkeypatch.setattr(QATNetwork, "forward", forward)
    resumed = FT.finetune(tmp_path / "b", setup, ft, progress=False, data=data)
    assert resumed["resumed_from"] == 2
    assert whole["state_dict"].keys() == resumed["state_dict"].keys()
    for k, v in whole["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    strip = lambda log: [{k: v for k, v in e.items() if k != "seconds"} for e in log]
    assert strip(whole["log"]) == strip(resumed["log"])
    # the weights changed, and the training network is the one eval builds from them
    base = load_model()
    assert not torch.equal(base.state_dict()["encoder.original_model.features.0.0.weight"],
                           whole["state_dict"]["encoder.original_model.features.0.0.weight"])
    base.load_state_dict(whole["state_dict"], strict=True)
    net = QATNetwork(base, setup.calib_images, CFG, setup.luts)
    q = quantize_model(base, setup.calib_images, CFG)
    approximate(q, setup.rules)
    x = preprocess(data[0][:1])
    with torch.no_grad():
        assert torch.equal(net(x), q(x))


def test_a_checkpoint_of_another_run_is_refused(tmp_path, data, setup):
    FT.finetune(tmp_path, setup, FT.FinetuneConfig(**{**SMALL, "steps": 2}), progress=False, data=data)
    with pytest.raises(PyapproxError, match="different run .*finetune"):
        FT.finetune(tmp_path, setup, FT.FinetuneConfig(**{**SMALL, "steps": 3}), progress=False, data=data)
    (tmp_path / "finetune_checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PyapproxError, match="not a readable fine-tuning checkpoint"):
        FT.finetune(tmp_path, setup, FT.FinetuneConfig(**SMALL), progress=False, data=data)


def test_nan_loss_stops_with_one_error(tmp_path, data, setup, monkeypatch):
    monkeypatch.setattr(FT, "log_depth_loss", lambda p, t: (p * float("nan")).mean())
    with pytest.raises(PyapproxError, match="the loss is nan at step 1"):
        FT.finetune(tmp_path, setup, FT.FinetuneConfig(**SMALL), progress=False, data=data)


@pytest.mark.parametrize("field, value, text", [
    ("steps", 0, "steps=0 is not valid; expected at least 1"),
    ("lr", float("nan"), "lr=nan"), ("crop_h", 100, "multiple of 32"), ("gradient", "fd", "ste or lut"),
    ("warmup", 4, "warmup=4"), ("batch", True, "an integer")])
def test_bad_settings(field, value, text):
    with pytest.raises(PyapproxError, match=text):
        FT.FinetuneConfig(**{**SMALL, field: value})


def _cli(tmp_path, *extra):
    return ["finetune", "--out", str(tmp_path / "out"), "--test-images", "0", "--quiet", "--steps", "2",
            "--workers", "1", "--warmup", "1", "--batch", "1", "--crop-h", "64", "--crop-w", "96",
            "--train-images", "2", "--val-images", "1", "--val-every", "2", *extra]


@pytest.mark.parametrize("extra, text", [
    (["--approx", "encoder=nosuchmult"], "nosuchmult"),
    (["--approx", "nosuchlayer=mbm"], "unknown layer 'nosuchlayer'"),
    (["--approx", "all=mbm", "--operand-format", "int8"], "unsigned operands but the accelerator uses int8"),
    (["--approx", "all=mbm", "--steps", "0"], "steps=0"),
    (["--approx", "all=mbm", "--export", "{tmp}/a_file/w.pt"], "--export"),
    (["--approx", "all=mbm", "--export", "w.npy"], "--export"),
])
def test_bad_input_one_error_and_nothing_written(tmp_path, capsys, extra, text):
    (tmp_path / "a_file").write_text("")
    assert main(_cli(tmp_path, *[e.replace("{tmp}", str(tmp_path)) for e in extra])) == 2
    err = capsys.readouterr().err
    assert text in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_weights_of_another_network_are_refused(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    assert main(_cli(tmp_path, "--approx", "all=mbm", "--weights", str(tmp_path / "other.pt"))) == 2
    assert "not a densedepth_mbv2 state_dict" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_end_to_end_then_eval_says_when_the_plan_differs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(_cli(tmp_path, "--approx", "decoder=mbm", "--export", "ft.pt", "--test-images", "1")) == 0
    out = capsys.readouterr().out
    assert "plan, fine-tuned" in out and "pyapprox eval --weights ft.pt --approx decoder=mbm" in out
    recipe = json.loads(Path("ft.json").read_text())
    assert recipe["kind"] == "pyapprox-finetune" and recipe["plan"]["rules"] == [["decoder", "mbm"]]
    assert recipe["finetune"]["steps"] == 2 and len(recipe["log"]) == 3
    assert set(recipe["scores"]["before"]) == {"exact", "plan"} and recipe["scores"]["after"]["plan"]
    assert recipe["multipliers"].keys() == {"mbm"}
    assert finetune_recipe("ft.pt")["sha256"] == recipe["sha256"]
    assert main(["eval", "--weights", "ft.pt", "--limit", "1", "--quiet", "--no-float", "--approx",
                 "decoder=mbm"]) == 0
    out = capsys.readouterr().out
    assert "weights fine-tuned for: decoder=mbm" in out and "another configuration" not in out
    assert main(["eval", "--weights", "ft.pt", "--limit", "1", "--quiet", "--no-float", "--no-exact", "--approx",
                 "decoder=trunc6"]) == 0
    out = capsys.readouterr().out
    assert "note: these weights were fine-tuned for another configuration" in out and "trunc6" in out
    # the report shows the run: before/after, training curve, and the ste-vs-lut table
    assert main(["report", "results/results.sqlite", "-o", "r.html"]) == 0
    page = Path("r.html").read_text()
    assert "Fine-tuning (ste): 14 layers: mbm" in page and "plan, fine-tuned" in page
    assert "fine-tuning curve" in page and "ste vs lut" in page
    # a changed file no longer matches its recipe
    Path("ft.pt").write_bytes(Path("ft.pt").read_bytes() + b"x")
    assert main(["eval", "--weights", "ft.pt", "--limit", "1", "--quiet", "--no-float"]) == 2
    assert "does not match its recipe" in capsys.readouterr().err


def test_plan_note_names_each_difference():
    recipe = {"plan": {"assignment": {"a": "mbm", "b": "exact"}}, "accelerator": {"acc_bits": 32},
              "multipliers": {"mbm": "d1"}}
    assert plan_note(recipe, {"a": "mbm", "b": "exact"}, {"acc_bits": 32}, {"mbm": "d1"}) is None
    note = plan_note(recipe, {"a": "mbm", "b": "trunc6"}, {"acc_bits": 24}, {"mbm": "d2"})
    assert "1 layer(s) use another multiplier (e.g. b: fine-tuned for exact, now trunc6)" in note
    assert "the table of mbm differs" in note and "accelerator settings differ (acc_bits)" in note


def test_malformed_recipe_is_refused(tmp_path):
    w = tmp_path / "w.pt"
    torch.save({}, w)
    (tmp_path / "w.json").write_text(json.dumps({"kind": "pyapprox-finetune", "sha256": 5}))
    with pytest.raises(PyapproxError, match="malformed fine-tuning recipe"):
        finetune_recipe(w)
    (tmp_path / "w.json").write_text(json.dumps({"sha256": "x"}))  # another kind of recipe: not ours to judge
    assert finetune_recipe(w) is None
