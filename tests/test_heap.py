"""pyapprox.heap: with large blocks kept, a freed 256 MB array stays resident (and is reused without page faults)
until release_memory hands it back; run in a fresh interpreter, since the setting is process-wide."""

import subprocess
import sys

SCRIPT = r"""
import numpy as np
from pyapprox.heap import keep_large_blocks, release_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

assert keep_large_blocks()
base = rss_mb()
a = np.ones(32 << 20)  # 256 MB
del a
kept = rss_mb() - base
b = np.ones(32 << 20)  # the same block again: no new pages
again = rss_mb() - base
del b
release_memory()
print(kept, again, rss_mb() - base)
"""


def test_large_blocks_are_kept_then_released():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    kept, again, released = map(float, out.stdout.split())
    assert kept > 200 and again < kept + 20  # freed block kept, then reused
    assert released < 50  # handed back
