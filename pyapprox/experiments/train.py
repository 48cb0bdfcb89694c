"""Train ``densedepth_mbv2`` from scratch on the synthetic indoor split (``pyapprox train``).

Target and loss follow DenseDepth: the network predicts p = 10 / depth_m (DenseDepth's 1000/depth_cm,
so that :func:`pyapprox.eval.metrics.prediction_to_depth` turns it back into metres) at half resolution;
loss = 1.0 * (1 - SSIM)/2 + 1.0 * L1 of image gradients + ``l1_weight`` (0.1) * L1. Training uses random crops of the
full-resolution renders (so objects keep the scale they have at test time), horizontal flips and colour
jitter, AdamW with warm-up and cosine decay, a fixed seed, and resumable checkpoints written atomically.
``loss="log"`` trains on log depth instead (L1 and gradients of log p), which is what the ratio metrics
measure. ``init`` starts from earlier weights, so a recipe can have stages (e.g. crops, then full-resolution images).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox import io as pio
from pyapprox.errors import PyapproxError


@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 4
    crop_h: int = 240
    crop_w: int = 320
    lr: float = 6e-4
    weight_decay: float = 1e-4
    warmup: int = 150
    train_images: int = 1500
    val_images: int = 16
    seed: int = 0
    threads: int = 2
    ckpt_every: int = 100
    val_every: int = 500
    l1_weight: float = 0.1
    loss: str = "densedepth"  # or "log": L1 and gradient L1 of log p, i.e. of log depth (what a1 measures)
    stop_at: int = 0  # end the stage after this step (0: at ``steps``); the schedule still spans ``steps``
    init: str = ""  # start from these weights (a fine-tuning stage) instead of a random initialisation


def depth_to_target(depth_m: torch.Tensor) -> torch.Tensor:
    return 10.0 / depth_m.clamp(0.1, 10.0)


def _ssim(x: torch.Tensor, y: torch.Tensor, val_range: float) -> torch.Tensor:
    c1, c2 = (0.01 * val_range) ** 2, (0.03 * val_range) ** 2
    k = torch.tensor([1, 4, 6, 4, 1], dtype=x.dtype) / 16.0
    win = (k[:, None] * k[None, :]).view(1, 1, 5, 5)
    mu_x, mu_y = F.conv2d(x, win, padding=2), F.conv2d(y, win, padding=2)
    sxx = F.conv2d(x * x, win, padding=2) - mu_x ** 2
    syy = F.conv2d(y * y, win, padding=2) - mu_y ** 2
    sxy = F.conv2d(x * y, win, padding=2) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean()


def log_depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|log p - log t| (= |log depth_pred - log depth_gt|, the ratio a1 thresholds) plus its image gradients."""
    lp, lt = torch.log(pred.clamp(min=0.05)), torch.log(target)
    dy = lambda t: t[:, :, 1:, :] - t[:, :, :-1, :]
    dx = lambda t: t[:, :, :, 1:] - t[:, :, :, :-1]
    grad = (dy(lp) - dy(lt)).abs().mean() + (dx(lp) - dx(lt)).abs().mean()
    return (lp - lt).abs().mean() + grad


def depth_loss(pred: torch.Tensor, target: torch.Tensor, l1_weight: float = 0.1) -> torch.Tensor:
    l1 = (pred - target).abs().mean()
    dy = lambda t: t[:, :, 1:, :] - t[:, :, :-1, :]
    dx = lambda t: t[:, :, :, 1:] - t[:, :, :, :-1]
    grad = (dy(pred) - dy(target)).abs().mean() + (dx(pred) - dx(target)).abs().mean()
    ssim = torch.clamp((1 - _ssim(pred, target, 20.0)) / 2, 0, 1)
    return ssim + grad + l1_weight * l1


def _augment(rgb: np.ndarray, depth: np.ndarray, cfg: TrainConfig, rng: np.random.Generator):
    """Random crops, flips and colour jitter: uint8 [B,H,W,3], float [B,H,W] -> same, cropped."""
    b, h, w = depth.shape
    out_rgb = np.empty((b, cfg.crop_h, cfg.crop_w, 3), np.float32)
    out_d = np.empty((b, cfg.crop_h, cfg.crop_w), np.float32)
    for i in range(b):
        y0 = int(rng.integers(0, h - cfg.crop_h + 1))
        x0 = int(rng.integers(0, w - cfg.crop_w + 1))
        r = rgb[i, y0:y0 + cfg.crop_h, x0:x0 + cfg.crop_w].astype(np.float32) / 255.0
        d = depth[i, y0:y0 + cfg.crop_h, x0:x0 + cfg.crop_w]
        if rng.random() < 0.5:
            r, d = r[:, ::-1], d[:, ::-1]
        gain = rng.uniform(0.75, 1.25)
        gamma = rng.uniform(0.8, 1.25)
        tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
        r = np.clip((r * gain * tint) ** gamma, 0, 1)
        if rng.random() < 0.25:
            r = r[:, :, rng.permutation(3)]
        out_rgb[i], out_d[i] = r, d
    return out_rgb, out_d


def _to_input(rgb01: np.ndarray) -> torch.Tensor:
    from pyapprox.models.densedepth_mbv2 import IMAGENET_MEAN, IMAGENET_STD

    x = torch.from_numpy(np.ascontiguousarray(rgb01)).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def _save_ckpt(path: Path, model, opt, step: int, cfg: TrainConfig, rng: np.random.Generator, log: list):
    from pyapprox.data.synthetic import RENDERER_VERSION

    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": asdict(cfg),
             "renderer": RENDERER_VERSION,
             "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(), "log": json.dumps(log)}
    with pio.atomic_path(path) as tmp:
        torch.save(state, tmp)


