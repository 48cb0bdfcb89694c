"""The C heap of this process (glibc): large temporaries reused instead of page-faulted afresh, and freed pages handed
back between jobs. Both are no-ops where glibc's ``mallopt`` / ``malloc_trim`` are missing.

A whole-network pass allocates and frees accumulators, codes and planes of up to ~60 MB per layer. By default glibc
maps every block above its (at most 32 MB) mmap threshold afresh, so each such tensor costs a page fault per 4 KiB
page (about 5 ms per 60 MB here); :func:`keep_large_blocks` serves them from the heap, which reuses freed blocks.
The heap then keeps its high-water mark until :func:`release_memory`, which the evaluation workers call after each
job and the CLI between stages that free a model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap
_TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top is kept up to 1 GiB (release_memory trims it)
_LIBC = None
_KEPT = False


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def keep_large_blocks() -> bool:
    """Serve large blocks from the heap (reused when freed) rather than fresh mappings; once per process.
    True when the allocator took the setting."""
    global _KEPT
    lib = _libc()
    if lib and not _KEPT:
        _KEPT = bool(lib.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(lib.mallopt(_M_TRIM_THRESHOLD,
                                                                                            _TRIM_THRESHOLD))
    return _KEPT


def release_memory() -> None:
    """Collect garbage and hand the heap's free pages back to the system (``malloc_trim``): resident memory is then
    what the process holds, not the high-water mark of its last temporaries."""
    gc.collect()
    lib = _libc()
    if lib:
        lib.malloc_trim(0)
