"""Forecast scoring: pure scoring of crafted forecasts against crafted actuals, and the asset on real DuckDB and
PostgreSQL warehouses whose history holds two runs' forecasts (pending, scored, not scorable), with chart and warning."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from assets.charts import chart_assets
from assets.forecast_accuracy import forecast_accuracy
from assets.resources import ChartStore, Warehouse
from charts.plots import PNG_SIGNATURE, ChartContext, forecast_accuracy_chart
from core.quality import validate_table
from ml.forecast_scoring import (PENDING, SCORED, UNSCORABLE, accuracy_by_horizon, daily_actuals, forecast_points,
                                 hit_rate_verdict, score_points)

ACCURACY_CHART = next(a for a in chart_assets if a.key.to_user_string() == "forecast_accuracy_chart")
START = pd.Timestamp("2025-03-01")
NOW = datetime.now(timezone.utc)


def _daily(days: int, channels=("search", "social")) -> pd.DataFrame:
    """Spend 100 a day (none on day 3 of social), revenue 150, 10 conversions, 1000 impressions, 50 clicks."""
    rows = []
    for i in range(days):
        for c in channels:
            spend = 0.0 if (c == "social" and i == 3) else 100.0
            rows.append((START + pd.Timedelta(days=i), c, spend, 150.0, 10.0, 800.0, 1000.0, 50.0))
    return pd.DataFrame(rows, columns=["date", "channel", "spend", "revenue", "conversions", "reach", "impressions",
                                       "clicks"])


def _roi_timeseries(history_days: int, horizon: int, conversions: float, width: float,
                    channels=("search", "social")) -> pd.DataFrame:
    """History rows to `history_days`, then a flat forecast of ROI 0.5 and `conversions` (+/- width)."""
    rows = []
    for c in channels:
        for i in range(history_days):
            rows.append((START + pd.Timedelta(days=i), c, 0.5, 10.0, False, 0.5, 0.5, 10.0, 10.0))
        for h in range(1, horizon + 1):
            rows.append((START + pd.Timedelta(days=history_days - 1 + h), c, 0.5, conversions, True, 0.5 - width,
                         0.5 + width, conversions - width, conversions + width))
    return pd.DataFrame(rows, columns=["date", "channel", "roi", "conversions", "is_forecast", "roi_lower",
                                       "roi_upper", "conversions_lower", "conversions_upper"])


def _points(*runs: tuple[pd.DataFrame, str, datetime]) -> pd.DataFrame:
    """Forecast points of several runs' ml_roi_timeseries, read together as the asset reads the history."""
    forecasts = pd.concat([f[f["is_forecast"]].assign(run_id=r, generated_at=g) for f, r, g in runs])
    origins = pd.DataFrame({"run_id": [r for _, r, _ in runs],
                            "origin_date": [f.loc[~f["is_forecast"], "date"].max() for f, _, _ in runs]})
    return forecast_points(forecasts, origins, ("roi", "conversions"))


def test_points_are_scored_with_horizon_error_and_interval_hit_or_say_why_not():
    points = _points((_roi_timeseries(5, 4, 12.0, 1.0), "early", NOW - timedelta(days=2)),
                     (_roi_timeseries(6, 4, 10.0, 1.0), "later", NOW))
    scored = score_points(points, daily_actuals(_daily(8)))
    early = scored[(scored["forecast_run_id"] == "early") & (scored["channel"] == "search")].set_index(["metric", "date"])
    # Days 6-8 of the data (2025-03-06..08) have arrived, day 9 has not.
    assert early["horizon_days"].tolist() == [1, 2, 3, 4] * 2
    conv = early.loc["conversions"]
    assert conv["status"].tolist() == [SCORED, SCORED, SCORED, PENDING]
    assert conv["error"].iloc[0] == pytest.approx(2.0) and conv["abs_error"].iloc[0] == pytest.approx(2.0)
    assert conv["in_interval"].iloc[:3].tolist() == [False] * 3 and pd.isna(conv["in_interval"].iloc[3])
    assert early.loc["roi", "in_interval"].iloc[:3].tolist() == [True] * 3  # actual ROI 0.5 inside 0.5 +/- 1
    later = scored[scored["forecast_run_id"] == "later"]
    assert set(later["horizon_days"]) == {1, 2, 3, 4}
    assert validate_table("forecast_accuracy", scored.assign(run_id="r", generated_at=NOW.replace(tzinfo=None))).passed


