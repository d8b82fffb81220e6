"""Media-mix model: geometric adstock + Hill saturation per channel, non-negative ridge regression.
Turns daily spend and revenue into contributions, ROAS, marginal ROAS and response curves with intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.signal import lfilter

from ml.events import model_event_days

__all__ = [
    "ChannelResponse",
    "MediaMixResult",
    "daily_frame",
    "fit_media_mix_model",
    "geometric_adstock",
    "hill_saturation",
    "hill_saturation_derivative",
]

# Adstock decay per day (share of yesterday's adstock kept today).
DEFAULT_DECAY_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Half-saturation as a multiple of the channel's average daily spend on days with spend in the window.
DEFAULT_HALF_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
DEFAULT_SHAPE_GRID: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
# Ridge strength on standardized media features, relative to the number of training days.
DEFAULT_ALPHA_GRID: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
# Prior on every channel's curve: (centre, standard deviation) of independent normals on the adstock
# decay, on log(half-saturation multiple) (centre given as the multiple) and on the Hill shape.
# Weakly informative and channel-agnostic: carry-over of days not weeks, half saturation near the
# spend a channel actually runs at, concave rather than S-shaped unless the data insist. For
# comparison, Google's Meridian centres its Hill half point at 0.8x median spend (sd 0.8) and fixes
# the Hill slope at 1 by default; LightweightMMM uses Beta(2, 1) on the adstock decay.
DEFAULT_HYPERPARAMETER_PRIOR: dict[str, tuple[float, float]] = {
    "adstock_decay": (0.4, 0.3),
    "saturation_half": (1.0, 0.8),
    "saturation_shape": (1.0, 0.6),
}

_RESERVED = ("date", "revenue")
# Hinge spacing of the piecewise-linear trend used when curves are learnt on a long history.
_CURVE_KNOT_DAYS = 90
_CHANNEL_COLUMNS = [
    "channel", "spend", "contribution", "contribution_lower", "contribution_upper",
    "contribution_share", "contribution_share_lower", "contribution_share_upper",
    "roas", "roas_lower", "roas_upper", "marginal_roas", "marginal_roas_lower",
    "marginal_roas_upper", "adstock_decay", "saturation_half", "saturation_shape",
]


_DIAGNOSTIC_DETAILS = {
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
    "n_history_days": "days of spend history used for adstock warm-up",
    "curve_history_days": "days the adstock/saturation curves were chosen on, ending with the window",
    "n_channels": "channels in the model",
    "n_bootstrap": "bootstrap draws",
    "ci": "interval coverage",
    "block_days": "bootstrap block length in days",
    "ridge_alpha": "ridge strength on unit-RMS media features, chosen by cross-validation",
    "prior_strength": "weight of the adstock/saturation prior (0: none, 1: the prior as stated)",
    "hyperparameter_uncertainty": "1 if bootstrap draws also redraw adstock/saturation hyperparameters",
    "baseline_daily": "average daily revenue without media over the window",
    "media_share": "media contribution as a share of window revenue",
}


# --------------------------------------------------------------------------- transforms


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


# --------------------------------------------------------------------------- input shaping


def daily_frame(channel_daily: pd.DataFrame, revenue_daily: pd.DataFrame) -> pd.DataFrame:
    """Pivot the marts' long spend and daily revenue into the wide model input.

    Parameters
    ----------
    channel_daily:
        Long frame ``date, channel, spend``; several rows for one (date, channel) are summed.
    revenue_daily:
        ``date, revenue`` with one row per date.

    Returns
    -------
    DataFrame ``date, revenue, <channel>...``: one row per calendar day from the earliest to the
    latest date in either input, channels sorted by name. A day or channel with no spend rows gets
    spend 0; a day in that range without revenue raises ``ValueError`` naming the dates.
    """
    _require_columns(channel_daily, ("date", "channel", "spend"), "channel_daily")
    _require_columns(revenue_daily, ("date", "revenue"), "revenue_daily")
    spend = channel_daily.loc[:, ["date", "channel", "spend"]].copy()
    spend["date"] = _to_days(spend["date"], "channel_daily.date")
    revenue = revenue_daily.loc[:, ["date", "revenue"]].copy()
    revenue["date"] = _to_days(revenue["date"], "revenue_daily.date")

    bad_spend = spend["spend"].isna()
    if bad_spend.any():
        raise ValueError(
            f"channel_daily.spend has {int(bad_spend.sum())} missing values "
            f"(first dates: {_date_list(spend.loc[bad_spend, 'date'])}); fill them with 0 or fix the mart"
        )
    if spend["channel"].isna().any():
        raise ValueError(f"channel_daily.channel has {int(spend['channel'].isna().sum())} missing values")
    duplicated = revenue["date"].duplicated(keep=False)
    if duplicated.any():
        raise ValueError(
            f"revenue_daily has several rows for dates {_date_list(revenue.loc[duplicated, 'date'])}; "
            "expected one revenue row per day"
        )
    if spend.empty and revenue.empty:
        raise ValueError("channel_daily and revenue_daily are both empty: nothing to model")

    all_dates = pd.concat([spend["date"], revenue["date"]])
    calendar = pd.date_range(all_dates.min(), all_dates.max(), freq="D")
    missing_revenue = calendar.difference(pd.DatetimeIndex(revenue["date"]))
    if len(missing_revenue):
        raise ValueError(
            f"revenue_daily has no row for {len(missing_revenue)} day(s) between "
            f"{calendar[0].date()} and {calendar[-1].date()}: {_date_list(missing_revenue)}; "
            "load revenue for those days or cut spend to the revenue date range"
        )

    wide = spend.pivot_table(index="date", columns="channel", values="spend", aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(calendar, fill_value=0.0)
    wide = wide.reindex(columns=sorted(wide.columns, key=str)).astype(float)
    wide.columns = [str(c) for c in wide.columns]
    wide.index.name = "date"
    out = revenue.set_index("date").reindex(calendar)
    out.index.name = "date"
    out = out.join(wide).fillna({c: 0.0 for c in wide.columns})
    return out.reset_index()


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ChannelResponse:
    """Steady-state response of one channel: ``coefficient * hill(daily_spend; half, shape)``.

    The ``*_draws`` arrays hold one value per bootstrap draw; each draw has its own coefficient and,
    when hyperparameter uncertainty is propagated, its own saturation curve.
    """

    channel: str
    coefficient: float
    adstock_decay: float
    saturation_half: float
    saturation_shape: float
    current_daily_spend: float
    coefficient_draws: np.ndarray
    half_draws: np.ndarray
    shape_draws: np.ndarray

    def _draw_axes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        expand = (-1,) + (1,) * x.ndim
        return (self.coefficient_draws.reshape(expand), self.half_draws.reshape(expand),
                self.shape_draws.reshape(expand))

    def response(self, daily_spend: np.ndarray, draws: bool = False) -> np.ndarray:
        x = np.asarray(daily_spend, dtype=float)
        if draws:
            beta, half, shape = self._draw_axes(x)
            return beta * hill_saturation(x[None, ...], half, shape)
        return self.coefficient * hill_saturation(x, self.saturation_half, self.saturation_shape)

    def marginal(self, daily_spend: np.ndarray, draws: bool = False) -> np.ndarray:
        x = np.asarray(daily_spend, dtype=float)
        if draws:
            beta, half, shape = self._draw_axes(x)
            return beta * hill_saturation_derivative(x[None, ...], half, shape)
        return self.coefficient * hill_saturation_derivative(x, self.saturation_half, self.saturation_shape)


@dataclass(frozen=True)
class MediaMixResult:
    """A fitted media-mix model.

    Attributes
    ----------
    channels:
        One row per channel, columns ``channel, spend, contribution, contribution_lower,
        contribution_upper, contribution_share, contribution_share_lower, contribution_share_upper,
        roas, roas_lower, roas_upper, marginal_roas, marginal_roas_lower, marginal_roas_upper,
        adstock_decay, saturation_half, saturation_shape``. ``spend`` and ``contribution`` are summed
        over the model window; ``contribution_share`` is the share of all media contribution;
        ``marginal_roas`` is the steady-state d(revenue)/d(spend) at the window's average daily
        spend; ``saturation_half`` is in daily-spend units.
    diagnostics:
        Fit quality, window, chosen hyperparameters and settings (see :meth:`diagnostics_table`).
    response_curves:
        ``channel, daily_spend, predicted_incremental_revenue, lower, upper, is_current``: steady-state
        daily incremental revenue on a grid from 0 to a multiple of the current daily spend, with the
        current spend itself included and flagged by ``is_current``.
    decomposition:
        ``date, revenue, predicted_revenue, baseline, excluded`` and one ``contribution_<channel>``
        column per channel, one row per day of the window; on ``excluded`` (holiday) days the
        baseline takes whatever media does not explain, so the prediction equals revenue.
    baseline_daily:
        Average daily baseline over the fitted days: the non-media part of :meth:`predict`.
    responses:
        Per-channel :class:`ChannelResponse` (point curve and bootstrap draws), used by
        :meth:`channel_response`, :meth:`channel_marginal_roas` and the budget optimizer.
    """

    channels: pd.DataFrame
    diagnostics: dict[str, Any]
    response_curves: pd.DataFrame
    decomposition: pd.DataFrame
    baseline_daily: float
    responses: Mapping[str, ChannelResponse] = field(repr=False)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.responses)

    @property
    def current_daily_spend(self) -> pd.Series:
        """Average daily spend per channel over the model window."""
        return pd.Series(
            {c: r.current_daily_spend for c, r in self.responses.items()}, name="daily_spend", dtype=float
        )

    def _response(self, channel: str) -> ChannelResponse:
        try:
            return self.responses[channel]
        except KeyError:
            raise ValueError(
                f"unknown channel {channel!r}; the model has channels {list(self.responses)}"
            ) from None

    def channel_response(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """Steady-state daily incremental revenue of ``channel`` at each daily spend.

        ``daily_spend`` is any array-like of non-negative daily spends; the result has its shape, or
        ``(n_bootstrap, *shape)`` with ``draws=True`` (one row per bootstrap draw).
        """
        x = _non_negative_array(daily_spend, f"daily_spend for {channel!r}")
        return self._response(channel).response(x, draws=draws)

    def channel_marginal_roas(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """d(daily revenue)/d(daily spend) of ``channel`` at each daily spend (same shapes as above)."""
        x = _non_negative_array(daily_spend, f"daily_spend for {channel!r}")
        return self._response(channel).marginal(x, draws=draws)

    def predict(self, spend: Mapping[str, float] | pd.Series | pd.DataFrame) -> float | np.ndarray:
        """Steady-state daily revenue: the window's average baseline plus every channel's response.

        ``spend`` gives the daily spend of every channel: a mapping/Series (returns a float) or a
        DataFrame with one column per channel (returns one prediction per row).
        """
        if isinstance(spend, pd.DataFrame):
            columns = {c: spend[c] for c in spend.columns}
            provided = set(map(str, spend.columns))
        else:
            columns = dict(spend.items())
            provided = set(map(str, columns))
        missing = [c for c in self.responses if c not in provided]
        unknown = sorted(provided.difference(self.responses))
        if missing or unknown:
            raise ValueError(
                f"predict needs daily spend for exactly the model's channels {list(self.responses)}; "
                f"missing {missing}, unknown {unknown}"
            )
        total = self.baseline_daily
        for channel, response in self.responses.items():
            x = _non_negative_array(columns[channel], f"spend[{channel!r}]")
            total = total + response.response(x)
        if isinstance(spend, pd.DataFrame):
            return np.asarray(total, dtype=float)
        return float(total)

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
                        rows.append({"metric": f"{name}[{channel}]", "value": float(v), "detail": f"channel {channel}"})
            elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
                rows.append({"metric": key, "value": float(value), "detail": _DIAGNOSTIC_DETAILS.get(key, "")})
            elif isinstance(value, (list, tuple)):
                # Lists (controls, flagged channels) become their length, with the items spelled out.
                rows.append({"metric": key, "value": float(len(value)), "detail": ", ".join(map(str, value))})
            else:
                rows.append({"metric": key, "value": math.nan, "detail": str(value)})
        return pd.DataFrame(rows, columns=["metric", "value", "detail"])


# --------------------------------------------------------------------------- fitting


def fit_media_mix_model(
    daily: pd.DataFrame,
    *,
    channels: Sequence[str] | None = None,
    lookback_days: int = 180,
    curve_history_days: int = 540,
    min_days: int = 60,
    n_bootstrap: int = 100,
    ci: float = 0.95,
    seed: int = 0,
    cv_horizon_days: int = 14,
    block_days: int = 14,
    yearly_fourier_order: int = 1,
    holidays: Iterable[Any] | None = None,
    retail_peaks: bool = True,
    holiday_country: str | None = None,
    criterion: str = "in_sample",
    selection: str = "consensus",
    hyperparameter_uncertainty: bool = True,
    prior_strength: float = 1.0,
    hyperparameter_prior: Mapping[str, tuple[float, float]] | None = None,
    decay_grid: Sequence[float] = DEFAULT_DECAY_GRID,
    half_grid: Sequence[float] = DEFAULT_HALF_GRID,
    shape_grid: Sequence[float] = DEFAULT_SHAPE_GRID,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    max_passes: int = 3,
    curve_points: int = 50,
    curve_max_multiple: float = 3.0,
) -> MediaMixResult:
    """Fit the media-mix model on the last ``lookback_days`` days of ``daily``.

    Model (daily revenue ``y_t`` over the window)::

        y_t = intercept + trend_t + day-of-week_t + yearly Fourier terms_t
              + sum_c beta_c * hill(adstock_c(spend_c)_t; half_c, shape_c) + e_t,   beta_c >= 0

    * Saturation is Hill rather than exponential: it is the curve family of common MMM practice
      and of the demo generator, it allows an S-shape (``shape > 1``, threshold effects) as well as
      the concave ``shape = 1``, and its half point reads directly as "daily spend at half the
      maximum effect". Adstock is normalized geometric (:func:`geometric_adstock`), computed over
      the whole of ``daily`` so the window's first days carry the spend before it (warm-up).
    * Controls (intercept, linear trend, six day-of-week dummies, ``yearly_fourier_order`` yearly
      sin/cos pairs) are unpenalized and unsigned and are projected out exactly
      (Frisch-Waugh-Lovell); the media coefficients solve a non-negative ridge on unit-RMS features
      (``scipy.optimize.nnls`` on the augmented system). Days in ``holidays``, the retail peaks
      (``retail_peaks``: Thanksgiving to Cyber Tuesday, 21 December to 1 January; see
      :mod:`ml.events`) and ``holiday_country``'s public holidays are left out of the regression and
      the CV (as if each had its own indicator) but still count for adstock and for window totals.
    * Curve history. The adstock/saturation curves are chosen on the last ``curve_history_days``
      days (default 540, or all there is; never less than the window), the coefficients, ROAS and
      intervals on the window. A channel's carry-over and saturation are properties of the channel,
      and 180 days cannot pin down 24 curve parameters: on the demo generator the best-fitting
      curves on the window alone beat the true curves by about ten log-likelihood units, and
      the ROAS of a major channel then moved by up to 70% from one day's window to the next. With
      540 days of curve history 96% of major channels' ROAS landed within 25% of the truth, against
      90% on the window alone (``benchmarks/bench_mmm_accuracy.py``, 20 seeds x 4 window ends).
      Over a history longer than the window the baseline gets a piecewise-linear trend (a hinge
      every 90 days) and, from 365 days, at least two yearly harmonics; the half point is in daily-spend units, so a channel's saturation
      point is the same spend level throughout. ``curve_history_days=lookback_days`` learns the
      curves on the window alone.
    * Hyperparameters. Coordinate descent gives each channel in turn the (decay, half, shape) grid
      point with the lowest criterion while the others stay fixed, until nothing changes or
      ``max_passes``. The criterion is the squared error plus ``prior_strength`` times the
      negative log density of ``hyperparameter_prior`` (default
      :data:`DEFAULT_HYPERPARAMETER_PRIOR`: decay 0.4 +- 0.3, half 1x average live spend with a
      log-sd of 0.8, shape 1 +- 0.6), scaled by ``2 sigma^2`` so that it is a Gaussian
      log-posterior (MAP). With ``criterion="in_sample"`` (default) the error is the in-sample
      squared error over the curve history without ridge (profile least squares). With
      ``criterion="cv"`` it is the pooled error of expanding-window folds over the curve history,
      whose test blocks of ``cv_horizon_days`` tile its second half, each trained only on the days
      before it. Either way the ridge strength for the final curves is then chosen by that
      time-series cross-validation on the window. In-sample is the default by measurement
      (``benchmarks/bench_mmm_accuracy.py``, 10 seeds x 2 window ends): CV over the curve history
      put 92% of major channels' ROAS within 25% of the truth against 98% in-sample, and took
      12 s per fit against 1.8 s; every CV fold refits on fewer days and extrapolates the
      baseline, so it ranks curves by how stably they forecast rather than by how well they explain.
      Every channel's candidates then get pseudo-BMA weights ``prior_k * exp(-(SSE_k - SSE_min) /
      (2 sigma^2))`` from the criterion's errors. ``selection="best"`` keeps the optimum;
      ``"consensus"`` (default) keeps, among candidates with at least 5% of the top weight, the
      one whose window contribution is nearest the weighted mean: the data fix the slope of a
      response over the observed spend far better than its level, and near-tied candidates can
      differ by a factor two in ROAS, so the weighted consensus is much less erratic than the
      single winner.
    * Intervals: moving-block residual bootstrap over the window (circular blocks of ``block_days``), with the design
      fixed: it keeps the adstock time structure that resampling days would break, keeps weekly
      and short-range residual autocorrelation inside blocks, and costs one NNLS per draw. With
      ``hyperparameter_uncertainty`` each draw also resamples the days behind the criterion's
      errors, recomputes the candidate weights from them and redraws every channel's candidate
      (pseudo-BMA+), so the intervals include the curve uncertainty the data cannot resolve; without it they reflect
      coefficient noise only and are too narrow whenever the curve is uncertain. The ridge
      strength stays fixed. Percentile intervals of the draws are rescaled so that the draws'
      median is the estimate (see :func:`_interval`) and widened where needed to contain it.
    * Limits: the baseline is smooth (trend, weekday, yearly cycle); calendar effects that are not
      left out (a December ramp before the peak days, a local sale) leak into channels whose spend
      moves with them; a channel whose spend hardly varies cannot be told apart from the baseline
      (listed in ``diagnostics["flat_spend_channels"]``); curves learnt on a long history assume
      the channel's response did not change over it.

    Parameters
    ----------
    daily:
        Wide frame ``date, revenue, <channel>...`` (see :func:`daily_frame`): one row per consecutive
        day, non-negative spend, no missing values. Rows before the window only feed adstock warm-up.
    channels:
        Spend columns to use; default every column other than ``date`` and ``revenue``.
    lookback_days, min_days:
        Window length, and the fewest days accepted (fewer raises ``ValueError``).
    curve_history_days:
        Days, ending with the window, the adstock/saturation curves are chosen on (see above).
    n_bootstrap, ci, seed:
        Bootstrap draws, interval coverage and random seed.
    cv_horizon_days, block_days:
        CV test block length in days, bootstrap block length in days.
    yearly_fourier_order, holidays, retail_peaks, holiday_country:
        Yearly sin/cos pairs in the window's baseline (0 to 3); dates whose revenue should not
        inform the model (outages, local events); whether to leave the retail peak days out; an
        ISO country code whose public holidays are left out too (``None``: none).
    criterion, selection, hyperparameter_uncertainty:
        ``"cv"`` or ``"in_sample"``; ``"consensus"`` or ``"best"`` (see above); whether the bootstrap
        redraws hyperparameters.
    prior_strength, hyperparameter_prior:
        Weight of the curve prior (0 turns it off) and overrides of its ``(centre, sd)`` pairs,
        keyed like :data:`DEFAULT_HYPERPARAMETER_PRIOR`.
    decay_grid, half_grid, shape_grid, alpha_grid:
        Hyperparameter grids; ``half_grid`` is in multiples of the channel's average daily spend on
        the curve history's days with spend.
    max_passes:
        Coordinate-descent passes over the channels.
    curve_points, curve_max_multiple:
        Response-curve grid size and its end as a multiple of the current daily spend.

    Returns
    -------
    MediaMixResult
    """
    if criterion not in ("cv", "in_sample"):
        raise ValueError(f"criterion must be 'cv' or 'in_sample', got {criterion!r}")
    if selection not in ("consensus", "best"):
        raise ValueError(f"selection must be 'consensus' or 'best', got {selection!r}")
    if not (isinstance(prior_strength, (int, float)) and math.isfinite(prior_strength) and prior_strength >= 0):
        raise ValueError(f"prior_strength must be a finite number >= 0, got {prior_strength!r}")
    _check_settings(lookback_days, min_days, n_bootstrap, ci, cv_horizon_days, block_days, curve_points,
                    curve_max_multiple, decay_grid, half_grid, shape_grid, alpha_grid, max_passes,
                    yearly_fourier_order)
    frame, names = _validated_history(daily, channels, lookback_days, min_days)

    n_history = len(frame)
    n = min(lookback_days, n_history)
    dates = pd.DatetimeIndex(frame["date"].iloc[-n:])
    y = frame["revenue"].to_numpy(dtype=float)[-n:]
    spend_history = frame[list(names)].to_numpy(dtype=float).T  # (channels, days)
    window_spend = spend_history[:, -n:]
    current = window_spend.mean(axis=1)
    # Curves are learnt on a longer history than the window when there is one (see the docstring).
    m = min(max(curve_history_days, n), n_history)
    curve_dates = pd.DatetimeIndex(frame["date"].iloc[-m:])
    y_curve = frame["revenue"].to_numpy(dtype=float)[-m:]
    if m > n and not np.isfinite(y_curve).all():
        m = n  # revenue is only validated inside the window; a gap before it keeps curves on the window
        curve_dates, y_curve = dates, y
    scale = _saturation_scale(spend_history[:, -m:], spend_history)

    holiday_days = _holiday_days(holidays, retail_peaks, holiday_country, curve_dates)
    excluded = dates.isin(holiday_days)
    rows = np.flatnonzero(~excluded)
    controls, control_names = _controls(dates, yearly_fourier_order)
    curve_rows = np.flatnonzero(~curve_dates.isin(holiday_days))
    curve_controls = controls
    if m > n:
        curve_controls, _ = _controls(
            curve_dates, max(yearly_fourier_order, 2) if m >= 365 else yearly_fourier_order, _CURVE_KNOT_DAYS
        )
    if len(rows) < min_days:
        raise ValueError(
            f"only {len(rows)} of the window's {n} days remain after leaving out {int(excluded.sum())} "
            f"holiday or peak day(s); the media-mix model needs at least min_days={min_days}. Leave out "
            "fewer days (holidays, retail_peaks=False, holiday_country=None) or use a longer lookback_days"
        )

    candidates = np.array([(d, h, s) for d in decay_grid for h in half_grid for s in shape_grid], dtype=float)
    curve_features = _candidate_features(spend_history, m, candidates, scale)  # (channels, candidates, days)
    features = curve_features[:, :, -n:]

    n_parameters = controls.shape[1] + len(names)
    folds = _expanding_folds(rows, n, cv_horizon_days, n_parameters)
    if not folds:
        raise ValueError(
            f"{len(rows)} fitted days are too few for {len(names)} channels plus {controls.shape[1]} "
            f"controls ({n_parameters} coefficients) and a {cv_horizon_days}-day validation block; "
            "use a longer lookback_days, fewer channels (merge small ones) or a shorter cv_horizon_days"
        )
    cv = _CrossValidator(features, y, controls, folds)
    penalty = prior_strength * _prior_penalty(candidates, hyperparameter_prior)
    if criterion == "cv":
        curve_folds = _expanding_folds(curve_rows, m, cv_horizon_days, curve_controls.shape[1] + len(names))
        scored = _CrossValidator(curve_features, y_curve, curve_controls, curve_folds)
        search = _coordinate_search(scored, candidates, alpha_grid, max_passes, penalty)
    else:
        # Curves by in-sample least squares (profile likelihood; a ridge would only raise the error).
        scored = _CrossValidator(curve_features, y_curve, curve_controls, [(curve_rows, curve_rows)])
        search = _coordinate_search(scored, candidates, (0.0,), max_passes, penalty)
    weights = _candidate_weights(search["errors"].sum(axis=2), search["cv_sse"], scored.n_test, penalty)

    choice = search["choice"]
    if selection == "consensus":
        curve_problem = _Problem(curve_features, y_curve, curve_controls, curve_rows)
        choice = _consensus_choice(curve_problem, features.sum(axis=2), choice, search["alpha"], weights)
    # The ridge strength for the final curves, by the window's expanding-window CV.
    alpha_sse = [cv.sse(choice, a) for a in alpha_grid]
    alpha = float(alpha_grid[int(np.argmin(alpha_sse))])
    search["alpha"] = alpha

    full = _Problem(features, y, controls, rows)
    fit = _fit(full, features, y, controls, choice, alpha)
    beta, media = fit["beta"], fit["media"]

    rng = np.random.default_rng(seed)
    beta_draws, draw_choices = _block_bootstrap(
        full, features, y, fit, alpha, choice, search["errors"] if hyperparameter_uncertainty else None,
        search["cv_sse"], penalty, n_bootstrap, block_days, rng,
    )

    lo_q, hi_q = (1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0
    decay = candidates[choice, 0]
    half = candidates[choice, 1] * scale
    shape = candidates[choice, 2]
    responses = {
        name: ChannelResponse(
            channel=name,
            coefficient=float(beta[i]),
            adstock_decay=float(decay[i]),
            saturation_half=float(half[i]),
            saturation_shape=float(shape[i]),
            current_daily_spend=float(current[i]),
            coefficient_draws=beta_draws[:, i].copy(),
            half_draws=candidates[draw_choices[:, i], 1] * scale[i],
            shape_draws=candidates[draw_choices[:, i], 2].copy(),
        )
        for i, name in enumerate(names)
    }

    feature_sums = features.sum(axis=2)
    draw_feature_sums = feature_sums[np.arange(len(names)), draw_choices]  # (draws, channels)
    channels_table = _channel_table(
        names, window_spend, feature_sums[np.arange(len(names)), choice], beta,
        beta_draws * draw_feature_sums, responses, lo_q, hi_q,
    )
    curves = _response_curves(responses, curve_points, curve_max_multiple, lo_q, hi_q)

    contributions = beta[:, None] * media
    baseline = fit["baseline"].copy()
    # Left-out days keep their revenue: whatever media does not explain counts as baseline there.
    baseline[excluded] = y[excluded] - contributions[:, excluded].sum(axis=0)
    fitted = baseline + contributions.sum(axis=0)
    decomposition = pd.DataFrame({
        "date": dates, "revenue": y, "predicted_revenue": fitted, "baseline": baseline,
        "excluded": excluded,
    })
    for i, name in enumerate(names):
        decomposition[f"contribution_{name}"] = contributions[i]

    diagnostics = _diagnostics(
        y[rows], fitted[rows], contributions, y, dates, n_history, search, cv, alpha, n_bootstrap, ci,
        block_days, names, decay, half, shape, control_names, current, int(excluded.sum()),
        criterion, selection, hyperparameter_uncertainty, weights, choice, baseline,
        _spend_variation(window_spend), prior_strength,
    )
    diagnostics["curve_history_days"] = int(m)
    diagnostics["curve_start_date"] = curve_dates[0].date().isoformat()
    return MediaMixResult(
        channels=channels_table,
        diagnostics=diagnostics,
        response_curves=curves,
        decomposition=decomposition,
        baseline_daily=float(baseline[rows].mean()),
        responses=responses,
    )


# --------------------------------------------------------------------------- validation helpers


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")


def _to_days(values: pd.Series, where: str) -> pd.Series:
    try:
        parsed = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} holds values that are not dates: {exc}") from None
    if parsed.isna().any():
        raise ValueError(f"{where} has {int(parsed.isna().sum())} missing dates")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize()


def _date_list(dates: Iterable[Any], limit: int = 5) -> str:
    unique = sorted({pd.Timestamp(d).date().isoformat() for d in dates})
    shown = ", ".join(unique[:limit])
    return shown + (f" and {len(unique) - limit} more" if len(unique) > limit else "")


def _non_negative_array(values: Any, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if np.isnan(x).any():
        raise ValueError(f"{what} contains NaN")
    if (x < 0).any():
        raise ValueError(f"{what} must be >= 0, got minimum {x.min():.6g}")
    return x


def _check_settings(lookback_days, min_days, n_bootstrap, ci, cv_horizon_days, block_days, curve_points,
                    curve_max_multiple, decay_grid, half_grid, shape_grid, alpha_grid, max_passes,
                    yearly_fourier_order) -> None:
    if min_days < 14:
        raise ValueError(f"min_days must be at least 14 (two weeks for day-of-week effects), got {min_days}")
    if lookback_days < min_days:
        raise ValueError(f"lookback_days ({lookback_days}) must be >= min_days ({min_days})")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if not 1 <= cv_horizon_days <= min_days // 4:
        raise ValueError(
            f"cv_horizon_days must be between 1 and min_days // 4 = {min_days // 4}, got {cv_horizon_days}"
        )
    if block_days < 1:
        raise ValueError(f"block_days must be >= 1, got {block_days}")
    if curve_points < 2 or curve_max_multiple <= 0:
        raise ValueError(
            f"curve_points must be >= 2 and curve_max_multiple > 0, got {curve_points}, {curve_max_multiple}"
        )
    if not 0 <= yearly_fourier_order <= 3:
        raise ValueError(f"yearly_fourier_order must be between 0 and 3, got {yearly_fourier_order}")
    if max_passes < 1:
        raise ValueError(f"max_passes must be >= 1, got {max_passes}")
    for name, grid, lo, hi in (
        ("decay_grid", decay_grid, 0.0, 1.0 - 1e-9),
        ("half_grid", half_grid, 1e-9, math.inf),
        ("shape_grid", shape_grid, 1.0, math.inf),
        ("alpha_grid", alpha_grid, 0.0, math.inf),
    ):
        values = np.asarray(grid, dtype=float)
        if values.size == 0 or np.isnan(values).any() or values.min() < lo or values.max() > hi:
            raise ValueError(f"{name} must be a non-empty list of values in [{lo}, {hi}], got {list(grid)}")


def _validated_history(
    daily: pd.DataFrame, channels: Sequence[str] | None, lookback_days: int, min_days: int
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    _require_columns(daily, _RESERVED, "daily")
    if channels is None:
        names = tuple(str(c) for c in daily.columns if c not in _RESERVED)
    else:
        names = tuple(channels)
        _require_columns(daily, names, "daily")
        if len(set(names)) != len(names):
            raise ValueError(f"channels lists a column twice: {list(names)}")
    if not names:
        raise ValueError("daily has no spend columns: expected date, revenue and one column per channel")
    reserved_hit = [c for c in names if c in _RESERVED]
    if reserved_hit:
        raise ValueError(f"channels cannot include {reserved_hit}")

    frame = daily.loc[:, ["date", "revenue", *names]].copy()
    frame["date"] = _to_days(frame["date"], "daily.date")
    frame = frame.sort_values("date", kind="stable").reset_index(drop=True)
    duplicated = frame["date"].duplicated(keep=False)
    if duplicated.any():
        raise ValueError(f"daily has several rows for dates {_date_list(frame.loc[duplicated, 'date'])}")

    n_days = len(frame)
    if n_days < min_days:
        raise ValueError(
            f"daily has {n_days} day(s) of data; the media-mix model needs at least min_days={min_days}. "
            "Load more history or lower min_days"
        )
    gaps = np.flatnonzero(frame["date"].diff().dt.days.to_numpy()[1:] != 1)
    if gaps.size:
        missing = []
        for g in gaps[:5]:
            before, after = frame["date"].iloc[g], frame["date"].iloc[g + 1]
            missing.append(f"{(before + pd.Timedelta(days=1)).date()}..{(after - pd.Timedelta(days=1)).date()}")
        raise ValueError(
            f"daily.date has {gaps.size} gap(s): missing {', '.join(missing)}; every day must be present "
            "(daily_frame fills missing spend days with 0)"
        )

    for column in ("revenue", *names):
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"daily.{column} must be numeric, got dtype {daily[column].dtype}") from None
    window = frame.iloc[-min(lookback_days, n_days):]
    bad = window["revenue"].isna() | ~np.isfinite(window["revenue"].to_numpy())
    if bad.any():
        raise ValueError(
            f"daily.revenue has {int(bad.sum())} missing or infinite value(s) in the model window on "
            f"{_date_list(window.loc[bad, 'date'])}"
        )
    for column in names:
        values = frame[column].to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"daily.{column} has {int(bad.sum())} missing or infinite spend value(s) on "
                f"{_date_list(frame.loc[bad, 'date'])}; use 0 for days without spend"
            )
        negative = values < 0
        if negative.any():
            raise ValueError(
                f"daily.{column} has {int(negative.sum())} negative spend value(s) on "
                f"{_date_list(frame.loc[negative, 'date'])}; spend must be >= 0"
            )
    return frame, names


def _holiday_days(
    holidays: Iterable[Any] | None, retail_peaks: bool, country: str | None, dates: pd.DatetimeIndex
) -> pd.DatetimeIndex:
    if isinstance(holidays, str):
        raise ValueError(
            f"holidays must be a list of dates, got the string {holidays!r}; pass a country code as holiday_country"
        )
    days = list(holidays) if holidays is not None else []
    if retail_peaks or country is not None:
        days += model_event_days(country, dates[0], dates[-1], retail_peaks, parameter="holiday_country")
    return pd.DatetimeIndex(pd.to_datetime(days)).normalize()


def _prior_penalty(candidates: np.ndarray, prior: Mapping[str, tuple[float, float]] | None) -> np.ndarray:
    """Negative log prior density (up to a constant) of each (decay, half multiple, shape) candidate."""
    prior = {**DEFAULT_HYPERPARAMETER_PRIOR, **(prior or {})}
    unknown = sorted(set(prior).difference(DEFAULT_HYPERPARAMETER_PRIOR))
    if unknown:
        raise ValueError(
            f"hyperparameter_prior has unknown key(s) {unknown}; expected some of {list(DEFAULT_HYPERPARAMETER_PRIOR)}"
        )
    for name, spec in prior.items():
        centre, sd = (float(v) for v in spec)
        if not (math.isfinite(centre) and math.isfinite(sd) and sd > 0) or (name == "saturation_half" and centre <= 0):
            raise ValueError(
                f"hyperparameter_prior[{name!r}] must be (centre, sd) with a finite centre"
                f"{' > 0' if name == 'saturation_half' else ''} and sd > 0, got {tuple(spec)}"
            )
    (d0, d_sd), (h0, h_sd), (s0, s_sd) = (prior[k] for k in DEFAULT_HYPERPARAMETER_PRIOR)
    return 0.5 * (
        ((candidates[:, 0] - d0) / d_sd) ** 2
        + (np.log(candidates[:, 1] / h0) / h_sd) ** 2
        + ((candidates[:, 2] - s0) / s_sd) ** 2
    )


# --------------------------------------------------------------------------- design


def _controls(dates: pd.DatetimeIndex, yearly_order: int, knot_days: int | None = None) -> tuple[np.ndarray, list[str]]:
    n = len(dates)
    t = np.arange(n, dtype=float) / max(n - 1, 1)
    columns = [np.ones(n), t]
    names = ["intercept", "trend"]
    if knot_days:
        # Hinges every knot_days: a piecewise-linear trend that follows growth changes over long histories.
        for k in range(knot_days, n - knot_days // 2, knot_days):
            columns.append(np.maximum(t - k / max(n - 1, 1), 0.0))
            names.append(f"trend_after_day_{k}")
    dow = dates.dayofweek.to_numpy()
    for d in range(1, 7):
        column = (dow == d).astype(float)
        if column.any():
            columns.append(column)
            names.append(f"dow_{d}")
    angle = 2.0 * np.pi * dates.dayofyear.to_numpy(dtype=float) / 365.25
    for k in range(1, yearly_order + 1):
        columns += [np.sin(k * angle), np.cos(k * angle)]
        names += [f"yearly_sin_{k}", f"yearly_cos_{k}"]
    return np.column_stack(columns), names


def _saturation_scale(window_spend: np.ndarray, spend_history: np.ndarray) -> np.ndarray:
    """Reference daily spend per channel for the half-saturation grid: the mean over days with spend.

    Days without spend are left out so that a channel run in flights is judged by its spend level
    while live; a channel without spend in the window falls back to its history, then to 1.
    """
    def live_mean(x: np.ndarray) -> np.ndarray:
        live = x > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(live.any(axis=1), (x * live).sum(axis=1) / live.sum(axis=1), np.nan)

    scale = live_mean(window_spend)
    scale = np.where(np.isnan(scale), live_mean(spend_history), scale)
    return np.where(np.isnan(scale), 1.0, scale)


def _candidate_features(spend_history: np.ndarray, n: int, candidates: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Hill(adstock) of every channel under every (decay, half, shape) candidate, window days only."""
    out = np.empty((spend_history.shape[0], len(candidates), n))
    for decay in np.unique(candidates[:, 0]):
        adstocked = geometric_adstock(spend_history, float(decay))[:, None, -n:]
        ks = np.flatnonzero(candidates[:, 0] == decay)
        half = candidates[ks, 1][None, :, None] * scale[:, None, None]
        out[:, ks, :] = hill_saturation(adstocked, half, candidates[ks, 2][None, :, None])
    return out


