"""Approximation-aware training (issue 13): the training forward pass is eval's, bit for bit; the backward pass is
checked against finite differences of the real LUT arithmetic and against an independent fake-quant model."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from pyapprox.lut.library import get_lut
from pyapprox.lut.table import LUT
from pyapprox.nn import functional as QF
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate, model_layers, resolve_plan
from pyapprox.nn.qat import QATNetwork, _lut_backward, gradient_tables, lut_backward_torch
from pyapprox.nn.quant import fold, quantize_model
from tests.nn.test_any_model import UserNet, _randomised

CFG = AccelConfig(calib_images=2)


def _luts(model, rules):
    assign = resolve_plan(rules, model_layers(model))
    tables = {m: get_lut(m) for m in set(assign.values())}
    return {n: tables[m] for n, m in assign.items()}


@pytest.fixture(scope="module")
def user_net():
    return _randomised(UserNet(), seed=3)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(4)
    return [torch.randn(2, 3, 32, 48, generator=g) for _ in range(3)]


@pytest.mark.parametrize("gradient", ["ste", "lut"])
def test_forward_is_evals_bit_for_bit_before_and_after_training(user_net, images, gradient):
    rules = [("all", "mbm"), ("pw", "trunc6"), ("fc2", "drum4")]
    net = QATNetwork(user_net, images[:2], CFG, _luts(user_net, rules), gradient)
    q = quantize_model(user_net, images[:2], CFG)
    approximate(q, rules)
    with torch.no_grad():
        assert torch.equal(net(images[2]), q(images[2]))
    # train a few steps, recalibrate: still what eval builds from the new weights
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(3):
        loss = net(images[2]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.recalibrate(images[:2])
    tuned = net.float_model()
    assert not torch.equal(tuned.stem[0].weight, user_net.stem[0].weight)
    q2 = quantize_model(tuned, images[:2], CFG)
    approximate(q2, rules)
    with torch.no_grad():
        assert torch.equal(net(images[2]), q2(images[2]))
    # the exported weights load strictly into a fresh float model
    fresh = copy.deepcopy(user_net)
    fresh.load_state_dict(net.float_state_dict(), strict=True)
    assert list(net.float_state_dict()) == list(user_net.state_dict())


def test_densedepth_forward_is_evals(tmp_path):
    from tests.experiments.helpers import random_weights
    from pyapprox.models.weights import load_model

    model = load_model(random_weights(tmp_path / "w.pt"))
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(1, 3, 64, 96, generator=g) for _ in range(2)]
    rules = [("encoder", "trunc6"), ("decoder", "mbm"), ("dw", "drum4")]
    net = QATNetwork(model, calib, CFG, _luts(model, rules))
    q = quantize_model(model, calib, CFG)
    approximate(q, rules)
    x = torch.randn(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        assert torch.equal(net(x), q(x))


def _layer(groups=1, cin=6, cout=6, k=3, stride=1, dilation=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-200, 201, (2, cin, 9, 11), generator=g, dtype=torch.int32)
    w = torch.randint(-255, 256, (cout, cin // groups, k, k), generator=g, dtype=torch.int32)
    pad = (k // 2) * dilation
    ho = (9 + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    wo = (11 + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    gacc = torch.randn(2, cout, ho, wo, generator=g)
    return x, w, gacc, dict(stride=(stride, stride), padding=(pad, pad), dilation=(dilation, dilation), groups=groups)


GEOMETRIES = [dict(), dict(stride=2), dict(groups=6, cout=6), dict(groups=3, cout=9), dict(k=1, cout=10),
              dict(dilation=2), dict(groups=6, cout=6, stride=2)]


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: "-".join(f"{k}{v}" for k, v in g.items()) or "full")
@pytest.mark.parametrize("mult", ["mbm", "trunc6"])
def test_lut_gradient_equals_finite_differences_of_the_lut_conv(geo, mult):
    """grad(codes) . e_i == sum(gacc * (conv(x + h e_i) - conv(x - h e_i))) / 2h with the real LUT conv."""
    h = 4
    x, w, gacc, kw = _layer(**geo)
    ptable, off = QF.product_table(get_lut(mult).table, "sign-magnitude", "a")
    gw, gx = gradient_tables(ptable, h)
    tables = (torch.from_numpy(gw), torch.from_numpy(gx), np.ascontiguousarray(gx.T), np.ascontiguousarray(gw.T))
    gxq, gwq = _lut_backward(x, w, gacc, tables, off, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])

    def conv(xx, ww):
        acc, _ = QF.lut_conv2d_reference(xx, ww, ptable, off, None, acc_bits=40, **kw)
        return acc.double()

    rng = np.random.default_rng(0)
    for _ in range(6):
        i = tuple(int(rng.integers(0, s)) for s in x.shape)
        if abs(int(x[i])) > 255 - h:
            continue
        xp, xm = x.clone(), x.clone()
        xp[i] += h
        xm[i] -= h
        fd = float((gacc.double() * (conv(xp, w) - conv(xm, w))).sum()) / (2 * h)
        assert abs(float(gxq[i]) - fd) <= 1e-4 * (1 + abs(fd)), (i, float(gxq[i]), fd)
    for _ in range(6):
        j = tuple(int(rng.integers(0, s)) for s in w.shape)
        if abs(int(w[j])) > 255 - h:
            continue
        wp, wm = w.clone(), w.clone()
        wp[j] += h
        wm[j] -= h
        fd = float((gacc.double() * (conv(x, wp) - conv(x, wm))).sum()) / (2 * h)
        assert abs(float(gwq[j]) - fd) <= 1e-4 * (1 + abs(fd)), (j, float(gwq[j]), fd)
    # the PyTorch version (the GPU path) computes the same
    rx, rw = lut_backward_torch(x, w, gacc, tables[0], tables[1], off, kw["stride"], kw["padding"], kw["dilation"],
                                kw["groups"])
    assert torch.allclose(gxq, rx, rtol=1e-5, atol=1e-3)
    assert torch.allclose(gwq, rw, rtol=1e-5, atol=1e-2)


def test_gradient_tables_of_the_exact_product_are_the_operands():
    ptable, off = QF.exact_product_table("sign-magnitude")
    gw, gx = gradient_tables(ptable, 4)
    v = np.arange(-255, 256)
    assert np.array_equal(gx, np.broadcast_to(v[:, None], gx.shape).astype(np.float32))  # d(wx)/dx = w
    assert np.array_equal(gw, np.broadcast_to(v[None, :], gw.shape).astype(np.float32))  # d(wx)/dw = x
    with pytest.raises(Exception, match="gradient step"):
        gradient_tables(ptable, 0)


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.conv2 = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.conv2(self.act(self.bn1(self.conv1(x))))


def _fake_quant_reference(model, net, x):
    """Independent float model of the same arithmetic with straight-through rounding (exact multiplier)."""
    (n1, l1), (n2, l2) = net.layers()
    ste = lambda t: t + (torch.round(t) - t).detach()

    def clamp(t, lo, hi):  # gradient 1 where lo <= t <= hi, boundaries included (as torch.ao's FakeQuantize)
        inside = ((t >= lo) & (t <= hi)).float()
        return t * inside + (t.clamp(lo, hi) * (1 - inside)).detach()

    def layer(inp, conv, bn, q, last):
        w, b = fold(conv, bn)
        s_w = q.weight_scale.view(-1, 1, 1, 1).double().float()
        wq = ste(w / s_w) * s_w
        xs = clamp(ste(inp / q.s_in), -255, 255) * q.s_in
        acc_scale = q.acc_scale.float()
        bq = ste(b / acc_scale) * acc_scale
        z = nn.functional.conv2d(xs, wq, bq, conv.stride, conv.padding)
        if last:
            return z
        return clamp(ste(z / q.s_out), q.qlo, q.qhi) * q.s_out

    return layer(layer(x, model.conv1, model.bn1, l1.q, False), model.conv2, None, l2.q, True)


def test_ste_gradients_match_an_independent_fake_quant_model():
    torch.manual_seed(0)
    model = _randomised(TwoLayer(), seed=1)
    g = torch.Generator().manual_seed(2)
    calib = [torch.randn(2, 3, 10, 12, generator=g)]
    x = torch.randn(2, 3, 10, 12, generator=g)
    net = QATNetwork(model, calib, CFG, {}, "ste")
    xa = x.clone().requires_grad_(True)
    (net(xa) * torch.linspace(-1, 1, 480).view(2, 2, 10, 12)).sum().backward()
    ref = copy.deepcopy(model)
    xb = x.clone().requires_grad_(True)
    # the reference reads the scales and codes of the (identical) quantized layers
    (_fake_quant_reference(ref, net, xb) * torch.linspace(-1, 1, 480).view(2, 2, 10, 12)).sum().backward()
    got = dict(net.named_parameters())
    for name, p in ref.named_parameters():
        mine = {"conv1.weight": "net.conv1.conv.weight", "bn1.weight": "net.conv1.bn.weight",
                "bn1.bias": "net.conv1.bn.bias", "conv2.weight": "net.conv2.conv.weight",
                "conv2.bias": "net.conv2.conv.bias"}[name]
        assert torch.allclose(got[mine].grad, p.grad, rtol=2e-3, atol=1e-4 * float(p.grad.abs().max())), name
    assert torch.allclose(xa.grad, xb.grad, rtol=2e-3, atol=1e-4 * float(xb.grad.abs().max()))


def test_lut_and_ste_agree_on_the_exact_multiplier(user_net, images):
    exact = LUT(np.outer(np.arange(256), np.arange(256)), meta={"name": "exact_table"})
    luts = {n: exact for n in model_layers(user_net)}
    grads = {}
    for mode in ("ste", "lut"):
        net = QATNetwork(user_net, images[:2], CFG, luts, mode)
        net(images[2]).square().mean().backward()
        grads[mode] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    assert grads["ste"].keys() == grads["lut"].keys() and grads["ste"]
    for n in grads["ste"]:
        a, b = grads["ste"][n], grads["lut"][n]
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5 * float(a.abs().max() + 1e-12)), n


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("gradient", ["ste", "lut"])
def test_gpu_training_step_matches_the_cpu(user_net, images, gradient):
    """On a GPU the LUT convs and the lut backward run as PyTorch ops: forward bit-identical to the CPU's,
    gradients equal up to float summation order."""
    luts = _luts(user_net, [("all", "mbm"), ("pw", "trunc6")])
    grads = {}
    outs = {}
    for dev in ("cpu", "cuda"):
        net = QATNetwork(user_net, images[:2], CFG, luts, gradient).to(dev)
        y = net(images[2].to(dev))
        y.square().mean().backward()
        outs[dev] = y.detach().cpu()
        grads[dev] = {n: p.grad.cpu() for n, p in net.named_parameters() if p.grad is not None}
    assert torch.equal(outs["cpu"], outs["cuda"])
    for n, g in grads["cpu"].items():
        assert torch.allclose(g, grads["cuda"][n], rtol=1e-4, atol=1e-5 * float(g.abs().max() + 1e-12)), n


def test_bias_correction_removes_the_mean_error_of_a_layer():
    """After correct_bias on X, the first approximate layer's accumulators on X have the exact layer's mean,
    per channel, to within one accumulator unit (the bias code is rounded); before, they were far off."""
    torch.manual_seed(0)
    model = _randomised(TwoLayer(), seed=1)
    g = torch.Generator().manual_seed(2)
    calib = [torch.randn(2, 3, 10, 12, generator=g)]
    x = torch.randn(4, 3, 10, 12, generator=g)

    def accumulators(net):
        layer = dict(net.layers())["conv1"]
        q = layer.q
        w, b = fold(layer.conv, layer.bn)
        q.set_weights(w, b)
        codes = q.quantize_input(x)
        exact = QF.int_conv2d_exact(codes, q.conv.weight_codes, q.conv.bias_codes, 1, 1)
        return q.conv(codes).double(), exact.double()

    net = QATNetwork(model, calib, CFG, {"conv1": get_lut("trunc6")})
    scales = net.scales()
    approx, exact = accumulators(net)
    net.correct_bias(x, calib)
    net.set_scales(scales)  # the same scales as before: only the bias moved
    corrected, _ = accumulators(net)
    before = (approx - exact).mean((0, 2, 3)).abs()
    after = (corrected - exact).mean((0, 2, 3)).abs()
    assert float(before.max()) > 5 and float(after.max()) <= 1.0, (before, after)  # two roundings of the bias
    assert not torch.equal(net.float_state_dict()["bn1.bias"], model.bn1.bias)
    assert torch.equal(net.float_state_dict()["conv1.weight"], model.conv1.weight)
    untouched = QATNetwork(model, calib, CFG, {})
    untouched.correct_bias(x, calib)  # no approximate layer: nothing to correct
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in untouched.float_state_dict().items())