def test_a_day_without_the_metric_is_not_scorable_and_one_forecast_stands_for_each_data_cut():
    frame = _roi_timeseries(3, 2, 10.0, 1.0)
    # Two runs forecast from the same last day: the later one is scored, once.
    points = _points((frame, "first", NOW - timedelta(minutes=30)), (frame, "second", NOW))
    scored = score_points(points, daily_actuals(_daily(6)))
    assert set(scored["forecast_run_id"]) == {"second"} and len(scored) == 2 * 2 * 2
    social_roi = scored[(scored["channel"] == "social") & (scored["metric"] == "roi")].set_index("horizon_days")
    assert social_roi.loc[1, "status"] == UNSCORABLE and pd.isna(social_roi.loc[1, "actual"])
    assert social_roi.loc[2, "status"] == SCORED


def test_summary_by_horizon_and_hit_rate_verdict():
    points = _points((_roi_timeseries(2, 3, 10.0, 0.5), "run", NOW))
    actuals = daily_actuals(_daily(4)).copy()  # the third forecast day has not arrived
    # Conversions on the first forecast day are 12 (error -2, outside +/- 0.5), then 10 (inside).
    actuals.loc[(actuals["metric"] == "conversions") & (actuals["date"] == START + pd.Timedelta(days=2)), "actual"] = 12.0
    scored = score_points(points, actuals)
    table = accuracy_by_horizon(scored, 0.95).set_index(["metric", "horizon_days"])
    row = table.loc[("conversions", 1)]
    assert row["scored_points"] == 2 and row["mean_error"] == pytest.approx(-2.0)
    assert row["wape"] == pytest.approx(4.0 / 24.0) and row["interval_hit_rate"] == 0.0
    assert table.loc[("conversions", 2), "interval_hit_rate"] == 1.0
    assert table.loc[("conversions", 3), "scored_points"] == 0 and table.loc[("conversions", 3), "pending_points"] == 2
    assert math.isnan(table.loc[("conversions", 3), "wape"])
    assert validate_table("forecast_accuracy_by_horizon",
                          table.reset_index().assign(run_id="r", generated_at=NOW.replace(tzinfo=None))).passed

    few = hit_rate_verdict(scored, 0.95, min_points=100)
    assert few.passed and "too few scored points" in few.description
    judged = hit_rate_verdict(scored, 0.95, min_points=4)
    assert not judged.passed and "conversions: 50% of 4 points" in judged.description
    first = hit_rate_verdict(scored[scored["status"] == PENDING], 0.95)
    assert first.passed and "no forecast point scored yet" in first.description


def test_the_chart_says_when_nothing_is_scored_yet_and_draws_otherwise():
    ctx = ChartContext(START.date(), (START + pd.Timedelta(days=9)).date(), NOW, "run-1")
    points = _points((_roi_timeseries(2, 3, 10.0, 0.5), "run", NOW))
    pending = accuracy_by_horizon(score_points(points, daily_actuals(_daily(2))), 0.95)
    scored = accuracy_by_horizon(score_points(points, daily_actuals(_daily(5))), 0.95)
    for table in (pending, scored):
        assert forecast_accuracy_chart(table, ctx).startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="lacks column"):
        forecast_accuracy_chart(scored.drop(columns=["wape"]), ctx)


