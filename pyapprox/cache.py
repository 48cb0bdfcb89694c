"""Where pyapprox keeps derived artefacts (LUTs, hardware costs, rendered data, results)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """``$PYAPPROX_CACHE``, else ``$XDG_CACHE_HOME/pyapprox``, else ``~/.cache/pyapprox``."""
    env = os.environ.get("PYAPPROX_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pyapprox"


def cache_dir(kind: str) -> Path:
    d = cache_root() / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def content_key(obj) -> str:
    """A stable hash of a JSON-serialisable description."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
