"""The RTL multiplier library: where the Verilog lives, its designs and their golden models."""

from pathlib import Path

#: Root of the Verilog sources shipped with the project (``rtl/`` at the repository root).
RTL_DIR = Path(__file__).resolve().parents[2] / "rtl"
