"""The package's layering (pyproject.toml [tool.importlinter]) holds, and the check fails on a violation."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# runs import-linter on the package found in the current directory (not the editable install's)
_LINT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, ".")
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True))
"""


def _lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _LINT], cwd=where, capture_output=True, text=True, timeout=300)


def test_contracts_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_a_violation_is_caught(tmp_path):
    shutil.copytree(ROOT / "pyapprox", tmp_path / "pyapprox", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    quant = tmp_path / "pyapprox" / "nn" / "quant.py"
    quant.write_text(quant.read_text() + "\nfrom pyapprox.models.densedepth_mbv2 import fusion_groups  # noqa\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "pyapprox.nn.quant -> pyapprox.models.densedepth_mbv2" in res.stdout
