"""``pyapprox cosim``: stream real tiles of real layers through the RTL MAC array and compare bit for bit.

A real image goes through the calibrated quantized network with the multiplier applied to the selected
layer(s); each layer's actual input codes and accumulators are captured; tiles of real operands stream
through ``rtl/mac/mac_array.v`` built with the multiplier's own RTL (or ``--rtl``'s), by default every tile of
every selected conv through an in-process Verilated model (``--sim native``), else sampled tiles through cocotb
on Verilator or Icarus; every accumulator, overflow flag and output code is compared with pyapprox's arithmetic.
On a mismatch (native) the first failing tile is written as a VCD with the command that re-runs it. See
:mod:`pyapprox.cosim`. Exit status 1 when anything differs.
"""

from __future__ import annotations

import time
from pathlib import Path


def configure(p) -> None:
    from pyapprox.commands.eval import add_model_args

    from pyapprox.commands.lut import add_port_args

    p.add_argument("--layer", action="append", metavar="SELECTOR",
                   help="layer(s) to co-simulate: a name (0.0, 1.conv.0.0, 1.conv.1, decoder.up0.convA), a glob, a "
                        "kind (pw, dw, full) or a group; repeat for several")
    p.add_argument("--all-layers", action="store_true", help="every conv and linear layer of the network")
    p.add_argument("--multiplier", required=True, help="library multiplier (mbm, trunc6, sm(drum4), exact) or a LUT "
                                                       "file whose sidecar records its RTL (from `pyapprox lut gen`)")
    p.add_argument("--tiles", type=int, help="tiles per layer, spread over the layer (0: all; default: all with "
                                             "--sim native, 8 with cocotb)")
    p.add_argument("--sim", choices=["native", "verilator", "icarus"], default="native",
                   help="native: an in-process Verilated model of the array (default); verilator, icarus: cocotb")
    p.add_argument("--threads", type=int, help="native: model instances streaming in parallel (default: the cores)")
    p.add_argument("--tile-index", type=int, metavar="N",
                   help="native: only tile N of the one selected layer (with --wave: its waveform)")
    p.add_argument("--wave", metavar="FILE.vcd",
                   help="native: where the waveform of the first failing tile goes (default: "
                        "cosim_<layer>_tile<N>.vcd here), or of --tile-index's tile")
    p.add_argument("--rtl", nargs="+", metavar="FILE.v",
                   help="run this Verilog multiplier (with --top, ports as in `lut gen`) in the array instead of the "
                        "RTL of --multiplier, whose table the network keeps: checks a table against a design")
    p.add_argument("--top", help="top module of --rtl")
    p.add_argument("--rows", type=int, default=8, help="PE rows (output channels per tile; default 8)")
    p.add_argument("--cols", type=int, default=8, help="PE columns (output pixels per tile; default 8)")
    add_image_args(p, "co-simulated")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--build-dir", help="simulator build directory (default: in the pyapprox cache)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    add_model_args(p)
    add_port_args(p)  # of --rtl


def add_image_args(p, purpose: str) -> None:
    """One input image of the default network (``--image``, ``--height``, ``--width``) or of an ONNX model
    (``--inputs``, ``--input-index``); see :func:`quantized_model_and_image`."""
    from pyapprox.commands.eval import add_inputs_args

    p.add_argument("--image", default="synthetic:0",
                   help="input image: synthetic:N (synthetic test image N, default 0) or an RGB image file "
                        "(.png/.jpg, or .npy uint8 [H, W, 3])")
    p.add_argument("--height", type=int, default=480, help="synthetic image height (default 480)")
    p.add_argument("--width", type=int, default=640, help="synthetic image width (default 640)")
    add_inputs_args(p, "with --model FILE.onnx: the model's inputs; the first --calib-images calibrate, "
                       "--input-index is run")
    p.add_argument("--input-index", type=int, default=0, help=f"which of --inputs is {purpose} (default 0)")


