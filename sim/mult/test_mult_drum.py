"""DRUM-k (Hashemi et al. 2015). Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_drum", extra=('drum2', 'drum8')))
def test_mult_drum(name):
    check_mult_module("mult_drum", name)