def _expanding_folds(rows: np.ndarray, n: int, horizon: int, n_parameters: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the window's fitted ``rows``: ``(train_rows, test_rows)`` pairs.

    Test blocks of ``horizon`` calendar days tile the second half of the window (less when the
    first training set would be too small for the parameter count); each fold trains on every
    fitted day before its block, so no fold sees revenue after the days it predicts.
    """
    first = min(max(n // 2, n_parameters + 14), n - 1)
    n_folds = max(1, (n - first) // horizon)
    bounds = np.linspace(n - n_folds * horizon, n, n_folds + 1).round().astype(int)
    folds = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        train, test = rows[rows < start], rows[(rows >= start) & (rows < end)]
        if len(test) and len(train) > n_parameters:
            folds.append((train, test))
    return folds


def _column_scale(z: np.ndarray) -> np.ndarray:
    """Root mean square of each row; 1 for (numerically) all-zero rows so they stay zero."""
    rms = np.sqrt(np.mean(z * z, axis=-1))
    return np.where(rms > 1e-9 * (1.0 + np.sqrt(np.mean(np.square(z)))), rms, 1.0)


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched ``min b'Gb/2 - r'b`` subject to ``b >= 0`` for many small positive-definite systems.

    Active-set iteration on all systems at once (solve on the free set, drop the most negative
    coefficient, repeat); any system whose result fails the KKT conditions is re-solved exactly with
    ``scipy.optimize.nnls`` on its Cholesky factor, so the result is always the exact optimum.
    """
    m, k = rhs.shape
    eye = np.eye(k)
    free = np.ones((m, k), dtype=bool)
    coef = np.zeros((m, k))
    for _ in range(k + 1):
        mask = free[:, :, None] & free[:, None, :]
        coef = np.linalg.solve(np.where(mask, gram, eye), np.where(free, rhs, 0.0)[..., None])[..., 0]
        negative = free & (coef < 0)
        rows = np.flatnonzero(negative.any(axis=1))
        if rows.size == 0:
            break
        drop = np.argmin(np.where(negative[rows], coef[rows], np.inf), axis=1)
        free[rows, drop] = False
    coef = np.where(free, coef, 0.0)
    gradient = np.einsum("mij,mj->mi", gram, coef) - rhs
    tol = 1e-9 * (np.abs(rhs).max(axis=1, keepdims=True) + np.abs(gram).max(axis=(1, 2))[:, None])
    bad = np.flatnonzero(((~free) & (gradient < -tol)).any(axis=1) | (coef < 0).any(axis=1))
    for i in bad:
        factor = np.linalg.cholesky(gram[i])
        coef[i], _ = nnls(factor.T, np.linalg.solve(factor, rhs[i]), maxiter=50 * k)
    return coef


class _Problem:
    """The regression on a set of training days, media candidates with the controls projected out.

    Controls are unpenalized and unsigned, so they are removed exactly by projection
    (Frisch-Waugh-Lovell) and only the media coefficients go through the non-negative ridge.
    Media columns are scaled to unit root-mean-square after projection so one ridge strength
    fits all channels. Test days, if any, are adjusted with the control coefficients learnt on the
    training days only.
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
                 train: np.ndarray, test: np.ndarray | None = None):
        self.features = features
        self.train, self.test = train, (test if test is not None else train[:0])
        self.c_train, self.c_test = controls[self.train], controls[self.test]
        self.pinv = np.linalg.pinv(self.c_train)
        y_coef = self.pinv @ y[self.train]
        self.y_train = y[self.train] - self.c_train @ y_coef
        self.y_test = y[self.test] - self.c_test @ y_coef
        self.n_channels = features.shape[0]

    def columns(self, channel: int, ks: Any = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled training columns, scaled test columns and scales of candidates ``ks`` of ``channel``."""
        raw = self.features[channel, ks]
        raw_train = raw[..., self.train]
        coef = raw_train @ self.pinv.T
        train = raw_train - coef @ self.c_train.T
        scale = _column_scale(train)
        test = raw[..., self.test] - coef @ self.c_test.T
        return train / scale[..., None], test / scale[..., None], scale

    def design(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training matrix (days, channels), test matrix and column scales for one candidate per channel."""
        idx = np.arange(self.n_channels)
        raw = self.features[idx, choice]  # (channels, days)
        raw_train = raw[:, self.train]
        coef = raw_train @ self.pinv.T
        train = raw_train - coef @ self.c_train.T
        scale = _column_scale(train)
        test = raw[:, self.test] - coef @ self.c_test.T
        return (train / scale[:, None]).T, (test / scale[:, None]).T, scale

    def solve(self, z: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
        """Non-negative ridge on scaled columns: min |z b - t|^2 + alpha * days * |b|^2, b >= 0."""
        rows, k = z.shape
        a = np.vstack([z, math.sqrt(alpha * rows) * np.eye(k)])
        coef, _ = nnls(a, np.concatenate([target, np.zeros(k)]), maxiter=50 * k)
        return coef

    def channel_candidates(self, choice: np.ndarray, alpha: float, channel: int) -> tuple[np.ndarray, ...]:
        """Scaled coefficients for every candidate of ``channel``, the others held at ``choice``.

        Returns ``(coef (candidates, channels), candidate test columns, test matrix, candidate scales)``.
        """
        z, t, _ = self.design(choice)
        zc, tc, scale = self.columns(channel)
        rows, k = z.shape
        ridge = alpha * rows + 1e-10 * rows  # the tiny jitter keeps all-zero columns solvable
        gram = z.T @ z + ridge * np.eye(k)
        cross = zc @ z
        grams = np.broadcast_to(gram, (len(zc), k, k)).copy()
        grams[:, channel, :] = cross
        grams[:, :, channel] = cross
        grams[:, channel, channel] = np.einsum("ij,ij->i", zc, zc) + ridge
        rhs = np.broadcast_to(z.T @ self.y_train, (len(zc), k)).copy()
        rhs[:, channel] = zc @ self.y_train
        return _nnls_gram(grams, rhs), tc, t, scale


class _CrossValidator:
    """Pooled squared error of the non-negative ridge over folds: expanding-window CV, or one
    in-sample "fold" whose test days are its training days (the profile least-squares criterion).
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]]):
        self.problems = [_Problem(features, y, controls, train, test) for train, test in folds]
        self.n_channels, self.n_candidates, _ = features.shape
        self.n_test = sum(len(p.test) for p in self.problems)

    def sse(self, choice: np.ndarray, alpha: float) -> float:
        total = 0.0
        for p in self.problems:
            z, t, _ = p.design(choice)
            resid = p.y_test - t @ p.solve(z, p.y_train, alpha)
            total += float(resid @ resid)
        return total

    def channel_errors(self, choice: np.ndarray, alpha: float, channel: int) -> np.ndarray:
        """Squared test errors ``(candidates, test days)`` of each candidate of ``channel``, others at ``choice``."""
        parts = []
        for p in self.problems:
            coef, tc, t, _ = p.channel_candidates(choice, alpha, channel)
            others = t.copy()
            others[:, channel] = 0.0
            pred = coef @ others.T + coef[:, channel:channel + 1] * tc
            parts.append(np.square(p.y_test - pred))
        return np.concatenate(parts, axis=1)


