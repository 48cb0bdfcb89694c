"""Exact unsigned behavioural multiplier. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_exact_behav"))
def test_mult_exact_behav(name):
    check_mult_module("mult_exact_behav", name)
