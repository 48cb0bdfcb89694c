"""Atomic file output and safe loading of untrusted files."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from pyapprox.errors import PyapproxError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or Ctrl-C inside the block leaves ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


def read_json(path: str | os.PathLike, what: str):
    """Decode a JSON file handed to us, with one-line errors naming ``what`` (``plan file``, ...) and the path."""
    path = Path(path)
    if path.is_dir():
        raise PyapproxError(f"{what} {path}: is a directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PyapproxError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PyapproxError(f"{what} {path}: cannot be read ({exc})") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PyapproxError(f"{what} {path}: invalid JSON ({str(exc)[:120]})") from None


def load_npy(path: str | os.PathLike, mmap_mode=None) -> np.ndarray:
    """Load a .npy file without ever unpickling objects."""
    return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)


def check_output_path(path: str | os.PathLike, what: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse an output path that cannot be written, before any work starts; returns it as a Path.

    ``what`` names the option or file in the message (``--json``, ``-o``). Refused: an existing directory, a
    name ending in a path separator, a parent that is a file or not writable, and (when ``suffixes`` is
    given) an extension outside ``suffixes``. Nothing is created on disk.
    """
    text = os.fspath(path)
    if not text or not text.strip():
        raise PyapproxError(f"{what}: empty output path")
    if "\0" in text:
        raise PyapproxError(f"{what} {text!r}: the path contains a NUL character")
    p = Path(text)
    if text.endswith((os.sep, "/")) or p.is_dir():
        raise PyapproxError(f"{what} {text}: is a directory; give a file name"
                            + (f" ending in {' or '.join(suffixes)}" if suffixes else ""))
    if suffixes and p.suffix.lower() not in suffixes:
        raise PyapproxError(f"{what} {text}: expected a file name ending in {' or '.join(suffixes)}")
    if p.exists() and not p.is_file():
        raise PyapproxError(f"{what} {text}: exists and is not a regular file")
    if p.exists() and not os.access(p, os.W_OK):
        raise PyapproxError(f"{what} {text}: file is not writable")
    _check_creatable(p.parent if str(p.parent) else Path("."), what, text)
    return p


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Refuse an output directory that exists as a file or cannot be created/written; creates nothing."""
    text = os.fspath(path)
    if not text or not text.strip():
        raise PyapproxError(f"{what}: empty directory path")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise PyapproxError(f"{what} {text}: exists and is not a directory")
    _check_creatable(p, what, text)
    return p


def _check_creatable(folder: Path, what: str, text: str) -> None:
    """``folder`` exists as a writable directory, or its nearest existing ancestor is one."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PyapproxError(f"{what} {text}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PyapproxError(f"{what} {text}: directory {ancestor} is not writable")