def _reach_ctr(frame: pd.DataFrame) -> pd.DataFrame:
    """A reach/CTR table with the same days and forecast flag as an ROI table, its forecasts exact."""
    out = frame[["date", "channel", "is_forecast"]].copy()
    for metric, value in (("reach", 800.0), ("impressions", 1000.0), ("clicks", 50.0), ("ctr", 0.05)):
        out[metric], out[f"{metric}_lower"], out[f"{metric}_upper"] = value, value * 0.9, value * 1.1
    return out


@pytest.fixture
def warehouse(engine_url) -> Warehouse:
    return Warehouse(url=engine_url)


@pytest.mark.slow
def test_the_asset_scores_the_history_and_warns_when_intervals_are_too_narrow(warehouse, tmp_path):
    wh = warehouse
    charts = ChartStore(directory=str(tmp_path / "charts"))
    client = wh.client
    wh.publish_tables({"fct_channel_daily": _daily(10)}, schema="analytics", stamp=False)
    # One run so far, forecasting from day 10 (the last of the data): everything pending.
    first = _roi_timeseries(10, 5, 10.0, 0.2)
    client.publish_tables({"ml_roi_timeseries": first, "ml_reach_ctr_timeseries": _reach_ctr(first)}, run_id="one",
                          generated_at=NOW - timedelta(days=1))
    result = materialize([forecast_accuracy, ACCURACY_CHART], resources={"warehouse": wh, "charts": charts})
    assert result.success
    table = wh.read_table("predictions", "forecast_accuracy")
    assert set(table["status"]) == {PENDING} and len(table) == 2 * 6 * 5
    assert wh.read_table("predictions", "forecast_accuracy_by_horizon")["scored_points"].sum() == 0
    meta = result.asset_materializations_for_node("forecast_accuracy")[0].metadata
    assert "no forecast day has arrived yet" in meta["scoring"].value
    assert (tmp_path / "charts" / "forecast_accuracy.png").read_bytes().startswith(PNG_SIGNATURE)

    # Five new days arrive: conversions were 12 +/- 0.2 forecast, 10 happened; a second run forecasts on.
    wh.publish_tables({"fct_channel_daily": _daily(15)}, schema="analytics", stamp=False)
    second = _roi_timeseries(15, 5, 10.0, 0.2)
    first_narrow = _roi_timeseries(10, 5, 12.0, 0.2)
    client.publish_tables({"ml_roi_timeseries": first_narrow, "ml_reach_ctr_timeseries": _reach_ctr(first_narrow)},
                          run_id="one-again", generated_at=NOW - timedelta(hours=23))
    client.publish_tables({"ml_roi_timeseries": second, "ml_reach_ctr_timeseries": _reach_ctr(second)}, run_id="two",
                          generated_at=NOW)
    result = materialize([forecast_accuracy], resources={"warehouse": wh},
                         run_config={"ops": {"forecast_accuracy": {"config": {"min_points": 10}}}})
    assert result.success
    table = wh.read_table("predictions", "forecast_accuracy")
    scored = table[table["status"] == SCORED]
    # The later run of the day-10 data cut stands for it; its 5 days x 2 channels x 6 metrics are scored.
    assert set(scored["forecast_run_id"]) == {"one-again"} and len(scored) == 5 * 2 * 6
    assert set(table.loc[table["status"] == PENDING, "forecast_run_id"]) == {"two"}
    conv = scored[scored["metric"] == "conversions"]
    assert np.allclose(conv["error"], 2.0) and not conv["in_interval"].any()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    warn = checks["forecast_intervals_cover_nominal"]
    assert not warn.passed and "conversions: 0% of 10 points" in warn.description
    assert checks["gx_forecast_accuracy"].passed and checks["gx_forecast_accuracy_by_horizon"].passed
    # forecast_accuracy keeps no history of its own (it is rebuilt from the history); its summary does.
    from core.history import history_runs

    assert history_runs(client, "forecast_accuracy") == []
    assert len(history_runs(client, "forecast_accuracy_by_horizon")) == 2
