"""DenseDepth-style monocular depth network with a MobileNetV2 encoder (float reference).

Layout and parameter names follow the original DenseDepth-MobileNetV2 code, which wrapped
torchvision's ``mobilenet_v2`` as ``encoder.original_model``; checkpoints saved from it load
strictly here. The encoder is written out locally (no torchvision dependency) and mirrors
``torchvision.models.mobilenet_v2(width_mult=1.0).features`` module for module:

* ``features.0``      ConvBNReLU(3, 32, 3, stride 2)
* ``features.1..17``  InvertedResidual blocks from the paper's (t, c, n, s) table
* ``features.18``     ConvBNReLU(320, 1280, 1)

The decoder (width factor ``decoder_width``, F = int(1280 * decoder_width)) is
``conv2`` (1x1, padding=1 as in the original: it grows the 15x20 bottleneck to 17x22),
six ``UpSample`` blocks ``up0..up5`` fed with the outputs of features 17, 14, 8, 5, 3, 1,
and ``conv3`` (3x3 to one channel). Input [N, 3, H, W] gives output [N, 1, H/2, W/2]
(480x640 -> 240x320).

Input normalisation is NOT done inside the model: use :func:`preprocess` (or your own) so
that the same tensor can be fed to float and quantized variants. The output is DenseDepth's
"depth-norm" quantity p; :func:`pyapprox.eval.metrics.prediction_to_depth` turns it into metres.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pyapprox.errors import PyapproxError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INVERTED_RESIDUAL_SETTING",
    "SKIP_FEATURE_INDICES",
    "ConvBNReLU",
    "InvertedResidual",
    "MobileNetV2",
    "Encoder",
    "UpSample",
    "Decoder",
    "DenseDepthMBV2",
    "preprocess",
    "conv_layers",
    "short_name",
    "conv_kind",
    "load_weights",
    "fusion_groups",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# MobileNetV2 paper, Table 2: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# Encoder feature modules whose outputs feed up0..up5 (encoder list index = module index + 1).
SKIP_FEATURE_INDICES = (17, 14, 8, 5, 3, 1)

ENCODER_PREFIX = "encoder.original_model.features."
CLASSIFIER_PREFIX = "encoder.original_model.classifier."


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (never dropping more than 10%), as torchvision."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    """Conv2d(bias=False) -> BatchNorm2d -> ReLU6; submodules are ``0``, ``1``, ``2``."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: [1x1 expand] -> 3x3 depthwise -> 1x1 linear project, residual if shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1))
        layers.extend(
            [
                ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision-compatible MobileNetV2 (width 1.0): ``features`` (0..18) and ``classifier``.

    The classifier is kept only so that checkpoints of the original code (which held the full
    torchvision model) load strictly; it is never used by :class:`Encoder`. State dicts without
    the ``classifier.*`` keys also load strictly (the current classifier values are kept).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

        self.register_load_state_dict_pre_hook(_fill_missing_classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.classifier(x)


def _fill_missing_classifier(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    """Load-state-dict pre-hook: if NO ``classifier.*`` key is present, keep the current classifier.

    ``nn.Module.load_state_dict`` works on a shallow copy of the caller's mapping, so adding keys
    here never modifies the caller's dict. A partial classifier (some keys only) is left alone and
    strict loading reports it as usual.
    """
    cls_prefix = prefix + "classifier."
    if any(k.startswith(cls_prefix) for k in state_dict):
        return
    for name, tensor in module.classifier.state_dict().items():
        state_dict[cls_prefix + name] = tensor


class Encoder(nn.Module):
    """Runs ``original_model.features`` and returns [x, f0(x), f1(f0(x)), ..., f18(...)] (20 tensors)."""

    def __init__(self):
        super().__init__()
        self.original_model = MobileNetV2()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        for module in self.original_model.features:
            features.append(module(features[-1]))
        return features


class UpSample(nn.Module):
    """Bilinear upsample (align_corners=True) to the skip's size, concat, two 3x3 conv + LeakyReLU(0.2)."""

    def __init__(self, skip_input: int, output_features: int):
        super().__init__()
        self.convA = nn.Conv2d(skip_input, output_features, kernel_size=3, stride=1, padding=1)
        self.leakyreluA = nn.LeakyReLU(0.2)
        self.convB = nn.Conv2d(output_features, output_features, kernel_size=3, stride=1, padding=1)
        self.leakyreluB = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, concat_with: torch.Tensor) -> torch.Tensor:
        up_x = F.interpolate(x, size=concat_with.shape[2:], mode="bilinear", align_corners=True)
        return self.leakyreluB(self.convB(self.leakyreluA(self.convA(torch.cat([up_x, concat_with], dim=1)))))


class Decoder(nn.Module):
    """DenseDepth decoder over the MobileNetV2 feature list (see module docstring)."""

    SKIP_CHANNELS = (320, 160, 64, 32, 24, 16)

    def __init__(self, num_features: int = 1280, decoder_width: float = 0.4):
        super().__init__()
        f = int(num_features * decoder_width)
        self.num_features = f
        self.conv2 = nn.Conv2d(num_features, f, kernel_size=1, stride=1, padding=1)
        outs = (f // 2, f // 2, f // 4, f // 8, f // 8, f // 16)
        prev = f
        for i, (skip, out) in enumerate(zip(self.SKIP_CHANNELS, outs)):
            setattr(self, f"up{i}", UpSample(skip_input=prev + skip, output_features=out))
            prev = out
        self.conv3 = nn.Conv2d(prev, 1, kernel_size=3, stride=1, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv2(features[19])
        for i, feat_idx in enumerate(SKIP_FEATURE_INDICES):
            x = getattr(self, f"up{i}")(x, features[feat_idx + 1])
        return self.conv3(x)


#: Module prefix of the encoder's MobileNetV2 feature layers; the research's short names drop it.
ENCODER_PREFIX = "encoder.original_model.features."


class DenseDepthMBV2(nn.Module):
    """Encoder-decoder: [N, 3, H, W] float (already normalised by the caller) -> [N, 1, H/2, W/2]."""

    def __init__(self, decoder_width: float = 0.4):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder(num_features=self.encoder.original_model.last_channel, decoder_width=decoder_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    # -- hooks read by pyapprox.nn (fusion and layer names) ------------------------------------------
    def fusion_groups(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """Declared fusion groups (see :func:`fusion_groups`), used instead of generic discovery."""
        return fusion_groups(self)

    def layer_aliases(self, name: str) -> list[str]:
        """Every name a layer answers to: full, the research's short name (``9.conv.1.0``) and
        ``encoder.9.conv.1.0``."""
        if name.startswith(ENCODER_PREFIX):
            short = name[len(ENCODER_PREFIX):]
            return [name, short, "encoder." + short]
        return [name]


def preprocess(rgb: Any, normalize: bool = True) -> torch.Tensor:
    """uint8 RGB [N, H, W, 3] (or one image [H, W, 3]) -> float32 tensor [N, 3, H, W].

    Pixels are scaled to [0, 1]; with ``normalize`` (default) the ImageNet mean/std are then
    applied per channel. Note: the original DenseDepth evaluation fed ``rgb / 255`` without
    mean/std normalisation; pass ``normalize=False`` for weights trained that way.
    """
    arr = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise PyapproxError(f"preprocess: expected uint8 RGB of shape [N, H, W, 3] or [H, W, 3], got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        raise PyapproxError(f"preprocess: expected dtype uint8 (0..255 RGB), got {arr.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """All ``nn.Conv2d`` modules of ``model`` as (qualified name, module), in forward order.

    For :class:`DenseDepthMBV2` registration order equals execution order: encoder
    features 0..18, then decoder conv2, up0.convA, up0.convB, ..., up5.convB, conv3.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def short_name(qualified_name: str) -> str:
    """Research short name: strip ``encoder.original_model.features.``; decoder names are unchanged.

    ``encoder.original_model.features.9.conv.1.0`` -> ``9.conv.1.0``; ``decoder.up0.convA`` stays.
    """
    if qualified_name.startswith(ENCODER_PREFIX):
        return qualified_name[len(ENCODER_PREFIX):]
    return qualified_name


def conv_kind(conv: nn.Conv2d) -> str:
    """``"dw"`` (depthwise: groups == in == out channels), ``"pw"`` (1x1, groups 1) or ``"full"``."""
    if conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels:
        return "dw"
    if conv.kernel_size == (1, 1) and conv.groups == 1:
        return "pw"
    return "full"


def _describe(keys: Iterable[str], limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _load_checkpoint(path: str | os.PathLike) -> Any:
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise PyapproxError(f"{path}: weights file not found") from None
    except Exception as e:  # pickle/zip errors, refused non-tensor objects, ...
        raise PyapproxError(
            f"{path}: cannot load as a torch checkpoint (weights_only=True); expected a densedepth_mbv2 state_dict",
            detail=f"{type(e).__name__}: {e}",
        ) from None


def load_weights(model: nn.Module, state_dict_or_path: Any) -> nn.Module:
    """Strictly load a densedepth_mbv2 state_dict (mapping or path) into ``model``; return ``model``.

    Accepted: a plain state_dict; a dict wrapping it under ``'state_dict'`` or ``'model'``; keys
    prefixed with ``module.`` (DataParallel). ``encoder.original_model.classifier.*`` may be present
    or absent. Paths are read with ``torch.load(weights_only=True, map_location='cpu')``.
    Any other mismatch raises :class:`PyapproxError` naming missing/unexpected keys and shape
    mismatches.
    """
    source = "state_dict"
    obj = state_dict_or_path
    if isinstance(obj, (str, os.PathLike)):
        source = os.fspath(obj)
        obj = _load_checkpoint(obj)
    if not isinstance(obj, Mapping):
        raise PyapproxError(f"{source}: expected a densedepth_mbv2 state_dict (a mapping of names to tensors), got {type(obj).__name__}")
    for wrapper in ("state_dict", "model"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    sd = OrderedDict(obj)
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        sd = OrderedDict((k[len("module."):], v) for k, v in sd.items())

    bad_values = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad_values:
        raise PyapproxError(f"{source}: expected a densedepth_mbv2 state_dict; non-tensor values for keys: {_describe(bad_values)}")

    expected = model.state_dict()
    cls_keys = {k for k in expected if k.startswith(CLASSIFIER_PREFIX)}
    has_cls = any(k.startswith(CLASSIFIER_PREFIX) for k in sd)
    missing = [k for k in expected if k not in sd and not (k in cls_keys and not has_cls)]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} (expected {list(expected[k].shape)}, got {list(sd[k].shape)})"
        for k in sd
        if k in expected and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    wrong_dtype = [f"{k} ({str(sd[k].dtype).replace('torch.', '')})" for k in sd
                   if k in expected and sd[k].dtype.is_floating_point != expected[k].dtype.is_floating_point]
    if wrong_dtype and not (missing or unexpected or mismatched):
        raise PyapproxError(f"{source}: tensors must be floating point like the model's parameters (weights cast to "
                            f"integers have lost their values); wrong dtype: {_describe(wrong_dtype, 3)}")
    nonfinite = [k for k in sd if k in expected and sd[k].dtype.is_floating_point and sd[k].numel()
                 and not bool(torch.isfinite(sd[k]).all())]
    if nonfinite and not (missing or unexpected or mismatched):
        raise PyapproxError(f"{source}: tensors hold NaN or infinite values: {_describe(nonfinite, 3)}")
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches: {_describe(mismatched, 3)}")
        raise PyapproxError(f"{source}: not a densedepth_mbv2 state_dict matching this model; " + "; ".join(parts))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise PyapproxError(f"{source}: failed to load densedepth_mbv2 weights", detail=str(e)) from None
    return model


def fusion_groups(model: "DenseDepthMBV2") -> list[tuple[str, str | None, str | None, str | None]]:
    """(conv, batchnorm, activation module, activation kind) for every conv, in forward order.

    Kinds: ``"relu6"``, ``"leaky0.2"`` or None. Used to fold BatchNorm and fuse activations into the
    quantized convolutions; the BN and activation modules named here become identities.
    """
    modules = dict(model.named_modules())
    groups = []
    for name, conv in conv_layers(model):
        parent, _, leaf = name.rpartition(".")
        bn = act = kind = None
        if isinstance(modules.get(parent), nn.Sequential):
            nxt = f"{parent}.{int(leaf) + 1}"
            if isinstance(modules.get(nxt), nn.BatchNorm2d):
                bn = nxt
                nxt2 = f"{parent}.{int(leaf) + 2}"
                if isinstance(modules.get(nxt2), nn.ReLU6):
                    act, kind = nxt2, "relu6"
        elif isinstance(modules.get(parent), UpSample) and leaf in ("convA", "convB"):
            act, kind = f"{parent}.leakyrelu{leaf[-1]}", "leaky0.2"
        groups.append((name, bn, act, kind))
    return groups
