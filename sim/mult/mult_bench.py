"""cocotb bench for every multiplier of rtl/mult: all input pairs against the golden model.

The design is named by the library name in ``PYAPPROX_DESIGN``; the bench drives its operand ports
(and, for sign-magnitude designs, all four sign combinations), compares every output with the golden
model, and writes the captured table and a record (pairs checked, mismatches, first mismatches).
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import Timer

from pyapprox.rtl.library import resolve


def _signed(v: int, width: int) -> int:
    return v - (1 << width) if v >> (width - 1) else v


@cocotb.test()
async def exhaustive(dut):
    design = resolve(os.environ["PYAPPROX_DESIGN"])
    a_port, b_port, p_port = (getattr(dut, n) for n in design.ports)
    width = len(p_port)
    golden = design.golden_table()
    signs = [(0, 0), (0, 1), (1, 0), (1, 1)] if design.sign_magnitude else [(0, 0)]
    got = np.zeros((len(signs), 256, 256), np.int64)
    mismatches = []
    for k, (sa, sb) in enumerate(signs):
        if design.sign_magnitude:
            sa_port, sb_port, sp_port = (getattr(dut, n) for n in design.sign_ports)
            sa_port.value = sa
            sb_port.value = sb
        for a in range(256):
            a_port.value = a
            for b in range(256):
                b_port.value = b
                await Timer(1, "ns")
                raw = p_port.value
                if not raw.is_resolvable:
                    mismatches.append({"a": a, "b": b, "signs": [sa, sb], "got": str(raw), "want": int(golden[a, b])})
                    continue
                value = _signed(int(raw), width) if design.signed else int(raw)
                got[k, a, b] = value
                want = int(golden[a, b])
                if design.sign_magnitude:
                    psign = int(sp_port.value)
                    want_sign = (sa ^ sb) & int(want != 0)
                    if value != want or psign != want_sign:
                        mismatches.append({"a": a, "b": b, "signs": [sa, sb], "got": [psign, value],
                                           "want": [want_sign, want]})
                elif value != want:
                    mismatches.append({"a": a, "b": b, "got": value, "want": want})
    record = {"design": design.name, "module": design.top, "params": dict(design.params),
              "pairs": int(len(signs) * 65536), "mismatches": len(mismatches), "first": mismatches[:5]}
    np.save(os.environ["PYAPPROX_TABLE"], got, allow_pickle=False)
    with open(os.environ["PYAPPROX_RECORD"], "w") as f:
        json.dump(record, f)
    assert not mismatches, f"{design.name}: {len(mismatches)} mismatches, first: {mismatches[:5]}"
