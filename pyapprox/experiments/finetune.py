"""Approximation-aware fine-tuning (``pyapprox finetune``): train a network through a plan's bit-exact arithmetic.

The network is wrapped in a :class:`pyapprox.nn.qat.QATNetwork` (forward: the accelerator's integer arithmetic
with the plan's multipliers, bit-identical to ``eval``; backward: ``ste`` or ``lut`` gradients) and trained on
the synthetic training split with the loss and augmentation of :mod:`pyapprox.experiments.train` (whole frames by
default). Activation scales are recalibrated from the current weights every ``recalibrate_every`` steps, on the
calibration images ``eval`` uses, so the trained network is the one ``eval`` will build from the exported weights.

Checkpoints (weights, optimizer, scales, random state, log) are written atomically every ``ckpt_every`` steps and
on Ctrl-C; a run resumes from its checkpoint when the base weights, plan, multipliers, accelerator and settings
are the same, and then ends with the same weights as an uninterrupted run. The result is an ordinary weights
file plus a JSON recipe (see :func:`write_result`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pyapprox import io as pio
from pyapprox.errors import PyapproxError
from pyapprox.experiments.train import _augment, _to_input, depth_loss, depth_to_target, log_depth_loss
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.qat import DEFAULT_GRAD_STEP, GRADIENTS, QATNetwork

RECIPE_KIND = "pyapprox-finetune"
RECIPE_VERSION = 1


@dataclass
class FinetuneConfig:
    steps: int = 400
    batch: int = 2
    crop_h: int = 480  # whole frames by default: the depth scale depends on them
    crop_w: int = 640
    lr: float = 3e-5
    weight_decay: float = 0.0
    warmup: int = 20
    train_images: int = 1500
    val_images: int = 8
    val_every: int = 100
    ckpt_every: int = 25
    recalibrate_every: int = 50
    gradient: str = "ste"
    grad_step: int = DEFAULT_GRAD_STEP
    loss: str = "log"
    bias_correction: int = 8  # training images of the bias correction before step 1 (0: none)
    seed: int = 0
    threads: int = 2

    def __post_init__(self):
        def bad(name, valid):
            raise PyapproxError(f"finetune: {name}={getattr(self, name)!r} is not valid; expected {valid}")

        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (isinstance(v, bool) or not isinstance(v, int)):
                bad(f.name, "an integer")
            if f.type in ("float", float) and (isinstance(v, bool) or not isinstance(v, (int, float))
                                               or not math.isfinite(v)):
                bad(f.name, "a finite number")
        if self.steps < 1:
            bad("steps", "at least 1 (zero steps would train nothing)")
        for name in ("batch", "val_images", "ckpt_every", "val_every", "recalibrate_every", "threads",
                     "train_images"):
            if getattr(self, name) < 1:
                bad(name, "at least 1")
        if not 0 <= self.bias_correction <= 64:
            bad("bias_correction", "0 (none) to 64 images")
        if self.batch > 64:
            bad("batch", "at most 64")
        for name, full in (("crop_h", 480), ("crop_w", 640)):
            v = getattr(self, name)
            if not 32 <= v <= full or v % 32:
                bad(name, f"a multiple of 32 from 32 to {full}")
        if not 0 < self.lr <= 1:
            bad("lr", "a learning rate in (0, 1]")
        if not 0 <= self.weight_decay <= 1:
            bad("weight_decay", "a number from 0 to 1")
        if not 0 <= self.warmup < self.steps:
            bad("warmup", f"from 0 to steps - 1 ({self.steps - 1})")
        if self.gradient not in GRADIENTS:
            bad("gradient", " or ".join(GRADIENTS))
        if not 1 <= self.grad_step <= 64:
            bad("grad_step", "an integer from 1 to 64")
        if self.loss not in ("log", "densedepth"):
            bad("loss", "log or densedepth")
        if not 0 <= self.seed < 2 ** 32:
            bad("seed", "an integer from 0 to 2**32-1")


def _lr(step: int, ft: FinetuneConfig) -> float:
    if step < ft.warmup:
        return ft.lr * (step + 1) / ft.warmup
    t = (step - ft.warmup) / max(1, ft.steps - ft.warmup)
    return ft.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Setup:
    """Everything a fine-tuning run depends on besides its :class:`FinetuneConfig`."""

    model: torch.nn.Module
    model_name: str
    weights: dict  # {"path", "sha256"} of the base weights
    rules: list
    assignment: dict  # {layer: multiplier} for every quantized layer
    luts: dict  # {layer: LUT} for the approximate layers
    digests: dict  # {multiplier: table digest}
    config: AccelConfig
    calib_images: list
    calib_data: str

    def identity(self, ft: FinetuneConfig) -> dict:
        return {"model": self.model_name, "weights_sha256": self.weights["sha256"], "assignment": self.assignment,
                "multipliers": self.digests, "accelerator": self.config.to_dict(), "calib_data": self.calib_data,
                "finetune": asdict(ft)}


def make_setup(model: torch.nn.Module, model_name: str, weights: str, weights_file: str | Path, rules: list,
               config: AccelConfig, calib_images: list, calib_data: str) -> Setup:
    """Resolve the plan on ``model`` (every quantized layer named; unplanned ones ``exact``) and load its tables."""
    from pyapprox.lut.library import get_lut
    from pyapprox.nn.plan import model_layers, resolve_plan

    layers = model_layers(model)
    assignment = {n: "exact" for n in layers}
    assignment.update(resolve_plan(rules, layers))
    tables = {m: get_lut(m) for m in sorted({m for m in assignment.values() if m != "exact"})}
    luts = {n: tables[m] for n, m in assignment.items() if m != "exact"}
    return Setup(model, model_name, {"path": str(weights), "sha256": file_sha256(weights_file)}, list(rules),
                 assignment, luts, {m: t.digest() for m, t in tables.items()}, config, calib_images, calib_data)


def _validate(net: QATNetwork, rgb: np.ndarray, depth: np.ndarray) -> dict:
    from pyapprox.eval.metrics import evaluate_depth, prediction_to_depth
    from pyapprox.models.densedepth_mbv2 import preprocess

    with torch.no_grad():
        dev = next(net.parameters()).device
        preds = [prediction_to_depth(net(preprocess(rgb[i:i + 1]).to(dev)).cpu().numpy()) for i in range(len(rgb))]
    res = evaluate_depth(depth, np.concatenate(preds), crop=True)
    return {k: float(res[k]) for k in ("a1", "rel", "rms")}


def _save(path: Path, net: QATNetwork, opt, step: int, rng_state: dict, log: list, identity: dict) -> None:
    state = {"weights": net.float_state_dict(), "opt": opt.state_dict(), "step": step,
             "scales": json.dumps(net.scales()), "rng": json.dumps(rng_state),
             "log": json.dumps(log), "identity": json.dumps(identity, sort_keys=True)}
    with pio.atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load(path: Path, identity: dict) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PyapproxError(f"{path}: not a readable fine-tuning checkpoint ({type(exc).__name__}); remove it "
                            f"or pass --no-resume") from None
    keys = {"weights", "opt", "step", "scales", "rng", "log", "identity"}
    if not isinstance(state, dict) or set(state) != keys:
        raise PyapproxError(f"{path}: not a fine-tuning checkpoint of this version; remove it or pass --no-resume")
    try:
        saved = json.loads(state["identity"])
        state["scales"], state["rng"], state["log"] = (json.loads(state[k]) for k in ("scales", "rng", "log"))
    except (TypeError, ValueError):
        raise PyapproxError(f"{path}: damaged fine-tuning checkpoint; remove it or pass --no-resume") from None
    if saved != json.loads(json.dumps(identity, sort_keys=True)):
        diff = sorted(k for k in identity if saved.get(k) != json.loads(json.dumps(identity[k])))
        raise PyapproxError(f"{path}: checkpoint of a different run (differs in: {', '.join(diff)}); remove it, "
                            f"pass --no-resume, or choose another --out folder")
    if not isinstance(state["step"], int) or state["step"] < 0:
        raise PyapproxError(f"{path}: damaged fine-tuning checkpoint (step); remove it or pass --no-resume")
    return state


def finetune(out_dir: Path, setup: Setup, ft: FinetuneConfig, resume: bool = True, progress: bool = True,
             data: tuple | None = None) -> dict:
    """Train and return ``{"state_dict", "log", "seconds", "steps", "resumed_from"}``.

    ``data`` = (train rgb, train depth, val rgb, val depth) overrides the synthetic splits (tests).
    """
    from tqdm import tqdm

    from pyapprox.data.synthetic import load_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "finetune_checkpoint.pt"
    identity = setup.identity(ft)
    threads = torch.get_num_threads()
    torch.set_num_threads(ft.threads)
    try:
        if data is None:
            rgb, depth = load_split("train", ft.train_images, progress=progress)
            vrgb, vdepth = load_split("val", ft.val_images, progress=progress)
        else:
            rgb, depth, vrgb, vdepth = data
        if rgb.shape[1] < ft.crop_h or rgb.shape[2] < ft.crop_w:
            raise PyapproxError(f"finetune: crop {ft.crop_h}x{ft.crop_w} is larger than the training images "
                                f"({rgb.shape[1]}x{rgb.shape[2]})")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # GPU: LUT convs as PyTorch ops
        net = QATNetwork(setup.model, setup.calib_images, setup.config, setup.luts, ft.gradient, ft.grad_step)
        net.to(device)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=ft.lr, weight_decay=ft.weight_decay)
        rng = np.random.default_rng(ft.seed)
        step, log, resumed = 0, [], None
        if resume and ckpt.exists():
            state = _load(ckpt, identity)
            net.load_float_state_dict(state["weights"])
            net.set_scales(state["scales"])
            opt.load_state_dict(state["opt"])
            rng.bit_generator.state = state["rng"]
            step, log, resumed = state["step"], state["log"], state["step"]
        start = time.time() - (log[-1]["seconds"] if log else 0.0)
        if step == 0:  # bias correction on whole training frames, then the curve's first point
            corrected = _bias_correction(net, rgb, depth, ft, setup, device) if ft.bias_correction else None
            log = [{"step": 0, "loss": None, "lr": 0.0, "seconds": time.time() - start,
                    **({"bias_correction": corrected} if corrected else {}),
                    **{f"val_{k}": v for k, v in _validate(net, vrgb, vdepth).items()}}]
            if progress:
                what = "" if corrected is None else f" (bias correction {corrected['result']}: loss on its " \
                    f"frames {corrected['loss_before']:.4f} -> {corrected['loss_after']:.4f})"
                print(f"step 0{what}: val a1 {log[0]['val_a1']:.4f} rel {log[0]['val_rel']:.4f}")
        bar = tqdm(total=ft.steps, initial=step, desc=f"finetune ({ft.gradient})", unit="step",
                   disable=not progress)
        running = log[-1]["loss"] if log and log[-1]["loss"] is not None else None
        finished = rng.bit_generator.state  # the random state right after the last finished step
        scales = net.scales()  # and the scales it ended with
        try:
            while step < ft.steps:
                if step and step % ft.recalibrate_every == 0:
                    net.recalibrate(setup.calib_images)
                idx = rng.integers(0, len(rgb), size=ft.batch)
                r, d = _augment(rgb[idx], depth[idx], _crop_cfg(ft), rng)
                x = _to_input(r).to(device)
                target = F.avg_pool2d(depth_to_target(torch.from_numpy(d)[:, None]), 2).to(device)
                for g in opt.param_groups:
                    g["lr"] = _lr(step, ft)
                pred = net(x)
                loss = log_depth_loss(pred, target) if ft.loss == "log" else depth_loss(pred, target)
                if not torch.isfinite(loss):
                    raise PyapproxError(f"finetune: the loss is {float(loss.detach())} at step {step + 1} (learning "
                                        f"rate "
                                        f"{_lr(step, ft):.2g} too high?); nothing was exported"
                                        + (f"; the last checkpoint ({ckpt}) holds step {log[-1]['step']}"
                                           if ckpt.exists() and log else ""))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                finished = None  # weights, optimizer and step disagree until the step is logged
                opt.step()
                step += 1
                value = float(loss.detach())
                running = value if running is None else 0.95 * running + 0.05 * value
                entry = {"step": step, "loss": running, "lr": _lr(step - 1, ft), "seconds": time.time() - start}
                if step % ft.val_every == 0 or step == ft.steps:
                    entry.update({f"val_{k}": v for k, v in _validate(net, vrgb, vdepth).items()})
                    bar.write(f"step {step}: loss {running:.4f} val a1 {entry['val_a1']:.4f} "
                              f"rel {entry['val_rel']:.4f}")
                log.append(entry)
                finished, scales = rng.bit_generator.state, net.scales()
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", a1=_last_a1(log))
                if step % ft.ckpt_every == 0 or step == ft.steps:
                    _save(ckpt, net, opt, step, finished, log, identity)
        except KeyboardInterrupt:
            if finished is not None and step and not (ckpt.exists() and step % ft.ckpt_every == 0):
                net.set_scales(scales)  # a recalibration for the next step may have begun
                _save(ckpt, net, opt, step, finished, log, identity)  # nothing lost: resume continues from here
            raise
        finally:
            bar.close()
        return {"state_dict": {k: v.cpu() for k, v in net.float_state_dict().items()}, "log": log,
                "seconds": log[-1]["seconds"] if log else 0.0,
                "steps": step, "resumed_from": resumed}
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def _bias_correction(net: QATNetwork, rgb, depth, ft: FinetuneConfig, setup: Setup, device) -> dict:
    """Bias correction (:meth:`QATNetwork.correct_bias`) on the first whole training frames, kept only when it
    lowers the training loss on those frames (a mean shift suits biased errors such as truncation, not relative
    ones such as Mitchell's logarithm); returns what happened."""
    n = min(ft.bias_correction, len(rgb))
    x = _to_input(rgb[:n].astype(np.float32) / 255.0).to(device)
    target = F.avg_pool2d(depth_to_target(torch.from_numpy(depth[:n])[:, None]), 2).to(device)
    loss = log_depth_loss if ft.loss == "log" else depth_loss
    before = float(loss(net(x), target))
    weights, scales = net.float_state_dict(), net.scales()
    net.correct_bias(x, setup.calib_images)
    after = float(loss(net(x), target))
    if not after < before:
        net.load_float_state_dict(weights)
        net.set_scales(scales)
    return {"images": n, "loss_before": before, "loss_after": after, "result": "kept" if after < before else
            "reverted"}


def _last_a1(log: list) -> str:
    for e in reversed(log):
        if "val_a1" in e:
            return f"{e['val_a1']:.3f}"
    return "-"


def _crop_cfg(ft: FinetuneConfig):
    from pyapprox.experiments.train import TrainConfig

    return TrainConfig(crop_h=ft.crop_h, crop_w=ft.crop_w)


def write_result(dest: Path, state_dict: dict, recipe: dict) -> dict:
    """Write the weights (float32 state_dict, the float network's names) and ``dest.json``, the recipe with the
    weights' SHA-256 (``file``, ``sha256`` added), both renamed into place only once both are complete."""
    dest = Path(dest)
    with pio.atomic_path(dest) as tmp_w, pio.atomic_path(dest.with_suffix(".json")) as tmp_j:
        torch.save({k: v.contiguous() for k, v in state_dict.items()}, tmp_w)
        meta = {"kind": RECIPE_KIND, "version": RECIPE_VERSION, "file": dest.name,
                "sha256": file_sha256(tmp_w), **recipe}
        tmp_j.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def score_plans(model: str | None, weights: str | None, cfg: AccelConfig, calib_data: str | None, data: str,
                images: int | None, plans: list[dict], store, workers: int = 1, progress: bool = True) -> list[dict]:
    """Metrics of each plan ({layer: multiplier}; {} = exact-quantized) through the evaluation engine: cached in
    the results store, keyed by the weights' SHA-256 (sweep and search share the entries)."""
    from pyapprox.experiments.engine import EvalContext, Job, run_jobs

    ctx = EvalContext.create(data, images, weights, cfg, calib_data, model=model)
    keys = run_jobs(ctx, [Job.of(p) for p in plans], store, workers, progress=progress, desc="score")
    return [{**{k: round(v, 4) for k, v in store.get(k_)["metrics"].items()}, "images": store.get(k_)["images"]}
            for k_ in keys]


def run_finetune(setup: Setup, ft: FinetuneConfig, out_dir: Path, export: Path, store=None,
                 score_data: str = "synthetic", score_images: int | None = 200, eval_calib: str | None = None, workers: int = 2, resume: bool = True,
                 progress: bool = True, command: str | None = None) -> dict:
    """Score the plan before (with the exact-quantized network), fine-tune, score after, write the weights and
    recipe (:func:`write_result`) and, with a store, a ``finetune`` run record. Returns the recipe.

    Scores are on ``score_images`` images of ``score_data`` (none without a store); ``eval_calib`` is the
    calibration spec the scoring uses (None: eval's default, the same images ``setup`` was calibrated on).
    """
    weights = None if setup.weights["path"] == "default" else setup.weights["path"]
    model = None if setup.model_name == "densedepth_mbv2" else setup.model_name
    plan = {n: m for n, m in setup.assignment.items() if m != "exact"}
    t0 = time.time()
    before = dict(zip(("exact", "plan"), score_plans(model, weights, setup.config, eval_calib, score_data,
                                                     score_images, [{}, plan], store, workers, progress))) \
        if store is not None else {}
    scoring = time.time() - t0
    res = finetune(Path(out_dir), setup, ft, resume=resume, progress=progress)
    final = Path(out_dir) / "final.pt"  # the weights scored below (the store keys them by content)
    with pio.atomic_path(final) as tmp:
        torch.save(res["state_dict"], tmp)
    t1 = time.time()
    after = {"plan": score_plans(model, str(final), setup.config, eval_calib, score_data, score_images, [plan],
                                 store, workers, progress)[0]} if store is not None else {}
    scoring += time.time() - t1
    recipe = {"base_weights": setup.weights, "model": setup.model_name,
              "plan": {"rules": [list(r) for r in setup.rules], "assignment": setup.assignment},
              "multipliers": setup.digests, "accelerator": setup.config.to_dict(), "calib_data": setup.calib_data,
              "finetune": asdict(ft), "log": res["log"], "train_seconds": round(res["seconds"], 1),
              "resumed_from": res["resumed_from"],
              "scores": {"before": before, "after": after, "data": score_data, "images": score_images,
                         "protocol": "per-image", "scoring_seconds": round(scoring, 1)},
              "command": command, "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta = write_result(export, res["state_dict"], recipe)
    if store is not None:
        curve = [{k: e[k] for k in ("step", "loss", "val_a1") if k in e} for e in res["log"]]
        store.add_run("finetune", {"plan": plan, "weights": str(export), "sha256": meta["sha256"],
                                   "gradient": ft.gradient, "steps": res["steps"], "before": before,
                                   "after": after, "data": score_data, "images": score_images, "curve": curve,
                                   "train_seconds": recipe["train_seconds"]})
    return meta


class PlanFinetuner:
    """Fine-tunes whole plans for ``search --finetune``: each plan in its own folder ``OUT/<digest>/`` (resumable;
    a plan fine-tuned before is not trained again), scored on the search's own data through the store."""

    def __init__(self, ctx, ft: FinetuneConfig, out_dir: Path, store, workers: int = 2, progress: bool = True):
        self.ctx, self.ft, self.out_dir, self.store = ctx, ft, Path(out_dir), store
        self.workers, self.progress = workers, progress
        self._setup_parts = None

    def _parts(self):
        if self._setup_parts is None:
            from pyapprox.data import open_dataset
            from pyapprox.eval.evaluate import calibration_images
            from pyapprox.models.network import is_default, load_network
            from pyapprox.models.weights import DEFAULT_WEIGHTS

            ctx = self.ctx
            model = load_network(ctx.model, ctx.weights)
            data = open_dataset(ctx.data, ctx.limit, progress=False)
            calib = calibration_images(data, ctx.accel, ctx.calib_data, self.progress)
            wfile = ctx.weights or (ctx.model if not is_default(ctx.model) else str(DEFAULT_WEIGHTS))
            self._setup_parts = (model, wfile, calib)
        return self._setup_parts

    def __call__(self, plan: dict) -> tuple[dict, dict]:
        """(metrics of the fine-tuned plan on the search's data, {"weights": path, "sha256": digest})."""
        model, wfile, calib = self._parts()
        ctx = self.ctx
        digest = hashlib.sha256(json.dumps(sorted(plan.items())).encode()).hexdigest()[:16]
        setup = make_setup(model, ctx.model or "densedepth_mbv2", ctx.weights or "default", wfile,
                           sorted(plan.items()), ctx.accel, calib, ctx.calib_data or f"eval's default for {ctx.data}")
        folder = self.out_dir / digest
        export = folder / "finetuned.pt"
        meta = run_finetune(setup, self.ft, folder, export, self.store, ctx.data, ctx.limit, ctx.calib_data,
                            self.workers, True, self.progress, None)
        return meta["scores"]["after"]["plan"], {"weights": str(export), "sha256": meta["sha256"]}
