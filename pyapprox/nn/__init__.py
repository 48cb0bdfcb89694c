"""The accelerator's number model for any PyTorch network: quantization, LUT convolutions, plans.

``quantize_model(model, calibration_inputs, AccelConfig())`` gives the accelerator version of any ``nn.Module``;
``approximate(qmodel, [(selector, multiplier), ...])`` applies a plan; ``model_layers`` lists what a plan can
address.
"""

from pyapprox.nn.config import AccelConfig
from pyapprox.nn.plan import approximate, model_layers, select
from pyapprox.nn.quant import quantize_model

__all__ = ["AccelConfig", "approximate", "model_layers", "quantize_model", "select"]
