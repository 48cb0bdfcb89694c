"""``pyapprox layers``: every conv and linear layer of a network with kind, shape, stride, MACs and short name."""

from __future__ import annotations

import json
import sys


def configure(p) -> None:
    p.add_argument("--model", help="densedepth_mbv2 (default) or a network saved as FILE.onnx")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--input-shape", metavar="N,C,H,W",
                   help="the model's input shape (default: the ONNX file's, or 1,3,HEIGHT,WIDTH)")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    import torch

    from pyapprox.errors import PyapproxError
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2
    from pyapprox.models.network import is_default, load_network
    from pyapprox.nn.layers import format_layer_table, layer_table

    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if not shape or any(not 1 <= v <= 1 << 16 for v in shape) or len(shape) > 6:
            raise PyapproxError(f"--input-shape {args.input_shape!r}: expected positive integers such as 1,3,224,224")
    if is_default(args.model):
        with torch.device("meta"):
            model = DenseDepthMBV2()
    else:
        model = load_network(args.model)
        shape = shape or getattr(model, "input_shape", None)
    if shape is not None and len(shape) == 4:
        args.height, args.width = shape[2], shape[3]
    rows = layer_table(model, args.height, args.width, input_shape=shape)
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=1)
        print()
    else:
        print(format_layer_table(rows, args.height, args.width))
    return 0
