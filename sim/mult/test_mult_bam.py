"""Broken-array multiplier (Mahdiani et al. 2010), HBL x VBL. Exhaustive on Icarus and Verilator."""

import pytest
from benchlib import check_mult_module, mult_cases


@pytest.mark.parametrize("name", mult_cases("mult_bam", extra=('bam_h0_v0', 'bam_h8_v0')))
def test_mult_bam(name):
    check_mult_module("mult_bam", name)
