"""Sign-magnitude wrapper around unsigned library multipliers. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("sm_mult"))
def test_sm_mult(name):
    check_mult_module("sm_mult", name)
