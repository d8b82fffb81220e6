"""The media transforms of the model: normalized geometric adstock and the Hill saturation curve.
Pure array functions, shared by the fit (candidate features) and the response curves.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["geometric_adstock", "hill_saturation", "hill_saturation_derivative"]


def geometric_adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    """Normalized geometric adstock along the last axis.

    ``a_t = decay * a_{t-1} + (1 - decay) * x_t``: the weights sum to one, so a constant daily
    spend ``x`` has steady-state adstock ``x`` and the saturation half-point stays in daily-spend
    units. The state before the first day is taken as that first day's spend (steady state), which
    avoids a spurious ramp-up when no earlier history exists.
    """
    x = np.asarray(spend, dtype=float)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"adstock decay must be in [0, 1), got {decay}")
    if decay == 0.0 or x.shape[-1] == 0:
        return x.copy()
    zi = decay * x[..., :1]
    out, _ = lfilter([1.0 - decay], [1.0, -decay], x, axis=-1, zi=zi)
    return out


def hill_saturation(x: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Hill curve ``x^s / (x^s + K^s)`` in [0, 1): 0.5 at ``x = half``; S-shaped when ``shape > 1``."""
    u = np.asarray(x, dtype=float) / half
    us = np.power(u, shape)
    return us / (1.0 + us)


def hill_saturation_derivative(x: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Derivative of :func:`hill_saturation` with respect to ``x`` (finite at 0 for ``shape >= 1``)."""
    u = np.asarray(x, dtype=float) / half
    us = np.power(u, shape)
    return shape * np.power(u, shape - 1.0) / (half * (1.0 + us) ** 2)
