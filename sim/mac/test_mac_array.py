"""mac_array: the ROWS x COLS array (dense and depthwise tiles, bias preload, overflow flags, double-buffered
drain, requantization) on Icarus and Verilator, streamed by pyapprox/sim/tb/mac_array_tb with random stalls on both
handshakes, against the functional reference: pyapprox.nn.functional.lut_conv2d_reference for the
accumulators (each tile as a 1x1 convolution, grouped for depthwise tiles) and for each output's overflow
flag (the reference's overflow count of that output alone), and functional.requantize for the codes.

Tiles: dense and depthwise mixed, K = 1 (first beat is also the last), K < ROWS (the drain is the
bottleneck, in_ready drops on last beats), long K; random and extreme operands; biases near both
accumulator limits so that accumulators overflow in both directions.
"""

import numpy as np
import pytest
import torch
from macbench import SIMULATORS, case, extremes, mac_sources, product_table_of, record, run_tb

from pyapprox.nn import functional as QF
from pyapprox.sim.mac_array import TB_DIR, ArrayConfig, Tile, decode_codes, stream_arrays

CASES = [
    case("4x4-drum4-sm-a-32w", label="4x4 drum4", rows=4, cols=4, mult="drum4", fmt="sign-magnitude", port="a", acc=32, mode="wrap"),
    case("3x5-sm(mbm)-b-18s", label="3x5 sm(mbm)", rows=3, cols=5, mult="sm(mbm)", fmt="sign-magnitude", port="b", acc=18,
         mode="saturate"),
    case("1x3-bw-int8-a-17w", label="1x3 bw", rows=1, cols=3, mult="exact_signed", fmt="int8", port="a", acc=17, mode="wrap"),
]

CLAMPS = [(-255, 255), (0, 255), (0, 40), (-128, 127), (0, 127)]


def random_tiles(rows: int, cols: int, fmt: str, acc_bits: int, n: int = 36, seed: int = 0) -> list[Tile]:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    qmin, qmax = (-255, 255) if fmt == "sign-magnitude" else (-128, 127)
    ext = np.array(extremes(fmt))
    ks = [1, 1, 2, max(1, rows - 1), 3, 9, 27, 40]

    def codes(shape):
        v = rng.integers(qmin, qmax + 1, shape)
        pick = rng.random(shape) < 0.25
        return np.where(pick, rng.choice(ext, shape), v)

    tiles = []
    for i in range(n):
        k = ks[i % len(ks)] if i < 2 * len(ks) else int(rng.integers(1, 33))
        dw = bool(rng.random() < 0.4)
        w = codes((rows, k))
        u = rng.random(rows)
        bias = np.where(u < 0.2, rng.integers(hi - 200000, hi + 1, rows).clip(lo, hi),
                        np.where(u < 0.4, rng.integers(lo, lo + 200000, rows).clip(lo, hi),
                                 rng.integers(-50000, 50000, rows).clip(lo, hi)))
        m = rng.integers(1 << 14, 1 << 16, rows)
        clamp = [CLAMPS[j] if fmt == "sign-magnitude" else (max(-128, CLAMPS[j][0]), min(127, CLAMPS[j][1]))
                 for j in rng.integers(0, len(CLAMPS), rows)]
        rq = {"m": m, "mneg": np.where(rng.random(rows) < 0.5, np.round(0.2 * m), m).astype(np.int64),
              "shift": rng.integers(18, 34, rows), "qlo": np.array([c[0] for c in clamp]),
              "qhi": np.array([c[1] for c in clamp])}
        xs = (None, codes((rows, k, cols))) if dw else (codes((k, cols)), None)
        tiles.append(Tile("bench", i, dw, w, xs[0], xs[1], bias, rq, np.arange(rows), np.arange(cols)))
    return tiles


