"""Mitchell's logarithmic multiplier. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_mitchell"))
def test_mult_mitchell(name):
    check_mult_module("mult_mitchell", name)
