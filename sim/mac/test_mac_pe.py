"""mac_pe: one processing element (multiplier slot, operand format, accumulator, sticky overflow, result
register), cycle by cycle on Icarus and Verilator against an independent Python model built on the
functional reference's product table (pyapprox.nn.functional.product_table of the design's golden model).

Vectors: every pair of extreme operands (0, +-1, largest magnitudes, both signs) as one-step dot products;
directed overflow up and down with bias near the limits (wrap and saturate, flag stays set after a
saturated sum comes back into range); enable gaps, K = 1 dot products, ``first`` without a previous
``last``; then random dot products of random length with random and extreme operands and biases.
"""

import numpy as np
import pytest
from macbench import SIMULATORS, case, extremes, mac_sources, product_table_of, record, run_tb

from pyapprox.sim.mac_array import encode_codes

CASES = [
    case("exact-sm-a-32w", label="exact", mult="exact", fmt="sign-magnitude", port="a", acc=32, mode="wrap"),
    case("mbm-sm-b-18s", label="mbm", mult="mbm", fmt="sign-magnitude", port="b", acc=18, mode="saturate"),
    case("sm(drum4)-a-20w", label="sm(drum4)", mult="sm(drum4)", fmt="sign-magnitude", port="a", acc=20, mode="wrap"),
    case("trunc4c-sm-b-17s", label="trunc4c", mult="trunc4c", fmt="sign-magnitude", port="b", acc=17, mode="saturate"),
    case("bw-int8-b-17w", label="exact_signed", mult="exact_signed", fmt="int8", port="b", acc=17, mode="wrap"),
]


def pe_vectors(fmt: str, acc_bits: int, seed: int = 0, n_random: int = 1500) -> dict:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    qmin, qmax = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    ext = extremes(fmt)
    big = qmax if fmt == "sign-magnitude" else qmin  # largest product magnitude: qmax^2 or qmin^2
    up, down = (big, big), (big, -big if fmt == "sign-magnitude" else qmax)  # largest positive / negative products
    seq = []  # (en, first, last, w, x, bias)

    def dot(pairs, bias, en=None):
        for i, (w, x) in enumerate(pairs):
            seq.append((1 if en is None else en[i], int(i == 0), int(i == len(pairs) - 1), w, x, bias))

    for w in ext:
        for x in ext:
            dot([(w, x)], 0)
    dot([up] * 3, hi - 10)            # overflow upwards
    dot([down] * 3, lo + 10)          # overflow downwards
    dot([up, down, down], hi - 5)     # saturate/wrap, then back into range: the flag stays set
    dot([down, up, (0, 0)], lo + 1)
    dot([(0, 0)], hi)
    dot([(0, 0)], lo)
    dot([(1, 1)], hi)                                   # +1 over the top
    dot([(-1, 1)], lo)                                  # -1 under the bottom
    dot([(3, 5), (7, -9), (11, 13), (0, 0)], 100, en=[1, 0, 1, 0])  # enable gaps, last beat disabled
    dot([(2, 2), (2, 2)], -7)
    dot([(5, 5)] * 2, 9)                               # restart without a last
    seq[-1] = seq[-1][:2] + (0,) + seq[-1][3:]
    dot([(qmax, qmax), (qmin, qmin)], 0)
    while len(seq) < len(ext) ** 2 + 40 + n_random:
        k = int(rng.integers(1, 17))
        near = rng.random()
        bias = int(rng.integers(hi - 70000, hi + 1)) if near < 0.15 else \
            int(rng.integers(lo, lo + 70000)) if near < 0.3 else int(rng.integers(lo, hi + 1))
        pairs = []
        for _ in range(k):
            w = int(rng.choice(ext)) if rng.random() < 0.3 else int(rng.integers(qmin, qmax + 1))
            x = int(rng.choice(ext)) if rng.random() < 0.3 else int(rng.integers(qmin, qmax + 1))
            pairs.append((w, x))
        dot(pairs, bias, en=(rng.random(k) < 0.85).astype(int).tolist())
    a = np.array(seq, dtype=np.int64)
    return {"en": a[:, 0], "first": a[:, 1], "last": a[:, 2], "w_code": a[:, 3], "x_code": a[:, 4], "bias": a[:, 5],
            "w": encode_codes(a[:, 3], fmt), "x": encode_codes(a[:, 4], fmt)}


def pe_model(v: dict, pt: np.ndarray, off: int, acc_bits: int, saturate: bool) -> dict:
    """The PE, one cycle at a time, in plain Python integers."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc = ovf = res = res_ovf = 0
    out = {k: [] for k in ("prod", "acc", "ovf", "res", "res_ovf")}
    for en, first, last, w, x, bias in zip(*(v[k].tolist() for k in ("en", "first", "last", "w_code", "x_code", "bias"))):
        p = int(pt[w + off, x + off])
        if en:
            s = (bias if first else acc) + p
            out_of_range = s < lo or s > hi
            new = min(max(s, lo), hi) if saturate else ((s - lo) % (1 << acc_bits)) + lo
            new_ovf = int((0 if first else ovf) or out_of_range)
            acc, ovf = new, new_ovf
            if last:
                res, res_ovf = new, new_ovf
        for k, val in (("prod", p), ("acc", acc), ("ovf", ovf), ("res", res), ("res_ovf", res_ovf)):
            out[k].append(val)
    return {k: np.array(val, dtype=np.int64) for k, val in out.items()}


@pytest.mark.parametrize("cfg", CASES)
def test_mac_pe(cfg, request):
    case_id = request.node.callspec.id
    files, defines, rtl = mac_sources(cfg["mult"], cfg["fmt"], "mac_pe.v")
    params = {"OPERAND_SM": int(cfg["fmt"] == "sign-magnitude"), "WEIGHT_PORT": int(cfg["port"] == "b"),
              "P_BITS": rtl.p_bits, "ACC_BITS": cfg["acc"], "ACC_SAT": int(cfg["mode"] == "saturate")}
    v = pe_vectors(cfg["fmt"], cfg["acc"])
    pt, off = product_table_of(cfg["mult"], cfg["fmt"], cfg["port"])
    want = pe_model(v, pt, off, cfg["acc"], cfg["mode"] == "saturate")
    assert want["ovf"].any(), "the vectors must overflow the accumulator"
    vectors = {k: v[k] for k in ("en", "first", "last", "w", "x", "bias")}
    vectors.update(acc_bits=cfg["acc"], p_bits=rtl.p_bits)
    summary = {"mult": cfg["mult"], "fmt": "sm" if cfg["fmt"] == "sign-magnitude" else "int8", "port": cfg["port"],
               "acc": f"{cfg['acc']}{cfg['mode'][0]}"}
    got = {}
    for sim in SIMULATORS:
        res, secs = run_tb("pe", case_id, sim, files, "mac_pe", "mac_pe_tb", params, defines, vectors)
        bad = res["unknown"].astype(bool)
        for k in want:
            bad |= res[k] != want[k]
        record("pe", cfg["label"], summary, sim, len(bad), int(bad.sum()), secs)
        if bad.any():
            i = int(np.argmax(bad))
            pytest.fail(f"{case_id} on {sim}: {int(bad.sum())} of {len(bad)} cycles differ; first cycle {i}: inputs "
                        f"{ {k: int(v[k][i]) for k in ('en', 'first', 'last', 'w_code', 'x_code', 'bias')} }, "
                        f"expected { {k: int(want[k][i]) for k in want} }, got { {k: int(res[k][i]) for k in want} }")
        got[sim] = res
    for k in want:
        assert np.array_equal(got["icarus"][k], got["verilator"][k])
