"""What a media-mix fit returns: the published tables (channels, response curves, decomposition,
diagnostics) and the response model they come from, behind :class:`MediaMixResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.mmm.bootstrap import _interval
from ml.mmm.data import _Window
from ml.mmm.regression import _CrossValidator
from ml.mmm.response import ChannelResponse, ResponseModel
from ml.mmm.search import _CurveChoice

__all__ = ["CHANNEL_COLUMNS", "RESPONSE_CURVE_COLUMNS", "MediaMixResult"]

CHANNEL_COLUMNS = [
    "channel", "spend", "contribution", "contribution_lower", "contribution_upper",
    "contribution_share", "contribution_share_lower", "contribution_share_upper",
    "roas", "roas_lower", "roas_upper", "marginal_roas", "marginal_roas_lower",
    "marginal_roas_upper", "adstock_decay", "saturation_half", "saturation_shape",
]
RESPONSE_CURVE_COLUMNS = [
    "channel", "daily_spend", "predicted_incremental_revenue", "predicted_incremental_revenue_lower",
    "predicted_incremental_revenue_upper", "is_current",
]

_DIAGNOSTIC_DETAILS = {
    "n_lift_tests": "lift tests the model was calibrated with (ml.mmm.calibration)",
    "r2": "coefficient of determination over the fitted (non-holiday) days",
    "mape": "mean absolute percentage error over fitted days with revenue above 1% of the mean",
    "mape_excluded_days": "fitted days left out of MAPE: revenue <= 1% of the window's mean revenue",
    "nrmse": "RMSE divided by the revenue range (max - min) over the fitted days",
    "rmse": "root mean squared error over the fitted days",
    "cv_rmse": "out-of-sample RMSE of the final model, pooled over the expanding-window folds",
    "cv_nrmse": "cv_rmse divided by the revenue range",
    "cv_folds": "expanding-window cross-validation folds",
    "cv_test_days": "held-out days scored by the cross-validation",
    "cv_passes": "coordinate-descent passes over the channels",
    "n_days": "days in the model window",
    "n_fitted_days": "window days used by the regression (holidays left out)",
    "n_holiday_days": "window days left out as holidays",
    "n_outlier_days": "window days left out as outliers (robust=True only)",
    "robust": "1 if a level shift and outlier days were looked for before the curve search",
    "n_history_days": "days of spend history used for adstock warm-up",
    "curve_history_days": "days the adstock/saturation curves were chosen on, ending with the window",
    "n_channels": "channels in the model",
    "n_bootstrap": "bootstrap draws",
    "level_prior_roas": "centre of the shared-ROAS prior on never-low channels (pooled ROAS of the others)",
    "level_prior_uncertainty": "1 if intervals span the fit without the level prior too",
    "coefficients_on": "days the media coefficients were fitted on: curve_history (default) or window",
    "coefficient_uncertainty": "1 if intervals span the coefficients fitted on the other days (window or curve history) too",
    "ci": "interval coverage",
    "block_days": "bootstrap block length in days",
    "ridge_alpha": "ridge strength on unit-RMS media features, chosen by cross-validation",
    "prior_strength": "weight of the adstock/saturation prior (0: none, 1: the prior as stated)",
    "hyperparameter_uncertainty": "1 if bootstrap draws also redraw adstock/saturation hyperparameters",
    "baseline_daily": "average daily revenue without media over the window",
    "media_share": "media contribution as a share of window revenue",
}


@dataclass(frozen=True)
class MediaMixResult:
    """A fitted media-mix model.

    Attributes
    ----------
    channels:
        One row per channel, columns :data:`CHANNEL_COLUMNS`: ``channel, spend, contribution,
        contribution_lower, contribution_upper, contribution_share, contribution_share_lower,
        contribution_share_upper, roas, roas_lower, roas_upper, marginal_roas, marginal_roas_lower,
        marginal_roas_upper, adstock_decay, saturation_half, saturation_shape``. ``spend`` and
        ``contribution`` are summed over the model window; ``contribution_share`` is the share of
        all media contribution; ``marginal_roas`` is the steady-state d(revenue)/d(spend) at the
        window's average daily spend; ``saturation_half`` is in daily-spend units.
    diagnostics:
        Fit quality, window, chosen hyperparameters and settings (see :meth:`diagnostics_table`).
    response_curves:
        Columns :data:`RESPONSE_CURVE_COLUMNS`: ``channel, daily_spend, predicted_incremental_revenue,
        predicted_incremental_revenue_lower, predicted_incremental_revenue_upper, is_current``:
        steady-state daily incremental revenue on a grid from 0 to a multiple of the current daily
        spend, with the current spend itself included and flagged by ``is_current``.
    decomposition:
        ``date, revenue, predicted_revenue, baseline, excluded`` and one ``contribution_<channel>``
        column per channel, one row per day of the window; on ``excluded`` (holiday) days the
        baseline takes whatever media does not explain, so the prediction equals revenue.
    response_model:
        The :class:`~ml.mmm.response.ResponseModel` (steady-state curves and bootstrap draws) that
        :meth:`channel_response`, :meth:`channel_marginal_roas`, :meth:`predict` and the budget
        optimizer use; :meth:`response_parameters` flattens it into a table.
    review:
        The review gate (:func:`ml.mmm.review.review_channels`, columns
        :data:`~ml.mmm.review.REVIEW_COLUMNS`): per channel whether the data can identify its
        effect (``identifiable``) and, if not, why (``review_reason``). ``None`` on a result built
        by hand.
    """

    channels: pd.DataFrame
    diagnostics: dict[str, Any]
    response_curves: pd.DataFrame
    decomposition: pd.DataFrame
    response_model: ResponseModel = field(repr=False)
    review: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def baseline_daily(self) -> float:
        """Average daily baseline over the fitted days: the non-media part of :meth:`predict`."""
        return self.response_model.baseline_daily

    @property
    def ci(self) -> float:
        return self.response_model.ci

    @property
    def responses(self) -> Mapping[str, ChannelResponse]:
        return self.response_model.responses

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.response_model.channel_names

    @property
    def current_daily_spend(self) -> pd.Series:
        """Average daily spend per channel over the model window."""
        return self.response_model.current_daily_spend

    def channel_response(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """See :meth:`ResponseModel.channel_response`."""
        return self.response_model.channel_response(channel, daily_spend, draws=draws)

    def channel_marginal_roas(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """See :meth:`ResponseModel.channel_marginal_roas`."""
        return self.response_model.channel_marginal_roas(channel, daily_spend, draws=draws)

    def predict(self, spend: Mapping[str, float] | pd.Series | pd.DataFrame) -> float | np.ndarray:
        """See :meth:`ResponseModel.predict`."""
        return self.response_model.predict(spend)

    def response_parameters(self) -> pd.DataFrame:
        """The response model as one flat table; see :meth:`ResponseModel.response_parameters`."""
        return self.response_model.response_parameters()

    def diagnostics_table(self) -> pd.DataFrame:
        """Diagnostics as ``metric, value, detail``: one row per scalar, for a warehouse table.

        Dates and other text go to ``detail`` with ``value`` NaN; per-channel hyperparameters are
        rows named ``adstock_decay[<channel>]`` and so on.
        """
        rows: list[dict[str, Any]] = []
        for key, value in self.diagnostics.items():
            if key == "hyperparameters":
                for channel, params in value.items():
                    for name, v in params.items():
                        if isinstance(v, str):  # the saturation family
                            rows.append({"metric": f"{name}[{channel}]", "value": math.nan, "detail": v})
                        else:
                            rows.append({"metric": f"{name}[{channel}]", "value": float(v),
                                         "detail": f"channel {channel}"})
            elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
                rows.append({"metric": key, "value": float(value), "detail": _DIAGNOSTIC_DETAILS.get(key, "")})
            elif isinstance(value, (list, tuple)):
                # Lists (controls, flagged channels) become their length, with the items spelled out.
                rows.append({"metric": key, "value": float(len(value)), "detail": ", ".join(map(str, value))})
            else:
                rows.append({"metric": key, "value": math.nan, "detail": str(value)})
        return pd.DataFrame(rows, columns=["metric", "value", "detail"])


# --------------------------------------------------------------------------- tables


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _channel_table(
    names: tuple[str, ...],
    window_spend: np.ndarray,
    feature_sum: np.ndarray,
    beta: np.ndarray,
    contribution_draws: np.ndarray,
    responses: Mapping[str, ChannelResponse],
    lo_q: float,
    hi_q: float,
) -> pd.DataFrame:
    spend = window_spend.sum(axis=1)
    contribution = beta * feature_sum
    total, total_draws = contribution.sum(), contribution_draws.sum(axis=1, keepdims=True)
    # When the model credits nothing to media at all, every channel's share is 0, not undefined.
    share = np.nan_to_num(_safe_divide(contribution, np.full_like(contribution, total)), nan=0.0)
    share_draws = np.nan_to_num(
        _safe_divide(contribution_draws, np.broadcast_to(total_draws, contribution_draws.shape)), nan=0.0
    )
    roas = _safe_divide(contribution, spend)
    roas_draws = _safe_divide(contribution_draws, np.broadcast_to(spend, contribution_draws.shape))
    marginal = np.array([float(r.marginal(r.current_daily_spend)) for r in responses.values()])
    marginal_draws = np.column_stack([r.marginal(r.current_daily_spend, draws=True) for r in responses.values()])

    table: dict[str, Any] = {"channel": list(names), "spend": spend}
    for name, point, draws in (
        ("contribution", contribution, contribution_draws),
        ("contribution_share", share, share_draws),
        ("roas", roas, roas_draws),
        ("marginal_roas", marginal, marginal_draws),
    ):
        lower, upper = _interval(point, draws, lo_q, hi_q)
        if name == "contribution_share":
            upper = np.fmin(upper, 1.0)  # a share cannot exceed the whole, however the draws are scaled
        table[name] = point
        table[f"{name}_lower"], table[f"{name}_upper"] = lower, upper
    table["adstock_decay"] = [r.adstock_decay for r in responses.values()]
    table["saturation_half"] = [r.saturation_half for r in responses.values()]
    table["saturation_shape"] = [r.saturation_shape for r in responses.values()]
    return pd.DataFrame(table)[CHANNEL_COLUMNS]


def _response_curves(
    responses: Mapping[str, ChannelResponse], points: int, multiple: float, lo_q: float, hi_q: float
) -> pd.DataFrame:
    parts = []
    for name, r in responses.items():
        top = multiple * (r.current_daily_spend if r.current_daily_spend > 0 else r.saturation_half)
        grid = np.unique(np.append(np.linspace(0.0, top, points), r.current_daily_spend))
        point = r.response(grid)
        lower, upper = _interval(point, r.response(grid, draws=True), lo_q, hi_q)
        parts.append(pd.DataFrame({
            "channel": name,
            "daily_spend": grid,
            "predicted_incremental_revenue": point,
            "predicted_incremental_revenue_lower": lower,
            "predicted_incremental_revenue_upper": upper,
            "is_current": grid == r.current_daily_spend,
        }))
    return pd.concat(parts, ignore_index=True)[RESPONSE_CURVE_COLUMNS]


def _decomposition(
    window: _Window, names: tuple[str, ...], contributions: np.ndarray, baseline: np.ndarray
) -> pd.DataFrame:
    decomposition = pd.DataFrame({
        "date": window.dates,
        "revenue": window.revenue,
        "predicted_revenue": baseline + contributions.sum(axis=0),
        "baseline": baseline,
        "excluded": window.excluded,
    })
    for i, name in enumerate(names):
        decomposition[f"contribution_{name}"] = contributions[i]
    return decomposition


# --------------------------------------------------------------------------- diagnostics


def _spend_variation(window_spend: np.ndarray) -> np.ndarray:
    """Coefficient of variation of each channel's daily spend in the window (0 without spend)."""
    mean = window_spend.mean(axis=1)
    return np.where(mean > 0, window_spend.std(axis=1) / np.where(mean > 0, mean, 1.0), 0.0)


