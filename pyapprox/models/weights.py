"""The committed default weights of ``densedepth_mbv2`` (trained on the synthetic split) and weight loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2, load_weights

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "densedepth_mbv2_synthetic.pt"


def verify_checksum(path: Path) -> dict:
    """Check a weights file against the SHA-256 recorded in its JSON recipe; returns the recipe."""
    recipe_path = path.with_suffix(".json")
    if not recipe_path.exists():
        raise PyapproxError(f"weights {path}: recipe {recipe_path.name} with its checksum is missing")
    recipe = json.loads(recipe_path.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != recipe.get("sha256"):
        raise PyapproxError(f"weights {path}: SHA-256 {digest[:16]}... does not match the recipe's "
                            f"{str(recipe.get('sha256'))[:16]}... (file corrupt or replaced)")
    return recipe


def load_model(weights: str | Path | None = None):
    """``DenseDepthMBV2`` in eval mode with the default (checksum-verified) or the given weights."""
    model = DenseDepthMBV2()
    if weights is None:
        if not DEFAULT_WEIGHTS.exists():
            raise PyapproxError(f"default weights {DEFAULT_WEIGHTS} are missing; train them with `pyapprox train` "
                                f"or pass --weights PATH")
        verify_checksum(DEFAULT_WEIGHTS)
        weights = DEFAULT_WEIGHTS
    path = Path(weights)
    if not path.is_file():
        raise PyapproxError(f"weights file {path}: no such file")
    load_weights(model, path)
    return model.float().eval()
