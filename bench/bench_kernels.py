"""Speed of the compiled LUT convolution kernels against float32 PyTorch and the reference gather.

    python bench/bench_kernels.py [--json] [--layers-only | --network-only] [--threads N] [--lut NAME]

Part 1, representative layers of DenseDepth-MobileNetV2 at 480x640 (features.0.0, a big depthwise, big
pointwise layers, decoder 3x3 convs): per layer the time of the float32 ``F.conv2d``, of the numba LUT
kernel (``kernels.lut_conv2d``) and of the reference (``functional.lut_conv2d_reference``), measured side
by side in one run, with G-lookups/s and the ratios. The reference is slow (that is the point): on layers
with more than ``--ref-max`` lookups it runs on a horizontal strip of the input and its time is scaled to
the full layer (marked ``~``); the numba result is checked bit for bit against the reference on that strip.

Part 2, the whole network: every conv of the model at 480x640 through the LUT kernel (each layer on
codes of its own input shape) against the float32 forward of the whole model; total approximate MACs/s.

Operands look like the real ones: ReLU-like activation codes (half zeros, the rest mostly small) and
Gaussian weight codes, sign-magnitude, with the product table of an approximate multiplier of the library.
Times are the best of ``--repeat`` runs (wall clock; the machine may be shared with other jobs).
"""

from __future__ import annotations

import os

# libgomp (shared by torch and numba's OpenMP layer) spins after each parallel region by default; on a
# loaded 2-core box the spinning threads starve the others: 5x slower float convs, ~8 ms per numba launch.
# Set before torch is imported, so that both the float baseline and the LUT kernels run with it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2, conv_layers, short_name  # noqa: E402
from pyapprox.nn import functional as QF  # noqa: E402
from pyapprox.nn import kernels  # noqa: E402

LAYERS = (  # (name, kind) of the representative layers
    ("0.0", "first 3x3 s2"),
    ("1.conv.0.0", "depthwise s1"),
    ("2.conv.1.0", "depthwise s2"),
    ("2.conv.0.0", "pointwise"),
    ("18.0", "pointwise"),
    ("decoder.conv2", "pointwise pad=1"),
    ("decoder.up0.convA", "full 3x3"),
    ("decoder.up4.convA", "full 3x3"),
    ("decoder.up5.convA", "full 3x3"),
    ("decoder.conv3", "full 3x3 O=1"),
)


def best_time(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def network_convs(h=480, w=640):
    """(short name, conv module, input shape) of every conv of the model, in forward order."""
    model = DenseDepthMBV2().eval()
    shapes = {}
    hooks = []
    for name, conv in conv_layers(model):
        hooks.append(conv.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(i[0].shape))))
    with torch.no_grad():
        model(torch.zeros(1, 3, h, w))
    for hk in hooks:
        hk.remove()
    return model, [(short_name(n), c, shapes[n]) for n, c in conv_layers(model)]


def make_operands(conv, in_shape, rng):
    """ReLU-like activation codes, Gaussian weight codes (sign-magnitude -255..255), random bias codes."""
    n, c, h, w = in_shape
    a = np.minimum(rng.exponential(40.0, size=(n, c, h, w)), 255).astype(np.int64)
    a[rng.random(a.shape) < 0.5] = 0
    x = torch.from_numpy(a).to(torch.int32)
    wt = np.clip(np.round(rng.normal(0, 60, size=tuple(conv.weight.shape))), -255, 255).astype(np.int64)
    wq = torch.from_numpy(wt).to(torch.int32)
    b = torch.from_numpy(rng.integers(-50000, 50000, size=conv.out_channels))
    return x, wq, b


def conv_args(conv):
    return dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)


def lookups(conv, out_shape):
    n, o, ho, wo = out_shape
    return n * o * ho * wo * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]


def bench_layer(name, kind, conv, in_shape, ptable, off, rng, repeat, ref_max):
    x, wq, b = make_operands(conv, in_shape, rng)
    args = conv_args(conv)
    xf = torch.randn(in_shape)
    with torch.no_grad():
        t_float, yf = best_time(lambda: F.conv2d(xf, conv.weight, conv.bias, **args), repeat)
    t_lut, (acc, _) = best_time(lambda: kernels.lut_conv2d(x, wq, ptable, off, b, acc_bits=32, acc_mode="wrap",
                                                           overflow_free=True, **args), repeat)
    n_look = lookups(conv, acc.shape)
    # reference, on a horizontal strip when the layer is large
    kh = conv.kernel_size[0]
    sh, ph, dh = conv.stride[0], conv.padding[0], conv.dilation[0]
    ho = acc.shape[2]
    rows = ho
    if n_look > ref_max:
        rows = max(1, int(ho * ref_max / n_look))
    scaled = rows < ho
    if scaled:
        # output rows [0, rows) only see input rows [0, need): the strip, padded like the full input, gives them
        need = max(1, (rows - 1) * sh + (kh - 1) * dh + 1 - ph)
        xs = x[:, :, :need].contiguous()
        t_ref, (ref, _) = best_time(lambda: QF.lut_conv2d_reference(xs, wq, ptable, off, b, conv.stride, conv.padding,
                                                                     conv.dilation, conv.groups, 32, "wrap"), 1)
        ref = ref[:, :, :rows]
        same = torch.equal(ref, acc[:, :, :rows])
        t_ref *= ho / rows
    else:
        t_ref, (ref, _) = best_time(lambda: QF.lut_conv2d_reference(x, wq, ptable, off, b, conv.stride, conv.padding,
                                                                     conv.dilation, conv.groups, 32, "wrap"), 1)
        same = torch.equal(ref, acc)
    return dict(layer=name, kind=kind, in_shape=list(in_shape), out_shape=list(acc.shape),
                kernel=list(conv.kernel_size), stride=list(conv.stride), groups=conv.groups,
                glookups=n_look / 1e9, t_float_ms=t_float * 1e3, t_lut_ms=t_lut * 1e3, t_ref_ms=t_ref * 1e3,
                ref_extrapolated=scaled, lut_gps=n_look / t_lut / 1e9, ref_gps=n_look / t_ref / 1e9,
                lut_over_float=t_lut / t_float, ref_over_lut=t_ref / t_lut, bit_exact=bool(same))


