"""Forecast scoring: the daily forecasts kept in the prediction history against the actuals that have
arrived since, per point and summarised by horizon. Pure: DataFrames in, DataFrames out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The daily forecast tables and the metrics each forecasts, scored against analytics.fct_channel_daily.
SCORED_METRICS: dict[str, tuple[str, ...]] = {
    "ml_roi_timeseries": ("roi", "conversions"),
    "ml_reach_ctr_timeseries": ("reach", "impressions", "clicks", "ctr"),
}
RECENT_DAYS = 28  # the trailing window of the "last 28 days" WAPE and hit rate
# The hit-rate warning needs this many scored points of a metric: the days of one channel are correlated,
# so 100 points are roughly three weeks of five channels, enough that a 10-point shortfall is not chance.
MIN_POINTS_FOR_HIT_RATE = 100
HIT_RATE_MARGIN = 0.10  # "well below nominal": at least 10 points, and at least 3 standard errors, under it

SCORED, PENDING, UNSCORABLE = "scored", "pending", "not scorable"
POINT_COLUMNS = ["forecast_run_id", "forecast_generated_at", "forecast_origin_date", "date", "horizon_days",
                 "channel", "metric", "predicted", "predicted_lower", "predicted_upper", "actual", "error",
                 "abs_error", "in_interval", "status"]
HORIZON_COLUMNS = ["metric", "horizon_days", "scored_points", "pending_points", "mean_error", "mean_abs_error",
                   "wape", "interval_hit_rate", "nominal_coverage", "recent_scored_points", "recent_wape",
                   "recent_interval_hit_rate"]


def forecast_points(forecasts: pd.DataFrame, origins: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Long forecast points of one daily forecast table's history.

    forecasts: its forecast rows (is_forecast true) of any number of runs, with ``run_id, generated_at,
        date, channel`` and each metric with ``_lower``/``_upper``.
    origins: ``run_id, origin_date``: the last day of actuals each run forecast from.

    Runs that forecast from the same last day saw the same data (the schedule refreshes 48 times a day,
    the data arrives daily): the latest of them stands for that data cut, so every (origin, channel,
    metric, day) is scored once. Points without a predicted value (a metric the data lacks) are left out.
    """
    parts = []
    for metric in metrics:
        part = forecasts[["run_id", "generated_at", "date", "channel"]].copy()
        part["metric"] = metric
        part["predicted"] = pd.to_numeric(forecasts[metric], errors="coerce")
        part["predicted_lower"] = pd.to_numeric(forecasts[f"{metric}_lower"], errors="coerce")
        part["predicted_upper"] = pd.to_numeric(forecasts[f"{metric}_upper"], errors="coerce")
        parts.append(part[part["predicted"].notna()])
    columns = ["run_id", "generated_at", "date", "channel", "metric", "predicted", "predicted_lower", "predicted_upper"]
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    points = points.merge(origins[["run_id", "origin_date"]], on="run_id", how="inner")
    points["date"] = pd.to_datetime(points["date"])
    points["origin_date"] = pd.to_datetime(points["origin_date"])
    points["generated_at"] = pd.to_datetime(points["generated_at"])
    points = (points.sort_values("generated_at")
              .drop_duplicates(["origin_date", "channel", "metric", "date"], keep="last"))
    points["horizon_days"] = (points["date"] - points["origin_date"]).dt.days.astype("int64")
    return points.rename(columns={"run_id": "forecast_run_id", "generated_at": "forecast_generated_at",
                                  "origin_date": "forecast_origin_date"})


def daily_actuals(daily: pd.DataFrame) -> pd.DataFrame:
    """``date, channel, metric, actual`` from fct_channel_daily, defined as the forecasts define them:
    ROI = (revenue - spend) / spend on days with spend, CTR = clicks / impressions on days with impressions."""
    frame = daily.copy()
    frame["date"] = pd.to_datetime(frame["date"])
    numbers = {c: pd.to_numeric(frame[c], errors="coerce")
               for c in ("spend", "revenue", "conversions", "reach", "impressions", "clicks")}
    spend, impressions = numbers["spend"], numbers["impressions"]
    values = {
        "roi": ((numbers["revenue"] - spend) / spend).where(spend > 0),
        "ctr": (numbers["clicks"] / impressions).where(impressions > 0),
        **{m: numbers[m] for m in ("conversions", "reach", "impressions", "clicks")},
    }
    parts = [pd.DataFrame({"date": frame["date"], "channel": frame["channel"].astype(str), "metric": m,
                           "actual": v.astype("float64")}) for m, v in values.items()]
    return pd.concat(parts, ignore_index=True)


