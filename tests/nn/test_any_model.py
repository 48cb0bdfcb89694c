"""Any nn.Module through the accelerator's arithmetic (issue 12): generic fusion discovery, calibration, plans and
bit-exact kernels on models that are not densedepth_mbv2.

The models here are written in the test, the way users write theirs: torchvision-style MobileNetV2 inverted
residuals (Conv-BN-ReLU6 in nn.Sequential, a residual add) and ResNet basic blocks (conv1/bn1 attributes, one
nn.ReLU module shared by two places, a downsample branch), a concatenation, Hardswish and LeakyReLU
activations, global pooling and a Linear classifier.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pyapprox.errors import PyapproxError
from pyapprox.lut.table import LUT
from pyapprox.nn import functional as QF
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.fusion import find_fusion_groups
from pyapprox.nn.layers import layer_table
from pyapprox.nn.plan import approximate, model_layers, select
from pyapprox.nn.quant import FusedConv, fuse, qconv_layers, quantize_model


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)  # used twice: after bn1 and after the residual add
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class UserNet(nn.Module):
    """A little bit of everything; 10 classes."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 2)
        self.block1 = InvertedResidual(8, 8, 1, 3)
        self.block2 = InvertedResidual(8, 12, 2, 2)
        self.res = BasicBlock(12, 16, 2)
        self.branch_a = nn.Conv2d(16, 8, 1)
        self.branch_b = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.LeakyReLU(0.1))
        self.mix = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.Hardswish())
        self.fc1 = nn.Linear(16, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.res(self.block2(self.block1(self.stem(x))))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], 1)
        x = F.adaptive_avg_pool2d(self.mix(x), 1).flatten(1)
        return self.fc2(self.act(self.fc1(x)))


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def net():
    return _randomised(UserNet())


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, 32, 48, generator=g) for _ in range(3)]


def test_fusion_patterns_found_generically(net):
    groups = {g[0]: g[1:] for g in find_fusion_groups(net)}
    assert groups["stem.0"] == ("stem.1", "stem.2", "relu6")
    assert groups["block1.conv.1.0"] == ("block1.conv.1.1", "block1.conv.1.2", "relu6")
    assert groups["block1.conv.2"] == ("block1.conv.3", None, None)  # linear bottleneck: BN only
    assert groups["res.conv1"] == ("res.bn1", None, None)  # the shared ReLU stays a float op
    assert groups["res.downsample.0"] == ("res.downsample.1", None, None)
    assert groups["branch_b.0"] == (None, "branch_b.1", "leaky0.1")
    assert groups["mix.0"] == ("mix.1", None, None)  # Hardswish is not fused: float after the layer
    assert groups["fc1"] == (None, "act", "relu") and groups["fc2"] == (None, None, None)
    assert len(groups) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())


def test_fused_float_model_computes_the_same_function(net, inputs):
    fused = fuse(net)
    assert sum(isinstance(m, FusedConv) for m in fused.modules()) == len(find_fusion_groups(net))
    with torch.no_grad():
        for x in inputs:
            assert torch.allclose(fused(x), net(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("operand_format", ["sign-magnitude", "int8"])
def test_every_layer_bit_exact_against_the_reference(net, inputs, operand_format):
    cfg = AccelConfig(operand_format=operand_format, calib_images=len(inputs))
    q = quantize_model(net, inputs, cfg)
    layers = model_layers(q)
    assert set(layers) == {g[0] for g in find_fusion_groups(net)}
    assert layers["fc1"] == "linear" and layers["mix.0"] == "grouped" and layers["block1.conv.1.0"] == "dw"
    signed = operand_format == "int8"
    v = np.arange(256) - 256 * (np.arange(256) >= 128) if signed else np.arange(256)
    approx = LUT(np.outer(v, v) + (np.outer(v, v) % 7 == 3), "signed" if signed else "unsigned", 17, {"name": "odd"})
    approximate(q, [("all", "odd"), ("block1", "exact")], get_lut={"odd": approx}.get)
    seen = {}

    def hook(name):
        def fn(mod, args, out):
            seen[name] = (args[0].clone(), out.clone(), mod)
        return fn

    handles = [m.conv.register_forward_hook(hook(n)) for n, m in qconv_layers(q)]
    with torch.no_grad():
        y = q(inputs[0])
    for h in handles:
        h.remove()
    assert y.shape == (1, 10) and torch.isfinite(y).all()
    assert set(seen) == set(layers)
    for name, (codes, acc, conv) in seen.items():
        ref, _ = QF.lut_conv2d_reference(codes, conv.weight_codes, conv.ptable, conv.offset, conv.bias_codes,
                                         conv.stride, conv.padding, conv.dilation, conv.groups, conv.acc_bits,
                                         conv.acc_mode)
        assert torch.equal(acc, ref), name
        assert conv.multiplier == ("exact" if name.startswith("block1.") else "odd"), name


def test_quantized_model_stays_close_to_float(net, inputs):
    q = quantize_model(net, inputs, AccelConfig(calib_images=3))
    with torch.no_grad():
        f, g = net(inputs[0]), q(inputs[0])
    assert torch.corrcoef(torch.stack([f.flatten(), g.flatten()]))[0, 1] > 0.95


def test_selectors_layer_table_and_unrun_layers(net, inputs):
    layers = model_layers(net)
    assert select("res", layers) == ["res.conv1", "res.conv2", "res.downsample.0"]
    assert select("linear", layers) == ["fc1", "fc2"]
    rows = layer_table(UserNet(), input_shape=(1, 3, 32, 48))
    fc1 = next(r for r in rows if r.name == "fc1")
    assert (fc1.kind, fc1.macs, fc1.out_hw) == ("linear", 16 * 32, (1, 1))
    stem = rows[0]
    assert (stem.name, stem.out_hw, stem.macs) == ("stem.0", (16, 24), 16 * 24 * 8 * 3 * 9)

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(PyapproxError, match="calibration never ran layer"):
        quantize_model(Unused(), inputs[:1])


def test_a_model_can_declare_its_own_groups_and_names(inputs):
    class Declared(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3, padding=1)
            self.a = nn.ReLU()

        def forward(self, x):
            return self.a(self.c(x))

        def fusion_groups(self):
            return [("c", None, None, None)]  # keep the ReLU a float op, on purpose

        def layer_aliases(self, name):
            return [name, "first"]

    m = Declared().eval()
    q = quantize_model(m, inputs[:1])
    assert select("first", model_layers(q)) == ["c"]
    assert qconv_layers(q)[0][1].act is None and isinstance(q.a, nn.ReLU)
