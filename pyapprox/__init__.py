"""pyapprox: from approximate-multiplier RTL to hardware-faithful CNN inference."""

__version__ = "0.1.0"
