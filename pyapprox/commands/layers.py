"""``pyapprox layers``: every conv of densedepth_mbv2 with kind, shape, stride, MACs and short name."""

from __future__ import annotations

import json
import sys


def configure(p) -> None:
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2
    from pyapprox.nn.layers import format_layer_table, layer_table

    with __import__("torch").device("meta"):
        model = DenseDepthMBV2()
    rows = layer_table(model, args.height, args.width)
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=1)
        print()
    else:
        print(format_layer_table(rows, args.height, args.width))
    return 0
