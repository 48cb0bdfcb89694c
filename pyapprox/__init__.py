"""pyapprox: from approximate-multiplier RTL to hardware-faithful CNN inference."""

import os as _os

# libgomp's default busy-waiting makes every parallel region cost milliseconds on a loaded 2-core machine
# (measured: 5x slower torch convs); set before torch is imported so it takes effect.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

__version__ = "0.1.0"
