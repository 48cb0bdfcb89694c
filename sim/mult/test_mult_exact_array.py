"""Exact unsigned array multiplier (structural AND array + ripple adder rows). Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_exact_array"))
def test_mult_exact_array(name):
    check_mult_module("mult_exact_array", name)