def score_points(points: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Every forecast point with its actual, error and interval hit, or why it is not scored yet.

    status: ``scored``; ``pending`` (its day is after the last day of actuals); ``not scorable`` (the day
    has arrived but the metric has no value that day, e.g. ROI on a day without spend).
    """
    last_day = pd.to_datetime(actuals["date"]).max() if len(actuals) else pd.NaT
    scored = points.merge(actuals, on=["date", "channel", "metric"], how="left")
    arrived = scored["date"] <= last_day if not pd.isna(last_day) else pd.Series(False, index=scored.index)
    has_actual = scored["actual"].notna() & arrived
    scored.loc[~has_actual, "actual"] = np.nan
    scored["error"] = scored["predicted"] - scored["actual"]
    scored["abs_error"] = scored["error"].abs()
    inside = (scored["actual"] >= scored["predicted_lower"]) & (scored["actual"] <= scored["predicted_upper"])
    scored["in_interval"] = pd.array(np.where(has_actual, inside, None), dtype="boolean")
    scored["status"] = np.where(has_actual, SCORED, np.where(arrived, UNSCORABLE, PENDING))
    scored = scored.sort_values(["forecast_origin_date", "metric", "channel", "date"], ignore_index=True)
    return scored[POINT_COLUMNS]


def _wape(frame: pd.DataFrame) -> float:
    denominator = frame["actual"].abs().sum()
    return float(frame["abs_error"].sum() / denominator) if len(frame) and denominator > 0 else math.nan


def accuracy_by_horizon(scored: pd.DataFrame, nominal_coverage: float, recent_days: int = RECENT_DAYS) -> pd.DataFrame:
    """One row per metric and horizon (days ahead): scored and pending points, bias, mean absolute error,
    WAPE (sum |error| / sum |actual|), interval hit rate, and the same over the last `recent_days` days of
    actuals (a trailing window: read across runs in the history, it is the rolling WAPE)."""
    done = scored[scored["status"] == SCORED]
    last_day = done["date"].max() if len(done) else pd.NaT
    rows = []
    for (metric, horizon), group in scored.groupby(["metric", "horizon_days"], sort=True):
        hits = group[group["status"] == SCORED]
        recent = hits[hits["date"] > last_day - pd.Timedelta(days=recent_days)] if len(hits) else hits
        rows.append({
            "metric": metric, "horizon_days": int(horizon), "scored_points": len(hits),
            "pending_points": int((group["status"] == PENDING).sum()),
            "mean_error": float(hits["error"].mean()) if len(hits) else math.nan,
            "mean_abs_error": float(hits["abs_error"].mean()) if len(hits) else math.nan,
            "wape": _wape(hits),
            "interval_hit_rate": float(hits["in_interval"].astype(bool).mean()) if len(hits) else math.nan,
            "nominal_coverage": float(nominal_coverage),
            "recent_scored_points": len(recent), "recent_wape": _wape(recent),
            "recent_interval_hit_rate": float(recent["in_interval"].astype(bool).mean()) if len(recent) else math.nan,
        })
    table = pd.DataFrame(rows, columns=HORIZON_COLUMNS)
    return table.astype({"horizon_days": "int64", "scored_points": "int64", "pending_points": "int64",
                         "recent_scored_points": "int64"})


@dataclass(frozen=True)
class HitRateVerdict:
    passed: bool
    description: str
    per_metric: pd.DataFrame  # metric, scored_points, interval_hit_rate, warn_below, judged, below


def hit_rate_verdict(scored: pd.DataFrame, nominal_coverage: float,
                     min_points: int = MIN_POINTS_FOR_HIT_RATE) -> HitRateVerdict:
    """Whether any metric's interval hit rate is well below nominal: with at least `min_points` scored
    points, below nominal minus the larger of HIT_RATE_MARGIN and three binomial standard errors."""
    done = scored[scored["status"] == SCORED]
    rows = []
    for metric, group in done.groupby("metric", sort=True):
        n = len(group)
        rate = float(group["in_interval"].astype(bool).mean())
        floor = nominal_coverage - max(HIT_RATE_MARGIN, 3 * math.sqrt(nominal_coverage * (1 - nominal_coverage) / n))
        judged = n >= min_points
        rows.append({"metric": metric, "scored_points": n, "interval_hit_rate": rate, "warn_below": floor,
                     "judged": judged, "below": judged and rate < floor})
    table = pd.DataFrame(rows, columns=["metric", "scored_points", "interval_hit_rate", "warn_below", "judged", "below"])
    low = table[table["below"]]
    if not len(table):
        return HitRateVerdict(True, "no forecast point scored yet: nothing to judge (the forecasts' days have not "
                                    "arrived in the actuals)", table)
    if len(low):
        listed = "; ".join(f"{r.metric}: {r.interval_hit_rate:.0%} of {r.scored_points} points inside the "
                           f"{nominal_coverage:.0%} interval (warn below {r.warn_below:.0%})" for r in low.itertuples())
        return HitRateVerdict(False, f"forecast intervals too narrow: {listed}", table)
    unjudged = table[~table["judged"]]
    judged = table[table["judged"]]
    parts = [f"{r.metric} {r.interval_hit_rate:.0%} ({r.scored_points})" for r in judged.itertuples()]
    text = (f"interval hit rates near the nominal {nominal_coverage:.0%}: " + ", ".join(parts)) if parts else ""
    if len(unjudged):
        text += ("; " if text else "") + (f"too few scored points to judge (fewer than {min_points}): "
                                          + ", ".join(f"{r.metric} ({r.scored_points})" for r in unjudged.itertuples()))
    return HitRateVerdict(True, text, table)
