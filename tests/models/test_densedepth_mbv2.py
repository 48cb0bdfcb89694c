from collections import Counter

import pytest
import torch
import torch.nn as nn

from pyapprox.errors import PyapproxError
from pyapprox.models.densedepth_mbv2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DenseDepthMBV2,
    conv_kind,
    conv_layers,
    load_weights,
    preprocess,
    short_name,
)

F = "encoder.original_model.features."


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DenseDepthMBV2().eval()


def test_key_layout_and_shapes(model):
    sd = model.state_dict()
    for key in [
        F + "0.0.weight",
        F + "0.1.running_mean",
        F + "0.1.num_batches_tracked",
        F + "1.conv.0.0.weight",  # t=1: depthwise ConvBNReLU first
        F + "1.conv.1.weight",
        F + "1.conv.2.running_var",
        F + "2.conv.1.0.weight",  # t=6: expand, depthwise, project, BN
        F + "2.conv.2.weight",
        F + "2.conv.3.bias",
        F + "18.0.weight",
        "encoder.original_model.classifier.1.weight",
        "decoder.conv2.weight",
        "decoder.conv2.bias",
        "decoder.up0.convA.weight",
        "decoder.up5.convB.bias",
        "decoder.conv3.weight",
    ]:
        assert key in sd, key
    assert F + "1.conv.3.weight" not in sd
    assert F + "19.0.weight" not in sd
    assert sd[F + "0.0.weight"].shape == (32, 3, 3, 3)
    assert sd[F + "1.conv.0.0.weight"].shape == (32, 1, 3, 3)
    assert sd[F + "2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert sd[F + "17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert sd[F + "18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["encoder.original_model.classifier.1.weight"].shape == (1000, 1280)
    assert sd["decoder.conv2.weight"].shape == (512, 1280, 1, 1)
    assert model.decoder.conv2.padding == (1, 1)
    expected = [(512 + 320, 256), (256 + 160, 256), (256 + 64, 128), (128 + 32, 64), (64 + 24, 64), (64 + 16, 32)]
    for i, (cin, cout) in enumerate(expected):
        up = getattr(model.decoder, f"up{i}")
        assert (up.convA.in_channels, up.convA.out_channels) == (cin, cout)
        assert (up.convB.in_channels, up.convB.out_channels) == (cout, cout)
        assert up.convA.bias is not None and up.convA.kernel_size == (3, 3)
        assert isinstance(up.leakyreluA, nn.LeakyReLU) and up.leakyreluA.negative_slope == 0.2
    assert sd["decoder.conv3.weight"].shape == (1, 32, 3, 3)
    # torchvision mobilenet_v2 parameter count
    assert sum(p.numel() for p in model.encoder.original_model.parameters()) == 3504872
    bn = model.encoder.original_model.features[0][1]
    assert bn.eps == 1e-5 and bn.momentum == 0.1


def test_residuals_and_init(model):
    feats = model.encoder.original_model.features
    res = [i for i in range(1, 18) if feats[i].use_res_connect]
    assert res == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]
    assert torch.all(feats[0][1].weight == 1) and torch.all(feats[0][1].bias == 0)


def test_encoder_conv_counts(model):
    convs = conv_layers(model)
    enc = [c for n, c in convs if n.startswith("encoder.")]
    assert len(enc) == 52
    assert Counter(conv_kind(c) for c in enc) == {"full": 1, "dw": 17, "pw": 34}
    dec = [n for n, _ in convs if n.startswith("decoder.")]
    assert dec[0] == "decoder.conv2" and dec[-1] == "decoder.conv3" and len(dec) == 14
    assert dec[1:3] == ["decoder.up0.convA", "decoder.up0.convB"]


def test_short_names(model):
    assert short_name(F + "9.conv.1.0") == "9.conv.1.0"
    assert short_name(F + "0.0") == "0.0"
    assert short_name("decoder.up0.convA") == "decoder.up0.convA"
    names = [short_name(n) for n, _ in conv_layers(model)]
    assert names[:4] == ["0.0", "1.conv.0.0", "1.conv.1", "2.conv.0.0"]
    assert "18.0" in names


def test_forward_shapes(model):
    with torch.no_grad():
        feats = model.encoder(torch.zeros(1, 3, 64, 96))
        assert len(feats) == 20
        assert [feats[i].shape[1] for i in (2, 4, 6, 9, 15, 18, 19)] == [16, 24, 32, 64, 160, 320, 1280]
        assert model(torch.zeros(2, 3, 64, 96)).shape == (2, 1, 32, 48)
        assert model(torch.randn(1, 3, 480, 640)).shape == (1, 1, 240, 320)


def test_preprocess():
    rgb = torch.zeros(2, 4, 5, 3, dtype=torch.uint8).numpy()
    rgb[..., 0] = 255
    x = preprocess(rgb)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0], torch.tensor((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]))
    assert torch.allclose(x[:, 1], torch.tensor(-IMAGENET_MEAN[1] / IMAGENET_STD[1]))
    raw = preprocess(rgb[0], normalize=False)
    assert raw.shape == (1, 3, 4, 5) and raw.max() == 1.0 and raw.min() == 0.0
    with pytest.raises(PyapproxError, match="uint8"):
        preprocess(rgb.astype("float32"))