@torch.no_grad()
def validate(model, rgb: np.ndarray, depth: np.ndarray) -> dict:
    from pyapprox.eval.metrics import evaluate_depth, prediction_to_depth
    from pyapprox.models.densedepth_mbv2 import preprocess

    model.eval()
    preds = [prediction_to_depth(model(preprocess(rgb[i:i + 1])).numpy()) for i in range(len(rgb))]
    res = evaluate_depth(depth, np.concatenate(preds), crop=True)
    model.train()
    return {k: float(res[k]) for k in ("a1", "rel", "rms")}


def train(out_dir: Path, cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train and return the path of the final float32 checkpoint (``out_dir/final.pt``)."""
    from tqdm import tqdm

    from pyapprox.data.synthetic import RENDERER_VERSION, load_split
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    rgb, depth = load_split("train", cfg.train_images, progress=progress)
    vrgb, vdepth = load_split("val", cfg.val_images, progress=progress)
    model = DenseDepthMBV2()
    if cfg.init:
        from pyapprox.models.densedepth_mbv2 import load_weights

        load_weights(model, cfg.init)
    model = model.float().train().to(memory_format=torch.channels_last)  # ~5x faster dw/conv backward on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out_dir / "checkpoint.pt"
    step, log = 0, []
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        saved = {**asdict(TrainConfig()), **state["config"]}  # settings added later keep their defaults
        if {k: v for k, v in saved.items() if k != "stop_at"} != {k: v for k, v in asdict(cfg).items() if k != "stop_at"}:
            raise PyapproxError(f"{ckpt}: checkpoint was made with a different training config; "
                                f"remove it or pass the same options")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log = json.loads(state["log"])
    t0 = time.time()
    bar = tqdm(total=cfg.stop_at or cfg.steps, initial=step, desc="train", unit="step", disable=not progress)
    running = None
    end = cfg.stop_at or cfg.steps
    while step < end:
        idx = rng.integers(0, len(rgb), size=cfg.batch)
        r, d = _augment(rgb[idx], depth[idx], cfg, rng)
        x = _to_input(r).contiguous(memory_format=torch.channels_last)
        target = depth_to_target(torch.from_numpy(d)[:, None])
        target = F.avg_pool2d(target, 2)
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        pred = model(x)
        loss = log_depth_loss(pred, target) if cfg.loss == "log" else depth_loss(pred, target, cfg.l1_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{_lr(step, cfg):.1e}")
        if step % cfg.val_every == 0 or step == end:
            v = validate(model, vrgb, vdepth)
            log.append({"step": step, "loss": running, **v, "seconds": time.time() - t0})
            bar.write(f"step {step}: loss {running:.4f} val a1 {v['a1']:.3f} rel {v['rel']:.3f} rms {v['rms']:.3f}")
        if step % cfg.ckpt_every == 0 or step == end:
            _save_ckpt(ckpt, model, opt, step, cfg, rng, log)
    bar.close()
    final = out_dir / "final.pt"
    with pio.atomic_path(final) as tmp:
        torch.save({"state_dict": {k: v.contiguous() for k, v in model.state_dict().items()}, "config": asdict(cfg),
                    "log": json.dumps(log), "renderer": RENDERER_VERSION}, tmp)
    return final


def _command(cfg: dict) -> str:
    defaults = asdict(TrainConfig())
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if defaults.get(k) != v)
    return f"pyapprox train {args}".strip()


def training_stages(final_ckpt: Path) -> list[dict]:
    """The chain of training stages behind a final checkpoint (following each stage's ``init``)."""
    stages = []
    path = Path(final_ckpt)
    while True:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = {**asdict(TrainConfig()), **state["config"]}
        # checkpoints written before the renderer version was recorded were all made with version 1
        stages.append({"checkpoint": str(path), "config": cfg, "command": _command(cfg) + f" --out {path.parent}",
                       "renderer_version": int(state.get("renderer", 1)), "log": json.loads(state["log"])})
        if not cfg["init"]:
            break
        path = Path(cfg["init"])
    return stages[::-1]


def export_weights(final_ckpt: Path, dest: Path, extra: dict | None = None, test_images: int = 0) -> dict:
    """Store the trained weights as float16 (classifier dropped) plus a JSON recipe: every training stage's
    command, settings and validation log, the file's SHA-256 (verified whenever the weights load) and, with
    ``test_images``, the stored weights' float metrics on that many synthetic test images (``synthetic_test``)."""
    state = torch.load(final_ckpt, map_location="cpu", weights_only=True)
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state["state_dict"].items()
          if ".classifier." not in k}
    with pio.atomic_path(dest) as tmp:
        torch.save(sd, tmp)
    digest = hashlib.sha256(Path(dest).read_bytes()).hexdigest()
    meta = {"file": Path(dest).name, "sha256": digest, "stages": training_stages(final_ckpt), **(extra or {})}
    if test_images:
        meta["synthetic_test"] = score_on_test(dest, test_images)
    pio.write_json(Path(dest).with_suffix(".json"), meta)
    return meta


def score_on_test(weights: Path, images: int = 200, progress: bool = True) -> dict:
    """Float metrics of stored weights on the first ``images`` of the synthetic test split (480x640, Eigen crop)."""
    from pyapprox.data import open_dataset
    from pyapprox.eval.evaluate import Variant, evaluate
    from pyapprox.models.weights import load_model

    data = open_dataset("synthetic", images, progress=progress)
    res = evaluate([Variant("float", load_model(weights))], data, progress=progress)["variants"]["float"]
    return {**{k: round(v, 4) for k, v in res["metrics"].items()}, "images": res["images"], "data": data.name}
