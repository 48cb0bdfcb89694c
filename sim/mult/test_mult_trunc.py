"""Truncated multiplier, K low partial-product columns dropped, optional compensation. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_trunc", extra=('trunc0', 'trunc15c')))
def test_mult_trunc(name):
    check_mult_module("mult_trunc", name)
