"""Registry of the Verilog multiplier library: design names -> sources, parameters, golden model.

One table, :data:`FAMILIES`, holds every design family (name pattern with parameter ranges, Verilog top,
files, golden model, description, operand format, listed examples). The name grammar (:data:`GRAMMAR`,
error messages), :func:`library_names` (hence ``pyapprox lut list``) and the README's list of names
(:func:`readme_names`, checked by ``tests/rtl``) are generated from it. :func:`resolve` turns a name into
a :class:`Design`, e.g. ``trunc4c``, ``bam_h2_v6``, ``drum4``, ``sm(mbm)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.rtl import RTL_DIR, golden

__all__ = ["Design", "Family", "FAMILIES", "resolve", "library_names", "readme_names", "GRAMMAR"]

MULT_DIR = RTL_DIR / "mult"

OPERANDS = ("unsigned", "signed", "sign-magnitude")
_WRAPPED = "<unsigned name>"  # the one non-numeric pattern field: the design a wrapper wraps
_FIELD = re.compile(r"\{(\w+):(\d+)\.\.(\d+)\}")


@dataclass(frozen=True)
class Family:
    """One row of the library: a design family and how its names map to HDL parameters.

    ``pattern`` is the name with its numeric fields written ``{F:lo..hi}`` (e.g. ``bam_h{H:0..8}_v{V:0..15}``);
    a wrapper family (``operands="sign-magnitude"``) has the field ``<unsigned name>`` instead. The HDL
    parameters of a name are its field values, renamed by ``hdl`` (field -> parameter), plus ``fixed``,
    in that order. ``description`` is formatted with the field values, or called with them.
    """

    pattern: str
    top: str  #: Verilog top module
    files: tuple[str, ...]  #: file names in rtl/mult: the top's file first, then every module it instantiates
    golden: Callable[..., np.ndarray] | None  #: golden model, called with the HDL parameters (None: wrapper)
    description: str | Callable[..., str]
    operands: str = "unsigned"  #: one of OPERANDS
    examples: tuple[str, ...] = ()  #: names listed by library_names(), in this order
    hdl: dict = field(default_factory=dict, hash=False)  #: pattern field -> HDL parameter name, where they differ
    fixed: dict = field(default_factory=dict, hash=False)  #: HDL parameters common to the family

    @property
    def ranges(self) -> dict[str, tuple[int, int]]:
        return {f: (int(lo), int(hi)) for f, lo, hi in _FIELD.findall(self.pattern)}

    @property
    def shape(self) -> str:
        """The pattern without the ranges, e.g. ``bam_h{H}_v{V}``."""
        return _FIELD.sub(r"{\1}", self.pattern)

    @property
    def grammar(self) -> str:
        """``bam_h{H}_v{V} (H 0..8, V 0..15)``."""
        rng = ", ".join(f"{f} {lo}..{hi}" for f, (lo, hi) in self.ranges.items())
        return self.shape + (f" ({rng})" if rng else "")

    @property
    def regex(self) -> re.Pattern:
        parts = re.split(r"(\{\w+:\d+\.\.\d+\}|" + re.escape(_WRAPPED) + ")", self.pattern)
        return re.compile("".join("(.*)" if p == _WRAPPED else r"(\d+)" if _FIELD.fullmatch(p) else re.escape(p)
                                  for p in parts))

    def name(self, values: dict[str, int]) -> str:
        return self.shape.format(**values)

    def params(self, values: dict[str, int]) -> dict[str, int]:
        return {**{self.hdl.get(f, f): v for f, v in values.items()}, **self.fixed}

    def describe(self, values: dict[str, int]) -> str:
        d = self.description
        return d(**values) if callable(d) else d.format(**values)


def _trunc_comp_description(K: int) -> str:
    return (f"truncated multiplier, pp bits of columns < {K} dropped, +{golden.trunc_comp_constant(K)} "
            "expected-value compensation (Schulte & Swartzlander, VLSI Signal Processing VI, 1993)")


#: The library. Adding a design: a row here, its Verilog in rtl/mult, its golden model, a bench in sim/mult.
FAMILIES: tuple[Family, ...] = (
    Family("exact", "mult_exact_array", ("mult_exact_array.v", "pa_adders.v"), golden.exact,
           "exact unsigned ripple-carry array multiplier, structural (Parhami, Computer Arithmetic, ch. 11)",
           examples=("exact",)),
    Family("exact_behav", "mult_exact_behav", ("mult_exact_behav.v",), golden.exact,
           "exact unsigned multiplier, behavioural a * b (architecture chosen by synthesis)",
           examples=("exact_behav",)),
    Family("exact_signed", "mult_signed_bw", ("mult_signed_bw.v",), golden.exact_signed,
           "exact signed multiplier, modified Baugh-Wooley (Baugh & Wooley, IEEE TC 1973)",
           operands="signed", examples=("exact_signed",)),
    Family("trunc{K:0..15}", "mult_trunc", ("mult_trunc.v",), golden.trunc,
           "truncated multiplier, pp bits of columns < {K} dropped (Schulte & Swartzlander, VLSI Signal "
           "Processing VI, 1993)", examples=("trunc4", "trunc6"), fixed={"COMP": 0}),
    Family("trunc{K:0..15}c", "mult_trunc", ("mult_trunc.v",), golden.trunc, _trunc_comp_description,
           examples=("trunc4c", "trunc8c"), fixed={"COMP": 1}),
    Family("bam_h{H:0..8}_v{V:0..15}", "mult_bam", ("mult_bam.v", "pa_adders.v"), golden.bam,
           "broken-array multiplier, HBL={H} rows and VBL={V} columns omitted (Mahdiani et al., IEEE TCAS-I 2010)",
           examples=("bam_h2_v6", "bam_h0_v8", "bam_h1_v10"), hdl={"H": "HBL", "V": "VBL"}),
    Family("mitchell", "mult_mitchell", ("mult_mitchell.v", "mitchell_core.v", "lod8.v"), golden.mitchell,
           "Mitchell logarithmic multiplier, 7-bit fractions (Mitchell, IRE Trans. EC 1962)",
           examples=("mitchell",)),
    Family("mbm", "mult_mbm", ("mult_mbm.v", "mitchell_core.v", "lod8.v"), golden.mbm,
           "minimally biased multiplier, Mitchell + 1/12 correction (Saadat et al., IEEE TCAD 2018)",
           examples=("mbm",)),
    Family("drum{K:2..8}", "mult_drum", ("mult_drum.v", "lod8.v"), golden.drum,
           "DRUM-{K} dynamic-range unbiased multiplier (Hashemi, Bahar, Reda, ICCAD 2015)",
           examples=("drum3", "drum4", "drum6")),
    Family("comp42_{K:0..15}", "mult_comp42", ("mult_comp42.v",), golden.comp42,
           "approximate 4:2-compressor multiplier, columns < {K} compressed (Momeni et al., IEEE TC 2015)",
           examples=("comp42_6", "comp42_10")),
    Family("sm(" + _WRAPPED + ")", "sm_mult", ("sm_mult.v",), None,
           "sign-magnitude wrapper (zero stays positive) around {inner}: {inner_description}",
           operands="sign-magnitude", examples=("sm(exact)", "sm(mbm)", "sm(trunc4)", "sm(drum4)")),
)

GRAMMAR = ", ".join(f.grammar for f in FAMILIES)
_EXAMPLES = "e.g. " + ", ".join(f.examples[0] for f in FAMILIES if f.ranges or f.operands == "sign-magnitude")


@dataclass(frozen=True)
class Design:
    """One multiplier of the library: how to build it and what it must compute."""

    name: str  #: canonical library name, e.g. "trunc4c", "bam_h2_v6", "sm(mbm)"
    top: str  #: Verilog top module
    files: tuple[Path, ...]  #: absolute paths of all sources needed (the top's file first)
    params: dict = field(hash=False)  #: HDL parameter overrides (name -> int)
    defines: dict = field(hash=False)  #: preprocessor macros (name -> str), for sm(...)
    signed: bool  #: two's-complement operands and output
    sign_magnitude: bool  #: True for sm(...) designs
    ports: tuple[str, str, str]  #: (a, b, p) data / magnitude ports
    sign_ports: tuple[str, str, str] | None  #: (a_sign, b_sign, p_sign) for sm(...)
    description: str  #: one line, with the reference
    inner: "Design | None" = None  #: wrapped design, for sm(...)
    model: Callable[..., np.ndarray] | None = field(default=None, compare=False, repr=False)  #: its family's golden

    @property
    def golden_fn(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """Golden model ``f(a_codes, b_codes) -> int64`` (the inner design's for sm(...))."""
        if self.inner is not None:
            return self.inner.golden_fn
        return partial(self.model, **self.params)

    def golden_table(self) -> np.ndarray:
        """(256, 256) int64 outputs indexed ``[a_code, b_code]``.

        Signed designs hold signed values; for sm(...) it is the magnitude table of the
        inner design (the sign is ``a_sign ^ b_sign`` unless the magnitude is 0).
        """
        return golden.golden_table(self.golden_fn)


def library_names() -> list[str]:
    """The canonical list of library designs: every family's examples, in table order."""
    return [n for f in FAMILIES for n in f.examples]


def readme_names() -> str:
    """The README's sentence listing the name patterns (tests/rtl checks that the README carries it)."""
    shapes = [f"`{f.shape}`" + (" for the sign-magnitude wrapper" if f.operands == "sign-magnitude" else "")
              for f in FAMILIES]
    return f"Library names: {', '.join(shapes[:-1])}, and {shapes[-1]}."


def _files(names) -> tuple[Path, ...]:
    return tuple(MULT_DIR / n for n in names)


def _build(fam: Family, values: dict[str, int]) -> Design:
    return Design(name=fam.name(values), top=fam.top, files=_files(fam.files), params=fam.params(values),
                  defines={}, signed=fam.operands == "signed", sign_magnitude=False, ports=("a", "b", "p"),
                  sign_ports=None, description=fam.describe(values), model=fam.golden)


def _wrap(fam: Family, name: str, inner_name: str) -> Design:
    if fam.regex.fullmatch(inner_name) or inner_name.startswith("sm("):
        raise PyapproxError(f"multiplier '{name}': sm(...) cannot be nested; wrap an unsigned design, e.g. sm(mbm)")
    inner = resolve(inner_name)
    if inner.signed:
        raise PyapproxError(f"multiplier '{name}': sm(...) needs an unsigned inner design, "
                            f"'{inner.name}' is signed; e.g. sm(exact), sm(drum4)")
    defines = {"SM_INNER": inner.top}
    if inner.params:
        defines["SM_INNER_PARAMS"] = "#(" + ",".join(f".{k}({v})" for k, v in inner.params.items()) + ")"
    return Design(name=fam.shape.replace(_WRAPPED, inner.name), top=fam.top, files=_files(fam.files) + inner.files,
                  params={}, defines=defines, signed=False, sign_magnitude=True, ports=("a_mag", "b_mag", "p_mag"),
                  sign_ports=("a_sign", "b_sign", "p_sign"),
                  description=fam.describe({"inner": inner.name, "inner_description": inner.description}),
                  inner=inner)


def resolve(name: str) -> Design:
    """Look up a library design by name (a :data:`FAMILIES` pattern with its fields filled in).

    Raises :class:`PyapproxError` for unknown names and out-of-range parameters.
    """
    if not isinstance(name, str):
        raise PyapproxError(f"multiplier name must be a string, got {name!r}; valid: {GRAMMAR}")
    key = name.strip()
    for fam in FAMILIES:
        m = fam.regex.fullmatch(key)
        if not m:
            continue
        if fam.operands == "sign-magnitude":
            return _wrap(fam, name, m.group(1).strip())
        values = {f: int(v) for f, v in zip(fam.ranges, m.groups())}
        if any(not lo <= values[f] <= hi for f, (lo, hi) in fam.ranges.items()):
            what = ", ".join(f"{f}={v}" for f, v in values.items())
            raise PyapproxError(f"multiplier '{name}': {what} out of range, valid is {fam.grammar} ({_EXAMPLES})")
        return _build(fam, values)
    raise PyapproxError(f"unknown multiplier '{name}'; valid names: {GRAMMAR} ({_EXAMPLES})")

