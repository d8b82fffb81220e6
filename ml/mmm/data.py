"""Input shaping for the media-mix model: the wide daily frame, its validation, and the model window
(the fitted days, the longer curve history, holidays left out, and the baseline's control columns).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.events import model_event_days

__all__ = ["daily_frame"]

_RESERVED = ("date", "revenue")
# Hinge spacing of the piecewise-linear trend used when curves are learnt on a long history.
_CURVE_KNOT_DAYS = 90


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


# --------------------------------------------------------------------------- validation


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


def _check_settings(
    *, criterion, selection, prior_strength, lookback_days, min_days, n_bootstrap, ci, cv_horizon_days,
    block_days, curve_points, curve_max_multiple, decay_grid, half_grid, shape_grid, alpha_grid, max_passes,
    yearly_fourier_order, delay_grid=(0,),
) -> None:
    """Raise ``ValueError`` naming the first of :func:`fit_media_mix_model`'s settings out of range."""
    if criterion not in ("cv", "in_sample"):
        raise ValueError(f"criterion must be 'cv' or 'in_sample', got {criterion!r}")
    if selection not in ("consensus", "best"):
        raise ValueError(f"selection must be 'consensus' or 'best', got {selection!r}")
    if not (isinstance(prior_strength, (int, float)) and math.isfinite(prior_strength) and prior_strength >= 0):
        raise ValueError(f"prior_strength must be a finite number >= 0, got {prior_strength!r}")
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
    delays = np.asarray(delay_grid, dtype=float)
    if delays.size == 0 or 0 not in delays or (delays < 0).any() or (delays != np.round(delays)).any() or delays.max() > 28:
        raise ValueError(f"delay_grid must be whole days in [0, 28] including 0, got {list(delay_grid)}")


def _validated_history(
    daily: pd.DataFrame, channels: Sequence[str] | None, lookback_days: int, min_days: int
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``date, revenue, <channel>...`` sorted by date with float values, and the channel names."""
    names = _channel_columns(daily, channels)
    frame = daily.loc[:, ["date", "revenue", *names]].copy()
    frame["date"] = _to_days(frame["date"], "daily.date")
    frame = frame.sort_values("date", kind="stable").reset_index(drop=True)
    _check_calendar(frame, min_days)
    for column in ("revenue", *names):
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"daily.{column} must be numeric, got dtype {daily[column].dtype}") from None
    _check_values(frame, names, lookback_days)
    return frame, names


def _channel_columns(daily: pd.DataFrame, channels: Sequence[str] | None) -> tuple[str, ...]:
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
    return names


def _check_calendar(frame: pd.DataFrame, min_days: int) -> None:
    """One row per consecutive day, and at least ``min_days`` of them."""
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


def _check_values(frame: pd.DataFrame, names: Sequence[str], lookback_days: int) -> None:
    """Finite revenue in the window; finite, non-negative spend on every day (adstock reads them all)."""
    window = frame.iloc[-min(lookback_days, len(frame)):]
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


# --------------------------------------------------------------------------- the model window


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


@dataclass(frozen=True)
class _Window:
    """The days the model sees: the window it is fitted on and the curve history ending with it.

    ``spend`` covers every day of the input (adstock warm-up); ``revenue``, ``dates``, ``controls``
    and ``rows`` (the fitted, non-holiday days) cover the window; the ``curve_*`` fields the same
    for the curve history, which is the window itself when there is no longer one.
    """

    spend: np.ndarray  # (channels, input days)
    dates: pd.DatetimeIndex
    revenue: np.ndarray
    excluded: np.ndarray  # window days left out as holidays or retail peaks
    rows: np.ndarray
    controls: np.ndarray
    control_names: list[str]
    curve_dates: pd.DatetimeIndex
    curve_revenue: np.ndarray
    curve_rows: np.ndarray
    curve_controls: np.ndarray
    saturation_scale: np.ndarray  # per channel: the daily spend the half-saturation grid multiplies
    outliers: np.ndarray | None = None  # window days left out as outliers (a subset of ``excluded``)
    level_shift_date: str | None = None  # first day of a detected permanent baseline level shift

    @property
    def n_days(self) -> int:
        return len(self.dates)

    @property
    def n_history_days(self) -> int:
        return self.spend.shape[1]

    @property
    def n_curve_days(self) -> int:
        return len(self.curve_dates)

    @property
    def spend_in_window(self) -> np.ndarray:
        return self.spend[:, -self.n_days:]

    @property
    def current_daily_spend(self) -> np.ndarray:
        return self.spend_in_window.mean(axis=1)


def _model_window(
    frame: pd.DataFrame,
    names: Sequence[str],
    *,
    lookback_days: int,
    curve_history_days: int,
    min_days: int,
    holidays: Iterable[Any] | None,
    retail_peaks: bool,
    holiday_country: str | None,
    yearly_fourier_order: int,
) -> _Window:
    """Cut the validated history into the window and the curve history, and leave out holidays."""
    n_history = len(frame)
    n = min(lookback_days, n_history)
    dates = pd.DatetimeIndex(frame["date"].iloc[-n:])
    y = frame["revenue"].to_numpy(dtype=float)[-n:]
    spend = frame[list(names)].to_numpy(dtype=float).T
    m = min(max(curve_history_days, n), n_history)
    curve_dates = pd.DatetimeIndex(frame["date"].iloc[-m:])
    y_curve = frame["revenue"].to_numpy(dtype=float)[-m:]
    if m > n and not np.isfinite(y_curve).all():
        m = n  # revenue is only validated inside the window; a gap before it keeps curves on the window
        curve_dates, y_curve = dates, y

    holiday_days = _holiday_days(holidays, retail_peaks, holiday_country, curve_dates)
    excluded = dates.isin(holiday_days)
    rows = np.flatnonzero(~excluded)
    controls, control_names = _controls(dates, yearly_fourier_order)
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
    return _Window(
        spend=spend, dates=dates, revenue=y, excluded=excluded, rows=rows, controls=controls,
        control_names=control_names, curve_dates=curve_dates, curve_revenue=y_curve,
        curve_rows=np.flatnonzero(~curve_dates.isin(holiday_days)), curve_controls=curve_controls,
        saturation_scale=_saturation_scale(spend[:, -m:], spend),
    )
