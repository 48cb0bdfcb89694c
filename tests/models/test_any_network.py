"""torchvision networks and ONNX exports through the accelerator's arithmetic (issue 12): fusion found generically,
every layer's accumulators bit-exact to the gather reference under an approximate multiplier, ONNX import with
clear errors, and the `compare` and `layers` commands on an ONNX file."""

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torchvision
from onnx import TensorProto, helper
from PIL import Image

from pyapprox.cli import main
from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT
from pyapprox.models.onnx import load_onnx
from pyapprox.nn import functional as QF
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.fusion import find_fusion_groups
from pyapprox.nn.plan import approximate, model_layers, select
from pyapprox.nn.quant import qconv_layers, quantize_model

SHAPE = (1, 3, 64, 64)


def _torchvision(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    for m in model.modules():  # BatchNorm statistics that are not the identity, so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(n=3):
    g = torch.Generator().manual_seed(2)
    return [torch.randn(*SHAPE, generator=g) for _ in range(n)]


def _export(model: nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(*SHAPE), str(path), dynamo=False, opset_version=17)


def _bit_exact_everywhere(model: nn.Module, inputs) -> dict:
    """Quantize, apply an approximate table to every layer, run, and check every layer against the reference."""
    q = quantize_model(model, inputs, AccelConfig(calib_images=len(inputs)))
    table = np.outer(np.arange(256), np.arange(256))
    odd = LUT(table + (table % 5 == 1), "unsigned", 17, {"name": "odd"})
    approximate(q, [("all", "odd")], get_lut={"odd": odd}.get)
    seen = {}
    handles = [m.conv.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(n, (a[0], out, mod)))
               for n, m in qconv_layers(q)]
    with torch.no_grad():
        y = q(inputs[0])
    for h in handles:
        h.remove()
    assert torch.isfinite(y).all()
    for name, (codes, acc, conv) in seen.items():
        ref, _ = QF.lut_conv2d_reference(codes, conv.weight_codes, conv.ptable, conv.offset, conv.bias_codes,
                                         conv.stride, conv.padding, conv.dilation, conv.groups, conv.acc_bits,
                                         conv.acc_mode)
        assert torch.equal(acc, ref), name
    assert set(seen) == set(model_layers(q))
    return seen


@pytest.mark.parametrize("name,convs", [("mobilenet_v2", 52), ("resnet18", 20)])
def test_torchvision_models_bit_exact(name, convs):
    model = _torchvision(name)
    groups = find_fusion_groups(model)
    assert sum(1 for g in groups if g[1] is not None) == convs  # every conv's BatchNorm is folded
    seen = _bit_exact_everywhere(model, _inputs())
    assert len(seen) == convs + (1 if name == "resnet18" else 1)  # + the Linear classifier
    if name == "resnet18":
        kinds = {g[0]: g[3] for g in groups}
        assert kinds["conv1"] == "relu" and kinds["layer1.0.conv1"] is None  # the BasicBlock's ReLU is shared


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_onnx_export_imports_and_runs_bit_exact(tmp_path, name):
    model = _torchvision(name)
    _export(model, tmp_path / f"{name}.onnx")
    net = load_onnx(tmp_path / f"{name}.onnx")
    x = _inputs(1)[0]
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-4)
    assert net.input_shape == SHAPE
    seen = _bit_exact_everywhere(net, _inputs())
    assert sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))) == len(seen)


def _one_op_model(path, op: str) -> None:
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnx_bad_inputs_give_one_line(tmp_path):
    _one_op_model(tmp_path / "det.onnx", "Det")
    with pytest.raises(PyapproxError, match=r"operator Det \(opset 11\) is not supported"):
        load_onnx(tmp_path / "det.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(PyapproxError, match="junk.onnx: (not a readable ONNX file|invalid graph)"):
        load_onnx(tmp_path / "junk.onnx")
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])]), opset_imports=[helper.make_opsetid("", 17)])
    w = model.graph.initializer[0]
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="/etc/passwd")
    onnx.save(model, str(tmp_path / "ext.onnx"))
    with pytest.raises(PyapproxError, match="stored in an external file"):
        load_onnx(tmp_path / "ext.onnx")


