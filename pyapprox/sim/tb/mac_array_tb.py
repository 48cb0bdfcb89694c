"""cocotb test module: stream tiles through ``mac_array`` and record every output row.

Shared by the array bench (``test_mac_array.py``) and ``pyapprox cosim``. ``PYAPPROX_STREAM`` names an .npz
written by :func:`pyapprox.sim.mac_array.stream_arrays` (one beat per accumulation step, per-tile bias and
requantization parameters, optional random stalls on both streams); the results (accumulators, overflow
flags, output codes on the wire, X/Z flags, cycles, seconds) go to ``PYAPPROX_RESULT``. Checking is left to
the caller; the bench itself only fails on protocol errors (rows out of order, a hang).

Driving discipline: inputs change just after a falling edge; handshakes are read in the ReadOnly phase
of that half cycle, so they are exactly what the next rising edge sees, on both simulators.
"""

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from pyapprox.sim.mac_array import pack_rows, unpack


@cocotb.test()
async def stream(dut):
    z = np.load(os.environ["PYAPPROX_STREAM"])
    rows, cols = int(z["rows"]), int(z["cols"])
    acc_bits, m_bits, s_bits = int(z["acc_bits"]), int(z["m_bits"]), int(z["s_bits"])
    ntiles = int(z["tiles"])
    stall_in, stall_out = float(z["stall_in"]), float(z["stall_out"])
    rng = np.random.default_rng(int(z["seed"]))
    first, last, dwm = z["beat_first"].tolist(), z["beat_last"].tolist(), z["beat_dw"].tolist()
    nbeats = len(first)
    w_words = pack_rows(z["beat_w"], 9)
    x_words = pack_rows(z["beat_x"], 9)
    xpe_words = pack_rows(z["beat_xpe"], 9) if len(z["beat_xpe"]) else []
    tile_of = z["beat_tile"].tolist()
    tparams = {
        "in_bias": pack_rows(z["bias"], acc_bits), "in_m": pack_rows(z["m"], m_bits),
        "in_mneg": pack_rows(z["mneg"], m_bits), "in_shift": pack_rows(z["shift"], s_bits),
        "in_qlo": pack_rows(z["qlo"], 9), "in_qhi": pack_rows(z["qhi"], 9),
    }
    tsig = {k: getattr(dut, k) for k in tparams}

    acc = np.zeros((ntiles, rows, cols), np.int64)
    ovf = np.zeros((ntiles, rows, cols), np.uint8)
    q_wire = np.zeros((ntiles, rows, cols), np.int64)
    unknown = np.zeros((ntiles, rows, cols), np.uint8)

    clk = dut.clk
    Clock(clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in ("in_valid", "in_first", "in_last", "in_dw", "in_w", "in_x", "in_xpe", "out_ready", *tparams):
        getattr(dut, name).value = 0
    for _ in range(3):
        await RisingEdge(clk)
    await FallingEdge(clk)
    dut.rst.value = 0

    in_valid, in_ready, in_first, in_last, in_dw = dut.in_valid, dut.in_ready, dut.in_first, dut.in_last, dut.in_dw
    in_w, in_x, in_xpe = dut.in_w, dut.in_x, dut.in_xpe
    out_valid, out_ready, out_row = dut.out_valid, dut.out_ready, dut.out_row
    out_acc, out_ovf, out_q = dut.out_acc, dut.out_ovf, dut.out_q

    b = 0
    driven = -1
    otile, orow = 0, 0
    cycles = 0
    limit = 4 * (nbeats + ntiles * rows) + 1000
    if stall_in or stall_out:
        limit = int(limit / max(1e-3, (1 - stall_in) * (1 - stall_out))) + 1000
    last_valid, last_ready = None, None
    t0 = time.perf_counter()
    while otile < ntiles:
        valid = b < nbeats and not (stall_in and rng.random() < stall_in)
        if valid and driven != b:
            if first[b]:
                t = tile_of[b]
                for k, sig in tsig.items():
                    sig.value = tparams[k][t]
            in_first.value = first[b]
            in_last.value = last[b]
            in_dw.value = dwm[b]
            in_w.value = w_words[b]
            if dwm[b]:
                in_xpe.value = xpe_words[b]
            else:
                in_x.value = x_words[b]
            driven = b
        if valid != last_valid:
            in_valid.value = int(valid)
            last_valid = valid
        ready = not (stall_out and rng.random() < stall_out)
        if ready != last_ready:
            out_ready.value = int(ready)
            last_ready = ready
        await ReadOnly()
        if valid and in_ready.value == 1:
            b += 1
        if ready and out_valid.value == 1:
            row = int(out_row.value)
            assert row == orow, f"output rows out of order: got row {row}, expected {orow} (tile {otile})"
            va, vo, vq = out_acc.value, out_ovf.value, out_q.value
            if va.is_resolvable and vo.is_resolvable and vq.is_resolvable:
                acc[otile, row] = unpack(va.to_unsigned(), cols, acc_bits)
                ovf[otile, row] = unpack(vo.to_unsigned(), cols, 1, signed=False)
                q_wire[otile, row] = unpack(vq.to_unsigned(), cols, 9, signed=False)
            else:
                unknown[otile, row] = 1
            orow += 1
            if orow == rows:
                otile, orow = otile + 1, 0
        await FallingEdge(clk)
        cycles += 1
        assert cycles <= limit, f"mac_array hangs: {otile} of {ntiles} tiles out after {cycles} cycles"
    seconds = time.perf_counter() - t0
    np.savez(os.environ["PYAPPROX_RESULT"], acc=acc, ovf=ovf, q_wire=q_wire, unknown=unknown, cycles=cycles,
             seconds=seconds, beats=nbeats)