def bench_network(model, convs, ptable, off, rng, repeat, h, w):
    per_layer = []
    total_lut = 0.0
    total_look = 0
    for name, conv, in_shape in convs:
        x, wq, b = make_operands(conv, in_shape, rng)
        args = conv_args(conv)
        t, (acc, _) = best_time(lambda: kernels.lut_conv2d(x, wq, ptable, off, b, acc_bits=32, acc_mode="wrap",
                                                           overflow_free=True, **args), repeat)
        nl = lookups(conv, acc.shape)
        total_lut += t
        total_look += nl
        per_layer.append(dict(layer=name, glookups=nl / 1e9, t_lut_ms=t * 1e3, lut_gps=nl / t / 1e9))
    xf = torch.randn(1, 3, h, w)
    with torch.no_grad():
        model(xf)
        t_float, _ = best_time(lambda: model(xf), repeat)
    return dict(input=[1, 3, h, w], convs=len(convs), glookups=total_look / 1e9, t_lut_s=total_lut,
                t_float_s=t_float, lut_over_float=total_lut / t_float, lut_gps=total_look / total_lut / 1e9,
                layers=per_layer)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--layers-only", action="store_true")
    ap.add_argument("--network-only", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="numba and torch threads (default: all)")
    ap.add_argument("--lut", default="sm(trunc4)", help="library multiplier whose golden table is used")
    ap.add_argument("--ref-max", type=float, default=3e7, help="largest layer (lookups) run fully by the reference")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    a = ap.parse_args(argv)

    import numba

    if a.threads:
        numba.set_num_threads(a.threads)
        torch.set_num_threads(a.threads)
    from pyapprox.rtl.library import resolve

    design = resolve(a.lut)
    fmt = "int8" if design.signed else "sign-magnitude"
    ptable, off = QF.product_table(design.golden_table(), fmt, "a")
    rng = np.random.default_rng(0)
    model, convs = network_convs(a.height, a.width)
    by_name = {n: (c, s) for n, c, s in convs}

    # warm-up outside the timings: JIT (or cache load), thread launch calibration, table conversion
    t0 = time.perf_counter()
    kernels.available()
    for name in ("0.0", "decoder.up0.convA"):
        conv, shape = by_name[name]
        x, wq, b = make_operands(conv, shape, np.random.default_rng(1))
        kernels.lut_conv2d(x, wq, ptable, off, b, overflow_free=True, **conv_args(conv))
    warm = time.perf_counter() - t0

    res = dict(machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                            numba_threads=numba.get_num_threads(), torch_threads=torch.get_num_threads(),
                            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
                            loadavg=os.getloadavg()[0]),
               lut=a.lut, operand_format=fmt, warmup_s=warm)
    if not a.network_only:
        res["layers"] = [bench_layer(n, kind, *by_name[n], ptable, off, rng, a.repeat, a.ref_max)
                         for n, kind in LAYERS if n in by_name]
    if not a.layers_only:
        res["network"] = bench_network(model, convs, ptable, off, rng, a.repeat, a.height, a.width)

    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    m = res["machine"]
    print(f"LUT {a.lut} ({fmt}), {m['cores']} cores (load average {m['loadavg']:.1f}), numba threads "
          f"{m['numba_threads']}, torch threads {m['torch_threads']}, OMP_WAIT_POLICY={m['omp_wait_policy']}; "
          f"JIT/cache load {warm:.2f} s; best of {a.repeat}")
    if "layers" in res:
        print(f"{'layer':20s} {'kind':16s} {'Glook':>6s} {'float ms':>9s} {'LUT ms':>9s} {'ref ms':>10s} "
              f"{'LUT G/s':>8s} {'ref G/s':>8s} {'LUT/float':>9s} {'ref/LUT':>8s} exact")
        for r in res["layers"]:
            ref = ("~" if r["ref_extrapolated"] else " ") + f"{r['t_ref_ms']:.0f}"
            print(f"{r['layer']:20s} {r['kind']:16s} {r['glookups']:6.3f} {r['t_float_ms']:9.2f} {r['t_lut_ms']:9.2f} "
                  f"{ref:>10s} {r['lut_gps']:8.2f} {r['ref_gps']:8.3f} {r['lut_over_float']:9.1f} "
                  f"{r['ref_over_lut']:8.0f} {'yes' if r['bit_exact'] else 'NO'}")
    if "network" in res:
        nw = res["network"]
        print(f"whole network {nw['input'][2]}x{nw['input'][3]}: {nw['convs']} convs, {nw['glookups']:.2f} G lookups; "
              f"LUT convs {nw['t_lut_s']:.3f} s ({nw['lut_gps']:.2f} G lookups/s), float32 forward "
              f"{nw['t_float_s']:.3f} s, ratio {nw['lut_over_float']:.1f}x")
        slow = sorted(nw["layers"], key=lambda r: -r["t_lut_ms"])[:6]
        print("  slowest layers: " + ", ".join(f"{r['layer']} {r['t_lut_ms']:.0f} ms ({r['lut_gps']:.1f} G/s)"
                                               for r in slow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