def _coordinate_search(
    cv: _CrossValidator, candidates: np.ndarray, alpha_grid: Sequence[float], max_passes: int,
    penalty: np.ndarray,
) -> dict[str, Any]:
    """Coordinate descent over per-channel candidates, then the ridge strength.

    The criterion is ``SSE + 2 sigma^2 * sum_c penalty[choice_c]``: ``cv``'s squared error plus the
    prior's negative log density in units of the Gaussian log likelihood, with ``sigma^2`` the
    current mean squared error (a plug-in MAP). With a zero penalty it is the plain error.
    Also returns, per channel, the squared errors of every candidate (per scored day) at the final
    choice of the others, which the caller turns into pseudo-Bayesian-model-averaging weights.
    """
    start = np.argmin(
        np.abs(candidates[:, 0] - 0.3) + np.abs(np.log(candidates[:, 1])) + np.abs(candidates[:, 2] - 1.0)
    )
    choice = np.full(cv.n_channels, start, dtype=int)
    alphas = np.asarray(alpha_grid, dtype=float)
    alpha = float(alphas[np.argmin(np.abs(np.log10(alphas + 1e-4) + 2.0))])
    best = cv.sse(choice, alpha)  # plain squared error of the current choice
    errors = np.empty((cv.n_channels, cv.n_candidates, cv.n_test))
    passes = 0
    for passes in range(1, max_passes + 1):
        changed = False
        for channel in range(cv.n_channels):
            errors[channel] = cv.channel_errors(choice, alpha, channel)
            sse = errors[channel].sum(axis=1)
            weight = 2.0 * best / max(cv.n_test, 1)
            criterion = sse + weight * penalty
            current = best + weight * penalty[choice[channel]]
            k = int(np.argmin(criterion))
            if criterion[k] < current - 1e-9 * abs(current) and k != choice[channel]:
                choice[channel], best, changed = k, float(sse[k]), True
        alpha_sse = np.array([cv.sse(choice, a) for a in alphas])
        j = int(np.argmin(alpha_sse))
        if alpha_sse[j] < best * (1.0 - 1e-9) and alphas[j] != alpha:
            alpha, best, changed = float(alphas[j]), float(alpha_sse[j]), True
        if not changed:
            break
    if changed:
        # The error profiles must describe the final choice; refresh them after a last move.
        for channel in range(cv.n_channels):
            errors[channel] = cv.channel_errors(choice, alpha, channel)
    return {"choice": choice, "alpha": alpha, "cv_sse": best, "errors": errors, "passes": passes}


