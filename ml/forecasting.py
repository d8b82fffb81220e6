"""Forecasts of spend, revenue, conversions, impressions, reach and clicks per channel: per (channel, metric) the
best of Prophet, long-run weekday levels and a regression on adstocked spend on a rolling-origin backtest, or the
better naive baseline where none beats it, intervals calibrated on the backtest; feeds the ROI and reach/CTR tables.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from core.processes import die_with_parent
from ml.events import country_holidays, retail_peak_days

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("spend", "revenue", "conversions", "impressions", "reach", "clicks")
# Optional in the ad export: a channel whose series is null on every day has no such data and is not
# forecast; its tables carry nulls there (and the ROI forecast says so in `method`).
OPTIONAL_METRICS: tuple[str, ...] = ("revenue", "conversions", "reach")
MIN_HISTORY_DAYS = 28
YEARLY_MIN_DAYS = 730
YEARLY_FOURIER_ORDER = 6
# Between one and two years of history, a yearly curve only where the series shows one: its smoothed, detrended
# level correlates with itself 52 weeks earlier (chosen on seeds 101-102 of both benchmark families: real
# seasons score 0.85-0.99, the demo's budget swings at most 0.71).
YEARLY_SIGNAL_MIN_DAYS = 490
YEARLY_SIGNAL_CORRELATION = 0.8
CHANGEPOINT_SPACING_DAYS = 29
HOLIDAYS_MIN_DAYS = 365
MAX_HORIZON_DAYS = 366
# Prophet's default trend flexibility. A stiffer trend (0.005, 0.0005) was tried on the selection seeds of
# benchmarks/bench_forecast_skill.py: no better on the demo's flighted budgets, worse on 30-day totals.
CHANGEPOINT_PRIOR_SCALE = 0.05
METHOD = "prophet"
NO_REVENUE_METHOD = "none: no platform revenue in the data"
# The naive baselines every model is scored against, on the same folds and days; the better of the two by
# daily error is "the naive error", and a series whose model does not beat it is published as that baseline.
NAIVE_WINDOW_DAYS = 28
NAIVE_WEEKS = 4
NAIVE_METHODS: dict[str, str] = {
    "naive_28d_mean": f"mean of the last {NAIVE_WINDOW_DAYS} live (spend > 0) days",
    "naive_weekday": f"same-weekday mean of the last {NAIVE_WEEKS} live weeks",
}
# The models that compete with Prophet per series on the same folds (the best that beats naive is published).
# The window was chosen on seeds 101-102 of both benchmark families (benchmarks/bench_forecast_skill.py): of 91,
# 182, 273, 364 and 730 days, 730 (all of a two-year history) had the best median skill on days and totals on
# three of the four and tied on the fourth; the blend of Prophet and this level added < 0.01 and was left out.
LEVEL_WINDOW_DAYS = 730
LEVEL_METHOD = "level_weekday"
# Half the recent 28-day mean, half the long-run level: a budget re-planned with some persistence drifts back to
# its level over the horizon (weight 0.5 of 0.2-0.8 was best on the selection seeds).
RECENT_LEVEL_METHOD = "level_recent_mean"
RECENT_WEIGHT = 0.5
# The recent level (last 14 live days against level_weekday's forecast of them) reverting to the long-run level
# by REVERSION per week ahead: how a budget re-planned weekly with some persistence behaves. 0.7 and 14 days were
# best of 0.2-0.7 and 7/14/28 days on seeds 101-102 of both families (bench_forecast_skill.py's selection seeds).
REVERTING_METHOD = "level_reverting"
REVERSION = 0.7
REVERTING_RECENT_DAYS = 14
SPEND_REGRESSION_METHOD = "spend_regression"
REGRESSED_METRICS = ("revenue", "conversions")
ADSTOCK_DECAYS = (0.0, 0.3, 0.5, 0.7)
FUTURE_SPEND = f"spend held at its weekday-paced mean of the last {LEVEL_WINDOW_DAYS} days with spend"
# How a model earns publication (issue 13's held-out check: choosing the lowest backtest error on 3 folds put more
# than a quarter of the series below naive on the next 30 days). Besides beating the naive error on the backtest
# folds (days, and no worse on totals), a model's per-fold skill against the better naive baseline,
# 1 - model error / naive error, must stay above 0 by SELECTION_MARGIN standard errors of its mean over the folds
# (mean - k * sd / sqrt(n) > 0, see choice_margin), and the qualifying model with the highest such lower bound is
# published. The simple models are judged on SELECTION_ORIGINS rolling origins one horizon apart (the backtest's
# folds and older ones: cheap to run); Prophet on its backtest folds (a refit per fold), so its fewer folds make
# its margin wider. Chosen on seeds 101-102 of both benchmark families by the held-out score of three 30-day
# windows each (benchmarks/bench_forecast_skill.py --choose): of 3-18 origins 7-45 days apart and k of 0-3,
# 6 origins one horizon apart and k = 1 cut the series below naive by a third with the mean skill on totals kept.
SELECTION_ORIGINS = 6
SELECTION_MARGIN = 1.0
# A series' choice must also agree with its channel: every metric of a channel follows the same spend, so a model
# that beats naive on one metric but not on the channel's others most likely won that series' folds by luck. Over
# the channel's series that have the model (at least CHANNEL_AGREEMENT_MIN_SERIES), the model's mean per-fold skill
# against each series' better naive baseline must be above 0 by CHANNEL_AGREEMENT_T standard errors of its mean over
# the series, else the series falls back to naive. Chosen on seeds 101-102 of both benchmark families, three
# held-out 30-day windows each (bench_forecast_skill.py --choose): t of 1.5-2 (the same series) cut the series below
# naive on held-out days 93 -> 85 and on totals 78 -> 72 of 502, mean held-out skill 0.038 -> 0.040 (days) and
# 0.105 -> 0.109 (totals); 2.5 cost totals skill (0.095).
CHANNEL_AGREEMENT_T = 2.0
CHANNEL_AGREEMENT_MIN_SERIES = 3
MODEL_METHODS: dict[str, str] = {
    METHOD: "Prophet on the square root: trend, weekly (and yearly) seasons, holidays and retail peak days",
    LEVEL_METHOD: f"same-weekday mean of the last {LEVEL_WINDOW_DAYS} live days (the level spend returns to)",
    RECENT_LEVEL_METHOD: f"mean of naive_28d_mean and {LEVEL_METHOD}",
    REVERTING_METHOD: f"{LEVEL_METHOD} times the last {REVERTING_RECENT_DAYS} live days' ratio to it, the ratio "
                      f"reverting to 1 by {REVERSION} a week ahead",
    SPEND_REGRESSION_METHOD: f"weekday intercepts + adstocked spend (least squares, last {LEVEL_WINDOW_DAYS} "
                             f"live days), future spend: {FUTURE_SPEND}",
}

ROI_FORECAST_COLUMNS = (
    "channel", "horizon_days", "predicted_spend", "predicted_revenue", "predicted_roi",
    "roi_lower", "roi_upper", "method", "backtest_mape", "naive_mape", "skill", "total_skill",
)
SKILL_COLUMNS = (
    "channel", "metric", "method", "model_mape", "naive_28d_mean_mape", "naive_weekday_mape", "naive_method",
    "naive_mape", "skill", "model_total_error", "naive_total_error", "total_skill", "published_mape",
    "published_skill", "published_total_skill", "folds", "prophet_mape", "level_weekday_mape",
    "level_recent_mean_mape", "spend_regression_mape", "future_spend", "interval_factor", "backtest_coverage",
    "calibrated_coverage", "level_reverting_mape", "choice_margin", "channel_agreement",
)
ROI_TIMESERIES_COLUMNS = (
    "date", "channel", "roi", "conversions", "is_forecast",
    "roi_lower", "roi_upper", "conversions_lower", "conversions_upper",
)
REACH_CTR_COLUMNS = (
    "date", "channel", "reach", "impressions", "clicks", "ctr", "is_forecast",
    "reach_lower", "reach_upper", "impressions_lower", "impressions_upper",
    "clicks_lower", "clicks_upper", "ctr_lower", "ctr_upper",
)
FRAME_COLUMNS = ("date", "channel", "metric", "actual", "yhat", "yhat_lower", "yhat_upper", "is_forecast")
BACKTEST_COLUMNS = ("channel", "metric", "mape", "folds")


# --------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class ChannelForecast:
    """Forecasts of every requested (channel, metric), their backtests and the product tables.

    frame: one row per date, channel and metric with columns ``date, channel, metric, actual,
        yhat, yhat_lower, yhat_upper, is_forecast``. History rows carry the observed value in
        ``actual`` and the in-sample fit with its predictive interval; forecast rows (the
        ``horizon_days`` days after the last date in the input, the same dates for every
        channel) have ``actual`` NaN and never NaN elsewhere. On paused history days (no
        spend) ``actual`` is the observed value and ``yhat`` what the model expected had the
        channel run.
    backtest: one row per channel and metric with ``channel, metric, mape, folds``: the
        rolling-origin error of the Prophet model as a fraction (0.08 = 8 %), WAPE-style, i.e.
        ``sum |forecast - actual| / sum |actual|`` pooled over every held-out active day of
        every fold, so zero-actual days cannot divide by zero. NaN only when every held-out
        actual was zero. ``folds`` is the number of folds that were run.
    skill: one row per channel and metric (``SKILL_COLUMNS``): the model's error next to the
        two naive baselines' (``NAIVE_METHODS``) on the same folds and days, the better
        baseline (``naive_method``, ``naive_mape``), ``skill = 1 - model_mape / naive_mape``,
        the same on horizon totals (``model_total_error``, ``naive_total_error``,
        ``total_skill``: ``sum |sum forecast - sum actual| / sum |sum actual|`` over folds),
        and what is published: ``method`` is the model (``MODEL_METHODS``: ``prophet``,
        ``level_weekday``, ``level_recent_mean``, ``level_reverting``, ``spend_regression``) with the lowest daily
        error among those that beat the naive error on days and are no worse on totals, else
        the better baseline;
        ``model_mape`` / ``skill`` / ``total_skill`` score that model (the best by daily error
        when none qualifies), ``prophet_mape``, ``level_weekday_mape``,
        ``level_recent_mean_mape``, ``level_reverting_mape`` and ``spend_regression_mape`` each model (NaN where not
        tried), ``future_spend`` states
        the spend path of a published ``spend_regression`` (``FUTURE_SPEND``), and
        ``published_mape`` / ``published_skill`` / ``published_total_skill`` score the
        published method (never a negative skill: a fallback scores 0). Intervals:
        ``backtest_coverage`` is the share of the backtest's held-out days inside the
        published interval laid around each fold's forecast, ``interval_factor`` (>= 1) the
        split-conformal widening applied to the draws so that ``interval_width`` of them are
        covered, ``calibrated_coverage`` the share covered after it (on those same days).
    horizon_samples: per (channel, metric) an array (horizon_days x draws) of joint predictive
        draws on the natural scale: column k of every metric of a channel is one joint draw
        (see ``noise_correlation``), so ratios such as ROI and CTR can be taken column by
        column. The forecast-row intervals of ``frame`` and of every table come from them
        (after the calibration: ``skill['interval_factor']``).
    noise_correlation: per channel, the correlation matrix (metric x metric) of the models'
        in-sample residuals on the square-root scale; the joint draws share it, in their
        daily noise and in how the sampled trend paths of different metrics are paired.
    not_forecast: channels of the input that were not forecast, each with the reason in words
        (too little history with spend, or no spend in any backtest window: a channel that
        stopped, or was renamed). They are absent from ``frame``, ``backtest`` and every table.
    timings: seconds spent: ``prepare`` (validation, holidays), ``fit_and_backtest`` (wall
        time of all fits), ``assemble`` (of which ``choice``: the models' scores on the selection origins, the
        channel agreement and the choice per series), and ``series_fit`` / ``series_backtest``, the time
        summed over series (across workers) of the final fits with sampling and of the folds,
        and ``series_cpu``, the CPU time of all of that including the Stan processes.
    """

    frame: pd.DataFrame
    backtest: pd.DataFrame
    horizon_days: int
    interval_width: float
    seed: int
    horizon_samples: dict[tuple[str, str], np.ndarray] = field(repr=False)
    noise_correlation: dict[str, pd.DataFrame] = field(repr=False)
    skill: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SKILL_COLUMNS)), repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    absent: frozenset[tuple[str, str]] = frozenset()
    not_forecast: dict[str, str] = field(default_factory=dict)
    # Per series, the horizon interval (lower, upper) before the calibration widened it.
    uncalibrated_intervals: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False)

    @property
    def channels(self) -> list[str]:
        return sorted(self.frame["channel"].unique().tolist())

    @property
    def metrics(self) -> list[str]:
        """The metrics asked for: forecast, or absent from the data of some or all channels."""
        present = set(self.frame["metric"].unique()) | {metric for _, metric in self.absent}
        return [m for m in METRICS if m in present]

    def method(self, channel: str, metric: str) -> str:
        """The published method of a series: ``METHOD`` or a key of ``NAIVE_METHODS``."""
        rows = self.skill[(self.skill["channel"] == channel) & (self.skill["metric"] == metric)]
        return str(rows["method"].iloc[0]) if len(rows) else METHOD

    def reports(self, channel: str, metric: str) -> bool:
        """False when the input had no value of `metric` for `channel` (an optional metric, all null)."""
        return (channel, metric) not in self.absent

    def roi_forecast_table(self) -> pd.DataFrame:
        """One row per spending channel: the horizon totals and their ROI with its interval.

        Columns: ``channel, horizon_days, predicted_spend, predicted_revenue, predicted_roi,
        roi_lower, roi_upper, method, backtest_mape, naive_mape, skill, total_skill``.

        ``predicted_spend`` and ``predicted_revenue`` are the sums of the daily point forecasts
        (the same numbers the time-series table shows), and ``predicted_roi`` is
        ``(predicted_revenue - predicted_spend) / predicted_spend``. The interval comes from
        the joint predictive distribution of the two horizon sums: the ROI of each joint draw
        (``horizon_samples``), in which spend and revenue move together as their models'
        residuals did in the history, gives the quantiles. When Monte Carlo error puts the
        point outside them the interval is widened to include it, so
        ``roi_lower <= predicted_roi <= roi_upper``.
        ``method`` is the published method of the revenue forecast (a key of ``MODEL_METHODS``,
        or the naive baseline it fell back to, see ``skill``), followed by ``(spend: <method>)`` when the
        spend forecast's differs. ``backtest_mape`` is the backtest WAPE of the published daily
        revenue forecast, ``naive_mape`` the better naive baseline's, ``skill`` and
        ``total_skill`` the published forecast's skill on days and on horizon totals (>= 0).
        Channels that never spent anything have no ROI and are left out. A channel without
        platform revenue in the data (an optional column) keeps its spend forecast, while
        revenue, ROI and its interval are NULL and ``method`` says why
        (``NO_REVENUE_METHOD``): an ROI of -1 would claim the spend earned nothing.
        """
        self._require_metrics("roi_forecast_table", ("spend", "revenue"))
        point = self._forecast_wide("yhat")
        scores = self.skill[self.skill["metric"] == "revenue"].set_index("channel")
        low_q, high_q = _quantile_levels(self.interval_width)
        rows = []
        for channel in self._spending_channels():
            predicted_spend = float(point.loc[channel, "spend"].sum())
            if not self.reports(channel, "revenue"):
                rows.append({
                    "channel": channel, "horizon_days": self.horizon_days, "predicted_spend": predicted_spend,
                    "predicted_revenue": np.nan, "predicted_roi": np.nan, "roi_lower": np.nan, "roi_upper": np.nan,
                    "method": NO_REVENUE_METHOD, "backtest_mape": np.nan, "naive_mape": np.nan, "skill": np.nan,
                    "total_skill": np.nan,
                })
                continue
            spend_paths, revenue_paths = self._draws(channel, "spend", "revenue")
            predicted_revenue = float(point.loc[channel, "revenue"].sum())
            predicted_roi = (predicted_revenue - predicted_spend) / predicted_spend
            roi_samples = _safe_ratio(revenue_paths.sum(axis=0), spend_paths.sum(axis=0),
                                      at_least=MIN_SPEND_PER_DAY_FOR_ROI * spend_paths.shape[0]) - 1.0
            lower, upper = _interval_around(np.array([predicted_roi]), roi_samples[None, :], low_q, high_q)
            rows.append({
                "channel": channel,
                "horizon_days": self.horizon_days,
                "predicted_spend": predicted_spend,
                "predicted_revenue": predicted_revenue,
                "predicted_roi": predicted_roi,
                "roi_lower": float(lower[0]),
                "roi_upper": float(upper[0]),
                "method": self._roi_method(channel),
                "backtest_mape": float(scores.loc[channel, "published_mape"]),
                "naive_mape": float(scores.loc[channel, "naive_mape"]),
                "skill": float(scores.loc[channel, "published_skill"]),
                "total_skill": float(scores.loc[channel, "published_total_skill"]),
            })
        table = pd.DataFrame(rows, columns=list(ROI_FORECAST_COLUMNS))
        return table.astype({"horizon_days": "int64", "method": "str"})

    def roi_timeseries_table(self) -> pd.DataFrame:
        """Daily ROI and conversions per spending channel: history, then the forecast horizon.

        Columns: ``date, channel, roi, conversions, is_forecast, roi_lower, roi_upper,
        conversions_lower, conversions_upper``.

        ROI is ``(revenue - spend) / spend`` for the day. History rows hold the observed
        values, with bounds equal to them; on history days without spend (paused) ROI is
        undefined and left NULL (NaN), as are its bounds. Forecast rows hold
        the ratio of the daily point forecasts and an interval from the joint draws (see
        ``roi_forecast_table``); they are never NaN because the mean forecast of spend
        carries the model's noise variance and is positive (draws with zero spend are left
        out of the interval).
        Channels that never spent anything are left out. A channel without platform revenue
        (or conversions) in the data has NULL ROI (or conversions) and bounds on every row.
        """
        self._require_metrics("roi_timeseries_table", ("spend", "revenue", "conversions"))
        channels = self._spending_channels()
        low_q, high_q = _quantile_levels(self.interval_width)

        history = self._history_wide()
        history = history[history["channel"].isin(channels)]
        spend = history["spend"].to_numpy()
        spent = spend > 0
        roi = np.full(len(history), np.nan)
        roi[spent] = (history["revenue"].to_numpy()[spent] - spend[spent]) / spend[spent]
        history_table = pd.DataFrame({
            "date": history["date"].to_numpy(),
            "channel": history["channel"].to_numpy(),
            "roi": roi,
            "conversions": history["conversions"].to_numpy(),
            "is_forecast": False,
            "roi_lower": roi,
            "roi_upper": roi,
            "conversions_lower": history["conversions"].to_numpy(),
            "conversions_upper": history["conversions"].to_numpy(),
        })

        point, lower, upper = (self._forecast_wide(col) for col in ("yhat", "yhat_lower", "yhat_upper"))
        parts = [history_table]
        for channel in channels:
            if self.reports(channel, "revenue"):
                spend_paths, revenue_paths = self._draws(channel, "spend", "revenue")
                revenue, spend = point.loc[channel, "revenue"].to_numpy(), point.loc[channel, "spend"].to_numpy()
                daily_roi = _safe_ratio(revenue, spend) - 1.0
                roi_samples = _safe_ratio(revenue_paths, spend_paths, at_least=MIN_SPEND_PER_DAY_FOR_ROI) - 1.0
                roi_low, roi_high = _interval_around(daily_roi, roi_samples, low_q, high_q)
            else:
                daily_roi = roi_low = roi_high = np.full(self.horizon_days, np.nan)
            parts.append(pd.DataFrame({
                "date": point.loc[channel].index.to_numpy(),
                "channel": channel,
                "roi": daily_roi,
                "conversions": point.loc[channel, "conversions"].to_numpy(),
                "is_forecast": True,
                "roi_lower": roi_low,
                "roi_upper": roi_high,
                "conversions_lower": lower.loc[channel, "conversions"].to_numpy(),
                "conversions_upper": upper.loc[channel, "conversions"].to_numpy(),
            }))
        return _finish_table(parts, ROI_TIMESERIES_COLUMNS)

    def reach_ctr_timeseries_table(self) -> pd.DataFrame:
        """Daily reach, impressions, clicks and CTR per channel: history, then the forecast.

        Columns: ``date, channel, reach, impressions, clicks, ctr, is_forecast, reach_lower,
        reach_upper, impressions_lower, impressions_upper, clicks_lower, clicks_upper,
        ctr_lower, ctr_upper``.

        CTR is ``clicks / impressions`` for the day. History rows hold the observed values
        with bounds equal to them; CTR is NULL (NaN) on history days without impressions.
        Forecast rows hold the point forecasts with their predictive intervals; the CTR
        forecast is the ratio of the click and impression point forecasts (0 when no
        impressions are forecast), its interval comes from the joint draws of clicks and
        impressions as in ``roi_forecast_table``, and all three are clipped to [0, 1].
        A channel without reach in the data has NULL reach and bounds on every row.
        """
        self._require_metrics("reach_ctr_timeseries_table", ("reach", "impressions", "clicks"))
        low_q, high_q = _quantile_levels(self.interval_width)

        history = self._history_wide()
        impressions = history["impressions"].to_numpy()
        shown = impressions > 0
        ctr = np.full(len(history), np.nan)
        ctr[shown] = history["clicks"].to_numpy()[shown] / impressions[shown]
        history_table = pd.DataFrame({"date": history["date"].to_numpy(), "channel": history["channel"].to_numpy()})
        for metric in ("reach", "impressions", "clicks"):
            values = history[metric].to_numpy()
            history_table[metric] = values
            history_table[f"{metric}_lower"] = values
            history_table[f"{metric}_upper"] = values
        history_table["ctr"] = ctr
        history_table["ctr_lower"] = ctr
        history_table["ctr_upper"] = ctr
        history_table["is_forecast"] = False

        point, lower, upper = (self._forecast_wide(col) for col in ("yhat", "yhat_lower", "yhat_upper"))
        parts = [history_table]
        for channel in self.channels:
            impression_paths, click_paths = self._draws(channel, "impressions", "clicks")
            clicks, impressions = point.loc[channel, "clicks"].to_numpy(), point.loc[channel, "impressions"].to_numpy()
            daily_ctr = np.clip(np.nan_to_num(_safe_ratio(clicks, impressions), nan=0.0), 0.0, 1.0)
            ctr_samples = np.clip(_safe_ratio(click_paths, impression_paths), 0.0, 1.0)
            ctr_low, ctr_high = _interval_around(daily_ctr, ctr_samples, low_q, high_q)
            part = pd.DataFrame({"date": point.loc[channel].index.to_numpy(), "channel": channel})
            for metric in ("reach", "impressions", "clicks"):
                part[metric] = point.loc[channel, metric].to_numpy()
                part[f"{metric}_lower"] = lower.loc[channel, metric].to_numpy()
                part[f"{metric}_upper"] = upper.loc[channel, metric].to_numpy()
            part["ctr"] = daily_ctr
            part["ctr_lower"] = ctr_low
            part["ctr_upper"] = ctr_high
            part["is_forecast"] = True
            parts.append(part)
        return _finish_table(parts, REACH_CTR_COLUMNS)

    # -- helpers ----------------------------------------------------------------------------

    def _require_metrics(self, table: str, needed: Sequence[str]) -> None:
        missing = [m for m in needed if m not in self.metrics]
        if missing:
            raise ValueError(
                f"{table} needs forecasts of {list(needed)} but {missing} were not forecast "
                f"(metrics forecast: {self.metrics}); call forecast_channel_metrics with metrics "
                f"including {missing}."
            )

    def _roi_method(self, channel: str) -> str:
        revenue, spend = self.method(channel, "revenue"), self.method(channel, "spend")
        return revenue if revenue == spend else f"{revenue} (spend: {spend})"

    def _spending_channels(self) -> list[str]:
        spend = self.frame[(self.frame["metric"] == "spend") & ~self.frame["is_forecast"]]
        totals = spend.groupby("channel")["actual"].sum()
        return sorted(totals.index[totals > 0].tolist())

    def _history_wide(self) -> pd.DataFrame:
        # Metrics absent from the data of a channel (or of every channel) are NaN columns.
        history = self.frame[~self.frame["is_forecast"]]
        wide = history.pivot(index=["channel", "date"], columns="metric", values="actual").reindex(columns=self.metrics)
        return wide.reset_index().sort_values(["channel", "date"], ignore_index=True)

    def _forecast_wide(self, column: str) -> pd.DataFrame:
        forecast = self.frame[self.frame["is_forecast"]]
        wide = forecast.pivot(index=["channel", "date"], columns="metric", values=column)
        return wide.reindex(columns=self.metrics).sort_index()

    def _draws(self, channel: str, *metrics: str) -> tuple[np.ndarray, ...]:
        return tuple(self.horizon_samples[(channel, metric)] for metric in metrics)


# --------------------------------------------------------------------------------------------
# Entry point


def forecast_channel_metrics(
    daily: pd.DataFrame,
    metrics: Sequence[str] = METRICS,
    horizon_days: int = 30,
    interval_width: float = 0.95,
    backtest_folds: int = 3,
    n_jobs: int = 2,
    holidays_country: str | None = "US",
    seed: int = 0,
    uncertainty_samples: int = 250,
    retail_peaks: bool = True,
    changepoint_prior_scale: float = CHANGEPOINT_PRIOR_SCALE,
    fallback: bool = True,
    calibrate: bool = True,
) -> ChannelForecast:
    """Forecast each metric of each channel with its own Prophet model, and backtest them.

    Parameters
    ----------
    daily: one row per date and channel (the ``fct_channel_daily`` mart) with columns
        ``date, channel, spend`` and every requested metric; values non-negative, no NaN,
        no duplicate (date, channel). Missing dates are treated as unobserved. Exception: an
        optional metric (``OPTIONAL_METRICS``: revenue, conversions, reach) may be NaN on every
        day of a channel, meaning the data has none; it is not forecast for that channel
        (``ChannelForecast.absent``) and the tables carry NULL there.
    metrics: any of ``spend, revenue, conversions, impressions, reach, clicks``.
    horizon_days: days to forecast after the last date in ``daily`` (1 to 366); every
        channel gets the same forecast dates. Each backtest fold also holds out this many days.
    interval_width: probability mass of the prediction intervals, in (0, 1).
    backtest_folds: rolling-origin folds per series (>= 1). Fold k trains on the channel's
        history up to its last date minus k * horizon_days and forecasts the next
        horizon_days; folds that would leave fewer than 28 training days are skipped.
    n_jobs: worker processes (>= 1, or -1 for every core). 1 runs in this process; more start
        a spawned process pool for the duration of the call (fresh interpreters, each paying
        the Prophet import once), which is safe inside a Dagster run or step worker or any
        non-daemonic process; a script calling this needs the usual
        ``if __name__ == "__main__":`` guard. A daemonic process cannot have children, so
        there it warns and runs serially.
    holidays_country: country code for the ``holidays`` calendar (e.g. "US", "GB"), or None.
    retail_peaks: also model the retail peak days of ``ml.events`` (Thanksgiving to Cyber
        Tuesday, Christmas to New Year) as holiday effects.
    changepoint_prior_scale: Prophet's trend flexibility (its default is 0.05).
    fallback: let the models compete and publish the better naive baseline for a series that
        no model beats in the backtest (see ``ChannelForecast.skill``); False publishes Prophet
        for every series (still scored), as before issue 13.
    calibrate: widen each series' horizon draws by its conformal factor from the backtest
        (``skill['interval_factor']``); False keeps the models' own intervals.
    seed: makes the uncertainty sampling, and hence every interval, reproducible; results
        are identical for any n_jobs.
    uncertainty_samples: predictive sample paths per series (a few hundred keeps runs fast).

    Conventions
    -----------
    - Paused days: on days where a channel spent nothing (``spend == 0``) the channel did not
      run, so every metric of that channel treats them as missing rather than as zero demand;
      forecasts therefore assume the channel keeps running. A channel that never spends is
      fitted on all its days and left out of the ROI tables.
    - Non-negativity: each series is fitted on ``sqrt(y)`` and transformed back with
      ``max(z, 0) ** 2``, so forecasts and intervals are never negative and the noise grows
      with the level (the square root stabilises the variance of counts). The point forecast
      is the predictive mean, E[max(yhat + e, 0) ** 2] for Prophet's fitted normal noise e,
      rather than the median ``max(yhat, 0) ** 2``, so sums over the horizon (spend,
      revenue, ROI) are not biased low. A log transform was tried and rejected: platform
      revenue has sporadic zero days, which make the log-scale noise huge, and on 90-day
      demo histories its backtest error reached 30 times the actuals; the square root
      stayed within 2.5.
    - Backtest error: ``backtest['mape']`` is WAPE-style, sum |forecast - actual| / sum
      |actual| over the held-out days with spend of all folds (see ``ChannelForecast``).
    - Trend: one potential changepoint per 29 days of history, at most Prophet's 25 (its
      default density on two years), so short histories do not get a wildly flexible trend.
    - Seasonality: weekly always (the minimum history of 28 days holds four weeks); yearly
      when every fit of the channel, down to the earliest backtest fold, covers at least 730
      calendar days, or at least 490 and the series shows a season up to the earliest fold's
      cutoff (its smoothed, detrended level correlates >= 0.8 with itself 52 weeks earlier);
      country holidays and the retail peak days when every fit covers at least 365. Backtest folds
      thus test exactly the specification of the final model; a yearly curve fitted on less
      than two years extrapolates wildly (on the two-year demo data it multiplied the
      backtest error of some channels several times over).
    - Intervals: quantiles of the predictive draws (Prophet's samples, MAP fit, ``mcmc_samples=0``;
      for the other methods noise and level draws around their point), widened on the square-root
      scale by the backtest's conformal factor where they covered fewer than ``interval_width`` of
      its held-out days, and where needed so that they always contain the point forecast.
    - Spend regression: its forecast is conditional on a stated future spend, ``FUTURE_SPEND``
      (the same path in the backtest folds, from each fold's training days); planned spend per
      channel is answered by the spend scenarios (``ml.scenarios``).
    - Logging: cmdstanpy and prophet loggers are raised to WARNING in this process and in
      every worker, so a normal run prints no per-fit lines.

    Raises
    ------
    ValueError: on missing columns, unknown metrics, NaN, negative or duplicate rows, or
        parameters out of range; and when no channel can be forecast (each has fewer than 28
        days with spend or no room for a single backtest fold). The message names the channel
        or column. When some channels can be forecast, the others are left out and named,
        with the reason, in ``ChannelForecast.not_forecast``.
    """
    started = time.perf_counter()
    metrics = _checked_metrics(metrics)
    _check_parameters(horizon_days, interval_width, backtest_folds, n_jobs, seed, uncertainty_samples)
    data = _validated_daily(daily, metrics)
    histories, not_forecast = _channel_histories(data, metrics, horizon_days, backtest_folds)

    last_date = data["date"].max()
    horizon = pd.date_range(last_date + pd.Timedelta(days=1), periods=horizon_days, freq="D")
    holidays = _event_calendar(holidays_country, retail_peaks, data["date"].min(), horizon[-1])

    tasks = []
    for history in histories:
        for metric in metrics:
            if metric in history.absent:
                continue
            values = history.values[metric]
            fit_values = values[history.active]
            tasks.append(_SeriesTask(
                channel=history.channel,
                metric=metric,
                history_dates=history.dates,
                horizon_dates=horizon.to_numpy(dtype="datetime64[ns]"),
                fit_mask=history.active,
                fit_values=fit_values,
                yearly=_wants_yearly(history, values),
                holidays=holidays if history.shortest_training_days >= HOLIDAYS_MIN_DAYS else None,
                cutoffs=history.cutoffs,
                horizon_days=horizon_days,
                interval_width=interval_width,
                uncertainty_samples=uncertainty_samples,
                seed=_series_seed(seed, history.channel, metric),
                changepoint_prior_scale=float(changepoint_prior_scale),
            ))

    prepared = time.perf_counter()
    results = _run_tasks(tasks, n_jobs)
    fitted = time.perf_counter()
    forecast = _assemble(histories, horizon, tasks, results, horizon_days, interval_width, seed, fallback, calibrate)
    forecast.not_forecast.update(not_forecast)
    forecast.timings.update({
        "prepare": prepared - started,
        "fit_and_backtest": fitted - prepared,
        "assemble": time.perf_counter() - fitted,
        "series_fit": float(sum(r.fit_seconds for r in results)),
        "series_backtest": float(sum(r.backtest_seconds for r in results)),
        "series_cpu": float(sum(r.cpu_seconds for r in results)),
    })
    logger.debug(
        "forecast %d series (%d channels) with %d workers in %.1f s",
        len(tasks), len(histories), n_jobs, forecast.timings["fit_and_backtest"],
    )
    return forecast


def _wants_yearly(history: _ChannelHistory, values: np.ndarray) -> bool:
    """A yearly curve on two years of every fit's history, or from 490 days where the series has a season."""
    if history.shortest_training_days >= YEARLY_MIN_DAYS:
        return True
    if history.shortest_training_days < YEARLY_SIGNAL_MIN_DAYS:
        return False
    # Judged on the earliest fold's training days only, so the backtest scores the choice honestly.
    return _yearly_signal(history.dates, values, history.active, min(history.cutoffs)) >= YEARLY_SIGNAL_CORRELATION


def _yearly_signal(dates: np.ndarray, values: np.ndarray, active: np.ndarray, until: np.datetime64) -> float:
    """Correlation of the 28-day mean level (log, linear trend removed) with itself 364 days earlier; NaN
    when fewer than 91 days pair up."""
    keep = dates <= until
    level = pd.Series(np.where(active, values, np.nan)[keep], index=pd.DatetimeIndex(dates[keep]))
    level = level.reindex(pd.date_range(level.index[0], level.index[-1], freq="D"))
    x = np.log1p(level.rolling(NAIVE_WINDOW_DAYS, min_periods=NAIVE_WINDOW_DAYS // 2).mean().to_numpy())
    t = np.arange(len(x))
    seen = np.isfinite(x)
    if seen.sum() < 2:
        return np.nan
    x = x - np.polyval(np.polyfit(t[seen], x[seen], 1), t)
    now, year_before = x[364:], x[:-364]
    both = np.isfinite(now) & np.isfinite(year_before)
    if both.sum() < 91 or now[both].std() == 0 or year_before[both].std() == 0:
        return np.nan
    return float(np.corrcoef(now[both], year_before[both])[0, 1])


def _event_calendar(country: str | None, retail_peaks: bool, first, last) -> pd.DataFrame | None:
    parts = []
    if country is not None:
        parts.append(country_holidays(country, first, last, "holidays_country"))
    if retail_peaks:
        parts.append(retail_peak_days(first, last).rename(columns={"event": "holiday"}))
    return pd.concat(parts, ignore_index=True)[["ds", "holiday"]] if parts else None


# --------------------------------------------------------------------------------------------
# Validation


def _checked_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    requested = list(dict.fromkeys(metrics))
    unknown = [m for m in requested if m not in METRICS]
    if not requested:
        raise ValueError(f"metrics is empty; pass one or more of {list(METRICS)}.")
    if unknown:
        raise ValueError(f"metrics must be a subset of {list(METRICS)}; got unknown {unknown}.")
    return tuple(m for m in METRICS if m in requested)


def _check_parameters(horizon_days, interval_width, backtest_folds, n_jobs, seed, uncertainty_samples) -> None:
    if not isinstance(horizon_days, (int, np.integer)) or not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days must be an integer from 1 to {MAX_HORIZON_DAYS}; got {horizon_days!r}.")
    if not 0.0 < float(interval_width) < 1.0:
        raise ValueError(f"interval_width must be strictly between 0 and 1 (e.g. 0.95); got {interval_width!r}.")
    if not isinstance(backtest_folds, (int, np.integer)) or backtest_folds < 1:
        raise ValueError(f"backtest_folds must be an integer >= 1; got {backtest_folds!r}.")
    if not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise ValueError(f"n_jobs must be an integer >= 1, or -1 for every core; got {n_jobs!r}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    if not isinstance(uncertainty_samples, (int, np.integer)) or uncertainty_samples < 20:
        raise ValueError(f"uncertainty_samples must be an integer >= 20; got {uncertainty_samples!r}.")


def _validated_daily(daily: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(daily, pd.DataFrame):
        raise ValueError(f"daily must be a pandas DataFrame; got {type(daily).__name__}.")
    value_columns = list(dict.fromkeys(("spend", *metrics)))
    required = ["date", "channel", *value_columns]
    missing = [c for c in required if c not in daily.columns]
    if missing:
        raise ValueError(
            f"daily is missing columns {missing}; it needs {required} "
            f"(spend is always needed to tell paused days). Columns present: {list(daily.columns)}."
        )
    if daily.empty:
        raise ValueError("daily has no rows; forecasting needs at least 28 days of history per channel.")

    try:
        dates = pd.to_datetime(daily["date"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"daily['date'] could not be parsed as dates: {exc}") from exc
    if dates.dt.tz is not None:
        # Daily marts carry calendar days; keep the local day the timestamp names.
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()
    if dates.isna().any():
        raise ValueError(f"daily['date'] has {int(dates.isna().sum())} missing values; every row needs a date.")
    if daily["channel"].isna().any():
        missing_channels = int(daily["channel"].isna().sum())
        raise ValueError(f"daily['channel'] has {missing_channels} missing values; every row needs a channel.")

    data = pd.DataFrame({
        "date": dates.astype("datetime64[ns]").to_numpy(),
        "channel": daily["channel"].astype(str).to_numpy(),
    })
    for column in value_columns:
        values = pd.to_numeric(daily[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if column in OPTIONAL_METRICS and bad.any():
            # A channel with no value at all has no such data; a partly missing series is still an error.
            unreported = pd.Series(np.isnan(values)).groupby(data["channel"].to_numpy()).transform("all").to_numpy()
            bad &= ~unreported
        if bad.any():
            raise ValueError(
                f"daily['{column}'] has {int(bad.sum())} missing, non-numeric or infinite values "
                f"(first at channel {data['channel'].iloc[np.flatnonzero(bad)[0]]!r}); "
                "fill or drop them before forecasting."
            )
        negative = values < 0
        if negative.any():
            first = np.flatnonzero(negative)[0]
            raise ValueError(
                f"daily['{column}'] has {int(negative.sum())} negative values (first: channel "
                f"{data['channel'].iloc[first]!r}, date {data['date'].iloc[first].date()}, value {values[first]}); "
                "metrics must be >= 0."
            )
        data[column] = values

    duplicated = data.duplicated(["date", "channel"])
    if duplicated.any():
        first = data[duplicated].iloc[0]
        raise ValueError(
            f"daily has {int(duplicated.sum())} duplicate (date, channel) rows (first: {first['channel']!r} on "
            f"{first['date'].date()}); aggregate to one row per date and channel first."
        )
    return data.sort_values(["channel", "date"], ignore_index=True)


@dataclass(frozen=True)
class _ChannelHistory:
    channel: str
    dates: np.ndarray
    values: dict[str, np.ndarray]
    active: np.ndarray
    shortest_training_days: int
    cutoffs: tuple[np.datetime64, ...]
    absent: tuple[str, ...] = ()  # optional metrics the data has no value of for this channel


def _channel_histories(
    data: pd.DataFrame, metrics: tuple[str, ...], horizon_days: int, backtest_folds: int
) -> tuple[list[_ChannelHistory], dict[str, str]]:
    """The channels that can be forecast, and the others with the reason. Raises when none can."""
    histories, too_short, no_fold, reasons = [], [], [], {}
    step = np.timedelta64(horizon_days, "D")
    for channel, rows in data.groupby("channel", sort=True):
        dates = rows["date"].to_numpy(dtype="datetime64[ns]")
        spend = rows["spend"].to_numpy()
        active = spend > 0 if spend.sum() > 0 else np.ones(len(rows), dtype=bool)
        n_active = int(active.sum())
        if n_active < MIN_HISTORY_DAYS:
            too_short.append(
                f"{channel!r}: {n_active} days with spend out of {len(rows)} rows "
                f"({pd.Timestamp(dates[0]).date()} to {pd.Timestamp(dates[-1]).date()})"
            )
            reasons[str(channel)] = (
                f"not forecast: {n_active} days with spend, a forecast needs at least {MIN_HISTORY_DAYS}"
            )
            continue
        active_dates = dates[active]
        cutoffs = []
        for fold in range(1, backtest_folds + 1):
            cutoff = dates[-1] - fold * step
            n_train = int((active_dates <= cutoff).sum())
            n_holdout = int(((active_dates > cutoff) & (active_dates <= cutoff + step)).sum())
            if n_train >= MIN_HISTORY_DAYS and n_holdout > 0:
                cutoffs.append(cutoff)
        if not cutoffs:
            no_fold.append(f"{channel!r}: {n_active} days with spend")
            last_spend = pd.Timestamp(active_dates[-1]).date() if n_active else None
            reasons[str(channel)] = (
                f"not forecast: last spend on {last_spend}, none in the {backtest_folds * horizon_days} days before "
                f"{pd.Timestamp(dates[-1]).date()} (the channel stopped, or continues under another name: "
                "map it with channels.csv's aliases)"
                if n_active and active_dates[-1] <= dates[-1] - backtest_folds * step else
                f"not forecast: {n_active} days with spend leave no room for a backtest fold of {horizon_days} "
                f"days after {MIN_HISTORY_DAYS} training days"
            )
            continue
        histories.append(_ChannelHistory(
            channel=str(channel),
            dates=dates,
            values={m: rows[m].to_numpy() for m in metrics},
            active=active,
            shortest_training_days=int((min(cutoffs) - dates[0]) // np.timedelta64(1, "D")) + 1,
            cutoffs=tuple(cutoffs),
            absent=tuple(m for m in metrics if m in OPTIONAL_METRICS and np.isnan(rows[m].to_numpy()).all()),
        ))
    if histories:  # the others are named in ChannelForecast.not_forecast
        return histories, reasons
    if too_short:
        raise ValueError(
            f"Too little history to forecast: each channel needs at least {MIN_HISTORY_DAYS} days with spend > 0, "
            f"but {'; '.join(too_short)}. Drop these channels from the input or supply more history."
        )
    if no_fold:
        raise ValueError(
            f"No room for a backtest fold of horizon_days={horizon_days}: a fold needs {MIN_HISTORY_DAYS} "
            f"training days before {horizon_days} held-out days, i.e. at least {MIN_HISTORY_DAYS + horizon_days} "
            "days with spend, "
            f"but {'; '.join(no_fold)}. Use a shorter horizon_days or supply more history."
        )
    raise ValueError("no channel to forecast: the input has no rows")


# --------------------------------------------------------------------------------------------
# Fitting (runs in the worker processes)


@dataclass(frozen=True)
class _SeriesTask:
    channel: str
    metric: str
    history_dates: np.ndarray
    horizon_dates: np.ndarray
    fit_mask: np.ndarray
    fit_values: np.ndarray
    yearly: bool
    holidays: pd.DataFrame | None
    cutoffs: tuple[np.datetime64, ...]
    horizon_days: int
    interval_width: float
    uncertainty_samples: int
    seed: int
    changepoint_prior_scale: float = CHANGEPOINT_PRIOR_SCALE


@dataclass(frozen=True)
class _SeriesResult:
    yhat: np.ndarray
    yhat_lower: np.ndarray
    yhat_upper: np.ndarray
    horizon_paths: np.ndarray
    sigma: float
    residuals: np.ndarray
    abs_error: float
    abs_actual: float
    folds: int
    fold_totals: tuple[tuple[float, float], ...]  # (forecast, actual) summed over each fold's held-out days
    fit_seconds: float
    backtest_seconds: float
    cpu_seconds: float
    # The forecast of each fold's held-out days (in task.cutoffs order): what the intervals are calibrated on.
    fold_predictions: tuple[np.ndarray, ...] = ()


def _fit_series(task: _SeriesTask) -> _SeriesResult:
    """Fit, sample and backtest one (channel, metric) series."""
    with warnings.catch_warnings():
        # Prophet's own pandas calls raise deprecation warnings nobody calling us can act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet(\.|$)")
        return _fit_and_backtest(task)


def _fit_and_backtest(task: _SeriesTask) -> _SeriesResult:
    prophet_class = _quiet_prophet()
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    fit_dates = task.history_dates[task.fit_mask]
    root_values = np.sqrt(task.fit_values)

    model = _new_model(prophet_class, task, fit_dates, task.uncertainty_samples)
    model.fit(pd.DataFrame({"ds": fit_dates, "y": root_values}), seed=task.seed)
    frame = pd.DataFrame({"ds": np.concatenate([task.history_dates, task.horizon_dates])})
    root_point, root_trend = _point_prediction(model, frame, with_trend=True)
    with _seeded_global_numpy(task.seed):
        draws = model.predictive_samples(frame)

    point = _expected_value(model, root_point)
    # In-sample intervals from Prophet's own draws; the parent redraws the horizon jointly.
    low_q, high_q = _quantile_levels(task.interval_width)
    lower, upper = _interval_around(point, _back_transform(draws["yhat"]), low_q, high_q)

    fitted = time.perf_counter()
    abs_error = abs_actual = 0.0
    fold_totals, fold_predictions = [], []
    step = np.timedelta64(task.horizon_days, "D")
    for cutoff in task.cutoffs:
        train = fit_dates <= cutoff
        holdout = (fit_dates > cutoff) & (fit_dates <= cutoff + step)
        fold_model = _new_model(prophet_class, task, fit_dates[train], uncertainty_samples=0)
        fold_model.fit(pd.DataFrame({"ds": fit_dates[train], "y": root_values[train]}), seed=task.seed)
        predicted = _expected_value(fold_model, _point_prediction(fold_model, pd.DataFrame({"ds": fit_dates[holdout]})))
        actual = task.fit_values[holdout]
        abs_error += float(np.abs(predicted - actual).sum())
        abs_actual += float(np.abs(actual).sum())
        fold_totals.append((float(predicted.sum()), float(actual.sum())))
        fold_predictions.append(predicted)

    n_history = len(task.history_dates)
    return _SeriesResult(
        yhat=point,
        yhat_lower=lower,
        yhat_upper=upper,
        # All components are additive, so a noiseless draw is its trend draw plus the seasonality.
        horizon_paths=draws["trend"][n_history:] + (root_point - root_trend)[n_history:, None],
        sigma=_noise_sd(model),
        residuals=root_values - root_point[:n_history][task.fit_mask],
        abs_error=abs_error,
        abs_actual=abs_actual,
        folds=len(task.cutoffs),
        fold_totals=tuple(fold_totals),
        fit_seconds=fitted - started,
        backtest_seconds=time.perf_counter() - fitted,
        cpu_seconds=_cpu_seconds() - cpu_started,
        fold_predictions=tuple(fold_predictions),
    )


def _cpu_seconds() -> float:
    # Stan runs as a child process of whichever process fits, so count its time too.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _new_model(prophet_class, task: _SeriesTask, train_dates: np.ndarray, uncertainty_samples: int):
    holidays = None
    if task.holidays is not None:
        # Holidays never seen in training would only add zero columns to the Stan problem.
        seen = task.holidays["ds"].between(train_dates[0], train_dates[-1])
        names = task.holidays.loc[seen, "holiday"].unique()
        if len(names):
            holidays = task.holidays[task.holidays["holiday"].isin(names)]
    # Prophet's default of 25 potential changepoints suits about two years; on shorter
    # histories that many make the trend, and the uncertainty sampled from it, far too flexible.
    covered_days = int((train_dates[-1] - train_dates[0]) // np.timedelta64(1, "D")) + 1
    model = prophet_class(
        growth="linear",
        n_changepoints=int(np.clip(covered_days // CHANGEPOINT_SPACING_DAYS, 1, 25)),
        yearly_seasonality=False,
        weekly_seasonality=True,
        daily_seasonality=False,
        holidays=holidays,
        changepoint_prior_scale=task.changepoint_prior_scale,
        mcmc_samples=0,
        interval_width=task.interval_width,
        uncertainty_samples=uncertainty_samples,
    )
    if task.yearly:
        # Fewer terms than Prophet's default 10: daily channel series are dominated by campaign flights, and
        # a smoother curve extrapolates more calmly and makes every fit cheaper.
        model.add_seasonality(name="yearly", period=365.25, fourier_order=YEARLY_FOURIER_ORDER)
    return model


def _point_prediction(model, frame: pd.DataFrame, with_trend: bool = False):
    # Intervals come from one predictive_samples draw; predict() would draw a second set.
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    try:
        prediction = model.predict(frame)
    finally:
        model.uncertainty_samples = samples
    yhat = prediction["yhat"].to_numpy(dtype=float)
    return (yhat, prediction["trend"].to_numpy(dtype=float)) if with_trend else yhat


def _noise_sd(model) -> float:
    return max(float(np.ravel(model.params["sigma_obs"])[0]) * float(model.y_scale), 1e-12)


def _back_transform(root_values: np.ndarray) -> np.ndarray:
    return np.square(np.maximum(root_values, 0.0))


def _expected_value(model, root_point: np.ndarray) -> np.ndarray:
    """Mean of max(z, 0)^2 for z ~ Normal(mu, sigma): the back-transformed forecast with its noise.

    (mu^2 + sigma^2) * Phi(mu / sigma) + mu * sigma * phi(mu / sigma). max(mu, 0)^2 alone
    would be the median, and summed over a horizon it understates the total.
    """
    sigma = _noise_sd(model)
    mu = np.asarray(root_point, dtype=float)
    ratio = mu / sigma
    density = np.exp(-0.5 * ratio * ratio) / np.sqrt(2.0 * np.pi)
    return np.maximum((mu * mu + sigma * sigma) * ndtr(ratio) + mu * sigma * density, 0.0)


@contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    # Prophet samples from numpy's global generator; restore it so callers see no side effect.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _quiet_prophet():
    """Import Prophet with cmdstanpy and prophet logging at WARNING in this process."""
    # prophet.plot logs an ERROR at import when plotly is absent; nothing here plots.
    _raise_logger_level("prophet.plot", logging.CRITICAL)
    from cmdstanpy.utils import get_logger
    from prophet import Prophet

    # cmdstanpy's get_logger sets DEBUG and adds its handler on first use, so call it before raising the level.
    get_logger()
    _raise_logger_level("cmdstanpy", logging.WARNING)
    _raise_logger_level("prophet", logging.WARNING)
    return Prophet


def _raise_logger_level(name: str, level: int) -> None:
    target = logging.getLogger(name)
    if target.level < level:
        target.setLevel(level)


def _run_tasks(tasks: list[_SeriesTask], n_jobs: int) -> list[_SeriesResult]:
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    workers = min(workers, len(tasks))
    if workers > 1 and multiprocessing.current_process().daemon:
        warnings.warn(
            f"forecast_channel_metrics(n_jobs={n_jobs}) was called in a daemonic process, which cannot start "
            "workers; fitting serially instead.",
            RuntimeWarning,
            stacklevel=3,
        )
        workers = 1
    if workers == 1:
        return [_fit_series(task) for task in tasks]
    # A pool that lives only for this call: pools that keep idle workers (joblib's loky) make a
    # multiprocessing child, such as a Dagster step process, wait for them at exit. Spawned, not
    # forked, because the caller may run threads (Dagster does) and fork copies their locks.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    ) as pool:
        return list(pool.map(_fit_series, tasks))


def _start_worker(parent_pid: int) -> None:
    """Pool initializer: die with the process that started the pool (a killed refresh leaves no
    Prophet worker behind), then import Prophet quietly. `pool.map` spawns the workers from the
    calling thread, which waits in it for as long as they live."""
    die_with_parent(parent_pid)
    _quiet_prophet()


# --------------------------------------------------------------------------------------------
# Assembly and interval arithmetic


def _assemble(histories, horizon, tasks, results, horizon_days, interval_width, seed, fallback=True,
              calibrate=True) -> ChannelForecast:
    n_horizon = len(horizon)
    horizon_dates = horizon.to_numpy(dtype="datetime64[ns]")
    low_q, high_q = _quantile_levels(interval_width)
    frames, backtest_rows, samples, correlations, raw_intervals, calibration = [], [], {}, {}, {}, {}
    by_channel = {history.channel: history for history in histories}
    choice_started = time.perf_counter()
    prepared = [_series_scores(task, result, by_channel[task.channel], fallback)
                for task, result in zip(tasks, results, strict=True)]
    agreement = _channel_agreement(tasks, prepared)
    scored = [_score_and_fall_back(task, result, fallback, by_channel[task.channel], scores, agreement[task.channel])
              for task, result, scores in zip(tasks, results, prepared, strict=True)]
    choice_seconds = time.perf_counter() - choice_started
    skill = pd.DataFrame([row for _, row in scored], columns=list(SKILL_COLUMNS))
    published = [result for result, _ in scored]
    for history in histories:
        pairs = [(task, result) for task, result in zip(tasks, published, strict=True)
                 if task.channel == history.channel]
        models = [result for task, result in zip(tasks, results, strict=True) if task.channel == history.channel]
        metrics = [task.metric for task, _ in pairs]
        correlation = _noise_correlation(np.column_stack([result.residuals for _, result in pairs]))
        correlations[history.channel] = pd.DataFrame(correlation, index=metrics, columns=metrics)
        rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_id(history.channel)]))
        draws = _joint_draws([result for _, result in pairs], correlation, rng)
        n_history = len(history.dates)
        for (task, result), model, metric_draws in zip(pairs, models, draws, strict=True):
            point = result.yhat[n_history:]
            raw_intervals[(task.channel, task.metric)] = _interval_around(point, metric_draws, low_q, high_q)
            factor, covered, covered_after = _interval_factor(task, result, point, metric_draws, interval_width)
            calibration[(task.channel, task.metric)] = (factor if calibrate else 1.0, covered,
                                                        covered_after if calibrate else covered)
            if calibrate and factor > 1.0:
                metric_draws = _widened(point, metric_draws, factor)
            samples[(history.channel, task.metric)] = metric_draws
            lower, upper = result.yhat_lower.copy(), result.yhat_upper.copy()
            lower[n_history:], upper[n_history:] = _interval_around(point, metric_draws, low_q, high_q)
            frames.append(pd.DataFrame({
                "date": np.concatenate([history.dates, horizon_dates]),
                "channel": task.channel,
                "metric": task.metric,
                "actual": np.concatenate([history.values[task.metric], np.full(n_horizon, np.nan)]),
                "yhat": result.yhat,
                "yhat_lower": lower,
                "yhat_upper": upper,
                "is_forecast": np.concatenate([np.zeros(n_history, bool), np.ones(n_horizon, bool)]),
            }))
            mape = model.abs_error / model.abs_actual if model.abs_actual > 0 else np.nan
            backtest_rows.append({"channel": task.channel, "metric": task.metric, "mape": mape, "folds": result.folds})
    keys = list(zip(skill["channel"], skill["metric"], strict=True))
    for position, column in enumerate(("interval_factor", "backtest_coverage", "calibrated_coverage")):
        skill[column] = [calibration[key][position] for key in keys]
    frame = pd.concat(frames, ignore_index=True)[list(FRAME_COLUMNS)]
    backtest = pd.DataFrame(backtest_rows, columns=list(BACKTEST_COLUMNS)).astype({"folds": "int64"})
    return ChannelForecast(
        frame=frame,
        backtest=backtest,
        horizon_days=horizon_days,
        interval_width=float(interval_width),
        seed=int(seed),
        horizon_samples=samples,
        noise_correlation=correlations,
        skill=skill.astype({"folds": "int64"}),
        absent=frozenset((history.channel, metric) for history in histories for metric in history.absent),
        uncalibrated_intervals=raw_intervals,
        timings={"choice": choice_seconds},
    )


# --------------------------------------------------------------------------------------------
# Naive baselines, skill and the fallback


def naive_forecast(values: np.ndarray, weekdays: np.ndarray, target_weekdays: np.ndarray, method: str) -> np.ndarray:
    """The naive forecast ``method`` (a key of ``NAIVE_METHODS``) of the days ``target_weekdays``.

    ``values`` is the live history (days with spend) in date order and ``weekdays`` their days of
    the week (0 = Monday). ``naive_28d_mean`` repeats the mean of the last 28 values;
    ``naive_weekday`` gives each day the mean of the last 4 values on its weekday (the 28-day
    mean for a weekday the history does not have).
    """
    values = np.asarray(values, dtype=float)
    target_weekdays = np.asarray(target_weekdays)
    if method not in NAIVE_METHODS:
        raise ValueError(f"method must be one of {list(NAIVE_METHODS)}; got {method!r}.")
    level = float(values[-NAIVE_WINDOW_DAYS:].mean()) if len(values) else 0.0
    forecast = np.full(len(target_weekdays), level)
    if method == "naive_weekday":
        weekdays = np.asarray(weekdays)
        for day in np.unique(target_weekdays):
            same = values[weekdays == day][-NAIVE_WEEKS:]
            if len(same):
                forecast[target_weekdays == day] = same.mean()
    return forecast


def level_forecast(values: np.ndarray, weekdays: np.ndarray, target_weekdays: np.ndarray,
                   window: int | None = None) -> np.ndarray:
    """The ``level_weekday`` forecast: each target day gets the mean of its weekday over the last ``window`` live
    values (their overall mean for a weekday seen fewer than 4 times there).

    Where spend is re-planned often around a stable budget (the demo), the longer window estimates the level the
    budget returns to, which the 28-day naive mean misses by whatever the last four weeks happened to do.
    """
    window = LEVEL_WINDOW_DAYS if window is None else window
    values = np.asarray(values, dtype=float)[-window:]
    weekdays = np.asarray(weekdays)[-window:]
    target_weekdays = np.asarray(target_weekdays)
    forecast = np.full(len(target_weekdays), float(values.mean()) if len(values) else 0.0)
    for day in np.unique(target_weekdays):
        same = values[weekdays == day]
        if len(same) >= NAIVE_WEEKS:
            forecast[target_weekdays == day] = same.mean()
    return forecast


def reverting_level_forecast(values: np.ndarray, weekdays: np.ndarray, target_weekdays: np.ndarray,
                             days_ahead: np.ndarray) -> np.ndarray:
    """The ``level_reverting`` forecast: ``level_forecast`` times ``1 + REVERSION ** (1 + k / 7) * (r - 1)`` on the
    target day ``k`` days after the last value (``days_ahead``, 0 for the next day), where ``r`` is the last
    ``REVERTING_RECENT_DAYS`` live values' sum over ``level_forecast``'s forecast of them.

    A budget re-planned every week with some persistence sits off its long-run level by a ratio that fades over
    the weeks ahead: the forecast follows the recent ratio on the first days and the long-run level later.
    """
    values = np.asarray(values, dtype=float)
    weekdays = np.asarray(weekdays)
    long_run = level_forecast(values, weekdays, target_weekdays)
    recent = level_forecast(values, weekdays, weekdays[-REVERTING_RECENT_DAYS:])
    expected = float(recent.sum())
    ratio = float(values[-REVERTING_RECENT_DAYS:].sum()) / expected if expected > 0 else 1.0
    weight = REVERSION ** (1.0 + np.maximum(np.asarray(days_ahead, dtype=float), 0.0) / 7.0)
    return np.maximum(long_run * (1.0 + weight * (ratio - 1.0)), 0.0)


def spend_regression_forecast(
    values: np.ndarray, active: np.ndarray, spend: np.ndarray, weekdays: np.ndarray, future_spend: np.ndarray,
    future_weekdays: np.ndarray, window: int | None = None,
) -> tuple[np.ndarray, float]:
    """The ``spend_regression`` forecast of a metric that spend drives (revenue, conversions), and its adstock decay.

    ``values``, ``active``, ``spend`` and ``weekdays`` cover every calendar day of the history in order (``values``
    is used on active days only); ``future_spend`` is the stated spend of each following calendar day. The metric is
    regressed by least squares on a weekday intercept plus ``adstock(spend)`` (geometric carryover, the decay of
    ``ADSTOCK_DECAYS`` that fits the last ``window`` active days best), and predicted along the adstock of the
    history continued with ``future_spend``. Never negative.
    """
    spend = np.asarray(spend, dtype=float)
    future_spend = np.asarray(future_spend, dtype=float)
    rows = np.flatnonzero(active)[-(LEVEL_WINDOW_DAYS if window is None else window):]
    y = np.asarray(values, dtype=float)[rows]
    dummies = np.eye(7)[np.asarray(weekdays)[rows]]
    seen = dummies.sum(axis=0) > 0
    best = None
    for decay in ADSTOCK_DECAYS:
        carried = _geometric_adstock(np.concatenate([spend, future_spend]), decay)
        design = np.column_stack([dummies[:, seen], carried[rows]])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.square(design @ coef - y).sum())
        if best is None or sse < best[0]:
            best = (sse, decay, coef, carried)
    _, decay, coef, carried = best
    intercepts = np.zeros(7)
    intercepts[seen] = coef[:-1]
    intercepts[~seen] = coef[:-1].mean()
    forecast = intercepts[np.asarray(future_weekdays)] + coef[-1] * carried[len(spend):]
    return np.maximum(forecast, 0.0), float(decay)


def _geometric_adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    if decay == 0.0:
        return spend.copy()
    # a_t = decay * a_{t-1} + (1 - decay) * spend_t, as a linear filter.
    from scipy.signal import lfilter

    return lfilter([1.0 - decay], [1.0, -decay], spend)


def skill_score(model_error: float, naive_error: float) -> float:
    """``1 - model_error / naive_error``: 0 is no better than naive, 1 perfect, negative worse.

    NaN when either error is undefined, or the naive error is 0 (a perfect baseline cannot be beaten).
    """
    if not (np.isfinite(model_error) and np.isfinite(naive_error)) or naive_error <= 0:
        return np.nan
    return 1.0 - model_error / naive_error


def _weekdays(dates: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday (3 with Monday = 0).
    return (np.asarray(dates, dtype="datetime64[D]").astype(np.int64) + 3) % 7


@dataclass(frozen=True)
class _Candidate:
    """A forecast method evaluated on the model's folds and days, and its forecast of the horizon."""

    fold_predictions: tuple[np.ndarray, ...]
    fold_totals: tuple[tuple[float, float], ...]
    abs_error: float
    abs_actual: float
    horizon: np.ndarray
    recent: np.ndarray  # its in-sample forecast of the last NAIVE_WINDOW_DAYS live days (for the draws' noise)


def _candidate(task: _SeriesTask, predict) -> _Candidate:
    """Backtest ``predict(train, targets)`` (boolean masks over the live days; ``targets`` None is the horizon)."""
    fit_dates = task.history_dates[task.fit_mask]
    step = np.timedelta64(task.horizon_days, "D")
    predictions, totals, abs_error, abs_actual = [], [], 0.0, 0.0
    for cutoff in task.cutoffs:
        train = fit_dates <= cutoff
        holdout = (fit_dates > cutoff) & (fit_dates <= cutoff + step)
        predicted = predict(train, holdout)
        actual = task.fit_values[holdout]
        abs_error += float(np.abs(predicted - actual).sum())
        abs_actual += float(np.abs(actual).sum())
        totals.append((float(predicted.sum()), float(actual.sum())))
        predictions.append(predicted)
    everything = np.ones(len(fit_dates), dtype=bool)
    recent = np.zeros(len(fit_dates), dtype=bool)
    recent[-NAIVE_WINDOW_DAYS:] = True
    return _Candidate(tuple(predictions), tuple(totals), abs_error, abs_actual, predict(everything, None),
                      predict(everything, recent))


def _candidates(task: _SeriesTask, history: _ChannelHistory | None) -> dict[str, _Candidate]:
    """The naive baselines and the simple models, each backtested on the model's folds and days."""
    return {method: _candidate(task, predict) for method, predict in _predictors(task, history).items()}


def _predictors(task: _SeriesTask, history: _ChannelHistory | None) -> dict:
    """``predict(train, targets)`` of the naive baselines and the simple models (see ``_candidate``)."""
    fit_dates = task.history_dates[task.fit_mask].astype("datetime64[D]")
    horizon_dates = task.horizon_dates.astype("datetime64[D]")
    weekdays, horizon_weekdays = _weekdays(fit_dates), _weekdays(horizon_dates)

    def by_weekday(method):
        def predict(train, targets):
            target_weekdays = horizon_weekdays if targets is None else weekdays[targets]
            values, days = task.fit_values[train], weekdays[train]
            if method == LEVEL_METHOD:
                return level_forecast(values, days, target_weekdays)
            if method == RECENT_LEVEL_METHOD:
                return (RECENT_WEIGHT * naive_forecast(values, days, target_weekdays, "naive_28d_mean")
                        + (1.0 - RECENT_WEIGHT) * level_forecast(values, days, target_weekdays))
            if method == REVERTING_METHOD:
                target_dates = horizon_dates if targets is None else fit_dates[targets]
                ahead = (target_dates - fit_dates[train][-1]) // np.timedelta64(1, "D") - 1
                return reverting_level_forecast(values, days, target_weekdays, ahead)
            return naive_forecast(values, days, target_weekdays, method)
        return predict

    methods = (*NAIVE_METHODS, LEVEL_METHOD, RECENT_LEVEL_METHOD, REVERTING_METHOD)
    predictors = {method: by_weekday(method) for method in methods}
    if history is not None and task.metric in REGRESSED_METRICS and history.values["spend"].sum() > 0:
        predictors[SPEND_REGRESSION_METHOD] = _spend_regression_predictor(task, history)
    return predictors


def _spend_regression_predictor(task: _SeriesTask, history: _ChannelHistory):
    """``predict(train, targets)`` of the spend regression; its future spend is FUTURE_SPEND (the level_weekday
    forecast of the channel's spend from the same training days), on every calendar day after the training."""
    dates = history.dates.astype("datetime64[D]")
    spend = np.asarray(history.values["spend"], dtype=float)
    values = np.nan_to_num(np.asarray(history.values[task.metric], dtype=float))
    calendar_weekdays = _weekdays(dates)
    fit_dates = task.history_dates[task.fit_mask].astype("datetime64[D]")
    horizon = task.horizon_dates.astype("datetime64[D]")

    def predict(train, targets):
        last = fit_dates[train][-1]
        known = dates <= last
        live = known & history.active
        target_dates = horizon if targets is None else fit_dates[targets]
        future = np.arange(last + 1, max(target_dates.max(), last) + 1, dtype="datetime64[D]")
        future_weekdays = _weekdays(future)
        planned = level_forecast(spend[live], calendar_weekdays[live], future_weekdays)
        if targets is not None and not (target_dates > last).all():
            # In-sample: the fitted values on the target days (the draws' noise is measured on them).
            fitted = _observed_fit(values[known], live[known], spend[known], calendar_weekdays[known])
            return fitted[np.searchsorted(dates[known], target_dates)]
        forecast, _ = spend_regression_forecast(
            values[known], live[known], spend[known], calendar_weekdays[known], planned, future_weekdays)
        return forecast[(target_dates - last).astype(np.int64) - 1]

    return predict


def _observed_fit(values, active, spend, weekdays) -> np.ndarray:
    """The spend regression's fitted values on every history day, along the observed spend."""
    rows = np.flatnonzero(active)[-LEVEL_WINDOW_DAYS:]
    y = np.asarray(values, dtype=float)[rows]
    best = None
    for decay in ADSTOCK_DECAYS:
        carried = _geometric_adstock(spend, decay)
        design = np.column_stack([np.eye(7)[weekdays], carried])
        coef, *_ = np.linalg.lstsq(design[rows], y, rcond=None)
        sse = float(np.square(design[rows] @ coef - y).sum())
        if best is None or sse < best[0]:
            best = (sse, np.maximum(design @ coef, 0.0))
    return best[1]


def choice_margin(model_errors: Sequence[float], naive_errors: Sequence[float],
                  margin: float = SELECTION_MARGIN) -> float:
    """How surely a model beats naive: the mean over folds of its skill ``1 - model error / naive error`` minus
    ``margin`` standard errors of that mean (sample sd over sqrt(folds)). Positive means the model beat naive by
    more than its fold-to-fold spread explains as luck.

    Errors are per fold (sum of absolute errors over the fold's held-out days), in the same fold order; folds with
    a zero naive error are skipped. NaN with fewer than two usable folds (no spread to judge by).
    """
    model_errors = np.asarray(model_errors, dtype=float)
    naive_errors = np.asarray(naive_errors, dtype=float)
    if model_errors.shape != naive_errors.shape:
        raise ValueError(f"model_errors and naive_errors need one value per fold each; got {model_errors.shape} "
                         f"and {naive_errors.shape}.")
    usable = naive_errors > 0
    skills = 1.0 - model_errors[usable] / naive_errors[usable]
    if len(skills) < 2 or not np.isfinite(skills).all():
        return np.nan
    return float(skills.mean() - margin * skills.std(ddof=1) / np.sqrt(len(skills)))


def _selection_cutoffs(task: _SeriesTask) -> tuple[np.datetime64, ...]:
    """SELECTION_ORIGINS origins one horizon apart before the series' last day (the backtest folds' origins and
    older ones), each with at least MIN_HISTORY_DAYS live training days and a live day in the horizon after it."""
    fit_dates = task.history_dates[task.fit_mask]
    step = np.timedelta64(task.horizon_days, "D")
    cutoffs = []
    for origin in range(1, SELECTION_ORIGINS + 1):
        cutoff = task.history_dates[-1] - origin * step
        held_out = (fit_dates > cutoff) & (fit_dates <= cutoff + step)
        if (fit_dates <= cutoff).sum() >= MIN_HISTORY_DAYS and held_out.any():
            cutoffs.append(cutoff)
    return tuple(cutoffs)


def _fold_errors(task: _SeriesTask, cutoffs: Sequence[np.datetime64], predictions: Sequence[np.ndarray]
                 ) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """Per fold: the sum of absolute errors over its held-out live days, and (forecast, actual) totals."""
    fit_dates = task.history_dates[task.fit_mask]
    step = np.timedelta64(task.horizon_days, "D")
    errors, totals = [], []
    for cutoff, predicted in zip(cutoffs, predictions, strict=True):
        actual = task.fit_values[(fit_dates > cutoff) & (fit_dates <= cutoff + step)]
        errors.append(float(np.abs(predicted - actual).sum()))
        totals.append((float(np.sum(predicted)), float(actual.sum())))
    return np.array(errors), tuple(totals)


@dataclass(frozen=True)
class _SeriesScores:
    """What the choice of a series is made from: the baselines' and models' backtests, the better naive baseline,
    and each model's per-fold errors beside that baseline's on the same folds (the simple models on the selection
    origins, Prophet on its backtest folds)."""

    predictors: dict
    candidates: dict[str, _Candidate]
    naive_mapes: dict[str, float]
    naive: str
    fold_errors: dict[str, tuple[np.ndarray, tuple[tuple[float, float], ...]]]
    reference: dict[str, tuple[np.ndarray, tuple[tuple[float, float], ...]]]

    def mean_fold_skill(self, method: str) -> float:
        """The model's mean over folds of ``1 - its error / the better naive baseline's`` (folds without naive
        error skipped); NaN where the model was not scored on folds."""
        if method not in self.fold_errors:
            return np.nan
        errors, reference = self.fold_errors[method][0], self.reference[method][0]
        usable = reference > 0
        skills = 1.0 - errors[usable] / reference[usable]
        skills = skills[np.isfinite(skills)]
        return float(skills.mean()) if len(skills) else np.nan


def _series_scores(task: _SeriesTask, result: _SeriesResult, history: _ChannelHistory | None,
                   with_folds: bool = True) -> _SeriesScores:
    predictors = _predictors(task, history)
    candidates = {method: _candidate(task, predict) for method, predict in predictors.items()}
    naive_mapes = {method: _ratio(candidates[method].abs_error, candidates[method].abs_actual)
                   for method in NAIVE_METHODS}
    # The better baseline by daily error; ties and undefined errors go to the simpler mean.
    best = min(NAIVE_METHODS, key=lambda m: (np.inf if np.isnan(naive_mapes[m]) else naive_mapes[m]))
    fold_errors, reference = {}, {}
    if with_folds and not np.isnan(naive_mapes[best]):
        cutoffs = _selection_cutoffs(task)
        fit_dates = task.history_dates[task.fit_mask]
        step = np.timedelta64(task.horizon_days, "D")

        def predictions(predict):
            return [predict(fit_dates <= cutoff, (fit_dates > cutoff) & (fit_dates <= cutoff + step))
                    for cutoff in cutoffs]

        naive_folds = _fold_errors(task, cutoffs, predictions(predictors[best]))
        fold_errors[METHOD] = _fold_errors(task, task.cutoffs, result.fold_predictions)
        reference[METHOD] = _fold_errors(task, task.cutoffs, candidates[best].fold_predictions)
        for method, predict in predictors.items():
            if method not in NAIVE_METHODS:
                fold_errors[method] = _fold_errors(task, cutoffs, predictions(predict))
                reference[method] = naive_folds
    return _SeriesScores(predictors, candidates, naive_mapes, best, fold_errors, reference)


def _channel_agreement(tasks: Sequence[_SeriesTask], scores: Sequence[_SeriesScores]) -> dict[str, dict[str, float]]:
    """Per channel and model: the t statistic (mean over standard error) of the model's mean fold skill over the
    channel's series that have it, where at least CHANNEL_AGREEMENT_MIN_SERIES do (``CHANNEL_AGREEMENT_T``)."""
    per_channel: dict[str, dict[str, list[float]]] = {}
    for task, series in zip(tasks, scores, strict=True):
        methods = per_channel.setdefault(task.channel, {})
        for method in series.fold_errors:
            skill = series.mean_fold_skill(method)
            if np.isfinite(skill):
                methods.setdefault(method, []).append(skill)
    agreement: dict[str, dict[str, float]] = {}
    for channel, methods in per_channel.items():
        agreement[channel] = {}
        for method, skills in methods.items():
            if len(skills) < CHANNEL_AGREEMENT_MIN_SERIES:
                continue
            values = np.asarray(skills)
            sd = float(values.std(ddof=1))
            agreement[channel][method] = (float(values.mean() / (sd / np.sqrt(len(values)))) if sd > 0
                                          else float(np.sign(values.mean()) * np.inf))
    for task in tasks:
        agreement.setdefault(task.channel, {})
    return agreement


def _selection_scores(scores: _SeriesScores, models: Sequence[str]) -> dict[str, float]:
    """Each model's ``choice_margin`` over the better naive baseline, or NaN where it also loses on the horizon
    totals of its folds. The simple models on the selection origins, Prophet on its backtest folds."""
    margins = {}
    for method in models:
        errors, totals = scores.fold_errors[method]
        reference, reference_totals = scores.reference[method]
        worse_on_totals = _total_error(totals) > _total_error(reference_totals)
        margins[method] = np.nan if worse_on_totals else choice_margin(errors, reference, SELECTION_MARGIN)
    return margins


def _total_error(totals: Sequence[tuple[float, float]]) -> float:
    actual = sum(abs(a) for _, a in totals)
    return sum(abs(f - a) for f, a in totals) / actual if actual > 0 else np.nan


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else np.nan


def _score_and_fall_back(
    task: _SeriesTask, result: _SeriesResult, fallback: bool = True, history: _ChannelHistory | None = None,
    scores: _SeriesScores | None = None, agreement: dict[str, float] | None = None,
) -> tuple[_SeriesResult, dict]:
    """Score the models against both naive baselines and publish the best that surely beats them, else the better
    baseline.

    The models are Prophet (``result``), ``level_weekday``, ``level_recent_mean``, ``level_reverting`` and, for
    revenue and conversions with the channel's ``history``, ``spend_regression``. A model qualifies when it beats
    the naive error on the backtest days, is no worse on horizon totals, and its ``choice_margin`` over the better
    naive baseline (the fold-to-fold lower bound of its skill, see ``SELECTION_MARGIN``) is above 0; the qualifying
    model with the highest margin is published (``choice_margin`` in the row), unless ``agreement`` (the channel's
    t statistic per model, see ``_channel_agreement``) judges that model and it is not above CHANNEL_AGREEMENT_T:
    then the better baseline is (``channel_agreement`` in the row).
    ``fallback=False`` publishes Prophet whatever the scores (the forecast as before the other models; still scored).
    """
    scores = scores if scores is not None else _series_scores(task, result, history, fallback)
    candidates, naive_mapes, best = scores.candidates, scores.naive_mapes, scores.naive
    naive_mape, naive_total = naive_mapes[best], _total_error(candidates[best].fold_totals)
    models = {METHOD: (_ratio(result.abs_error, result.abs_actual), _total_error(result.fold_totals))}
    if fallback:
        models.update({method: (_ratio(c.abs_error, c.abs_actual), _total_error(c.fold_totals))
                       for method, c in candidates.items() if method not in NAIVE_METHODS})

    def rank(method):
        mape = models[method][0]
        return np.inf if np.isnan(mape) else mape

    # A model that cannot be scored (no held-out actuals) is kept; one that does not beat the naive error on days,
    # or does worse on the horizon totals the ROI table sums, does not qualify; nor one whose edge over naive is
    # within the fold-to-fold spread.
    beats = {method: mape < naive_mape and not skill_score(total, naive_total) < 0
             for method, (mape, total) in models.items()}
    margins = (_selection_scores(scores, [m for m in models if beats[m]])
               if fallback and not np.isnan(naive_mape) else {})
    eligible = [method for method in models if margins.get(method, -np.inf) > 0]
    agreement = agreement or {}
    picked = max(eligible, key=lambda m: margins[m]) if eligible else best
    if fallback:
        # A choice the channel's other series do not back is luck on this series' folds (CHANNEL_AGREEMENT_T).
        vetoed = picked in agreement and not agreement[picked] > CHANNEL_AGREEMENT_T
        chosen = best if vetoed else picked
    else:
        chosen = METHOD
    model = chosen if chosen in models else min(models, key=rank)
    model_mape, model_total = models[model]
    if np.isnan(naive_mape) and chosen != METHOD:
        chosen = model = METHOD
        model_mape, model_total = models[METHOD]
    on_naive = chosen in NAIVE_METHODS
    published_mape, published_total = (naive_mape, naive_total) if on_naive else (model_mape, model_total)
    row = {
        "channel": task.channel, "metric": task.metric, "method": chosen,
        "model_mape": model_mape, **{f"{m}_mape": naive_mapes[m] for m in NAIVE_METHODS},
        "naive_method": best, "naive_mape": naive_mape, "skill": skill_score(model_mape, naive_mape),
        "model_total_error": model_total, "naive_total_error": naive_total,
        "total_skill": skill_score(model_total, naive_total),
        "published_mape": published_mape,
        "published_skill": 0.0 if on_naive else skill_score(published_mape, naive_mape),
        "published_total_skill": 0.0 if on_naive else skill_score(published_total, naive_total),
        "folds": result.folds,
        "prophet_mape": _ratio(result.abs_error, result.abs_actual),
        **{f"{m}_mape": (_ratio(candidates[m].abs_error, candidates[m].abs_actual) if m in candidates else np.nan)
           for m in (LEVEL_METHOD, RECENT_LEVEL_METHOD, SPEND_REGRESSION_METHOD, REVERTING_METHOD)},
        "future_spend": FUTURE_SPEND if chosen == SPEND_REGRESSION_METHOD else "",
        "choice_margin": margins.get(chosen, np.nan),
        "channel_agreement": agreement.get(picked, np.nan),
    }
    if chosen == METHOD:
        return result, row
    return _replaced_result(task, result, chosen, candidates[chosen]), row


def _replaced_result(task: _SeriesTask, result: _SeriesResult, method: str, candidate: _Candidate) -> _SeriesResult:
    """The model's result with its forecast rows replaced by ``candidate``'s, and draws around them.

    Draws keep the square-root scale of the models: a daily noise sd from the method's own residuals over the last
    28 live days, and a level that moves per draw by as much as its horizon totals missed in the backtest folds
    (root mean square of the log ratios). The calibration (``_interval_factor``) widens them where that is too
    narrow for the folds.
    """
    values = task.fit_values
    point = candidate.horizon
    sigma = max(float(np.std(np.sqrt(values[-NAIVE_WINDOW_DAYS:]) - np.sqrt(candidate.recent))), 1e-12)
    log_ratios = [np.log(a / f) for f, a in candidate.fold_totals if f > 0 and a > 0]
    level_sd = float(np.sqrt(np.mean(np.square(log_ratios)))) / 2.0 if log_ratios else 0.0
    n_draws = result.horizon_paths.shape[1]
    rng = np.random.default_rng(np.random.SeedSequence([task.seed, _stable_id(method)]))
    level = np.exp(level_sd * rng.standard_normal(n_draws))
    # Centre the root-scale draws so that the mean of (root + noise)^2 is the point.
    root = np.sqrt(np.maximum(point - sigma * sigma, 0.0))
    n_history = len(task.history_dates)
    return _SeriesResult(
        yhat=np.concatenate([result.yhat[:n_history], point]),
        yhat_lower=np.concatenate([result.yhat_lower[:n_history], point]),
        yhat_upper=np.concatenate([result.yhat_upper[:n_history], point]),
        horizon_paths=root[:, None] * level[None, :],
        sigma=sigma,
        residuals=result.residuals,
        abs_error=candidate.abs_error,
        abs_actual=candidate.abs_actual,
        folds=result.folds,
        fold_totals=candidate.fold_totals,
        fit_seconds=result.fit_seconds,
        backtest_seconds=result.backtest_seconds,
        cpu_seconds=result.cpu_seconds,
        fold_predictions=candidate.fold_predictions,
    )


def _interval_factor(
    task: _SeriesTask, result: _SeriesResult, point: np.ndarray, draws: np.ndarray, interval_width: float,
) -> tuple[float, float, float]:
    """How much the published interval must widen to hold ``interval_width`` of the backtest's held-out days.

    The published interval of horizon day k, as offsets from the point on the square-root scale, is laid around each
    fold's forecast of its k-th day. Returns the split-conformal factor (>= 1: the smallest scaling of those offsets
    that covers the conformal quantile of the held-out days), and the share of held-out days covered before and
    after widening by it. (1, NaN, NaN) when the folds have no held-out day.
    """
    if not result.fold_predictions:
        return 1.0, np.nan, np.nan
    low_q, high_q = _quantile_levels(interval_width)
    lower, upper = _interval_around(point, draws, low_q, high_q)
    centre = np.sqrt(point)
    up = np.maximum(np.sqrt(upper) - centre, 1e-9)
    down = np.maximum(centre - np.sqrt(lower), 1e-9)
    fit_dates = task.history_dates[task.fit_mask]
    step = np.timedelta64(task.horizon_days, "D")
    needed = []
    for cutoff, predicted in zip(task.cutoffs, result.fold_predictions, strict=True):
        holdout = (fit_dates > cutoff) & (fit_dates <= cutoff + step)
        day = ((fit_dates[holdout] - cutoff) // np.timedelta64(1, "D")).astype(np.int64) - 1
        residual = np.sqrt(task.fit_values[holdout]) - np.sqrt(np.maximum(predicted, 0.0))
        needed.append(np.where(residual > 0, residual / up[day], -residual / down[day]))
    needed = np.concatenate(needed)
    if not len(needed):
        return 1.0, np.nan, np.nan
    level = min(1.0, np.ceil((len(needed) + 1) * interval_width) / len(needed))
    factor = max(1.0, float(np.quantile(needed, level, method="higher")))
    return factor, float(np.mean(needed <= 1.0)), float(np.mean(needed <= factor))


def _widened(point: np.ndarray, draws: np.ndarray, factor: float) -> np.ndarray:
    """Draws spread ``factor`` times as far from the point on the square-root scale (ranks, hence joint draws and
    their ratios' pairing, unchanged)."""
    centre = np.sqrt(np.asarray(point, dtype=float))[:, None]
    return _back_transform(centre + factor * (np.sqrt(draws) - centre))


def _noise_correlation(residuals: np.ndarray) -> np.ndarray:
    """Correlation of the residual columns; a constant column (a metric that is always 0) is independent."""
    n_rows, n_metrics = residuals.shape
    correlation = np.eye(n_metrics)
    live = residuals.std(axis=0) > 0
    if n_rows >= 3 and live.sum() >= 2:
        correlation[np.ix_(live, live)] = np.corrcoef(residuals[:, live], rowvar=False)
    return correlation


def _correlation_factor(correlation: np.ndarray) -> np.ndarray:
    """A matrix F with F @ F.T == correlation, also when it is singular (e.g. reach = c * impressions)."""
    eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def _joint_draws(results: list[_SeriesResult], correlation: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Joint horizon draws (horizon x draws) of a channel's metrics, column k being one joint draw.

    Prophet samples each model's future trend and noise on its own. Here the noise of a day is
    drawn jointly with the residual correlation, and the trend paths of the metrics are paired
    by rank with normal scores of that same correlation (Iman and Conover, 1982), so that a
    draw with high spend also tends to have high revenue, as the history says it should.
    """
    factor = _correlation_factor(correlation)
    n_horizon, n_draws = results[0].horizon_paths.shape
    path_scores = rng.standard_normal((n_draws, len(results))) @ factor.T
    noise = rng.standard_normal((n_horizon, n_draws, len(results))) @ factor.T
    draws = []
    for j, result in enumerate(results):
        by_level = np.argsort(result.horizon_paths.sum(axis=0), kind="stable")
        score_rank = np.argsort(np.argsort(path_scores[:, j], kind="stable"), kind="stable")
        paths = result.horizon_paths[:, by_level[score_rank]]
        draws.append(_back_transform(paths + result.sigma * noise[:, :, j]))
    return draws


def _quantile_levels(interval_width: float) -> tuple[float, float]:
    return (1.0 - interval_width) / 2.0, (1.0 + interval_width) / 2.0


def _interval_around(
    point: np.ndarray, samples: np.ndarray, low_q: float, high_q: float
) -> tuple[np.ndarray, np.ndarray]:
    """Quantile interval of samples (rows x draws) per row, widened to contain the point.

    NaN draws (undefined ratios) are ignored; a row with no defined draw collapses to its point.
    """
    point = np.asarray(point, dtype=float)
    if np.isnan(samples).any():
        with warnings.catch_warnings():
            # A row without any defined draw is expected (handled below), not worth a warning.
            warnings.simplefilter("ignore", RuntimeWarning)
            lower, upper = np.nanquantile(samples, [low_q, high_q], axis=1)
    else:
        # np.nanquantile works row by row in Python; this path is vectorised.
        lower, upper = np.quantile(samples, [low_q, high_q], axis=1)
    lower = np.fmin(np.where(np.isnan(lower), point, lower), point)
    upper = np.fmax(np.where(np.isnan(upper), point, upper), point)
    return lower, upper


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray, at_least: float = 0.0) -> np.ndarray:
    """numerator / denominator where the denominator is above `at_least` (and positive), NaN elsewhere."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > max(at_least, 0.0))
    return out


# A spend draw below a cent a day has no ROI: dividing by it gave upper bounds of 1e19 (a draw of
# floating-point dust, seen on a scale-0.1 demo).
MIN_SPEND_PER_DAY_FOR_ROI = 0.01


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _series_seed(seed: int, channel: str, metric: str) -> int:
    # crc32 rather than hash(): str hashes are salted per process, and workers must agree.
    return int(np.random.SeedSequence([seed, _stable_id(channel), _stable_id(metric)]).generate_state(1)[0])


def _finish_table(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        dtypes = {column: "bool" if column == "is_forecast" else "float64" for column in columns}
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})
    table = pd.concat(non_empty, ignore_index=True)[list(columns)].astype({"is_forecast": bool})
    return table.sort_values(["channel", "date"], ignore_index=True)