def check_image_args(args) -> None:
    """What can be checked about the image options before any work."""
    if str(args.image).startswith("synthetic"):
        from pyapprox.data import check_resolution

        check_resolution(args.height, args.width, "--height/--width")


def quantized_model_and_image(args, cfg, say, selectors=()):
    """(calibrated quantized network, preprocessed image [1, ...], image description, the float network's layer
    names) from the network, accelerator and image options; ``selectors`` are checked against the layers
    before calibration."""
    import torch

    from pyapprox.data.inputs import load_inputs
    from pyapprox.errors import PyapproxError
    from pyapprox.eval.evaluate import calibration_images
    from pyapprox.models.densedepth_mbv2 import preprocess
    from pyapprox.models.network import is_default, load_network
    from pyapprox.nn.plan import model_layers, select
    from pyapprox.nn.quant import quantize_model

    if not is_default(args.model) and not args.inputs:
        raise PyapproxError(f"--model {args.model}: give its inputs with --inputs (.npy or a folder of images)")
    model = load_network(args.model, args.weights)
    kinds = model_layers(model)
    for sel in selectors:
        select(sel, kinds)  # unknown names fail here, listing the valid ones
    if is_default(args.model):
        rgb, image_text = load_image(args.image, args.height, args.width, not args.quiet)
        image = preprocess(rgb)
    else:
        inputs = load_inputs(args.inputs, args.preprocess)
        if not 0 <= args.input_index < len(inputs):
            raise PyapproxError(f"--input-index {args.input_index}: {args.inputs} holds {len(inputs)} inputs")
        image, image_text = inputs[args.input_index], f"{args.inputs} input {args.input_index}"
    say(f"calibrating the quantized network ({cfg.describe()})")
    with torch.no_grad():
        if is_default(args.model):
            calib = calibration_images(None, cfg, args.calib_data or "synthetic:val", not args.quiet)
        else:
            calib = inputs[:cfg.calib_images]
        qmodel = quantize_model(model, calib, cfg, args.backend)
    return qmodel, image, image_text, kinds


