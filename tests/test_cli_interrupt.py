"""Ctrl-C at any moment once pyapprox's own code runs (start-up imports of the sub-commands included) prints
one line and exits 130, with no traceback (issue 11). Before the fix, an interrupt while the parser imported
the command modules gave a KeyboardInterrupt traceback."""

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.02, 0.03, 0.05, 0.2, 0.5, 1.0, 2.0])
def test_ctrl_c_in_the_first_seconds(tmp_path, delay):
    env = dict(os.environ, PYAPPROX_CACHE=str(tmp_path / "cache"))
    # -X importtime reports each module once imported: wait for pyapprox.cli, then interrupt after `delay`
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "pyapprox", "eval", "--limit", "1", "--quiet"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if line.rstrip().endswith("pyapprox.cli"):
                break
            assert time.monotonic() < deadline
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [l for l in err.splitlines() if not l.startswith("import time:")]
    assert proc.returncode == 130, err[-2000:]
    assert lines == ["pyapprox: interrupted"] or lines == ["pyapprox eval: interrupted"], lines
