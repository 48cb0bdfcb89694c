"""``pyapprox cosim``: stream real tiles of real layers through the RTL MAC array and compare bit for bit.

A real image goes through the calibrated quantized network with the multiplier applied to the selected
layer(s); each layer's actual input codes and accumulators are captured; tiles of real operands stream
through ``rtl/mac/mac_array.v`` built with the multiplier's own RTL (cocotb on Verilator or Icarus); every
accumulator, overflow flag and output code is compared with pyapprox's arithmetic. See
:mod:`pyapprox.cosim`. Exit status 1 when anything differs.
"""

from __future__ import annotations

import time
from pathlib import Path


def configure(p) -> None:
    from pyapprox.commands.eval import add_model_args

    p.add_argument("--layer", action="append", required=True, metavar="SELECTOR",
                   help="layer(s) to co-simulate: a name (0.0, 1.conv.0.0, 1.conv.1, decoder.up0.convA), a glob, a "
                        "kind (pw, dw, full) or a group; repeat for several")
    p.add_argument("--multiplier", required=True, help="library multiplier (mbm, trunc6, sm(drum4), exact) or a LUT "
                                                       "file whose sidecar records its RTL (from `pyapprox lut gen`)")
    p.add_argument("--tiles", type=int, default=8, help="tiles per layer, spread over the layer (0: all; default 8)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--rows", type=int, default=8, help="PE rows (output channels per tile; default 8)")
    p.add_argument("--cols", type=int, default=8, help="PE columns (output pixels per tile; default 8)")
    add_image_args(p, "co-simulated")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--build-dir", help="simulator build directory (default: in the pyapprox cache)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    add_model_args(p)


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
    from pyapprox.cosim import check_array_args, cosim_model, format_report, multiplier_rtl
    from pyapprox.models.network import is_default

    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"cosim: {msg}", flush=True))
    # everything that can be checked without the model or a simulator, first
    if args.tiles < 0:
        raise PyapproxError(f"--tiles must be 0 (all) or more, got {args.tiles}")
    if args.json:
        pio.check_output_path(args.json, "--json", (".json",))
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
    rtl = multiplier_rtl(args.multiplier, cfg.operand_format)
    check_array_args(args.rows, args.cols, cfg.acc_bits, cfg.operand_format, rtl.p_bits)
    qmodel, image, image_text, kinds = quantized_model_and_image(args, cfg, say, args.layer)
    t0 = time.perf_counter()
    rep = cosim_model(qmodel, image, args.layer, args.multiplier, rows=args.rows, cols=args.cols,
                      tiles=args.tiles or None, simulator=args.sim,
                      build_dir=Path(args.build_dir) if args.build_dir else None, rtl=rtl, progress=say)
    print(f"image: {image_text}; model: {args.model or 'densedepth_mbv2'}; weights: "
          f"{args.weights or ('default (synthetic)' if is_default(args.model) else 'in the model file')}")
    print(f"accelerator: {cfg.describe()}")
    note = _finetune_note(args, kinds, cfg)
    if note:
        print(note)
    print(format_report(rep))
    if args.json:
        out = rep.to_dict()
        out.update({"image": image_text, "weights": args.weights or "default", "accelerator_text": cfg.describe(),
                    "seconds": round(time.perf_counter() - t0, 3),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        pio.write_json(Path(args.json), out)
    return 1 if rep.mismatches else 0


def _finetune_note(args, kinds, cfg) -> str | None:
    """For fine-tuned weights: what they were fine-tuned for, and a note when the co-simulated layers' multiplier
    or the accelerator differs from it."""
    from pyapprox.eval.recipe import finetune_recipe, plan_note
    from pyapprox.lut.library import get_lut
    from pyapprox.nn.plan import select

    recipe = finetune_recipe(args.weights)
    if recipe is None:
        return None
    trained = recipe["plan"]["assignment"]
    layers = {n for sel in args.layer for n in select(sel, kinds)}
    used = {n: (args.multiplier if n in layers else trained.get(n, "exact")) for n in kinds}
    digests = {} if args.multiplier == "exact" else {args.multiplier: get_lut(args.multiplier).digest()}
    rules = ", ".join(f"{s}={m}" for s, m in recipe["plan"]["rules"]) or "exact"
    note = plan_note(recipe, used, cfg.to_dict(), digests)
    return f"weights fine-tuned for: {rules}" + ("\n" + note if note else "")
