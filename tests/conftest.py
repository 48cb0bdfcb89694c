"""Test-wide settings: a repository-local cache so tests never touch the user's ~/.cache."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYAPPROX_CACHE", str(ROOT / "build" / "cache"))
