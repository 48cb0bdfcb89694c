"""Approximate 4:2 compressors in the low columns (Momeni et al. 2015). Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_comp42", extra=('comp42_0', 'comp42_15')))
def test_mult_comp42(name):
    check_mult_module("mult_comp42", name)
