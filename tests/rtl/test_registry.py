"""The RTL library registry: the FAMILIES table, names -> designs, the grammar and docs generated from it."""

import re
from pathlib import Path

import numpy as np
import pytest

from pyapprox.errors import PyapproxError
from pyapprox.rtl import RTL_DIR, golden
from pyapprox.rtl.library import FAMILIES, GRAMMAR, OPERANDS, Design, library_names, readme_names, resolve

README = Path(__file__).resolve().parents[2] / "README.md"
MULT = RTL_DIR / "mult"
_MODULES = {m: f.name for f in MULT.glob("*.v") for m in re.findall(r"^\s*module\s+(\w+)", f.read_text(), re.M)}


def _instances(text: str) -> set[str]:
    return {m for m in _MODULES if re.search(rf"^\s*{m}\s*(#|\w)", text, re.M)}


def table(fn, **params):
    return golden.golden_table(fn, **params)


def test_family_table_consistent():
    shapes = [f.shape for f in FAMILIES]
    assert len(set(shapes)) == len(shapes)
    for fam in FAMILIES:
        assert fam.operands in OPERANDS
        assert fam.files[0] == fam.top + ".v" and all((MULT / f).is_file() for f in fam.files)
        assert (fam.golden is None) == (fam.operands == "sign-magnitude")
        assert fam.examples and all(fam.regex.fullmatch(n) for n in fam.examples)
        assert set(fam.hdl) <= set(fam.ranges)
        # every library module that its files instantiate is defined in its files
        needed = {_MODULES[m] for f in fam.files for m in _instances((MULT / f).read_text())}
        assert needed <= set(fam.files), f"{fam.pattern}: files omit {needed - set(fam.files)}"


def test_every_example_names_its_own_family():
    for fam in FAMILIES:
        for n in fam.examples:
            matches = [f.pattern for f in FAMILIES if f.regex.fullmatch(n)]
            assert matches == [fam.pattern], n


def test_library_names_resolve_and_files_exist():
    names = library_names()
    assert names[:3] == ["exact", "exact_behav", "exact_signed"]
    assert len(names) == 21 and len(set(names)) == 21
    for n in names:
        d = resolve(n)
        assert isinstance(d, Design)
        assert d.name == n
        assert d.files and all(f.is_absolute() and f.is_file() for f in d.files)
        assert len(set(d.files)) == len(d.files)
        assert all(RTL_DIR in f.parents for f in d.files)
        assert d.files[0].stem == d.top
        assert d.description
        hash(d)
        t = d.golden_table()
        assert t.shape == (256, 256) and t.dtype == np.int64


def test_resolve_parameters():
    d = resolve("trunc4c")
    assert (d.top, d.params, d.signed, d.sign_magnitude) == ("mult_trunc", {"K": 4, "COMP": 1}, False, False)
    assert resolve("trunc6").params == {"K": 6, "COMP": 0}
    assert resolve("bam_h2_v6").params == {"HBL": 2, "VBL": 6}
    assert resolve("drum4").params == {"K": 4}
    assert resolve("comp42_10").params == {"K": 10}
    assert resolve("mbm").params == {} and resolve("mitchell").params == {}
    assert resolve("exact").top == "mult_exact_array"
    assert resolve("exact_signed").signed
    assert resolve(" trunc04 ").name == "trunc4"
    assert "+12 expected-value compensation" in resolve("trunc4c").description
    assert "HBL=3 rows and VBL=7 columns" in resolve("bam_h3_v7").description
    assert [f.name for f in resolve("mbm").files] == ["mult_mbm.v", "mitchell_core.v", "lod8.v"]
    np.testing.assert_array_equal(resolve("trunc4c").golden_table(), table(golden.trunc, K=4, COMP=1))
    np.testing.assert_array_equal(resolve("bam_h3_v7").golden_table(), table(golden.bam, HBL=3, VBL=7))


def test_resolve_sign_magnitude():
    d = resolve("sm(drum4)")
    assert d.top == "sm_mult" and d.sign_magnitude and not d.signed
    assert d.ports == ("a_mag", "b_mag", "p_mag")
    assert d.sign_ports == ("a_sign", "b_sign", "p_sign")
    assert d.inner == resolve("drum4")
    assert d.defines == {"SM_INNER": "mult_drum", "SM_INNER_PARAMS": "#(.K(4))"}
    assert [f.name for f in d.files] == ["sm_mult.v", "mult_drum.v", "lod8.v"]
    np.testing.assert_array_equal(d.golden_table(), table(golden.drum, K=4))
    assert resolve("sm(exact)").defines == {"SM_INNER": "mult_exact_array"}
    assert resolve("sm(trunc5c)").defines == {"SM_INNER": "mult_trunc", "SM_INNER_PARAMS": "#(.K(5),.COMP(1))"}
    assert resolve("sm( mbm )").name == "sm(mbm)"
    assert resolve("sm(mbm)").description.startswith("sign-magnitude wrapper (zero stays positive) around mbm: ")
    assert resolve("exact").sign_ports is None and resolve("exact").inner is None


@pytest.mark.parametrize(
    "bad",
    ["trunc16", "drum1", "drum9", "bam_h9_v0", "bam_h0_v16", "comp42_16", "sm(sm(exact))",
     "sm(exact_signed)", "foo", "", "sm()", "exact2", "bam_h2", "Mitchell"],
)
def test_resolve_errors(bad):
    with pytest.raises(PyapproxError) as e:
        resolve(bad)
    msg = str(e.value)
    assert bad.strip() in msg or "sm(" in msg
    assert "e.g." in msg or "valid" in msg


def test_unknown_name_lists_grammar():
    with pytest.raises(PyapproxError, match=r"trunc\{K\}.*bam_h\{H\}_v\{V\}.*drum\{K\}.*sm\("):
        resolve("booth")
    with pytest.raises(PyapproxError, match=re.escape("valid is trunc{K} (K 0..15)")):
        resolve("trunc99")
    assert "bam_h{H}_v{V} (H 0..8, V 0..15)" in GRAMMAR and "drum{K} (K 2..8)" in GRAMMAR


def test_readme_lists_the_table():
    """The README's list of library names is the one generated from FAMILIES (edit the table, then the README)."""
    text = " ".join(README.read_text().split())
    assert readme_names() in text, f"README.md should carry: {readme_names()}"
