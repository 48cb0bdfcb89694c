"""cocotb test module for ``mac_requant`` (combinational): apply each vector, record the output code.

``PYAPPROX_VECTORS`` (.npz): ``acc``, ``m_pos``, ``m_neg``, ``shift``, ``qlo``, ``qhi`` per vector and the scalar
``acc_bits``; ``PYAPPROX_RESULT`` gets ``q`` (two's complement, decoded) and X/Z flags per vector.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import Timer


@cocotb.test()
async def vectors(dut):
    z = np.load(os.environ["PYAPPROX_VECTORS"])
    acc_bits = int(z["acc_bits"])
    mask = (1 << acc_bits) - 1
    cols = [z[k].tolist() for k in ("acc", "m_pos", "m_neg", "shift", "qlo", "qhi")]
    n = len(cols[0])
    q = np.zeros(n, np.int64)
    unknown = np.zeros(n, np.uint8)
    for i in range(n):
        dut.acc.value = cols[0][i] & mask
        dut.m_pos.value = cols[1][i]
        dut.m_neg.value = cols[2][i]
        dut.shift.value = cols[3][i]
        dut.qlo.value = cols[4][i] & 0x1FF
        dut.qhi.value = cols[5][i] & 0x1FF
        await Timer(1, "ns")
        v = dut.q.value
        if v.is_resolvable:
            u = v.to_unsigned()
            q[i] = u - 512 if u >= 256 else u
        else:
            unknown[i] = 1
    np.savez(os.environ["PYAPPROX_RESULT"], q=q, unknown=unknown)