def test_compare_and_layers_commands_on_an_onnx_model(tmp_path, capsys):
    _export(_torchvision("mobilenet_v2"), tmp_path / "m.onnx")
    assert main(["layers", "--model", str(tmp_path / "m.onnx")]) == 0
    table = capsys.readouterr().out
    assert "linear" in table and "dw" in table and "at 64x64" in table
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "dev.json"
    assert main(["compare", "--model", str(tmp_path / "m.onnx"), "--inputs", str(images), "--approx", "all=trunc6",
                 "--approx", "linear=exact", "--calib-images", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exact" in text and "approx" in text and "top-1 agree" in text
    res = json.loads(out.read_text())
    assert set(res["variants"]) == {"exact", "approx"}
    assert len(res["layers"]) == 53 and all(n in res["variants"]["approx"]["layers"] for n in res["layers"])
    exact, approx = res["variants"]["exact"]["output"], res["variants"]["approx"]["output"]
    assert 0 < exact["rel_rms"] < approx["rel_rms"]  # trunc6 deviates more than exact quantization
    np.save(tmp_path / "x.npy", np.stack([t[0].numpy() for t in _inputs(2)]))
    assert main(["compare", "--model", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy")]) == 0
    _one_op_model(tmp_path / "det.onnx", "Det")
    assert main(["compare", "--model", str(tmp_path / "det.onnx"), "--inputs", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "operator Det" in err[0]


def test_cosim_on_onnx_conv_and_linear_layers(tmp_path, capsys):
    """The RTL MAC array computes an ONNX network's depthwise, pointwise and linear layers bit for bit."""
    _export(_torchvision("mobilenet_v2"), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.stack([t[0].numpy() for t in _inputs(2)]))
    net = load_onnx(tmp_path / "m.onnx")
    names = model_layers(net)
    dw = next(n for n, k in names.items() if k == "dw")
    pw = next(n for n, k in names.items() if k == "pw")
    linear = next(n for n, k in names.items() if k == "linear")
    out = tmp_path / "cosim.json"
    rc = main(["cosim", "--model", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy"), "--layer", dw,
               "--layer", pw, "--layer", linear, "--multiplier", "mbm", "--tiles", "2", "--calib-images", "2",
               "--json", str(out), "--rows", "4", "--cols", "4", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = json.loads(out.read_text())
    assert rep["mismatches"] == 0 and rep["outputs"] > 0
    assert {li["kind"] for li in rep["layers"]} == {"dw", "pw", "linear"}


def test_eval_and_layer_groups_on_an_onnx_export_of_the_default_network(tmp_path, capsys):
    """densedepth_mbv2 exported to ONNX evaluates like the original; its module prefixes select layers."""
    from pyapprox.models.weights import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(load_model(None), torch.randn(1, 3, 240, 320), str(tmp_path / "dd.onnx"), dynamo=False,
                          opset_version=17)
    layers = model_layers(load_onnx(tmp_path / "dd.onnx"))
    assert len(layers) == 66
    assert len(select("encoder", layers)) == 52 and len(select("decoder", layers)) == 14
    common = ["--data", "synthetic@240x320", "--limit", "1", "--calib-images", "1", "--quiet"]
    outs = {}
    for name, extra in (("onnx", ["--model", str(tmp_path / "dd.onnx")]), ("torch", [])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", *extra, *common, "--approx", "encoder=trunc6", "--json", str(out)]) == 0
        outs[name] = json.loads(out.read_text())["variants"]
    capsys.readouterr()
    for variant in ("float", "exact", "approx"):
        for metric in ("a1", "rel"):
            assert outs["onnx"][variant]["metrics"][metric] == pytest.approx(outs["torch"][variant]["metrics"][metric],
                                                                             abs=2e-3), (variant, metric)


def test_cli_preprocess_choices_match_the_loader():
    from pyapprox.commands import eval as eval_cmd
    from pyapprox.data.inputs import PREPROCESS

    assert eval_cmd.PREPROCESS == PREPROCESS