def load_image(spec: str, height: int, width: int, progress: bool):
    """uint8 RGB [H, W, 3] and a description."""
    import numpy as np

    from pyapprox.errors import PyapproxError

    spec = str(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        from pyapprox.data.synthetic import DEFAULT_SIZES, load_split

        idx = spec.split(":", 1)[1] if ":" in spec else "0"
        size = DEFAULT_SIZES["test"]
        if not (idx.isascii() and idx.isdigit()) or not 0 <= int(idx) < size:
            raise PyapproxError(f"--image {spec}: expected synthetic:N with N a test image index from 0 to {size - 1}")
        rgb, _ = load_split("test", int(idx) + 1, height, width, progress=progress)
        return np.asarray(rgb[int(idx)]), f"synthetic test image {idx} ({height}x{width})"
    path = Path(spec)
    if not path.is_file():
        raise PyapproxError(f"--image {spec}: no such file (or use synthetic:N)")
    if path.suffix.lower() == ".npy":
        from pyapprox import io as pio

        arr = np.asarray(pio.load_npy(path))
    else:
        try:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise PyapproxError(f"--image {spec}: not a readable image ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise PyapproxError(f"--image {spec}: expected uint8 RGB [H, W, 3], got {arr.dtype} {arr.shape}")
    return arr, f"{path} ({arr.shape[0]}x{arr.shape[1]})"


def run(args) -> int:
    from pyapprox import io as pio
    from pyapprox.commands.eval import accel_config
    from pyapprox.errors import PyapproxError
    from pyapprox.cosim import check_array_args, cosim_model, cosim_network, format_report, multiplier_rtl
    from pyapprox.models.network import is_default

    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"cosim: {msg}", flush=True))
    native = args.sim == "native"
    # everything that can be checked without the model or a simulator, first
    _check_args(args, native)
    if args.json:
        pio.check_output_path(args.json, "--json", (".json",))
    if args.wave:
        pio.check_output_path(args.wave, "--wave", (".vcd",))
    if args.build_dir:
        pio.check_output_dir(args.build_dir, "--build-dir")
    check_image_args(args)
    base = None
    if args.config:
        from pyapprox.nn.config import AccelConfig

        base = AccelConfig.load(args.config)
    fmt = args.operand_format or (base.operand_format if base else "sign-magnitude")
    acc_bits = args.acc_bits if args.acc_bits is not None else (base.acc_bits if base else None)
    check_array_args(args.rows, args.cols, acc_bits, fmt)
    cfg = accel_config(args)
    rtl = _array_rtl(args, cfg) if args.rtl else multiplier_rtl(args.multiplier, cfg.operand_format)
    check_array_args(args.rows, args.cols, cfg.acc_bits, cfg.operand_format, rtl.p_bits)
    selectors = ["*"] if args.all_layers else args.layer
    qmodel, image, image_text, kinds = quantized_model_and_image(args, cfg, say, selectors)
    t0 = time.perf_counter()
    build = Path(args.build_dir) if args.build_dir else None
    if native:
        from pyapprox.cosim import resolve_layers

        names = resolve_layers(qmodel, selectors)
        short = {n: kinds.short(n) for n in names}
        wave = Path(args.wave) if args.wave else None

        def on_mismatch(layer, tile):
            path = wave or Path(f"cosim_{short[layer]}_tile{tile}.vcd")
            say(f"re-run the failing tile: {rerun_command(args, layer, tile, path)}")
            return path

        rep = cosim_network(qmodel, image, names, args.multiplier, rtl, rows=args.rows, cols=args.cols,
                            tiles=args.tiles or None, threads=args.threads, tile_index=args.tile_index,
                            wave=wave if args.tile_index is not None else None, on_mismatch=on_mismatch,
                            build_root=build, progress=say, bar=not args.quiet)
        if rep.extra.get("wave") and args.tile_index is None:
            m = rep.first_mismatches[0]
            rep.extra["rerun"] = rerun_command(args, m["layer"], m["tile"], Path(rep.extra["wave"]))
    else:
        rep = cosim_model(qmodel, image, selectors, args.multiplier, rows=args.rows, cols=args.cols,
                          tiles=8 if args.tiles is None else (args.tiles or None), simulator=args.sim,
                          build_dir=build, rtl=rtl, progress=say)
    print(f"image: {image_text}; model: {args.model or 'densedepth_mbv2'}; weights: "
          f"{args.weights or ('default (synthetic)' if is_default(args.model) else 'in the model file')}")
    print(f"accelerator: {cfg.describe()}")
    note = _finetune_note(args, kinds, cfg, selectors)
    if note:
        print(note)
    print(format_report(rep))
    if rep.extra.get("rerun"):
        print(f"re-run the failing tile: {rep.extra['rerun']}")
    if args.json:
        out = rep.to_dict()
        out.update({"image": image_text, "weights": args.weights or "default", "accelerator_text": cfg.describe(),
                    "seconds": round(time.perf_counter() - t0, 3),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        pio.write_json(Path(args.json), out)
    return 1 if rep.mismatches else 0


def _check_args(args, native: bool) -> None:
    from pyapprox.errors import PyapproxError

    if not args.layer and not args.all_layers:
        raise PyapproxError("name the layers to co-simulate: --layer SELECTOR (repeatable) or --all-layers")
    if args.layer and args.all_layers:
        raise PyapproxError("--layer and --all-layers exclude each other")
    if args.tiles is not None and args.tiles < 0:
        raise PyapproxError(f"--tiles must be 0 (all) or more, got {args.tiles}")
    if not native:
        for opt in ("threads", "tile_index", "wave"):
            if getattr(args, opt) is not None:
                raise PyapproxError(f"--{opt.replace('_', '-')} needs --sim native")
    if args.threads is not None and not 1 <= args.threads <= 64:
        raise PyapproxError(f"--threads must be 1..64, got {args.threads}")
    if args.tile_index is not None:
        if args.tile_index < 0:
            raise PyapproxError(f"--tile-index must be 0 or more, got {args.tile_index}")
        if args.all_layers or len(args.layer) != 1:
            raise PyapproxError("--tile-index needs exactly one --layer NAME")
        if args.tiles:
            raise PyapproxError("--tile-index and --tiles exclude each other")
    if args.rtl and not args.top:
        raise PyapproxError("--rtl needs --top MODULE")
    if not args.rtl and (args.top or args.a or args.b or args.out or args.param or args.define or args.tie
                         or args.sign_ports or args.signed):
        raise PyapproxError("--top and the port options (--a, --b, --out, --param, --define, --tie, --sign-ports, "
                            "--signed) describe an --rtl design; give --rtl FILE.v")


def _array_rtl(args, cfg):
    from pyapprox.commands.lut import parse_sign_ports, parse_ties
    from pyapprox.cosim.rtl import user_rtl
    from pyapprox.errors import PyapproxError

    rtl = user_rtl(args.rtl, args.top, a=args.a, b=args.b, out=args.out, params=dict(args.param),
                   defines=dict(args.define), ties=parse_ties(args.tie), sign_ports=parse_sign_ports(args.sign_ports),
                   signed=args.signed)
    if cfg.operand_format == "int8" and not rtl.signed:
        raise PyapproxError(f"--rtl {args.top}: int8 operands need a signed design (--signed)")
    if cfg.operand_format == "sign-magnitude" and rtl.signed:
        raise PyapproxError(f"--rtl {args.top}: sign-magnitude operands need an unsigned or sign-magnitude design")
    return rtl


#: Options of a cosim run that a re-run of one of its tiles repeats (each with its value, if it takes one).
_RERUN_OPTIONS = ("multiplier", "image", "height", "width", "inputs", "input_index", "rows", "cols", "model",
                  "weights", "config", "operand_format", "weight_port", "acc_bits", "acc_mode", "calibration",
                  "calib_images", "calib_data", "backend", "preprocess", "top", "a", "b", "out", "sign_ports")


def rerun_command(args, layer: str, tile: int, wave: Path) -> str:
    """The command that co-simulates ``tile`` of ``layer`` alone, as this run did, and writes its waveform."""
    import shlex

    cmd = ["pyapprox", "cosim", "--layer", layer, "--tile-index", str(tile), "--wave", str(wave)]
    for opt in _RERUN_OPTIONS:
        v = getattr(args, opt, None)
        if v is not None and v is not False:
            cmd += [f"--{opt.replace('_', '-')}", str(v)]
    for opt in ("param", "define", "tie"):
        for k, v in getattr(args, opt, None) or []:
            cmd += [f"--{opt}", f"{k}={v}"]
    if getattr(args, "signed", False):
        cmd.append("--signed")
    if args.rtl:
        cmd += ["--rtl", *map(str, args.rtl)]
    return shlex.join(cmd)


def _finetune_note(args, kinds, cfg, selectors) -> str | None:
    """For fine-tuned weights: what they were fine-tuned for, and a note when the co-simulated layers' multiplier
    or the accelerator differs from it."""
    from pyapprox.eval.recipe import finetune_recipe, plan_note
    from pyapprox.lut.library import get_lut
    from pyapprox.nn.plan import select

    recipe = finetune_recipe(args.weights)
    if recipe is None:
        return None
    trained = recipe["plan"]["assignment"]
    layers = {n for sel in selectors for n in select(sel, kinds)}
    used = {n: (args.multiplier if n in layers else trained.get(n, "exact")) for n in kinds}
    digests = {} if args.multiplier == "exact" else {args.multiplier: get_lut(args.multiplier).digest()}
    rules = ", ".join(f"{s}={m}" for s, m in recipe["plan"]["rules"]) or "exact"
    note = plan_note(recipe, used, cfg.to_dict(), digests)
    return f"weights fine-tuned for: {rules}" + ("\n" + note if note else "")
