"""A real Dask cluster (``dask scheduler`` + process-based ``dask worker``) starting from an empty cache, the
synthetic renderer inside daemonic processes, and ``--scheduler`` validation."""

import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed import Client

from pyapprox.cli import main
from pyapprox.data.synthetic import load_split
from pyapprox.experiments import engine
from pyapprox.experiments.store import ResultStore
from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2

pytestmark = pytest.mark.xdist_group("cluster")
DASK = Path(sys.executable).with_name("dask")
RES = (32, 40)


def _render_in_daemon(cache_dir, queue):
    try:
        rgb, depth = load_split("val", 8, *RES, cache_dir=cache_dir, progress=False, workers=2)
        queue.put((rgb, depth))
    except BaseException as e:  # report the failure to the parent instead of dying silently
        queue.put(repr(e))


def test_render_in_daemonic_process_matches_pool(tmp_path):
    pooled = load_split("val", 8, *RES, progress=False, workers=2, cache=False)
    serial = load_split("val", 8, *RES, progress=False, workers=1, cache=False)
    queue = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(target=_render_in_daemon, args=(tmp_path, queue), daemon=True)
    proc.start()
    got = queue.get(timeout=120)
    proc.join(30)
    assert not isinstance(got, str), got
    for a, b, c in zip(pooled, serial, got):
        assert a.dtype == c.dtype and np.array_equal(a, b) and np.array_equal(a, c)
    cached = load_split("val", 8, *RES, cache_dir=tmp_path, progress=False)
    assert all(np.array_equal(a, c) for a, c in zip(pooled, cached))
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(5)
    m = DenseDepthMBV2()
    with torch.no_grad():
        m.decoder.conv3.bias.fill_(5.0)
    path = tmp_path / "random.pt"
    torch.save(m.state_dict(), path)
    return path


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def cluster(tmp_path):
    """A ``dask scheduler`` and ``dask worker --nworkers 2`` (daemonic worker processes) whose cache is empty."""
    worker_cache = tmp_path / "worker-cache"
    worker_cache.mkdir()
    env = dict(os.environ, PYAPPROX_CACHE=str(worker_cache), OMP_NUM_THREADS="1")
    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)], env=env, cwd=tmp_path, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen(
            [str(DASK), "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
             "--local-directory", str(tmp_path / "dask-worker-space")], env=env, cwd=tmp_path,
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
            assert all(client.run(lambda: multiprocessing.current_process().daemon).values())
        yield address, worker_cache
    finally:
        for p in reversed(procs):
            _stop(p)


def test_sweep_on_a_real_cluster_starts_from_an_empty_cache(cluster, weights, tmp_path, capsys):
    address, worker_cache = cluster
    # --limit 1 with the default 8 calibration images: each worker renders synthetic:val (8 images) from nothing
    common = ["sweep", "layers", "--multiplier", "trunc4", "--layers", "1.conv.1", "--data", "synthetic@%dx%d" % RES,
              "--limit", "1", "--weights", str(weights), "--quiet", "-o", str(tmp_path / "out")]
    assert main([*common, "--scheduler", address, "--store", str(tmp_path / "dask.sqlite")]) == 0
    assert main([*common, "--workers", "1", "--store", str(tmp_path / "local.sqlite")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    remote = {k: r["metrics"] for k, r in ResultStore(tmp_path / "dask.sqlite").evals().items()}
    local = {k: r["metrics"] for k, r in ResultStore(tmp_path / "local.sqlite").evals().items()}
    assert len(remote) == 2 and remote == local  # the baseline and one layer: same keys, same metrics
    assert all(math.isfinite(v) for m in remote.values() for v in m.values())
    rendered = sorted(p.name for p in (worker_cache / "synthetic").iterdir())
    assert rendered == ["test_v2_32x40_n1_depth.npy", "test_v2_32x40_n1_rgb.npy",
                        "val_v2_32x40_n8_depth.npy", "val_v2_32x40_n8_rgb.npy"]  # no stray temporary files
    expected = load_split("val", 8, *RES, progress=False, cache=False)
    assert all(np.array_equal(a, b) for a, b in
               zip(expected, load_split("val", 8, *RES, cache_dir=worker_cache / "synthetic", progress=False)))


@pytest.mark.parametrize("address, expected", [
    ("not a url", "--scheduler 'not a url': not a scheduler address; expected tcp://HOST:PORT"),
    ("tcp://127.0.0.1:1", "--scheduler 'tcp://127.0.0.1:1': nothing listens there (connection refused); "
                          "start a scheduler with 'dask scheduler"),
    ("tcp://127.0.0.1", "--scheduler 'tcp://127.0.0.1': no port; expected tcp://HOST:PORT"),
    ("http://127.0.0.1:8786", "--scheduler 'http://127.0.0.1:8786': unsupported scheme 'http'"),
], ids=["not-a-url", "refused", "no-port", "http"])
@pytest.mark.parametrize("command", [["sweep", "layers", "--multiplier", "trunc4"],
                                     ["search", "--budget", "a1>=0.9"]], ids=["sweep", "search"])
def test_bad_scheduler_fails_fast_with_one_line(address, expected, command, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    t0 = time.monotonic()
    rc = main([*command, "--scheduler", address, "--store", str(store), "-o", str(tmp_path / "out")])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"pyapprox {command[0]}: error: {expected}"), err
    assert elapsed < 10
    assert not store.exists()  # refused before any evaluation work


@pytest.mark.parametrize("reply", [b"HTTP/1.0 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n", b"", None],
                         ids=["http", "closes", "silent"])
def test_a_server_that_is_not_a_scheduler_gives_one_line(reply, tmp_path, capsys, monkeypatch):
    """Something listens (an HTTP server such as the dashboard, or a silent one) but does not speak Dask."""
    monkeypatch.setattr(engine, "HANDSHAKE_TIMEOUT", 1.0)
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    port = srv.getsockname()[1]
    held, stop = [], threading.Event()

    def answer():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            if reply is None:
                held.append(conn)  # accept, never answer
                continue
            with conn:
                conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    store = tmp_path / "r.sqlite"
    t0 = time.monotonic()
    try:
        rc = main(["sweep", "layers", "--multiplier", "trunc4", "--scheduler", f"tcp://127.0.0.1:{port}",
                   "--store", str(store), "-o", str(tmp_path / "out")])
    finally:
        stop.set()
        thread.join(5)
        srv.close()
        for c in held:
            c.close()
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"pyapprox sweep: error: --scheduler 'tcp://127.0.0.1:{port}': something listens there, "
                          "but it is not a Dask scheduler (no Dask handshake within 1 s"), err
    assert time.monotonic() - t0 < 10
    assert not store.exists()  # refused before any evaluation work