def _candidate_weights(sse: np.ndarray, best_sse: float, n_test: float, penalty: np.ndarray) -> np.ndarray:
    """Pseudo-BMA weights ``prior_k * exp(-(SSE_k - SSE_min) / (2 sigma^2))`` from scored errors.

    ``sse`` is ``(..., candidates)``; ``sigma^2`` is the chosen model's mean squared error, so the
    weights are proportional to each candidate's Gaussian likelihood of the scored days times its
    prior density ``exp(-penalty_k)``.
    """
    sigma2 = max(best_sse / max(n_test, 1), 1e-300)
    log_weight = -sse / (2.0 * sigma2) - penalty
    weights = np.exp(log_weight - log_weight.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def _consensus_choice(
    full: _Problem, feature_sums: np.ndarray, choice: np.ndarray, alpha: float, weights: np.ndarray
) -> np.ndarray:
    """Per channel, the well-supported candidate whose window contribution is nearest the weighted mean.

    Candidates the CV cannot tell apart can still imply very different contributions, because the
    data pin down the slope of the response over the observed spend much better than its level
    (how much revenue would vanish at zero spend). Averaging over them under the CV weights and
    keeping the candidate closest to that average gives a stabler, single coherent curve.
    """
    choice = choice.copy()
    for channel in range(full.n_channels):
        coef, _, _, scale = full.channel_candidates(choice, alpha, channel)
        contribution = coef[:, channel] / scale * feature_sums[channel]
        w = weights[channel]
        target = float(w @ contribution)
        supported = np.flatnonzero(w >= 0.05 * w.max())
        choice[channel] = supported[np.argmin(np.abs(contribution[supported] - target))]
    return choice


def _fit(full: _Problem, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
         choice: np.ndarray, alpha: float) -> dict[str, Any]:
    z, _, scale = full.design(choice)
    beta = full.solve(z, full.y_train, alpha) / scale
    media = features[np.arange(full.n_channels), choice]  # (channels, window days)
    gamma = full.pinv @ (y[full.train] - beta @ media[:, full.train])
    baseline = controls @ gamma
    return {"beta": beta, "media": media, "baseline": baseline, "fitted": baseline + beta @ media}


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


# --------------------------------------------------------------------------- summaries


def _interval(point: np.ndarray, draws: np.ndarray, lo_q: float, hi_q: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (draws), rescaled so that the draws' median is the estimate.

    The draws redraw every channel's curve from the candidate weights, so they centre on the
    weighted mixture of curves rather than on the selected one, and a plain percentile interval
    can sit almost entirely on one side of the estimate. Scaling the draws by ``point / median``
    keeps their relative spread around the estimate (on the demo generator it raised the share of
    major channels whose true ROAS lies inside the 95% interval from 84% to 89%). Where the
    median is zero the draws are used as they are; either way the interval is widened where
    needed to contain the estimate.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no spend) stay NaN
        lower = np.nanquantile(draws, lo_q, axis=0)
        upper = np.nanquantile(draws, hi_q, axis=0)
        median = np.nanmedian(draws, axis=0)
    factor = np.where(median > 0, point / np.where(median > 0, median, 1.0), 1.0)
    factor = np.where(np.isfinite(factor), factor, 1.0)
    return np.fmin(lower * factor, point), np.fmax(upper * factor, point)


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
    return pd.DataFrame(table)[_CHANNEL_COLUMNS]


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
            "lower": lower,
            "upper": upper,
            "is_current": grid == r.current_daily_spend,
        }))
    return pd.concat(parts, ignore_index=True)


