"""Error metrics of a LUT against the exact product of its operand format.

Definitions (e = approximate - exact, over all 65,536 code pairs):
MAE = mean|e|, WCE = max|e|, MSE = mean e^2, bias = mean e, EP% = 100 * P(e != 0),
MRE% = 100 * mean(|e| / |exact|) and WCRE% = 100 * max(|e| / |exact|) over pairs whose exact
product is non-zero, and MAE% / WCE% = 100 * MAE / 2^16 and 100 * WCE / 2^16 (the normalisation
EvoApproxLib publishes for 8x8 multipliers, signed ones included).
"""

from __future__ import annotations

import numpy as np

from pyapprox.lut.table import LUT

METRICS = ("MAE", "WCE", "MSE", "bias", "EP%", "MRE%", "WCRE%", "MAE%", "WCE%")
_NORM = float(2 ** 16)


def error_metrics(lut: LUT) -> dict[str, float]:
    exact = lut.exact()
    e = lut.table - exact
    ae = np.abs(e).astype(np.float64)
    nz = exact != 0
    rel = ae[nz] / np.abs(exact[nz])
    mae = float(ae.mean())
    wce = float(ae.max())
    return {
        "MAE": mae,
        "WCE": wce,
        "MSE": float((e.astype(np.float64) ** 2).mean()),
        "bias": float(e.mean()),
        "EP%": 100.0 * float((e != 0).mean()),
        "MRE%": 100.0 * float(rel.mean()),
        "WCRE%": 100.0 * float(rel.max()),
        "MAE%": 100.0 * mae / _NORM,
        "WCE%": 100.0 * wce / _NORM,
    }


def format_metrics(m: dict[str, float]) -> str:
    return "\n".join(f"{k:>6}  {m[k]:.6g}" for k in METRICS)


def plot_errors(lut: LUT, path) -> None:
    """Error surface heatmap over (a, b) and the error histogram, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyapprox import io as pio

    e = lut.table - lut.exact()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    lim = max(1, int(np.abs(e).max()))
    ext = [-128, 127, 127, -128] if lut.signed else [0, 255, 255, 0]
    if lut.signed:  # show operands in value order
        e = np.roll(np.roll(e, 128, 0), 128, 1)
    im = ax1.imshow(e, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext, interpolation="nearest")
    ax1.set_xlabel("b")
    ax1.set_ylabel("a")
    ax1.set_title(f"{lut.name}: error (approx - exact)")
    fig.colorbar(im, ax=ax1)
    vals, counts = np.unique(e, return_counts=True)
    ax2.bar(vals, counts, width=max(1.0, (vals.max() - vals.min()) / 200.0) if vals.size > 1 else 1.0)
    ax2.set_yscale("log")
    ax2.set_xlabel("error")
    ax2.set_ylabel("pairs")
    ax2.set_title("error histogram")
    fig.tight_layout()
    with pio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