def expected(t: Tile, pt: np.ndarray, off: int, acc_bits: int, mode: str):
    rows, k = t.w.shape
    w = torch.from_numpy(t.w.reshape(rows, k, 1, 1))
    b = torch.from_numpy(t.bias)
    if t.dw:
        cols = t.xpe.shape[2]
        x = torch.from_numpy(t.xpe.reshape(1, rows * k, 1, cols))
        groups = rows
    else:
        cols = t.x.shape[1]
        x = torch.from_numpy(t.x.reshape(1, k, 1, cols))
        groups = 1
    acc, count = QF.lut_conv2d_reference(x, w, pt, off, b, groups=groups, acc_bits=acc_bits, acc_mode=mode)
    flags = np.zeros((rows, cols), bool)
    for r in range(rows):
        xr = x[:, r * k:(r + 1) * k] if t.dw else x
        for c in range(cols):
            _, n = QF.lut_conv2d_reference(xr[..., c:c + 1], w[r:r + 1], pt, off, b[r:r + 1], acc_bits=acc_bits,
                                           acc_mode=mode)
            flags[r, c] = n == 1
    assert flags.sum() == count
    rq = {key: torch.from_numpy(np.asarray(t.rq[key], np.int64)) for key in t.rq}
    q = QF.requantize(acc, rq["m"], rq["shift"], rq["mneg"], rq["qlo"], rq["qhi"])
    return acc[0, :, 0, :].numpy(), flags, q[0, :, 0, :].numpy()


@pytest.mark.parametrize("cfg", CASES)
def test_mac_array(cfg, request):
    case_id = request.node.callspec.id
    files, defines, rtl = mac_sources(cfg["mult"], cfg["fmt"], "mac_array.v", "mac_pe.v", "mac_requant.v")
    acfg = ArrayConfig(cfg["rows"], cfg["cols"], cfg["fmt"], cfg["port"], cfg["acc"], cfg["mode"], 16, 6,
                       rtl.p_bits).check()
    pt, off = product_table_of(cfg["mult"], cfg["fmt"], cfg["port"])
    tiles = random_tiles(cfg["rows"], cfg["cols"], cfg["fmt"], cfg["acc"])
    want = [expected(t, pt, off, cfg["acc"], cfg["mode"]) for t in tiles]
    n_ovf = sum(int(f.sum()) for _, f, _ in want)
    assert n_ovf > 0 and len(np.unique(np.concatenate([q.ravel() for _, _, q in want]))) > 20
    stream = stream_arrays(tiles, acfg, stall_in=0.25, stall_out=0.3, seed=1)
    summary = {"array": f"{cfg['rows']}x{cfg['cols']}", "mult": cfg["mult"], "port": cfg["port"],
               "acc": f"{cfg['acc']}{cfg['mode'][0]}"}
    got = {}
    for sim in SIMULATORS:
        res, secs = run_tb("array", case_id, sim, files, "mac_array", "mac_array_tb", acfg.hdl_parameters(), defines,
                           stream, test_dir=TB_DIR)
        q = decode_codes(res["q_wire"], cfg["fmt"])
        bad_total, first = 0, None
        for i, (acc, flags, codes) in enumerate(want):
            bad = (res["acc"][i] != acc) | (res["ovf"][i].astype(bool) != flags) | (q[i] != codes) \
                | res["unknown"][i].astype(bool)
            bad_total += int(bad.sum())
            if bad.any() and first is None:
                r, c = np.argwhere(bad)[0]
                first = (f"tile {i} ({'depthwise' if tiles[i].dw else 'dense'}, K={tiles[i].k}) row {r} col {c}: "
                         f"expected acc {acc[r, c]} ovf {flags[r, c]} q {codes[r, c]}, got acc {res['acc'][i][r, c]} "
                         f"ovf {res['ovf'][i][r, c]} q {q[i][r, c]}")
        outputs = len(tiles) * cfg["rows"] * cfg["cols"]
        record("array", cfg["label"], summary, sim, outputs, bad_total, secs)
        assert bad_total == 0, f"{case_id} on {sim}: {bad_total} of {outputs} outputs differ; first: {first}"
        got[sim] = (res["acc"], res["ovf"], q)
    for a, b in zip(got["icarus"], got["verilator"]):
        assert np.array_equal(a, b)