def _spend_variation(window_spend: np.ndarray) -> np.ndarray:
    """Coefficient of variation of each channel's daily spend in the window (0 without spend)."""
    mean = window_spend.mean(axis=1)
    return np.where(mean > 0, window_spend.std(axis=1) / np.where(mean > 0, mean, 1.0), 0.0)


def _diagnostics(
    y_fit, fitted_fit, contributions, y, dates, n_history, search, cv, alpha, n_bootstrap, ci, block_days,
    names, decay, half, shape, control_names, current, n_excluded, criterion, selection, uncertainty, weights,
    choice, baseline, spend_variation, prior_strength,
) -> dict[str, Any]:
    resid = y_fit - fitted_fit
    rmse = float(np.sqrt(np.mean(resid ** 2)))
    total_ss = float(np.sum((y_fit - y_fit.mean()) ** 2))
    value_range = float(y_fit.max() - y_fit.min())
    # Days with revenue at or below 1% of the mean would dominate a percentage error; leave them out.
    keep = np.abs(y_fit) > 0.01 * abs(float(y_fit.mean()))
    mape = float(np.mean(np.abs(resid[keep] / y_fit[keep]))) if keep.any() else math.nan
    cv_rmse = math.sqrt(cv.sse(choice, alpha) / max(cv.n_test, 1))
    chosen_weight = weights[np.arange(len(names)), choice]
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
        "cv_passes": int(search["passes"]),
        "n_days": len(y),
        "n_fitted_days": len(y_fit),
        "n_holiday_days": int(n_excluded),
        "n_history_days": int(n_history),
        "n_channels": len(names),
        "start_date": dates[0].date().isoformat(),
        "end_date": dates[-1].date().isoformat(),
        "n_bootstrap": int(n_bootstrap),
        "ci": float(ci),
        "block_days": int(block_days),
        "ridge_alpha": float(alpha),
        "prior_strength": float(prior_strength),
        "criterion": criterion,
        "selection": selection,
        "hyperparameter_uncertainty": bool(uncertainty),
        "baseline_daily": float(baseline.mean()),
        "media_share": float(contributions.sum() / y.sum()) if y.sum() != 0 else math.nan,
        "controls": list(control_names),
        "zero_spend_channels": [c for c, x in zip(names, current) if x <= 0],
        "flat_spend_channels": [c for c, v in zip(names, spend_variation) if 0 < v < 0.05],
        "hyperparameters": {
            c: {
                "adstock_decay": float(d), "saturation_half": float(h), "saturation_shape": float(s),
                "cv_weight": float(w),
            }
            for c, d, h, s, w in zip(names, decay, half, shape, chosen_weight)
        },
    }
