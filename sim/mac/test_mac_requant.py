"""mac_requant: requantization + activation on Icarus and Verilator against the functional reference
(pyapprox.nn.functional.requantize).

Vectors: exact rounding ties (acc * m = (2j + 1) 2^(s-1), both signs), shift 0, 1 and the largest,
accumulator extremes, the largest multipliers, ReLU6 / LeakyReLU / identity clamps for both code
ranges; then random accumulators (uniform over the range and small), multipliers (top bit set, as
requant_params makes them, and arbitrary), shifts and clamps.
"""

import numpy as np
import pytest
import torch
from macbench import SIMULATORS, case, record, run_tb

from pyapprox.nn import functional as QF
from pyapprox.sim.mac_array import MAC_DIR

CASES = [
    case("acc32-m16-s6", acc=32, m=16, s=6),
    case("acc18-m8-s5", acc=18, m=8, s=5),
    case("acc40-m22-s6", acc=40, m=22, s=6),
]

CLAMPS = [(-255, 255), (-128, 127), (0, 255), (0, 127), (0, 24), (0, 0), (-3, 7), (-255, -255), (255, 255)]


def requant_vectors(acc_bits: int, m_bits: int, s_bits: int, seed: int = 0, n_random: int = 2500) -> dict:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    smax, mmax = (1 << s_bits) - 1, (1 << m_bits) - 1
    rows = []  # acc, m_pos, m_neg, shift, qlo, qhi

    for s in range(1, min(smax, acc_bits - 2) + 1):  # exact ties of the rounding, both signs
        for j in (0, 1, 2, 5, -1, -2, -3, -6):
            acc = (2 * j + 1) << (s - 1)
            if lo <= acc <= hi:
                rows.append((acc, 1, 1, s, -255, 255))
                rows.append((acc, 1, 1, s, -128, 127))
    for acc in (lo, lo + 1, -1, 0, 1, hi - 1, hi):
        for m in (1, mmax, 1 << (m_bits - 1)):
            for s in (0, 1, 2, smax - 1, smax):
                for qlo, qhi in CLAMPS[:5]:
                    rows.append((acc, m, (m * 2 + 5) // 10, s, qlo, qhi))
    while len(rows) < 1600 + n_random:
        r = rng.random()
        acc = int(rng.integers(lo, hi + 1)) if r < 0.5 else int(rng.integers(-(1 << 12), 1 << 12))
        m = int(rng.integers(1 << (m_bits - 1), mmax + 1)) if rng.random() < 0.7 else int(rng.integers(0, mmax + 1))
        mneg = int(round(0.2 * m)) if rng.random() < 0.5 else m
        s = int(rng.integers(0, smax + 1)) if rng.random() < 0.3 else int(rng.integers(max(0, m_bits - 4),
                                                                                          min(smax, acc_bits + m_bits - 8) + 1))
        qlo, qhi = CLAMPS[int(rng.integers(len(CLAMPS)))] if rng.random() < 0.8 else sorted(rng.integers(-255, 256, 2).tolist())
        rows.append((acc, m, mneg, s, qlo, qhi))
    a = np.array(rows, dtype=np.int64)
    return {"acc": a[:, 0], "m_pos": a[:, 1], "m_neg": a[:, 2], "shift": a[:, 3], "qlo": a[:, 4], "qhi": a[:, 5]}


def requant_reference(v: dict) -> np.ndarray:
    t = {k: torch.from_numpy(v[k]) for k in v}
    q = QF.requantize(t["acc"].view(1, -1, 1, 1), t["m_pos"], t["shift"], t["m_neg"], t["qlo"], t["qhi"])
    return q.view(-1).numpy()


@pytest.mark.parametrize("cfg", CASES)
def test_mac_requant(cfg, request):
    case_id = request.node.callspec.id
    params = {"ACC_BITS": cfg["acc"], "M_BITS": cfg["m"], "S_BITS": cfg["s"]}
    v = requant_vectors(cfg["acc"], cfg["m"], cfg["s"])
    want = requant_reference(v)
    assert len(np.unique(want)) > 50
    vectors = dict(v, acc_bits=cfg["acc"])
    got = {}
    for sim in SIMULATORS:
        res, secs = run_tb("requant", case_id, sim, [MAC_DIR / "mac_requant.v"], "mac_requant", "mac_requant_tb",
                           params, {}, vectors)
        bad = res["unknown"].astype(bool) | (res["q"] != want)
        record("rq", case_id.split("-")[0], params, sim, len(bad), int(bad.sum()), secs)
        if bad.any():
            i = int(np.argmax(bad))
            pytest.fail(f"{case_id} on {sim}: {int(bad.sum())} of {len(bad)} vectors differ; first: "
                        f"{ {k: int(v[k][i]) for k in v} } expected {int(want[i])}, got {int(res['q'][i])}")
        got[sim] = res["q"]
    assert np.array_equal(got["icarus"], got["verilator"])
