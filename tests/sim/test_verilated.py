"""The in-process Verilated MAC array (pyapprox.sim.verilated) against the number model, on random layers.

Random dense (grouped) and depthwise layers with extreme operands, biases near both accumulator limits (17-bit
accumulators that overflow, wrap and saturate), K = 1 and K < ROWS tiles (the drain is the bottleneck), edge tiles,
int8 operands with the weight on port b, odd array shapes; every accumulator, overflow flag and requantized code of
every tile must equal the independent loop of pyapprox.cosim.whole.reference and functional.requantize, whatever
the number of model instances; a traced build writes a VCD; bad jobs are refused before any pointer reaches C.
"""

import numpy as np
import pytest
import torch

from pyapprox.cosim import multiplier_rtl
from pyapprox.cosim.whole import layer_blocks, reference
from pyapprox.errors import PyapproxError
from pyapprox.nn import functional as QF
from pyapprox.lut.library import get_lut
from pyapprox.sim.mac_array import ArrayConfig, decode_codes, encode_codes
from pyapprox.sim.verilated import ArrayJob, build_array


def _layer(rng, fmt, o, groups, k, L, dw, acc_bits):
    qmin, qmax = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    ext = np.array([qmin, qmax, 0, 1, -1])

    def codes(shape):
        v = rng.integers(qmin, qmax + 1, shape)
        return np.where(rng.random(shape) < 0.25, rng.choice(ext, shape), v)

    g = o if dw else groups
    w, x = codes((o, k)), codes((g, k, L))
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    u = rng.random(o)
    bias = np.where(u < 0.3, rng.integers(hi - 3000, hi + 1, o), np.where(u < 0.6, rng.integers(lo, lo + 3000, o),
                                                                          rng.integers(-500, 500, o)))
    m = rng.integers(1 << 10, 1 << 16, o)
    rq = {"m": m, "mneg": np.where(rng.random(o) < 0.5, np.round(0.2 * m), m).astype(np.int64),
          "shift": rng.integers(0, 20, o), "qlo": np.full(o, qmin if rng.random() < 0.5 else 0),
          "qhi": np.full(o, qmax)}
    return w, x, bias, rq


def _expected(w, x, bias, rq, dw, fmt, port, acc_bits, mode, mult):
    ptable, offset = QF.product_table(get_lut(mult).table, fmt, port) if mult != "exact" else \
        QF.exact_product_table(fmt)
    acc, ovf = reference(w, x, ptable, offset, bias, dw, acc_bits, mode)
    t = {k: torch.from_numpy(np.asarray(v, np.int64)) for k, v in rq.items()}
    q = QF.requantize(torch.from_numpy(acc)[None, :, :, None], t["m"], t["shift"], t["mneg"], t["qlo"],
                      t["qhi"])[0, :, :, 0].numpy()
    return acc, ovf, q


CASES = [
    # rows, cols, format, weight port, acc bits, mode, multiplier (library name = its LUT and its RTL)
    (4, 4, "sign-magnitude", "a", 17, "wrap", "mbm"),
    (3, 5, "sign-magnitude", "b", 17, "saturate", "trunc6"),
    (2, 3, "int8", "b", 18, "wrap", "exact"),
]


@pytest.mark.parametrize("rows, cols, fmt, port, acc_bits, mode, mult", CASES,
                         ids=[f"{c[0]}x{c[1]}-{c[6]}-{c[2]}-{c[3]}-{c[4]}{c[5][0]}" for c in CASES])
def test_random_layers_match_the_number_model(rows, cols, fmt, port, acc_bits, mode, mult):
    rtl = multiplier_rtl(mult, fmt)
    acfg = ArrayConfig(rows, cols, fmt, port, acc_bits, mode, p_bits=rtl.p_bits)
    arr = build_array(rtl, acfg)
    rng = np.random.default_rng(rows * 100 + cols)
    total_ovf = 0
    for o, groups, k, L, dw in [(7, 1, 1, 11, False), (9, 3, 2, 13, False), (6, 6, 9, 10, True),
                                (5, 1, 40, 7, False), (rows, rows, 1, cols, True)]:
        w, x, bias, rq = _layer(rng, fmt, o, groups, k, L, dw, acc_bits)
        acc, ovf, q = _expected(w, x, bias, rq, dw, fmt, port, acc_bits, mode, mult)
        blocks = layer_blocks(o, groups, L, dw, acfg)
        job = ArrayJob(encode_codes(w, fmt), encode_codes(x, fmt), bias, rq, blocks, dw)
        outs = [arr.run(job, threads) for threads in (1, 3)]
        for res in outs:
            assert np.array_equal(res["acc"], acc), (o, groups, k, L, dw)
            assert np.array_equal(res["ovf"], ovf)
            assert np.array_equal(decode_codes(res["q_wire"], fmt), q)
            assert res["cycles"] >= len(blocks) * k
        total_ovf += int(ovf.sum())
    assert total_ovf > 0  # the biases near the limits really overflow


def test_traced_build_writes_a_vcd_and_bad_jobs_are_refused(tmp_path):
    fmt = "sign-magnitude"
    rtl = multiplier_rtl("mbm", fmt)
    acfg = ArrayConfig(4, 4, fmt, "a", 17, "wrap", p_bits=rtl.p_bits)
    rng = np.random.default_rng(1)
    w, x, bias, rq = _layer(rng, fmt, 4, 1, 3, 4, False, 17)
    blocks = layer_blocks(4, 1, 4, False, acfg)
    job = ArrayJob(encode_codes(w, fmt), encode_codes(x, fmt), bias, rq, blocks, False)
    with pytest.raises(PyapproxError, match="needs a build with tracing"):
        build_array(rtl, acfg).run(job, 1, tmp_path / "w.vcd")
    traced = build_array(rtl, acfg, trace=True)
    res = traced.run(job, 1, tmp_path / "w.vcd")
    acc, _, _ = _expected(w, x, bias, rq, False, fmt, "a", 17, "wrap", "mbm")
    assert np.array_equal(res["acc"], acc)
    text = (tmp_path / "w.vcd").read_text()
    assert "$enddefinitions" in text and "u_array" in text and "in_ready" in text
    bad = [ArrayJob(job.w, job.x, job.bias, job.rq, np.array([[0, 0, 5, 0]]), False),  # 5 rows on a 4-row array
           ArrayJob(job.w, job.x, job.bias, job.rq, np.array([[1, 0, 4, 0]]), False),  # no group 1
           ArrayJob(job.w, job.x, job.bias, job.rq, np.array([[0, 0, 4, 4]]), False),  # pixel 4 of 4
           ArrayJob(job.w, job.x[:, :2], job.bias, job.rq, blocks, False),  # K differs
           ArrayJob(job.w, job.x, job.bias[:3], job.rq, blocks, False),
           ArrayJob(job.w + 600, job.x, job.bias, job.rq, blocks, False)]
    for b in bad:
        with pytest.raises(PyapproxError, match="array job"):
            traced.run(b, 1)
