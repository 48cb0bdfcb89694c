"""Registry of the Verilog multiplier library: design names -> sources, parameters, golden model.

Name grammar (see :func:`resolve`)::

    exact               exact unsigned array multiplier (structural)
    exact_behav         exact unsigned, behavioural a * b
    exact_signed        exact signed, modified Baugh-Wooley
    trunc{K}            truncated, pp bits with i+j < K dropped        K = 0..15
    trunc{K}c           the same with the round(E[dropped]) constant   K = 0..15
    bam_h{H}_v{V}       broken-array multiplier                         H = 0..8, V = 0..15
    mitchell            Mitchell logarithmic multiplier
    mbm                 minimally biased (Mitchell + correction) multiplier
    drum{K}             DRUM-k                                          K = 2..8
    comp42_{K}          approximate 4:2 compressors in columns < K      K = 0..15
    sm(<unsigned name>) sign-magnitude wrapper around an unsigned design
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.rtl import RTL_DIR, golden

__all__ = ["Design", "resolve", "library_names", "GRAMMAR"]

MULT_DIR = RTL_DIR / "mult"

GRAMMAR = (
    "exact, exact_behav, exact_signed, trunc{K} / trunc{K}c (K 0..15), bam_h{H}_v{V} (H 0..8, V 0..15), "
    "mitchell, mbm, drum{K} (K 2..8), comp42_{K} (K 0..15), sm(<unsigned name>)"
)

_CANONICAL = (
    "exact",
    "exact_behav",
    "exact_signed",
    "trunc4",
    "trunc6",
    "trunc4c",
    "trunc8c",
    "bam_h2_v6",
    "bam_h0_v8",
    "bam_h1_v10",
    "mitchell",
    "mbm",
    "drum3",
    "drum4",
    "drum6",
    "comp42_6",
    "comp42_10",
    "sm(exact)",
    "sm(mbm)",
    "sm(trunc4)",
    "sm(drum4)",
)

_EXAMPLES = "e.g. exact, trunc4c, bam_h2_v6, drum4, comp42_10, sm(mbm)"

# golden model of each Verilog top (called with the HDL parameters as keywords)
_GOLDEN: dict[str, Callable[..., np.ndarray]] = {
    "mult_exact_array": golden.exact,
    "mult_exact_behav": golden.exact,
    "mult_signed_bw": golden.exact_signed,
    "mult_trunc": golden.trunc,
    "mult_bam": golden.bam,
    "mult_mitchell": golden.mitchell,
    "mult_mbm": golden.mbm,
    "mult_drum": golden.drum,
    "mult_comp42": golden.comp42,
}


@dataclass(frozen=True)
class Design:
    """One multiplier of the library: how to build it and what it must compute."""

    name: str  #: canonical library name, e.g. "trunc4c", "bam_h2_v6", "sm(mbm)"
    top: str  #: Verilog top module
    files: tuple[Path, ...]  #: absolute paths of all sources needed
    params: dict = field(hash=False)  #: HDL parameter overrides (name -> int)
    defines: dict = field(hash=False)  #: preprocessor macros (name -> str), for sm(...)
    signed: bool  #: two's-complement operands and output
    sign_magnitude: bool  #: True for sm(...) designs
    ports: tuple[str, str, str]  #: (a, b, p) data / magnitude ports
    sign_ports: tuple[str, str, str] | None  #: (a_sign, b_sign, p_sign) for sm(...)
    description: str  #: one line, with the reference
    inner: "Design | None" = None  #: wrapped design, for sm(...)

    @property
    def golden_fn(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """Golden model ``f(a_codes, b_codes) -> int64`` (the inner design's for sm(...))."""
        if self.inner is not None:
            return self.inner.golden_fn
        return partial(_GOLDEN[self.top], **self.params)

    def golden_table(self) -> np.ndarray:
        """(256, 256) int64 outputs indexed ``[a_code, b_code]``.

        Signed designs hold signed values; for sm(...) it is the magnitude table of the
        inner design (the sign is ``a_sign ^ b_sign`` unless the magnitude is 0).
        """
        return golden.golden_table(self.golden_fn)


def library_names() -> list[str]:
    """The canonical list of library designs."""
    return list(_CANONICAL)


def _files(*names: str) -> tuple[Path, ...]:
    return tuple(MULT_DIR / n for n in names)


def _unsigned(top, files, params, name, description) -> Design:
    return Design(
        name=name,
        top=top,
        files=files,
        params=dict(params),
        defines={},
        signed=False,
        sign_magnitude=False,
        ports=("a", "b", "p"),
        sign_ports=None,
        description=description,
    )


def _range_error(name: str, what: str, valid: str) -> PyapproxError:
    return PyapproxError(f"multiplier '{name}': {what} out of range, valid is {valid} ({_EXAMPLES})")


_RE_TRUNC = re.compile(r"trunc(\d+)(c?)")
_RE_BAM = re.compile(r"bam_h(\d+)_v(\d+)")
_RE_DRUM = re.compile(r"drum(\d+)")
_RE_COMP = re.compile(r"comp42_(\d+)")
_RE_SM = re.compile(r"sm\((.*)\)")


def resolve(name: str) -> Design:
    """Look up a library design by name (see the module docstring for the grammar).

    Raises :class:`PyapproxError` for unknown names and out-of-range parameters.
    """
    if not isinstance(name, str):
        raise PyapproxError(f"multiplier name must be a string, got {name!r}; valid: {GRAMMAR}")
    key = name.strip()

    m = _RE_SM.fullmatch(key)
    if m:
        inner_name = m.group(1).strip()
        if _RE_SM.fullmatch(inner_name) or inner_name.startswith("sm("):
            raise PyapproxError(
                f"multiplier '{name}': sm(...) cannot be nested; wrap an unsigned design, e.g. sm(mbm)"
            )
        inner = resolve(inner_name)
        if inner.signed:
            raise PyapproxError(
                f"multiplier '{name}': sm(...) needs an unsigned inner design, "
                f"'{inner.name}' is signed; e.g. sm(exact), sm(drum4)"
            )
        defines = {"SM_INNER": inner.top}
        if inner.params:
            defines["SM_INNER_PARAMS"] = "#(" + ",".join(f".{k}({v})" for k, v in inner.params.items()) + ")"
        return Design(
            name=f"sm({inner.name})",
            top="sm_mult",
            files=_files("sm_mult.v") + inner.files,
            params={},
            defines=defines,
            signed=False,
            sign_magnitude=True,
            ports=("a_mag", "b_mag", "p_mag"),
            sign_ports=("a_sign", "b_sign", "p_sign"),
            description=f"sign-magnitude wrapper (zero stays positive) around {inner.name}: {inner.description}",
            inner=inner,
        )

    if key == "exact":
        return _unsigned(
            "mult_exact_array", _files("mult_exact_array.v", "pa_adders.v"), {}, key,
            "exact unsigned ripple-carry array multiplier, structural (Parhami, Computer Arithmetic, ch. 11)",
        )
    if key == "exact_behav":
        return _unsigned(
            "mult_exact_behav", _files("mult_exact_behav.v"), {}, key,
            "exact unsigned multiplier, behavioural a * b (architecture chosen by synthesis)",
        )
    if key == "exact_signed":
        d = _unsigned(
            "mult_signed_bw", _files("mult_signed_bw.v"), {}, key,
            "exact signed multiplier, modified Baugh-Wooley (Baugh & Wooley, IEEE TC 1973)",
        )
        return replace(d, signed=True)

    m = _RE_TRUNC.fullmatch(key)
    if m:
        k, comp = int(m.group(1)), bool(m.group(2))
        if not 0 <= k <= 15:
            raise _range_error(name, f"K={k}", "trunc{K} / trunc{K}c with K in 0..15")
        canon = f"trunc{k}{'c' if comp else ''}"
        desc = f"truncated multiplier, pp bits of columns < {k} dropped"
        if comp:
            desc += f", +{golden.trunc_comp_constant(k)} expected-value compensation"
        desc += " (Schulte & Swartzlander, VLSI Signal Processing VI, 1993)"
        return _unsigned("mult_trunc", _files("mult_trunc.v"), {"K": k, "COMP": int(comp)}, canon, desc)

    m = _RE_BAM.fullmatch(key)
    if m:
        h, v = int(m.group(1)), int(m.group(2))
        if not (0 <= h <= 8 and 0 <= v <= 15):
            raise _range_error(name, f"H={h}, V={v}", "bam_h{H}_v{V} with H in 0..8 and V in 0..15")
        return _unsigned(
            "mult_bam", _files("mult_bam.v", "pa_adders.v"), {"HBL": h, "VBL": v}, f"bam_h{h}_v{v}",
            f"broken-array multiplier, HBL={h} rows and VBL={v} columns omitted (Mahdiani et al., IEEE TCAS-I 2010)",
        )

    if key == "mitchell":
        return _unsigned(
            "mult_mitchell", _files("mult_mitchell.v"), {}, key,
            "Mitchell logarithmic multiplier, 7-bit fractions (Mitchell, IRE Trans. EC 1962)",
        )
    if key == "mbm":
        return _unsigned(
            "mult_mbm", _files("mult_mbm.v"), {}, key,
            "minimally biased multiplier, Mitchell + 1/12 correction (Saadat et al., IEEE TCAD 2018)",
        )

    m = _RE_DRUM.fullmatch(key)
    if m:
        k = int(m.group(1))
        if not 2 <= k <= 8:
            raise _range_error(name, f"K={k}", "drum{K} with K in 2..8")
        return _unsigned(
            "mult_drum", _files("mult_drum.v"), {"K": k}, f"drum{k}",
            f"DRUM-{k} dynamic-range unbiased multiplier (Hashemi, Bahar, Reda, ICCAD 2015)",
        )

    m = _RE_COMP.fullmatch(key)
    if m:
        k = int(m.group(1))
        if not 0 <= k <= 15:
            raise _range_error(name, f"K={k}", "comp42_{K} with K in 0..15")
        return _unsigned(
            "mult_comp42", _files("mult_comp42.v"), {"K": k}, f"comp42_{k}",
            f"approximate 4:2-compressor multiplier, columns < {k} compressed (Momeni et al., IEEE TC 2015)",
        )

    raise PyapproxError(f"unknown multiplier '{name}'; valid names: {GRAMMAR} ({_EXAMPLES})")
