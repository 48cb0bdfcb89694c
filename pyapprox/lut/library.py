"""LUTs of the RTL library by short name (``mbm``, ``trunc4``, ``sm(drum4)``, ...), and LUT files by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.lut.gen import generate
from pyapprox.lut.table import FORMATS, LUT
from pyapprox.rtl import library


def library_lut(name: str, use_cache: bool = True) -> LUT:
    """Generate (or fetch from the cache) the LUT of a library design, checked against its golden model."""
    design = library.resolve(name)
    a, b, out = design.ports
    lut = generate(design.files, design.top, a=a, b=b, out=out, params=dict(design.params),
                   defines=dict(design.defines), signed=design.signed, sign_ports=design.sign_ports,
                   use_cache=use_cache, name=design.name)
    golden = design.golden_table()
    if not np.array_equal(lut.table, golden):
        diff = np.argwhere(lut.table != golden)
        i, j = diff[0]
        raise PyapproxError(f"library design {design.name}: simulated table and golden model disagree on "
                            f"{len(diff)} pairs, first a={i} b={j}: RTL {lut.table[i, j]} vs golden {golden[i, j]}")
    lut.meta["description"] = design.description
    return lut


def is_lut_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in FORMATS or Path(spec).is_file()


def get_lut(spec: str, use_cache: bool = True) -> LUT:
    """A multiplier named by library name or by LUT file path."""
    if is_lut_file(spec):
        return LUT.load(spec)
    return library_lut(spec, use_cache=use_cache)