def _fit_quality(
    y_fit: np.ndarray, fitted_fit: np.ndarray, cv: _CrossValidator, curves: _CurveChoice
) -> dict[str, Any]:
    resid = y_fit - fitted_fit
    rmse = float(np.sqrt(np.mean(resid ** 2)))
    total_ss = float(np.sum((y_fit - y_fit.mean()) ** 2))
    value_range = float(y_fit.max() - y_fit.min())
    # Days with revenue at or below 1% of the mean would dominate a percentage error; leave them out.
    keep = np.abs(y_fit) > 0.01 * abs(float(y_fit.mean()))
    mape = float(np.mean(np.abs(resid[keep] / y_fit[keep]))) if keep.any() else math.nan
    cv_rmse = math.sqrt(cv.sse(curves.choice, curves.alpha) / max(cv.n_test, 1))
    return {
        "r2": 1.0 - float(resid @ resid) / total_ss if total_ss > 0 else math.nan,
        "mape": mape,
        "mape_excluded_days": int((~keep).sum()),
        "nrmse": rmse / value_range if value_range > 0 else math.nan,
        "rmse": rmse,
        "cv_rmse": cv_rmse,
        "cv_nrmse": cv_rmse / value_range if value_range > 0 else math.nan,
        "cv_folds": len(cv.problems),
        "cv_test_days": int(cv.n_test),
        "cv_passes": int(curves.passes),
    }


