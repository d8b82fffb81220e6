"""The media transforms of the model: normalized geometric and delayed adstock, and the saturation curves
(Hill and exponential, both parametrized by their half point). Pure array functions, shared by the fit
(candidate features) and the response curves.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "SATURATION_FAMILIES",
    "adstock",
    "delayed_adstock",
    "exponential_saturation",
    "exponential_saturation_derivative",
    "geometric_adstock",
    "hill_saturation",
    "hill_saturation_derivative",
    "saturation",
    "saturation_derivative",
]

# Saturation curve families, in the order of their numeric codes in the candidate grid (0: Hill).
SATURATION_FAMILIES: tuple[str, ...] = ("hill", "exponential")

# Delayed kernels are cut where the weight falls below this share of the peak (at most 63 days).
_KERNEL_CUTOFF = 1e-4
_MAX_KERNEL_DAYS = 63


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


def delayed_adstock(spend: np.ndarray, decay: float, delay: int) -> np.ndarray:
    """Normalized delayed-geometric adstock along the last axis: the effect peaks ``delay`` days after the spend.

    Kernel ``w_l ~ decay ** |l - delay|`` for lags ``l >= 0`` (a rise to the peak, then geometric decay),
    cut where it falls below 1e-4 of the peak and scaled to sum to one, so a constant spend ``x`` again
    has adstock ``x`` and steady-state response curves do not depend on the kernel. Days before the first
    are taken at the first day's spend. ``delay = 0`` is :func:`geometric_adstock` (up to the cut).
    """
    x = np.asarray(spend, dtype=float)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"adstock decay must be in [0, 1), got {decay}")
    if delay < 0 or delay != int(delay):
        raise ValueError(f"adstock delay must be a whole number of days >= 0, got {delay}")
    delay = int(delay)
    if delay == 0:
        return geometric_adstock(x, decay)
    tail = 0 if decay == 0.0 else int(np.ceil(np.log(_KERNEL_CUTOFF) / np.log(decay)))
    lags = np.arange(min(delay + tail + 1, _MAX_KERNEL_DAYS))
    kernel = np.power(decay, np.abs(lags - delay)) if decay > 0 else (lags == delay).astype(float)
    kernel /= kernel.sum()
    if x.shape[-1] == 0:
        return x.copy()
    pad = np.repeat(x[..., :1], len(kernel) - 1, axis=-1)
    padded = np.concatenate([pad, x], axis=-1)
    return lfilter(kernel, [1.0], padded, axis=-1)[..., len(kernel) - 1:]


def adstock(spend: np.ndarray, decay: float, delay: int = 0) -> np.ndarray:
    """:func:`geometric_adstock` when ``delay`` is 0, else :func:`delayed_adstock`."""
    return geometric_adstock(spend, decay) if delay == 0 else delayed_adstock(spend, decay, delay)


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


_LN2 = float(np.log(2.0))


def exponential_saturation(x: np.ndarray, half: float) -> np.ndarray:
    """Exponential curve ``1 - 2^(-x / half)`` in [0, 1): 0.5 at ``x = half`` like the Hill curve, but
    concave from 0 with a thin tail (it approaches full saturation much faster than Hill with shape 1)."""
    return -np.expm1(-_LN2 * np.asarray(x, dtype=float) / half)


def exponential_saturation_derivative(x: np.ndarray, half: float) -> np.ndarray:
    """Derivative of :func:`exponential_saturation` with respect to ``x``."""
    return (_LN2 / half) * np.exp(-_LN2 * np.asarray(x, dtype=float) / half)


def _family(family: str) -> str:
    if family not in SATURATION_FAMILIES:
        raise ValueError(f"unknown saturation family {family!r}; expected one of {list(SATURATION_FAMILIES)}")
    return family


def saturation(x: np.ndarray, half: float, shape: float, family: str = "hill") -> np.ndarray:
    """The ``family`` curve at ``x``: :func:`hill_saturation` or :func:`exponential_saturation` (``shape`` unused)."""
    if _family(family) == "exponential":
        return exponential_saturation(x, half)
    return hill_saturation(x, half, shape)


def saturation_derivative(x: np.ndarray, half: float, shape: float, family: str = "hill") -> np.ndarray:
    """Derivative of :func:`saturation` with respect to ``x``."""
    if _family(family) == "exponential":
        return exponential_saturation_derivative(x, half)
    return hill_saturation_derivative(x, half, shape)
