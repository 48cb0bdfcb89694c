"""cocotb test module for ``mac_pe``: drive one vector per clock cycle and record what the PE does.

``PYAPPROX_VECTORS`` (.npz): per cycle ``en``, ``first``, ``last``, ``w``, ``x`` (9-bit wire codes), ``bias``;
scalars ``acc_bits``, ``p_bits``. ``PYAPPROX_RESULT`` gets, per cycle, the combinational product of that
cycle's operands and the registers after its rising edge (acc, ovf, res, res_ovf), plus X/Z flags.
Inputs change after a falling edge; the product is read in the ReadOnly phase of the same half cycle and
the registers at the next falling edge.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


def _signed(v: int, width: int) -> int:
    return v - (1 << width) if v >> (width - 1) else v


@cocotb.test()
async def vectors(dut):
    z = np.load(os.environ["PYAPPROX_VECTORS"])
    acc_bits, p_bits = int(z["acc_bits"]), int(z["p_bits"])
    en, first, last = z["en"].tolist(), z["first"].tolist(), z["last"].tolist()
    w, x, bias = z["w"].tolist(), z["x"].tolist(), z["bias"].tolist()
    n = len(en)
    prod = np.zeros(n, np.int64)
    acc = np.zeros(n, np.int64)
    ovf = np.zeros(n, np.uint8)
    res = np.zeros(n, np.int64)
    res_ovf = np.zeros(n, np.uint8)
    unknown = np.zeros(n, np.uint8)
    mask = (1 << acc_bits) - 1

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for s in (dut.en, dut.first, dut.last, dut.w, dut.x, dut.bias):
        s.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for i in range(n):
        dut.en.value = en[i]
        dut.first.value = first[i]
        dut.last.value = last[i]
        dut.w.value = w[i]
        dut.x.value = x[i]
        dut.bias.value = bias[i] & mask
        await ReadOnly()
        p = dut.prod.value
        if p.is_resolvable:
            prod[i] = _signed(p.to_unsigned(), p_bits + 1)
        else:
            unknown[i] = 1
        await FallingEdge(dut.clk)
        vals = [dut.acc.value, dut.ovf.value, dut.res.value, dut.res_ovf.value]
        if all(v.is_resolvable for v in vals):
            acc[i] = _signed(vals[0].to_unsigned(), acc_bits)
            ovf[i] = int(vals[1])
            res[i] = _signed(vals[2].to_unsigned(), acc_bits)
            res_ovf[i] = int(vals[3])
        else:
            unknown[i] = 1
    np.savez(os.environ["PYAPPROX_RESULT"], prod=prod, acc=acc, ovf=ovf, res=res, res_ovf=res_ovf, unknown=unknown)
