"""BN folding, calibration, the integer data path between layers, plans and the accelerator config."""

import copy

import numpy as np
import pytest
import torch

from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT, code_values
from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate, parse_flag, parse_rules, select
from pyapprox.nn.quant import fuse, qconv_layers, quantize_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DenseDepthMBV2().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    return m


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, 32, 64, generator=g) for _ in range(2)]


@pytest.fixture(scope="module")
def qmodel(model, images):
    return quantize_model(model, images, AccelConfig())


def test_fused_model_computes_the_float_model(model, images):
    with torch.no_grad():
        a, b = model(images[0]), fuse(model)(images[0])
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()))


def test_calibration_is_deterministic(model, images, qmodel):
    q2 = quantize_model(model, images, AccelConfig())
    assert q2.calibration.input_scale == qmodel.calibration.input_scale
    assert q2.calibration.output_scale == qmodel.calibration.output_scale
    with torch.no_grad():
        assert torch.equal(q2(images[1]), qmodel(images[1]))


def test_quantized_close_to_float(model, images, qmodel):
    with torch.no_grad():
        f, q = model(images[1]), qmodel(images[1])
    assert float((f - q).abs().mean() / f.abs().mean()) < 0.05
    q8 = quantize_model(model, images, AccelConfig(operand_format="int8"))
    with torch.no_grad():
        assert float((f - q8(images[1])).abs().mean() / f.abs().mean()) < 0.1


def test_direct_chains_pass_integer_codes(qmodel, images):
    """Where a conv feeds the next conv directly, the consumer's input codes ARE the producer's output codes."""
    layers = dict(qconv_layers(qmodel))
    chained = {n: src for n, src in qmodel.calibration.chained_from.items() if src}
    assert len(chained) >= 40
    produced, consumed = {}, {}

    def out_hook(name):
        def hook(mod, inp, out):
            produced[name] = torch.round(out / mod.s_out).to(torch.int32) if mod.s_out else None
            consumed[name] = mod.quantize_input(inp[0])
        return hook

    handles = [m.register_forward_hook(out_hook(n)) for n, m in layers.items()]
    with torch.no_grad():
        qmodel(images[0])
    for h in handles:
        h.remove()
    for name, src in chained.items():
        assert layers[name].s_in == layers[src].s_out
        assert torch.equal(consumed[name], produced[src]), name


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_exact_lut_inference_equals_integer_gemm_bit_for_bit(qmodel, images, backend):
    """Every conv through LUT lookups (exact table) == every conv as a float64 integer GEMM, whole network.
    (The lookup backends equal the gather reference layer by layer: tests/nn/test_kernels.py.)"""
    lut_model = copy.deepcopy(qmodel)
    exact = LUT(np.outer(np.arange(256), np.arange(256)), meta={"name": "exact_table"})
    for _, m in qconv_layers(lut_model):
        m.set_lut(exact)
        m.conv.backend = backend
    gemm = copy.deepcopy(qmodel)
    for _, m in qconv_layers(gemm):
        m.conv.backend = "exact"
    with torch.no_grad():
        assert torch.equal(lut_model(images[0]), gemm(images[0]))


def test_plan_selectors():
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2
    from pyapprox.nn.plan import LayerSet

    kinds = {"encoder.original_model.features.0.0": "full", "encoder.original_model.features.1.conv.0.0": "dw",
             "encoder.original_model.features.1.conv.1": "pw", "encoder.original_model.features.9.conv.1.0": "dw",
             "decoder.up0.convA": "full", "decoder.conv2": "pw"}
    # the short names are densedepth_mbv2's own (its layer_aliases hook); a plain mapping knows full names only
    layers = LayerSet(kinds, {n: DenseDepthMBV2.layer_aliases(None, n) for n in kinds})
    with pytest.raises(PyapproxError, match="unknown layer '0.0'"):
        select("0.0", kinds)
    assert select("encoder.original_model.features.1", kinds) == ["encoder.original_model.features.1.conv.0.0",
                                                                   "encoder.original_model.features.1.conv.1"]
    assert select("0.0", layers) == ["encoder.original_model.features.0.0"]
    assert select("encoder.0.0", layers) == ["encoder.original_model.features.0.0"]
    assert select("9.conv.1.0", layers) == ["encoder.original_model.features.9.conv.1.0"]
    assert select("encoder.original_model.features.1.conv.1", layers) == ["encoder.original_model.features.1.conv.1"]
    assert select("decoder.up*", layers) == ["decoder.up0.convA"]
    assert select("*.conv.1", layers) == ["encoder.original_model.features.1.conv.1"]
    assert select("dw", layers) == ["encoder.original_model.features.1.conv.0.0",
                                    "encoder.original_model.features.9.conv.1.0"]
    assert len(select("encoder", layers)) == 4 and len(select("all", layers)) == 6
    with pytest.raises(PyapproxError, match=r"unknown layer '99.0'; valid names: 0.0, 1.conv.0.0"):
        select("99.0", layers)
    with pytest.raises(PyapproxError, match="matches no layer"):
        select("decoder.up9*", layers)
    with pytest.raises(PyapproxError, match="expected SELECTOR=MULTIPLIER"):
        parse_flag("mbm")
    assert parse_rules({"rules": [{"layers": "pw", "multiplier": "mbm"}]}) == [("pw", "mbm")]
    assert parse_rules({"pw": "mbm", "0.0": "exact"}) == [("pw", "mbm"), ("0.0", "exact")]
    with pytest.raises(PyapproxError, match="rule 0"):
        parse_rules([{"layer": "pw"}])


