"""Evaluate many approximation plans on one (model, data, accelerator) context, in parallel, resumably.

Each job is a plan (``{layer: multiplier}``) or the float model. Jobs are keyed by
:func:`job_key` (weights, data, plan, accelerator config, LUT digests); keys already in the
:class:`~pyapprox.experiments.store.ResultStore` are skipped, so reruns are free and interrupted sweeps
resume. Scale-out: local processes by default (``workers``), or a Dask distributed scheduler
(``scheduler="tcp://host:8786"``); every worker builds the calibrated model once and reuses it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

from pyapprox.cache import content_key
from pyapprox.errors import PyapproxError
from pyapprox.nn.config import AccelConfig

ENGINE_VERSION = 1


@dataclass(frozen=True)
class EvalContext:
    """What every evaluation of a sweep shares."""

    data: str = "synthetic"
    limit: int | None = 8
    weights: str | None = None
    config: tuple = ()  # AccelConfig as sorted (key, value) pairs, hashable
    calib_data: str | None = None
    backend: str = "auto"

    @classmethod
    def create(cls, data="synthetic", limit=8, weights=None, config: AccelConfig | None = None, calib_data=None,
               backend="auto") -> "EvalContext":
        cfg = config or AccelConfig()
        return cls(data, limit, None if weights is None else str(weights), tuple(sorted(cfg.to_dict().items())),
                   calib_data, backend)

    @property
    def accel(self) -> AccelConfig:
        return AccelConfig.from_dict(dict(self.config))

    def identity(self) -> dict:
        from pyapprox.models.weights import DEFAULT_WEIGHTS

        wpath = self.weights or str(DEFAULT_WEIGHTS)
        try:
            with open(wpath, "rb") as f:
                wsha = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            raise PyapproxError(f"weights file {wpath}: cannot be read") from None
        return {"engine": ENGINE_VERSION, "weights": wsha, "data": self.data, "limit": self.limit,
                "config": dict(self.config), "calib": self.calib_data}


@dataclass(frozen=True)
class Job:
    """``plan`` is ``{layer: multiplier}`` (layers not named stay exact); ``float_model`` scores the float net."""

    plan: tuple = ()
    float_model: bool = False
    panels: int = 0

    @classmethod
    def of(cls, plan: dict | None = None, float_model=False, panels=0) -> "Job":
        items = tuple(sorted((k, v) for k, v in (plan or {}).items() if v != "exact"))
        return cls(items, float_model, panels)


def job_key(ctx_identity: dict, job: Job, digests: dict[str, str]) -> str:
    return content_key({"ctx": ctx_identity, "float": job.float_model, "plan": list(job.plan),
                        "luts": {m: digests[m] for _, m in job.plan}})


class Evaluator:
    """Holds the calibrated exact-quantized model and the data of one context (built once per process)."""

    def __init__(self, ctx: EvalContext):
        from pyapprox.data import open_dataset
        from pyapprox.eval.evaluate import build_variants
        from pyapprox.models.weights import load_model

        self.ctx = ctx
        self.model = load_model(ctx.weights)
        self.data = open_dataset(ctx.data, ctx.limit, progress=False)
        variants = build_variants(self.model, self.data, ctx.accel, {}, ctx.calib_data, ctx.backend,
                                  include_float=False, include_exact=True, progress=False)
        self.qmodel = variants[0].model

    def run(self, job: Job) -> tuple[dict, dict[str, bytes]]:
        from pyapprox.eval.evaluate import Variant, evaluate
        from pyapprox.nn.plan import approximate

        if job.float_model:
            variant = Variant("float", self.model)
        else:
            m = copy.deepcopy(self.qmodel)
            rules = list(job.plan)
            assignment = approximate(m, rules) if rules else {}
            variant = Variant("plan", m, rules, assignment)
        res = evaluate([variant], self.data, progress=False, keep=job.panels)
        rec = res["variants"][variant.name]
        rec["plan"] = dict(job.plan)
        rec["float"] = job.float_model
        artifacts = {}
        for i, pred in enumerate(res["predictions"].get(variant.name, [])):
            artifacts[f"panel_{i}.png"] = _panel_png(self.data[i], pred, variant.name)
        return rec, artifacts


def _panel_png(sample, pred, name) -> bytes:
    import tempfile
    from pathlib import Path

    from pyapprox.experiments.panels import write_panel

    rgb, gt = sample
    with tempfile.TemporaryDirectory() as d:
        p = write_panel(Path(d) / "p.png", rgb, gt, {name: pred}, error_of=[name])
        return p.read_bytes()


_EVALUATORS: dict = {}


def _limit_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:
        pass


def run_job(ctx: EvalContext, job: Job, threads: int | None = None):
    """Evaluate one job in this process (the evaluator is built once per context and reused)."""
    if threads:
        _limit_threads(threads)
    ev = _EVALUATORS.get(ctx)
    if ev is None:
        ev = _EVALUATORS[ctx] = Evaluator(ctx)
    return ev.run(job)


def lut_digests(jobs: list[Job]) -> dict[str, str]:
    """Generate (or fetch) every multiplier the jobs use, in this process, before any dispatch."""
    from pyapprox.lut.library import get_lut

    names = sorted({m for j in jobs for _, m in j.plan})
    return {m: get_lut(m).digest() for m in names}


def run_jobs(ctx: EvalContext, jobs: list[Job], store, workers: int = 1, scheduler: str | None = None,
             progress: bool = True, desc: str = "eval") -> list[str]:
    """Evaluate every job not yet in ``store``; returns the keys of all jobs in order."""
    from tqdm import tqdm

    digests = lut_digests(jobs)
    ident = ctx.identity()
    keys = [job_key(ident, j, digests) for j in jobs]
    todo = {}
    for k, j in zip(keys, jobs):
        if store.get(k) is None and k not in todo:
            todo[k] = j
    bar = tqdm(total=len(set(keys)), initial=len(set(keys)) - len(todo), desc=desc, unit="eval",
               disable=not progress)

    def save(key, result):
        rec, artifacts = result
        rec.update({"key": key, "context": ident, "luts": {m: digests[m] for m in rec["plan"].values()}})
        store.put(key, rec)
        for name, data in artifacts.items():
            store.put_artifact(key, name, data)
        bar.update(1)

    try:
        if not todo:
            pass
        elif scheduler:
            from distributed import Client, as_completed as dask_completed

            with Client(scheduler) as client:
                futs = {client.submit(run_job, ctx, j, 1, pure=False): k for k, j in todo.items()}
                for fut in dask_completed(futs):
                    save(futs[fut], fut.result())
        elif workers > 1 and len(todo) > 1:
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futs = {pool.submit(run_job, ctx, j, threads): k for k, j in todo.items()}
                for fut in as_completed(futs):
                    save(futs[fut], fut.result())
        else:
            for k, j in todo.items():
                save(k, run_job(ctx, j))
    finally:
        bar.close()
    return keys
