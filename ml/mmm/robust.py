"""Robust baseline for the media-mix model: one permanent level shift and unflagged outlier days, both
found from a preliminary least-squares fit on the curve history before the curves are searched.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ml.mmm.data import _controls, _Window

# A level shift is kept when it lowers the preliminary fit's squared error by this many robust
# residual variances (a scan over hundreds of change days on autocorrelated residuals finds ~15-25
# by chance); outliers are days whose residual exceeds this many robust standard deviations.
_STEP_MIN_GAIN = 40.0
_OUTLIER_SDS = 4.0
_MAX_OUTLIER_SHARE = 0.05
_EDGE_DAYS = 21
_MIN_SCAN_DAYS = 365  # on shorter histories a step is too easily confused with the trend and the weekly pattern  # a shift this close to either end of its span cannot be told from the trend


def _robust_window(window: _Window, start_features: np.ndarray) -> _Window:
    """``window`` with a level-shift control (if the data show one) and outlier days left out.

    ``start_features`` is ``(channels, curve days)``: every channel's feature at the search's start
    candidate, so that the preliminary fit does not read a flight of media as a baseline shift. The
    shift is a step column added to the curve history's controls, and to the window's when it falls
    inside the window; outlier days (promotions, outages nobody flagged) join the left-out days,
    capped at 5% of the curve history's fitted days.
    """
    y, controls, rows = window.curve_revenue, window.curve_controls, window.curve_rows
    n_curve, n = window.n_curve_days, window.n_days
    design = np.column_stack([controls, start_features.T])
    residual = _residuals(design, y, rows)
    sd = _robust_sd(residual)

    # The scan uses a straight trend: the curve history's 90-day hinges would bend round a step and hide it.
    plain, _ = _controls(window.curve_dates, 2 if n_curve >= 365 else 1)
    plain_design = np.column_stack([plain, start_features.T])
    plain_residual = _residuals(plain_design, y, rows)
    plain_sd = _robust_sd(plain_residual)
    step_day = None if n_curve < _MIN_SCAN_DAYS else _level_shift(
        plain_design[rows], np.clip(plain_residual, -3 * plain_sd, 3 * plain_sd), rows, n_curve, plain_sd
    )
    curve_controls, controls_w, names = controls, window.controls, list(window.control_names)
    shift_date = None
    if step_day is not None:
        curve_controls = np.column_stack([controls, (np.arange(n_curve) >= step_day).astype(float)])
        residual = _residuals(np.column_stack([curve_controls, start_features.T]), y, rows)
        sd = _robust_sd(residual)
        shift_date = window.curve_dates[step_day].date().isoformat()
        in_window = step_day - (n_curve - n)
        if _EDGE_DAYS <= in_window <= n - _EDGE_DAYS // 3:
            controls_w = np.column_stack([window.controls, (np.arange(n) >= in_window).astype(float)])
            names.append(f"level_shift_{shift_date}")

    scores = np.abs(residual[rows]) / sd
    flagged = rows[scores > _OUTLIER_SDS]
    limit = int(_MAX_OUTLIER_SHARE * len(rows))
    if len(flagged) > limit:
        flagged = rows[np.argsort(-scores)[:limit]]
    curve_outlier = np.zeros(n_curve, dtype=bool)
    curve_outlier[flagged] = True
    outliers = curve_outlier[-n:]
    excluded = window.excluded | outliers
    return dataclasses.replace(
        window, excluded=excluded, rows=np.flatnonzero(~excluded), controls=controls_w, control_names=names,
        curve_rows=np.setdiff1d(rows, flagged), curve_controls=curve_controls, outliers=outliers,
        level_shift_date=shift_date,
    )


def _residuals(design: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Residuals on every day of the least-squares fit on ``rows`` (NaN outside them)."""
    coef, *_ = np.linalg.lstsq(design[rows], y[rows], rcond=None)
    out = np.full(len(y), np.nan)
    out[rows] = y[rows] - design[rows] @ coef
    return out


def _robust_sd(residual: np.ndarray) -> float:
    r = residual[np.isfinite(residual)]
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return mad if mad > 0 else float(np.std(r)) or 1.0


def _level_shift(design_rows: np.ndarray, residual: np.ndarray, rows: np.ndarray, n: int, sd: float) -> int | None:
    """The day a permanent step in the baseline starts, or ``None`` when no step gains ``_STEP_MIN_GAIN``.

    Each step column is projected off the preliminary design; its gain is the drop in squared error
    from adding it, ``(s'r)^2 / s's``, on residuals clipped at 3 robust sd so that outlier days do not
    place the step.
    """
    days = np.arange(_EDGE_DAYS, n - _EDGE_DAYS // 3)
    if days.size == 0:
        return None
    steps = (rows[:, None] >= days[None, :]).astype(float)
    q, _ = np.linalg.qr(design_rows)
    steps -= q @ (q.T @ steps)
    r = residual[rows]
    norms = np.einsum("ij,ij->j", steps, steps)
    valid = norms > 1e-9 * len(rows)
    gain = np.where(valid, (steps.T @ r) ** 2 / np.where(valid, norms, 1.0), 0.0)
    best = int(np.argmax(gain))
    return int(days[best]) if gain[best] / sd**2 >= _STEP_MIN_GAIN else None
