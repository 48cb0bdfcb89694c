"""Evaluate many approximation plans on one (model, data, accelerator) context, in parallel, resumably.

Each job is a plan (``{layer: multiplier}``) or the float model. Jobs are keyed by
:func:`job_key` (weights, data, plan, accelerator config, LUT digests); keys already in the
:class:`~pyapprox.experiments.store.ResultStore` are skipped, so reruns are free and interrupted sweeps
resume. Scale-out: local processes by default (``workers``), or a Dask distributed scheduler
(``scheduler="tcp://host:8786"``); every worker builds the calibrated model once and reuses it.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import socket
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from multiprocessing import get_context
from urllib.parse import urlsplit

import torch
from tqdm import tqdm

from pyapprox.cache import content_key
from pyapprox.data import open_dataset
from pyapprox.errors import PyapproxError
from pyapprox.heap import keep_large_blocks, release_memory
from pyapprox.eval.evaluate import Variant, build_variants, evaluate
from pyapprox.experiments.panels import write_panel
from pyapprox.lut.library import get_lut
from pyapprox.models.network import is_default, load_network
from pyapprox.models.weights import DEFAULT_WEIGHTS
from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate

# `distributed` (about 1 s to import) and numba are imported where a scheduler or a thread limit is used.

ENGINE_VERSION = 1

#: Address schemes a Dask client can reach across processes and machines.
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")
#: Seconds to wait for a TCP connection to the scheduler, and for its answer to the Dask handshake.
CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0


def parse_scheduler(address: str) -> tuple[str, int]:
    """``(host, port)`` of a Dask scheduler address ``SCHEME://HOST:PORT``; PyapproxError for anything else."""
    what = f"--scheduler {address!r}"
    example = "e.g. tcp://127.0.0.1:8786 (start one with 'dask scheduler')"
    url = urlsplit(address) if address and not any(c.isspace() for c in address) else None
    if url is None or not url.scheme or not url.netloc:
        raise PyapproxError(f"{what}: not a scheduler address; expected tcp://HOST:PORT "
                            f"(or tls://, ws://, wss://), {example}")
    if url.scheme not in SCHEDULER_SCHEMES:
        raise PyapproxError(f"{what}: unsupported scheme {url.scheme!r}; expected "
                            f"{', '.join(s + '://' for s in SCHEDULER_SCHEMES)}, {example}")
    if url.path not in ("", "/") or url.query or url.fragment or url.username or url.password or not url.hostname:
        raise PyapproxError(f"{what}: not a scheduler address; expected {url.scheme}://HOST:PORT, {example}")
    try:
        port = url.port
    except ValueError:
        port = -1
    if port is None:
        raise PyapproxError(f"{what}: no port; expected {url.scheme}://HOST:PORT, {example}")
    if not 1 <= port <= 65535:
        raise PyapproxError(f"{what}: the port must be a number in 1..65535, {example}")
    return url.hostname, port


