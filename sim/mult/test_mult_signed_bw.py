"""Exact signed Baugh-Wooley multiplier. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_signed_bw"))
def test_mult_signed_bw(name):
    check_mult_module("mult_signed_bw", name)
