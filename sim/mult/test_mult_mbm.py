"""MBM, the minimally biased multiplier (Saadat et al. 2018). Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_mbm"))
def test_mult_mbm(name):
    check_mult_module("mult_mbm", name)