def check_scheduler(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse a ``--scheduler`` that is malformed, where nothing accepts a connection within ``timeout`` s, or
    where the server does not complete the Dask handshake within :data:`HANDSHAKE_TIMEOUT` s.

    ``None`` (local processes) passes. Meant to run before any evaluation work starts.
    """
    if address is None:
        return
    _tcp_probe(address, timeout)
    _handshake(address)


def _tcp_probe(address: str, timeout: float) -> None:
    """PyapproxError naming the cause when nothing at ``address`` accepts a TCP connection within ``timeout`` s."""
    host, port = parse_scheduler(address)
    what = f"--scheduler {address!r}"
    start = f"start a scheduler with 'dask scheduler --port {port}' and workers with 'dask worker {address}'"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror:
        raise PyapproxError(f"{what}: unknown host {host!r}") from None
    except ConnectionRefusedError:
        raise PyapproxError(f"{what}: nothing listens there (connection refused); {start}") from None
    except TimeoutError:
        raise PyapproxError(f"{what}: no answer within {timeout:g} s; check the host and port, or {start}") from None
    except OSError as e:
        raise PyapproxError(f"{what}: cannot connect ({e.strerror or e}); {start}") from None


def _handshake(address: str) -> None:
    """Open one Dask comm to ``address`` and close it; PyapproxError unless a Dask server answers in time.

    ``distributed`` waits for the handshake reply without a timeout, so this bounds it (on a thread of its own,
    so that it also works under a running event loop).
    """
    from distributed.comm import connect
    from distributed.security import Security

    async def probe():
        comm = await asyncio.wait_for(connect(address, timeout=HANDSHAKE_TIMEOUT,
                                              **Security().get_connection_args("client")), HANDSHAKE_TIMEOUT)
        await comm.close()

    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, probe()).result()
        except Exception:  # a timeout, a closed connection, an HTTP reply read as a huge frame length...
            _tcp_probe(address, CONNECT_TIMEOUT)  # when nothing listens (any more), say so
            raise PyapproxError(f"--scheduler {address!r}: something listens there, but it is not a Dask scheduler "
                                f"(no Dask handshake within {HANDSHAKE_TIMEOUT:g} s; the dashboard port? a scheduler "
                                f"listens on 8786 by default)") from None


def _dask_client(address: str):
    """A ``distributed.Client`` on ``address``, checked with :func:`_handshake` first."""
    from distributed import Client

    parse_scheduler(address)
    _handshake(address)
    try:
        return Client(address, timeout=HANDSHAKE_TIMEOUT)
    except (OSError, TimeoutError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PyapproxError(f"--scheduler {address!r}: cannot connect a Dask client ({reason})") from None


@dataclass(frozen=True)
class EvalContext:
    """What every evaluation of a sweep shares."""

    data: str = "synthetic"
    limit: int | None = 8
    weights: str | None = None
    config: tuple = ()  # AccelConfig as sorted (key, value) pairs, hashable
    calib_data: str | None = None
    backend: str = "auto"
    model: str | None = None  #: None: densedepth_mbv2; else a depth network saved as .onnx (same interface)

    @classmethod
    def create(cls, data="synthetic", limit=8, weights=None, config: AccelConfig | None = None, calib_data=None,
               backend="auto", model=None) -> "EvalContext":
        cfg = config or AccelConfig()
        return cls(data, limit, None if weights is None else str(weights), tuple(sorted(cfg.to_dict().items())),
                   calib_data, backend, None if is_default(model) else str(model))

    @property
    def accel(self) -> AccelConfig:
        return AccelConfig.from_dict(dict(self.config))

    def identity(self) -> dict:
        wpath = self.model or self.weights or str(DEFAULT_WEIGHTS)
        try:
            with open(wpath, "rb") as f:
                wsha = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            raise PyapproxError(f"{'model' if self.model else 'weights'} file {wpath}: cannot be read") from None
        ident = {"engine": ENGINE_VERSION, "weights": wsha, "data": self.data, "limit": self.limit,
                 "config": dict(self.config), "calib": self.calib_data}
        if self.model:
            ident["model"] = "onnx"
            if self.weights:
                try:
                    ident["onnx_weights"] = hashlib.sha256(Path(self.weights).read_bytes()).hexdigest()
                except OSError:
                    raise PyapproxError(f"weights file {self.weights}: cannot be read") from None
        return ident


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
        self.ctx = ctx
        self.model = load_network(ctx.model, ctx.weights)
        self.data = open_dataset(ctx.data, ctx.limit, progress=False)
        variants = build_variants(self.model, self.data, ctx.accel, {}, ctx.calib_data, ctx.backend,
                                  include_float=False, include_exact=True, progress=False)
        self.qmodel = variants[0].model

    def run(self, job: Job) -> tuple[dict, dict[str, bytes]]:
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
    rgb, gt = sample
    with tempfile.TemporaryDirectory() as d:
        p = write_panel(Path(d) / "p.png", rgb, gt, {name: pred}, error_of=[name])
        return p.read_bytes()


_EVALUATORS: dict = {}


def _limit_threads(n: int) -> None:
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
    keep_large_blocks()
    ev = evaluator(ctx)
    try:
        return ev.run(job)
    finally:
        release_memory()


def evaluator(ctx: EvalContext) -> Evaluator:
    """This process's evaluator of ``ctx``: built on first use, then shared (by jobs run here and by the predictor's
    operand capture), so that one process never holds two calibrated copies of a network and its data."""
    ev = _EVALUATORS.get(ctx)
    if ev is None:
        ev = _EVALUATORS[ctx] = Evaluator(ctx)
        release_memory()
    return ev


def lut_digests(jobs: list[Job]) -> dict[str, str]:
    """Generate (or fetch) every multiplier the jobs use, in this process, before any dispatch."""
    names = sorted({m for j in jobs for _, m in j.plan})
    return {m: get_lut(m).digest() for m in names}


def run_jobs(ctx: EvalContext, jobs: list[Job], store, workers: int = 1, scheduler: str | None = None,
             progress: bool = True, desc: str = "eval") -> list[str]:
    """Evaluate every job not yet in ``store``; returns the keys of all jobs in order.

    ``scheduler`` (a Dask address, see :func:`parse_scheduler`) runs the jobs on that cluster instead of ``workers``
    local processes; its workers need the weights file at the same path, and render or load the data themselves.
    """
    if scheduler is not None:
        parse_scheduler(scheduler)

    digests = lut_digests(jobs)
    ident = ctx.identity()
    keys = [job_key(ident, j, digests) for j in jobs]
    todo = {}
    for k, j in zip(keys, jobs):
        if store.get(k) is None and k not in todo:
            todo[k] = j
    client = _dask_client(scheduler) if scheduler is not None and todo else None  # refused before any output
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
        elif client is not None:
            from distributed import as_completed as dask_completed

            with client:
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