def _diagnostics(
    window: _Window,
    model: ResponseModel,
    decomposition: pd.DataFrame,
    contributions: np.ndarray,
    cv: _CrossValidator,
    curves: _CurveChoice,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Fit quality, window, settings and chosen curves; ``settings`` holds ``n_bootstrap, ci,
    block_days, prior_strength, criterion, selection, hyperparameter_uncertainty``."""
    rows, y = window.rows, window.revenue
    names = model.channel_names
    fitted = decomposition["predicted_revenue"].to_numpy()
    chosen_weight = curves.weights[np.arange(len(names)), curves.choice]
    return {
        **_fit_quality(y[rows], fitted[rows], cv, curves),
        "n_days": window.n_days,
        "n_fitted_days": len(rows),
        "n_holiday_days": int(window.excluded.sum()),
        "n_history_days": int(window.n_history_days),
        "n_channels": len(names),
        "start_date": window.dates[0].date().isoformat(),
        "end_date": window.dates[-1].date().isoformat(),
        "n_bootstrap": int(settings["n_bootstrap"]),
        "ci": float(settings["ci"]),
        "block_days": int(settings["block_days"]),
        "ridge_alpha": float(curves.alpha),
        "prior_strength": float(settings["prior_strength"]),
        "criterion": settings["criterion"],
        "selection": settings["selection"],
        "hyperparameter_uncertainty": bool(settings["hyperparameter_uncertainty"]),
        "baseline_daily": float(decomposition["baseline"].to_numpy().mean()),
        "media_share": float(contributions.sum() / y.sum()) if y.sum() != 0 else math.nan,
        "controls": list(window.control_names),
        "zero_spend_channels": [c for c, x in zip(names, window.current_daily_spend) if x <= 0],
        "flat_spend_channels": [c for c, v in zip(names, _spend_variation(window.spend_in_window)) if 0 < v < 0.05],
        "hyperparameters": {
            c: {
                "adstock_decay": r.adstock_decay, "saturation_half": r.saturation_half,
                "saturation_shape": r.saturation_shape, "cv_weight": float(w),
            }
            for (c, r), w in zip(model.responses.items(), chosen_weight)
        },
        "curve_history_days": int(window.n_curve_days),
        "curve_start_date": window.curve_dates[0].date().isoformat(),
    }
