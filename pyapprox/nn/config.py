"""The accelerator's number model, in one configuration object (loadable from JSON, printed in results).

Arithmetic, stated once (tests check each point):

* Operands: ``sign-magnitude`` (default, the research's format) codes are integers in [-255, 255]; the
  unsigned multiplier sees the 8-bit magnitudes and the product's sign is the XOR of the signs.
  ``int8`` codes are two's complement in [-128, 127] on a signed multiplier. ``weight_port`` says which
  multiplier input (``a`` or ``b``) receives the weight; the other receives the activation.
* Weights: per-output-channel scale s_w[o] = max|W[o]| / Q (Q = 255 sign-magnitude, 127 int8), codes
  round-half-even(W / s_w), zero-point 0. BatchNorm is folded into the conv weights and bias first.
* Activations: per-tensor scale s_x calibrated on calibration images (``max``, ``percentile`` or ``mse``),
  codes clamp(round-half-even(x / s_x)), zero-point 0. Zero padding enters the multiplier as code 0.
* Accumulator: ``acc_bits`` wide (default 32), two's complement. It starts at the bias
  round-half-even(b / (s_x s_w[o])) and adds the products in im2col order (input channel, kernel row,
  kernel column). ``wrap`` wraps modulo 2^acc_bits; ``saturate`` clamps after every addition. An
  output whose running sum left the range at any step counts as one overflow of its layer.
* Requantization of a conv output to the 8-bit codes of its output tensor (scale s_y): integer multiplier
  M[o] of ``requant_bits`` bits and shift S[o] with M / 2^S ~= s_x s_w[o] / s_y, q = (acc * M + 2^(S-1)) >> S
  (round half up), then the fused activation in the integer domain: ReLU clamps to [0, Q], ReLU6 to
  [0, min(Q, round(6/s_y))]; LeakyReLU(slope) uses a second multiplier M_neg = round(slope M) for negative
  accumulators (densedepth_mbv2: slope 0.2); other activations stay float after the layer; finally clamp to
  the code range. The network's last conv is not requantized: its accumulator times s_x s_w[o] is the output.
* Between convolutions: a conv output that feeds the next conv directly keeps its integer codes (the two
  layers share the tensor scale). Residual adds, bilinear upsampling and concatenation are computed in
  float32 on dequantized values (code x scale); the result is re-quantized at the next conv's input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pyapprox.errors import PyapproxError
from pyapprox.io import read_json

OPERAND_FORMATS = ("sign-magnitude", "int8")
CALIBRATION_METHODS = ("max", "percentile", "mse")
ACC_MODES = ("wrap", "saturate")


@dataclass(frozen=True)
class AccelConfig:
    operand_format: str = "sign-magnitude"
    weight_port: str = "a"
    acc_bits: int = 32
    acc_mode: str = "wrap"
    requant_bits: int = 16
    calibration: str = "percentile"
    percentile: float = 99.99
    calib_images: int = 8
    calib_seed: int = 0

    def __post_init__(self):
        def bad(field, value, valid):
            raise PyapproxError(f"accelerator config: {field}={value!r} is not valid; expected {valid}")

        for name in ("acc_bits", "requant_bits", "calib_images", "calib_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                bad(name, v, "an integer")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)):
            bad("percentile", self.percentile, "a number from 50 to 100")
        for name in ("operand_format", "weight_port", "acc_mode", "calibration"):
            if not isinstance(getattr(self, name), str):
                bad(name, getattr(self, name), "a string")
        if not 0 <= self.calib_seed < 2 ** 32:
            bad("calib_seed", self.calib_seed, "an integer from 0 to 2**32-1")
        if self.calib_images > 10000:
            bad("calib_images", self.calib_images, "at most 10000")
        if self.operand_format not in OPERAND_FORMATS:
            bad("operand_format", self.operand_format, " or ".join(OPERAND_FORMATS))
        if self.weight_port not in ("a", "b"):
            bad("weight_port", self.weight_port, "a or b")
        if not 17 <= int(self.acc_bits) <= 62:
            bad("acc_bits", self.acc_bits, "an integer from 17 to 62 (a product needs 17 bits with its sign)")
        if self.acc_mode not in ACC_MODES:
            bad("acc_mode", self.acc_mode, " or ".join(ACC_MODES))
        if not 2 <= int(self.requant_bits) <= 31:
            bad("requant_bits", self.requant_bits, "an integer from 2 to 31")
        if int(self.acc_bits) + int(self.requant_bits) > 62:
            bad("requant_bits", self.requant_bits, f"at most {62 - int(self.acc_bits)} with a {self.acc_bits}-bit accumulator")
        if self.calibration not in CALIBRATION_METHODS:
            bad("calibration", self.calibration, ", ".join(CALIBRATION_METHODS))
        if not 50.0 <= float(self.percentile) <= 100.0:
            bad("percentile", self.percentile, "a number from 50 to 100")
        if int(self.calib_images) < 1:
            bad("calib_images", self.calib_images, "at least 1")

    @property
    def qmax(self) -> int:
        return 255 if self.operand_format == "sign-magnitude" else 127

    @property
    def qmin(self) -> int:
        return -255 if self.operand_format == "sign-magnitude" else -128

    @property
    def lut_operands(self) -> str:
        """The LUT operand format a multiplier must have for this configuration."""
        return "signed" if self.operand_format == "int8" else "unsigned"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.operand_format} operands, weight on port {self.weight_port}, {self.acc_bits}-bit "
                f"{self.acc_mode} accumulator, {self.requant_bits}-bit requant multiplier, {self.calibration}"
                + (f" {self.percentile}" if self.calibration == "percentile" else "")
                + f" calibration on {self.calib_images} images")

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "AccelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PyapproxError(f"{source}: unknown accelerator setting(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "AccelConfig":
        path = Path(path)
        data = read_json(path, "accelerator config")
        if not isinstance(data, dict):
            raise PyapproxError(f"accelerator config {path}: expected a JSON object")
        return cls.from_dict(data, str(path))
