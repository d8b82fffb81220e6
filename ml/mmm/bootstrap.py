"""Intervals of the media-mix model: a moving-block residual bootstrap that can also redraw every
channel's curve, and the percentile intervals taken from its draws.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ml.mmm.regression import _Problem
from ml.mmm.search import _candidate_weights


def _moving_blocks(rng: np.random.Generator, n_draws: int, n: int, block: int) -> np.ndarray:
    """Indices ``(draws, n)`` of a circular moving-block resample of ``n`` consecutive days."""
    block = max(1, min(block, n))
    starts = rng.integers(0, n, size=(n_draws, -(-n // block)))
    return ((starts[:, :, None] + np.arange(block)) % n).reshape(n_draws, -1)[:, :n]


def _block_bootstrap(
    full: _Problem,
    features: np.ndarray,
    y: np.ndarray,
    fit: dict[str, Any],
    alpha: float,
    choice: np.ndarray,
    cv_errors: np.ndarray | None,
    cv_sse: float,
    penalty: np.ndarray,
    n_bootstrap: int,
    block_days: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient draws ``(draws, channels)`` and the candidate each draw used ``(draws, channels)``.

    Revenue is resampled as fitted values plus moving blocks of residuals (inflated by
    ``sqrt(n / (n - p))`` for the degrees of freedom the fit used). With ``cv_errors``
    (channels, candidates, test days) each draw also resamples the held-out days in blocks,
    recomputes every channel's candidate weights from them (pseudo-BMA+, Yao et al. 2018) and
    draws the channel's candidate from those weights, so the draws carry both the uncertainty of
    the curve and that of the CV verdict.
    """
    rows = full.train
    n = len(rows)
    n_channels, n_candidates = features.shape[:2]
    n_parameters = full.c_train.shape[1] + n_channels
    residuals = y[rows] - fit["fitted"][rows]
    residuals = (residuals - residuals.mean()) * math.sqrt(n / max(n - n_parameters, 1))
    y_star = fit["fitted"][rows] + residuals[_moving_blocks(rng, n_bootstrap, n, block_days)]
    y_star = y_star - (y_star @ full.pinv.T) @ full.c_train.T
    if full.calibration is not None:
        # Each draw redraws every lift test's measurement from its standard error.
        noise = rng.standard_normal((n_bootstrap, full.calibration.n_rows))
        y_star = np.concatenate([y_star, full.calibration.targets(noise)], axis=1)

    if cv_errors is None:
        choices = np.broadcast_to(choice, (n_bootstrap, n_channels)).copy()
    else:
        n_test = cv_errors.shape[2]
        days = _moving_blocks(rng, n_bootstrap, n_test, block_days)
        counts = np.zeros((n_bootstrap, n_test))
        np.add.at(counts, (np.arange(n_bootstrap)[:, None], days), 1.0)
        sse = np.einsum("ckt,bt->bck", cv_errors, counts)
        cumulative = np.cumsum(_candidate_weights(sse, cv_sse, n_test, penalty), axis=2)
        u = rng.random((n_bootstrap, n_channels, 1)) * cumulative[:, :, -1:]
        choices = np.minimum((cumulative < u).sum(axis=2), n_candidates - 1)

    draws = np.empty((n_bootstrap, n_channels))
    designs: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for b in range(n_bootstrap):
        key = choices[b].tobytes()
        if key not in designs:
            z, _, scale = full.design(choices[b])
            designs[key] = (z, scale)
        z, scale = designs[key]
        draws[b] = full.solve(z, y_star[b], alpha) / scale
    return draws, choices


def _interval(point: np.ndarray, draws: np.ndarray, lo_q: float, hi_q: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (draws), rescaled so that the draws' median is the estimate.

    The draws redraw every channel's curve from the candidate weights, so they centre on the
    weighted mixture of curves rather than on the selected one, and a plain percentile interval
    can sit almost entirely on one side of the estimate. Scaling the draws by ``point / median``
    keeps their relative spread around the estimate, which on the demo generator put more of the
    true ROAS values inside the interval than the plain percentiles did (today's coverage: see
    docs/mmm_accuracy.md). Where the median is zero the draws are used as they are; either way the
    interval is widened where needed to contain the estimate.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no spend) stay NaN
        lower = np.nanquantile(draws, lo_q, axis=0)
        upper = np.nanquantile(draws, hi_q, axis=0)
        median = np.nanmedian(draws, axis=0)
    factor = np.where(median > 0, point / np.where(median > 0, median, 1.0), 1.0)
    factor = np.where(np.isfinite(factor), factor, 1.0)
    return np.fmin(lower * factor, point), np.fmax(upper * factor, point)