def test_approximate_applies_plan_and_checks_operand_format(model, images):
    q = quantize_model(model, images[:1], AccelConfig())
    luts = {"plus1": LUT(np.outer(np.arange(256), np.arange(256)) + 1, meta={"name": "plus1"}),
            "signed": LUT(np.outer(code_values("signed"), code_values("signed")), "signed", meta={"name": "signed"})}
    got = approximate(q, [("encoder", "plus1"), ("0.0", "exact")], get_lut=luts.get)
    assert got["encoder.original_model.features.0.0"] == "exact"
    assert got["encoder.original_model.features.1.conv.0.0"] == "plus1"
    assert got["decoder.conv3"] == "exact"
    assert sum(v == "plus1" for v in got.values()) == 51
    with pytest.raises(PyapproxError, match="signed operands but the accelerator uses sign-magnitude"):
        approximate(q, [("dw", "signed")], get_lut=luts.get)


def test_config_validation(tmp_path):
    with pytest.raises(PyapproxError, match="operand_format='int4'"):
        AccelConfig(operand_format="int4")
    with pytest.raises(PyapproxError, match="unknown accelerator setting"):
        AccelConfig.from_dict({"acc_width": 32})
    with pytest.raises(PyapproxError, match="acc_bits"):
        AccelConfig(acc_bits=8)
    p = tmp_path / "cfg.json"
    p.write_text('{"operand_format": "int8", "acc_bits": 24, "acc_mode": "saturate"}')
    cfg = AccelConfig.load(p)
    assert cfg.qmax == 127 and cfg.qmin == -128 and "24-bit saturate" in cfg.describe()


def test_nan_calibration_refused(model):
    with pytest.raises(PyapproxError, match="NaN"):
        quantize_model(model, [torch.full((1, 3, 32, 32), float("nan"))])


def _unfused(monkeypatch):
    """QConv2d without passed codes or compiled (de)quantization: PyTorch's quantize and requantize."""
    from pyapprox.nn import functional as QF
    from pyapprox.nn.quant import QConv2d

    monkeypatch.setattr(QConv2d, "quantize_input", lambda self, x: QF.quantize(x, self.s_in, self.cfg.qmin,
                                                                               self.cfg.qmax))
    monkeypatch.setattr(QConv2d, "dequantize", lambda self, acc: QF.requantize(
        acc, self.rq_mult, self.rq_shift, self.rq_mult_neg, self.qlo, self.qhi).to(torch.float32) * self.s_out)


@pytest.mark.parametrize("multiplier", ["exact", "mbm"])
def test_passed_codes_and_fused_requantization_change_nothing(qmodel, images, multiplier, monkeypatch):
    """The whole network with codes passed between layers and compiled (de)quantization == the same network through
    PyTorch's quantize / requantize / float round trip, bit for bit, with the exact and an approximate table."""
    from pyapprox.lut.library import get_lut

    net = copy.deepcopy(qmodel)
    if multiplier != "exact":
        for _, m in qconv_layers(net):
            m.set_lut(get_lut(multiplier))
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fast = net(x)
        _unfused(monkeypatch)
        slow = net(x)
    assert torch.equal(fast, slow)


class _InPlace(torch.nn.Module):
    """conv -> an in-place change of its output (as ResNet's ``out += identity``) -> conv."""

    def __init__(self, op):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 4, 1)
        self.op = op

    def forward(self, x):
        y = self.a(x)
        if self.op == "add_":
            y += 0.37
        elif self.op == "mul_":
            y.mul_(3.0)
        elif self.op == "view":
            y[:, :2] = 0.5  # through a view: the base's version counter moves too
        return self.b(y)


@pytest.mark.parametrize("op", ["add_", "mul_", "view", "none"])
def test_codes_are_not_passed_once_the_output_changed_in_place(op, monkeypatch):
    torch.manual_seed(3)
    model = _InPlace(op).eval()
    x = torch.randn(1, 3, 12, 10)
    q = quantize_model(model, [x], AccelConfig())
    assert q.calibration.chained_from["b"] == "a"  # the same tensor object: b's input scale is a's output scale
    with torch.no_grad():
        fast = q(x)
        _unfused(monkeypatch)
        slow = q(x)
    assert torch.equal(fast, slow)
