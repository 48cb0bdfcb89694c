"""Bit-accurate 256x256 lookup tables of 8x8 multipliers: type, formats, cache, generation, metrics."""

from pyapprox.lut.table import LUT

__all__ = ["LUT"]