def test_load_roundtrip_with_and_without_classifier(model, tmp_path):
    sd = model.state_dict()
    no_cls = {k: v for k, v in sd.items() if ".classifier." not in k}
    assert len(sd) - len(no_cls) == 2
    other = DenseDepthMBV2()
    other.load_state_dict(sd, strict=True)
    other.load_state_dict(no_cls, strict=True)  # plain torch strict load tolerates absence
    assert len(no_cls) == len(sd) - 2  # caller's dict not modified
    load_weights(other, no_cls)
    load_weights(other, {"state_dict": {"module." + k: v for k, v in sd.items()}})
    load_weights(other, {"model": no_cls, "epoch": 3})
    path = tmp_path / "w.pth"
    torch.save(no_cls, path)
    load_weights(other, path)
    for k, v in sd.items():
        assert torch.equal(other.state_dict()[k], v), k


def test_partial_classifier_is_still_an_error(model):
    sd = model.state_dict()
    partial = {k: v for k, v in sd.items() if not k.endswith("classifier.1.bias")}
    with pytest.raises(RuntimeError, match="classifier.1.bias"):
        DenseDepthMBV2().load_state_dict(partial, strict=True)
    with pytest.raises(PyapproxError, match=r"missing keys: encoder\.original_model\.classifier\.1\.bias"):
        load_weights(DenseDepthMBV2(), partial)


def test_bad_state_dicts(model, tmp_path):
    sd = model.state_dict()
    m = DenseDepthMBV2()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    missing = {k: v for k, v in sd.items() if k != "decoder.conv3.weight"}
    with pytest.raises(PyapproxError, match=r"densedepth_mbv2.*missing keys: decoder\.conv3\.weight"):
        load_weights(m, missing)
    extra = dict(sd, **{"decoder.conv4.weight": torch.zeros(1)})
    with pytest.raises(PyapproxError, match=r"unexpected keys: decoder\.conv4\.weight"):
        load_weights(m, extra)
    wrong = dict(sd, **{"decoder.conv2.weight": torch.zeros(256, 1280, 1, 1)})
    with pytest.raises(PyapproxError, match=r"decoder\.conv2\.weight \(expected \[512, 1280, 1, 1\], got \[256, 1280, 1, 1\]\)"):
        load_weights(m, wrong)
    with pytest.raises(PyapproxError, match="expected a densedepth_mbv2 state_dict"):
        load_weights(m, [1, 2])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PyapproxError, match="bad.pth"):
        load_weights(m, bad)
    with pytest.raises(PyapproxError, match="not found"):
        load_weights(m, tmp_path / "missing.pth")
    # the failed attempts loaded nothing
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
