"""Tests for core.quality: each suite passes clean tables and names what breaks in broken ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import quality
from core.quality import SUITES, QualityResult, suite_for, validate_table

CHANNELS = ["display", "search", "social"]
RUN_STAMP = pd.Timestamp("2024-06-01 06:00:00")
REPO = Path(__file__).resolve().parents[2]


def published(frame: pd.DataFrame, run_id: str = "run-1") -> pd.DataFrame:
    return frame.assign(run_id=run_id, generated_at=RUN_STAMP)


# --------------------------------------------------------------------------------------------
# Valid tables, shaped like the ml/ outputs


def attribution_frame(keys: dict[str, list]) -> pd.DataFrame:
    """Every model over the given key rows; shares sum to one per model with intervals around them."""
    base = pd.DataFrame(keys)
    weights = np.arange(1, len(base) + 1, dtype=float)
    share = weights / weights.sum()
    parts = []
    for model in quality.ATTRIBUTION_MODELS:
        part = base.copy()
        part.insert(0, "model", model)
        part["attributed_conversions"] = share * 120.0
        part["attributed_revenue"] = share * 9000.0
        part["share"] = share
        part["share_lower"] = np.clip(share - 0.05, 0.0, 1.0)
        part["share_upper"] = np.clip(share + 0.05, 0.0, 1.0)
        part["spend"] = np.r_[0.0, np.full(len(base) - 1, 400.0)]
        part["attributed_roas"] = part["attributed_revenue"] / part["spend"].where(part["spend"] > 0)
        parts.append(part)
    return published(pd.concat(parts, ignore_index=True))


def channel_attribution() -> pd.DataFrame:
    return attribution_frame({"channel": CHANNELS})


def campaign_attribution() -> pd.DataFrame:
    return attribution_frame({"campaign_id": ["c1", "c2", "c3", "c4"], "campaign_name": ["a", None, "c", "d"],
                             "channel": ["display", "search", "search", "social"]})


def campaign_channel_attribution() -> pd.DataFrame:
    return attribution_frame({"campaign_id": ["c1", "c2", "c3", "c4"], "channel": ["display", "search", "search", "social"]})


def mmm_channel_roas() -> pd.DataFrame:
    # display spent nothing in the window: ml.mmm leaves its ROAS undefined (NaN).
    spend = np.array([0.0, 5000.0, 3000.0])
    contribution = np.array([0.0, 9000.0, 3000.0])
    share = contribution / contribution.sum()
    roas = np.where(spend > 0, contribution / np.where(spend > 0, spend, 1.0), np.nan)
    marginal = np.array([2.5, 0.9, 0.6])
    return published(pd.DataFrame({
        "channel": CHANNELS, "spend": spend,
        "contribution": contribution, "contribution_lower": contribution * 0.7, "contribution_upper": contribution * 1.3,
        "contribution_share": share, "contribution_share_lower": share * 0.8, "contribution_share_upper": np.minimum(share * 1.2, 1.0),
        "roas": roas, "roas_lower": roas * 0.7, "roas_upper": roas * 1.3,
        "marginal_roas": marginal, "marginal_roas_lower": marginal * 0.5, "marginal_roas_upper": marginal * 1.5,
        "adstock_decay": [0.0, 0.3, 0.6], "saturation_half": [50.0, 150.0, 90.0], "saturation_shape": [1.0, 1.5, 2.0],
        "identifiable": [True, True, False],
        "review_reason": ["", "", "spend hardly varies (coefficient of variation 0.02 < 0.1)"],
    }))


def mmm_response_curves() -> pd.DataFrame:
    parts = []
    for i, channel in enumerate(CHANNELS):
        grid = np.linspace(0.0, 300.0, 7)
        revenue = (i + 1) * 400.0 * grid / (grid + 100.0)
        parts.append(pd.DataFrame({
            "channel": channel, "daily_spend": grid, "predicted_incremental_revenue": revenue,
            "predicted_incremental_revenue_lower": revenue * 0.8,
            "predicted_incremental_revenue_upper": revenue * 1.25, "is_current": grid == 100.0,
        }))
    return published(pd.concat(parts, ignore_index=True))


def mmm_response_parameters() -> pd.DataFrame:
    rows = []
    for i, channel in enumerate(CHANNELS):
        for draw in range(4):
            rows.append({
                "channel": channel, "draw": draw, "coefficient": (i + 1) * 400.0 * (1 + 0.05 * draw),
                "saturation_half": 100.0, "saturation_shape": 1.0, "adstock_decay": 0.3,
                "current_daily_spend": 90.0 + i, "baseline_daily": 1500.0, "ci": 0.95,
                "saturation_family": "exponential" if i == 0 else "hill",
            })
    return published(pd.DataFrame(rows))


def mmm_revenue_decomposition() -> pd.DataFrame:
    days = pd.date_range("2026-01-01", periods=5, freq="D")
    parts = [pd.DataFrame({"date": days, "component": component, "value": 100.0 + k})
             for k, component in enumerate(["baseline", *CHANNELS])]
    return published(pd.concat(parts, ignore_index=True))


def attribution_model_comparison() -> pd.DataFrame:
    from core.registry import ATTRIBUTION_MODELS

    frame = pd.DataFrame({"channel": CHANNELS})
    for model in ATTRIBUTION_MODELS:
        frame[model] = 1.0 / len(CHANNELS)
    return published(frame)


def mmm_diagnostics() -> pd.DataFrame:
    return published(pd.DataFrame({
        "metric": ["r2", "mape", "start_date", "adstock_decay[search]"],
        "value": [0.91, 0.08, np.nan, 0.3],
        "detail": ["", "", "2023-01-01", "channel search"],
    }))


def ml_roi_forecast() -> pd.DataFrame:
    return published(pd.DataFrame({
        "channel": CHANNELS, "horizon_days": 30, "predicted_spend": [900.0, 3000.0, 1500.0],
        "predicted_revenue": [1200.0, 5100.0, 1650.0], "predicted_roi": [0.3333, 0.7, 0.1],
        "roi_lower": [0.1, 0.5, -0.2], "roi_upper": [0.6, 0.9, 0.4], "method": "prophet",
        # no revenue in any backtest fold leaves the error undefined
        "backtest_mape": [0.21, 0.12, np.nan], "naive_mape": [0.3, 0.12, np.nan], "skill": [0.3, 0.0, np.nan],
        "total_skill": [0.45, 0.0, np.nan],
    }))


def _timeseries(history_days: int = 8, horizon: int = 4) -> tuple[pd.DataFrame, np.ndarray]:
    dates = pd.date_range("2024-03-01", periods=history_days + horizon, freq="D")
    frame = pd.DataFrame({
        "date": np.tile(dates, len(CHANNELS)),
        "channel": np.repeat(CHANNELS, len(dates)),
        "is_forecast": np.tile(np.arange(len(dates)) >= history_days, len(CHANNELS)),
    })
    return frame, frame["is_forecast"].to_numpy()


def ml_roi_timeseries() -> pd.DataFrame:
    frame, forecast = _timeseries()
    rng = np.random.default_rng(3)
    roi = rng.normal(0.4, 0.2, len(frame))
    roi[3] = np.nan  # a paused history day: ROI undefined, bounds too
    conversions = rng.uniform(5.0, 20.0, len(frame))
    width = np.where(forecast, 0.3, 0.0)
    frame["roi"], frame["conversions"] = roi, conversions
    frame["roi_lower"], frame["roi_upper"] = roi - width, roi + width
    frame["conversions_lower"] = conversions * np.where(forecast, 0.7, 1.0)
    frame["conversions_upper"] = conversions * np.where(forecast, 1.3, 1.0)
    return published(frame)


def ml_reach_ctr_timeseries() -> pd.DataFrame:
    frame, forecast = _timeseries()
    rng = np.random.default_rng(4)
    impressions = rng.uniform(1000.0, 5000.0, len(frame))
    impressions[5] = 0.0
    clicks = impressions * rng.uniform(0.01, 0.05, len(frame))
    reach = impressions * 0.6
    ctr = np.where(impressions > 0, clicks / np.where(impressions > 0, impressions, 1.0), np.nan)
    for name, values in (("reach", reach), ("impressions", impressions), ("clicks", clicks), ("ctr", ctr)):
        upper = values * np.where(forecast, 1.2, 1.0)
        frame[name] = values
        frame[f"{name}_lower"] = values * np.where(forecast, 0.8, 1.0)
        frame[f"{name}_upper"] = np.minimum(upper, 1.0) if name == "ctr" else upper
    return published(frame)


def ml_budget_recommendation() -> pd.DataFrame:
    current = np.array([0.0, 120.0, 80.0])
    recommended = np.array([20.0, 110.0, 70.0])
    revenue = np.array([30.0, 260.0, 120.0])
    table = pd.DataFrame({
        "channel": [*CHANNELS, "TOTAL"],
        "current_spend": [*current, current.sum()],
        "recommended_spend": [*recommended, recommended.sum()],
        # a change from zero spend is undefined
        "change_pct": [np.nan, -8.3333, -12.5, 0.0],
        "current_expected_revenue": [0.0, 250.0, 125.0, 375.0],
        "recommended_expected_revenue": [*revenue, revenue.sum()],
        "recommended_expected_revenue_lower": [*(revenue * 0.8), revenue.sum() * 0.85],
        "recommended_expected_revenue_upper": [*(revenue * 1.2), revenue.sum() * 1.15],
        "marginal_roas_current": [3.0, 1.1, 1.4, 1.3],
        "marginal_roas_recommended": [1.3, 1.3, 1.3, 1.3],
        "reason": ["raise", "trim", "trim", "Reallocated within bounds."],
    })
    return published(table)


def ml_spend_scenarios() -> pd.DataFrame:
    """Two plans over the curves of three channels, one without current spend (as core.spend_scenarios writes)."""
    from core.spend_scenarios import PublishedCurves, spend_scenario

    draws = np.array([0.8, 1.0, 1.2])
    curves = PublishedCurves(
        tuple(CHANNELS), {c: (500.0, 100.0, 1.0) for c in CHANNELS},
        {c: (500.0 * draws, np.full(3, 100.0), np.ones(3)) for c in CHANNELS},
        {"display": 0.0, "search": 120.0, "social": 80.0}, baseline_daily=1000.0, ci=0.9,
    )
    plans = {"current": {}, "current_plus_20pct": {"search": 144.0, "social": 96.0}}
    return published(pd.concat([spend_scenario(curves, p, scenario=n) for n, p in plans.items()], ignore_index=True))


def channel_triangulation() -> pd.DataFrame:
    """Platform claims (display has none), Markov credit and the mmm_channel_roas example, as ml.triangulation writes
    them: display has no contribution, so its ratios are empty."""
    from ml.triangulation import triangulate

    markov = channel_attribution().query("model == 'markov'")
    platform = pd.DataFrame({"channel": CHANNELS, "conversions": [np.nan, 300.0, 90.0],
                             "revenue": [np.nan, 21000.0, 5000.0]})
    return published(triangulate(platform, markov, mmm_channel_roas(), window_start="2024-01-01",
                                 window_end="2024-05-31", window_fraction=0.4))


def fct_channel_daily(days: int = 10) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    n = days * len(CHANNELS)
    rng = np.random.default_rng(5)
    impressions = rng.integers(0, 5000, n)
    impressions[4] = 0
    clicks = (impressions * 0.03).astype(int)
    spend = rng.uniform(0.0, 300.0, n)
    revenue = spend * 2.0
    return pd.DataFrame({
        "date": np.tile(dates, len(CHANNELS)), "channel": np.repeat(CHANNELS, days),
        "spend": spend, "impressions": impressions, "reach": (impressions * 0.7).astype(int), "clicks": clicks,
        "conversions": clicks * 0.1, "revenue": revenue, "active_campaigns": 2,
        "ctr": np.where(impressions > 0, clicks / np.where(impressions > 0, impressions, 1), np.nan),
        "cpc": np.nan, "cpm": np.nan, "roas": revenue / np.where(spend > 0, spend, np.nan),
    })


def fct_revenue_daily(days: int = 10) -> pd.DataFrame:
    return pd.DataFrame({
        "date": pd.date_range("2024-01-01", periods=days, freq="D"),
        "conversions": np.arange(days) + 5,
        "revenue": np.linspace(1000.0, 2000.0, days),
    })


def _scored_forecasts() -> pd.DataFrame:
    from ml.forecast_scoring import daily_actuals, forecast_points, score_points

    dates = pd.date_range("2024-01-01", periods=6, freq="D")
    forecast = pd.DataFrame([(d, c, 10.0, 9.0, 11.0) for d in dates[3:] for c in CHANNELS],
                            columns=["date", "channel", "conversions", "conversions_lower", "conversions_upper"])
    forecast = forecast.assign(run_id="r1", generated_at=RUN_STAMP)
    origins = pd.DataFrame({"run_id": ["r1"], "origin_date": [dates[2]]})
    daily = pd.DataFrame([(d, c, 100.0, 150.0, 10.5, 800.0, 1000.0, 50.0) for d in dates[:5] for c in CHANNELS],
                         columns=["date", "channel", "spend", "revenue", "conversions", "reach", "impressions", "clicks"])
    return score_points(forecast_points(forecast, origins, ("conversions",)), daily_actuals(daily))


def forecast_accuracy() -> pd.DataFrame:
    return published(_scored_forecasts())


def forecast_accuracy_by_horizon() -> pd.DataFrame:
    from ml.forecast_scoring import accuracy_by_horizon

    return published(accuracy_by_horizon(_scored_forecasts(), 0.95))


def run_changes() -> pd.DataFrame:
    from ml.run_changes import run_changes as compare

    def roas(run: str, shift: float) -> pd.DataFrame:
        return pd.DataFrame({"channel": CHANNELS, "run_id": run, "roas": [2.0 + shift, 1.0, 3.0],
                             "roas_lower": [1.5, 0.5, 2.0], "roas_upper": [2.5 + shift, 1.5, 4.0]})

    return published(compare({"mmm_channel_roas": roas("r2", 1.0)}, {"mmm_channel_roas": roas("r1", 0.0)}, {}))


VALID = {
    "channel_attribution": (channel_attribution, {"channels": CHANNELS}),
    "campaign_attribution": (campaign_attribution, {"channels": CHANNELS}),
    "campaign_channel_attribution": (campaign_channel_attribution, {}),
    "mmm_channel_roas": (mmm_channel_roas, {"channels": CHANNELS}),
    "mmm_response_curves": (mmm_response_curves, {}),
    "mmm_response_parameters": (mmm_response_parameters, {"channels": CHANNELS}),
    "mmm_revenue_decomposition": (mmm_revenue_decomposition, {"channels": CHANNELS}),
    "attribution_model_comparison": (attribution_model_comparison, {"channels": CHANNELS}),
    "mmm_diagnostics": (mmm_diagnostics, {}),
    "ml_roi_forecast": (ml_roi_forecast, {"channels": CHANNELS}),
    "ml_roi_timeseries": (ml_roi_timeseries, {"channels": CHANNELS}),
    "ml_reach_ctr_timeseries": (ml_reach_ctr_timeseries, {}),
    "ml_budget_recommendation": (ml_budget_recommendation, {"channels": CHANNELS}),
    "ml_spend_scenarios": (ml_spend_scenarios, {"channels": CHANNELS, "horizon_days": 30}),
    "channel_triangulation": (channel_triangulation, {"channels": CHANNELS}),
    "forecast_accuracy": (forecast_accuracy, {}),
    "forecast_accuracy_by_horizon": (forecast_accuracy_by_horizon, {}),
    "run_changes": (run_changes, {}),
    "fct_channel_daily": (fct_channel_daily, {"channels": CHANNELS, "expected_days": 10}),
    "fct_revenue_daily": (fct_revenue_daily, {"expected_days": 10}),
}


def test_every_suite_has_a_valid_example():
    assert set(VALID) == set(SUITES)


@pytest.mark.parametrize("table", SUITES)
def test_valid_table_passes(table):
    make, params = VALID[table]
    frame = make()
    result = validate_table(table, frame, **params)
    pd.testing.assert_frame_equal(frame, make())  # validation leaves the frame alone
    assert result.passed, result.summary()
    assert result.failures == []
    assert result.row_count == len(frame)
    assert result.evaluated == len(suite_for(table, **params)) > 5
    assert result.summary() == f"{table}: all {result.evaluated} expectations passed on {len(frame)} rows"


# --------------------------------------------------------------------------------------------
# Broken tables: every break is named with its rule and the offending values


def failed(result: QualityResult) -> dict[str, dict]:
    return {f["description"]: f for f in result.failures}


def assert_failures(result: QualityResult, expected: dict[str, list]) -> None:
    """Exactly these rules failed, each with these sample bad values (in any order)."""
    got = failed(result)
    assert not result.passed
    assert set(got) == set(expected), result.summary()
    for description, sample in expected.items():
        failure = got[description]
        assert failure["error"] is None, failure
        for value in sample:
            assert value in failure["sample_bad_values"], (description, failure["sample_bad_values"])
        assert len(failure["sample_bad_values"]) <= 5


def test_attribution_interval_duplicate_and_unknown_model():
    frame = channel_attribution()
    frame.loc[4, "share_upper"] = frame.loc[4, "share"] - 0.01  # interval misses its estimate
    frame.loc[7, "model"] = "last_click"
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)
    result = validate_table("channel_attribution", frame)
    row4, row10 = frame.loc[4], frame.loc[10]
    assert_failures(result, {
        "share <= share_upper": [{"share_upper": row4["share_upper"], "share": row4["share"]}],
        "model in the 9 attribution models": ["last_click"],
        "(model, channel) is unique": [{"model": row10["model"], "channel": row10["channel"]}],
    })
    unique = failed(result)["(model, channel) is unique"]
    assert unique["expectation"] == "expect_compound_columns_to_be_unique"
    assert unique["column"] == ["model", "channel"]
    assert unique["unexpected_count"] == 2


def test_campaign_attribution_negative_credit_and_share_above_one():
    frame = campaign_attribution()
    frame.loc[2, "attributed_conversions"] = -3.0
    frame.loc[5, ["share", "share_upper"]] = [1.4, 1.5]
    assert_failures(validate_table("campaign_attribution", frame), {
        "attributed_conversions >= 0": [-3.0],
        "share between 0 and 1": [1.4],
        "share_upper between 0 and 1": [1.5],
    })


def test_campaign_channel_attribution_duplicate_key():
    frame = campaign_channel_attribution()
    frame.loc[1, "campaign_id"] = frame.loc[0, "campaign_id"]
    frame.loc[1, "channel"] = frame.loc[0, "channel"]
    result = validate_table("campaign_channel_attribution", frame)
    assert_failures(result, {
        "(model, campaign_id, channel) is unique": [{"model": "first_touch", "campaign_id": "c1", "channel": "display"}],
    })


def test_mmm_channel_roas_negative_spend_nan_and_interval():
    frame = mmm_channel_roas()
    frame.loc[1, "spend"] = -5000.0
    frame.loc[2, "contribution_lower"] = np.nan
    frame.loc[2, "marginal_roas_upper"] = 0.5
    frame.loc[1, "roas"] = -1.8  # follows from the negative spend, and is itself wrong
    result = validate_table("mmm_channel_roas", frame, channels=CHANNELS)
    assert_failures(result, {
        "spend >= 0": [-5000.0],
        "roas >= 0": [-1.8],
        "roas_lower <= roas": [{"roas": -1.8, "roas_lower": frame.loc[1, "roas_lower"]}],
        "contribution_lower is not null": [None],
        "contribution_lower <= contribution": [{"contribution": 3000.0, "contribution_lower": None}],
        "marginal_roas <= marginal_roas_upper": [{"marginal_roas_upper": 0.5, "marginal_roas": 0.6}],
    })
    not_null = failed(result)["contribution_lower is not null"]
    assert (not_null["unexpected_count"], not_null["unexpected_percent"]) == (1, pytest.approx(100 / 3))


def test_mmm_channel_roas_needs_roas_where_there_was_spend():
    frame = mmm_channel_roas()
    frame.loc[2, ["roas", "roas_lower", "roas_upper"]] = np.nan
    result = validate_table("mmm_channel_roas", frame)
    assert_failures(result, {
        "roas is not null (rows with spend > 0)": [None],
        "roas_lower is not null (rows with spend > 0)": [None],
        "roas_upper is not null (rows with spend > 0)": [None],
    })
    assert failed(result)["roas is not null (rows with spend > 0)"]["kwargs"]["row_condition"]["operator"] == ">"


def test_mmm_response_curves_interval_and_negative_spend():
    frame = mmm_response_curves()
    frame.loc[3, "predicted_incremental_revenue_upper"] = frame.loc[3, "predicted_incremental_revenue"] / 2
    frame.loc[8, "daily_spend"] = -10.0
    assert_failures(validate_table("mmm_response_curves", frame), {
        "predicted_incremental_revenue <= predicted_incremental_revenue_upper": [
            {"predicted_incremental_revenue_upper": frame.loc[3, "predicted_incremental_revenue_upper"],
             "predicted_incremental_revenue": frame.loc[3, "predicted_incremental_revenue"]}
        ],
        "daily_spend >= 0": [-10.0],
    })


def test_mmm_diagnostics_duplicate_and_null_metric():
    frame = mmm_diagnostics()
    frame.loc[1, "metric"] = "r2"
    frame.loc[3, "metric"] = None
    assert_failures(validate_table("mmm_diagnostics", frame), {"metric is unique": ["r2"], "metric is not null": [None]})


def test_roi_forecast_wrong_horizon_negative_spend_and_nan():
    frame = ml_roi_forecast()
    frame.loc[1, "predicted_spend"] = -20.0
    frame.loc[2, "predicted_roi"] = np.nan
    result = validate_table("ml_roi_forecast", frame, horizon_days=14)
    assert_failures(result, {
        "horizon_days in [14]": [30],
        "predicted_spend >= 0": [-20.0],
        "predicted_roi is not null (rows with predicted_revenue)": [None],
        "roi_lower <= predicted_roi": [{"predicted_roi": None, "roi_lower": -0.2}],
        "predicted_roi <= roi_upper": [{"roi_upper": 0.4, "predicted_roi": None}],
    })
    assert failed(result)["horizon_days in [14]"]["unexpected_count"] == 3


def test_roi_forecast_horizon_defaults_to_30_days():
    frame = ml_roi_forecast().assign(horizon_days=7)
    assert_failures(validate_table("ml_roi_forecast", frame), {"horizon_days in [30]": [7]})


def test_roi_timeseries_channel_renamed_mid_series_and_open_forecast_interval():
    frame = ml_roi_timeseries()
    renamed = (frame["channel"] == "social") & (frame["date"] >= "2024-03-06")
    frame.loc[renamed, "channel"] = "paid_social"
    forecast_row = frame.index[frame["is_forecast"]][0]
    frame.loc[forecast_row, "roi_lower"] = np.nan
    result = validate_table("ml_roi_timeseries", frame, channels=CHANNELS)
    assert_failures(result, {
        f"channel in the expected channels {CHANNELS}": ["paid_social"],
        "roi_lower is not null (rows with roi)": [None],
        "roi_lower <= roi": [{"roi": frame.loc[forecast_row, "roi"], "roi_lower": None}],
    })
    assert failed(result)[f"channel in the expected channels {CHANNELS}"]["unexpected_count"] == int(renamed.sum())


def test_roi_timeseries_allows_paused_history_days_but_not_duplicates():
    frame = ml_roi_timeseries()
    assert frame.loc[~frame["is_forecast"], "roi"].isna().any()
    doubled = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    assert_failures(validate_table("ml_roi_timeseries", doubled), {
        "(date, channel) is unique": [{"date": "2024-03-01T00:00:00", "channel": "display"}],
    })


def test_reach_ctr_bounds_and_negative_clicks():
    frame = ml_reach_ctr_timeseries()
    frame.loc[2, ["ctr", "ctr_upper"]] = [1.5, 1.5]
    frame.loc[frame.index[-1], "clicks"] = -4.0
    result = validate_table("ml_reach_ctr_timeseries", frame)
    last = frame.iloc[-1]
    assert_failures(result, {
        "ctr between 0 and 1": [1.5],
        "ctr_upper between 0 and 1": [1.5],
        "clicks >= 0": [-4.0],
        "clicks_lower <= clicks": [{"clicks": -4.0, "clicks_lower": last["clicks_lower"]}],
    })


def test_budget_needs_total_row_valid_spend_and_reasons():
    frame = ml_budget_recommendation()
    frame = frame[frame["channel"] != "TOTAL"].copy()
    frame.loc[1, "recommended_spend"] = -1.0
    frame.loc[2, "reason"] = None
    frame.loc[2, "change_pct"] = np.nan  # current spend 80: the change is defined and must be there
    assert_failures(validate_table("ml_budget_recommendation", frame), {
        "channel includes ['TOTAL']": ["TOTAL"],
        "recommended_spend >= 0": [-1.0],
        "reason is not null": [None],
        "change_pct is not null (rows with current_spend > 0)": [None],
    })


def test_spend_scenarios_need_total_revenue_on_total_rows_and_roi_within_its_interval():
    frame = ml_spend_scenarios()
    total = frame.index[(frame["scenario"] == "current") & (frame["channel"] == "TOTAL")][0]
    frame.loc[total, "total_revenue"] = np.nan
    frame.loc[1, "roi_upper"] = frame.loc[1, "roi"] - 0.5
    assert_failures(validate_table("ml_spend_scenarios", frame, channels=CHANNELS), {
        "total_revenue is not null (TOTAL rows)": [None],
        "total_revenue_lower <= total_revenue": [{"total_revenue": None,
                                                  "total_revenue_lower": frame.loc[total, "total_revenue_lower"]}],
        "total_revenue <= total_revenue_upper": [{"total_revenue_upper": frame.loc[total, "total_revenue_upper"],
                                                  "total_revenue": None}],
        "roi <= roi_upper": [{"roi_upper": frame.loc[1, "roi_upper"], "roi": frame.loc[1, "roi"]}],
    })


def test_triangulation_ratio_outside_its_interval_and_negative_claim():
    frame = channel_triangulation()
    frame.loc[1, "platform_overclaim_upper"] = frame.loc[1, "platform_overclaim"] - 0.5
    frame.loc[2, "platform_revenue"] = -5.0
    result = validate_table("channel_triangulation", frame, channels=CHANNELS)
    assert_failures(result, {
        "platform_overclaim <= platform_overclaim_upper (rows with platform_overclaim_upper)": [],
        "platform_revenue >= 0": [-5.0],
    })


def test_channel_daily_clicks_above_impressions_duplicates_and_missing_day():
    frame = fct_channel_daily()
    frame.loc[6, "clicks"] = frame.loc[6, "impressions"] + 10
    too_many = {"impressions": int(frame.loc[6, "impressions"]), "clicks": int(frame.loc[6, "clicks"])}
    frame = frame[frame["date"] != "2024-01-05"]
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    result = validate_table("fct_channel_daily", frame, expected_days=10)
    assert_failures(result, {
        "clicks <= impressions": [too_many],
        "(date, channel) is unique": [{"date": "2024-01-01T00:00:00", "channel": "display"}],
        "date has 10 distinct values": [9],
    })
    assert failed(result)["date has 10 distinct values"]["unexpected_count"] is None


def test_revenue_daily_missing_day_and_negative_revenue():
    frame = fct_revenue_daily().drop(index=4).reset_index(drop=True)
    frame.loc[0, "revenue"] = -50.0
    result = validate_table("fct_revenue_daily", frame, expected_days=10)
    assert_failures(result, {"table has exactly 10 rows": [9], "revenue >= 0": [-50.0]})
    row_count = failed(result)["table has exactly 10 rows"]
    assert row_count["expectation"] == "expect_table_row_count_to_equal"
    assert row_count["observed_value"] == 9
    assert row_count["column"] is None


def test_mixed_runs_and_missing_column_are_reported():
    frame = pd.concat([ml_roi_forecast(), published(ml_roi_forecast(), run_id="run-2")], ignore_index=True)
    frame = frame.drop(columns="roi_upper")
    frame["channel"] = [f"{c}-{i}" for i, c in enumerate(frame["channel"])]
    result = validate_table("ml_roi_forecast", frame)
    got = failed(result)
    assert got["run_id has one distinct value"]["sample_bad_values"] == ["run-1", "run-2"]
    columns = next(f for d, f in got.items() if d.startswith("columns present"))
    assert columns["sample_bad_values"] == ["roi_upper"]
    # rules on the missing column cannot run; they fail with GX's message instead of crashing
    assert "roi_upper" in got["roi_upper is not null (rows with predicted_revenue)"]["error"]
    assert "could not be evaluated" in result.summary()


def test_empty_table_fails():
    frame = ml_roi_forecast().iloc[0:0]
    result = validate_table("ml_roi_forecast", frame)
    assert not result.passed
    assert "table has at least one row" in failed(result)
    assert result.row_count == 0


# --------------------------------------------------------------------------------------------
# Reporting


def test_summary_and_metadata_are_json_serialisable():
    frame = ml_roi_timeseries()
    frame.loc[0, "conversions"] = -1.0
    frame.loc[frame.index[-1], "roi_upper"] = -np.inf
    bad = validate_table("ml_roi_timeseries", frame)
    good = validate_table("ml_roi_timeseries", ml_roi_timeseries())
    for result in (bad, good):
        payload = {"summary": result.summary(), "metadata": result.metadata(), "failures": result.failures}
        text = json.dumps(payload, allow_nan=False)
        assert json.loads(text)["metadata"]["expectations_evaluated"] == result.evaluated
        assert "\n" not in result.summary()
    meta = bad.metadata()
    assert meta["passed"] is False and meta["expectations_failed"] == len(bad.failures) >= 2
    assert meta["failures_markdown"].startswith("| rule | expectation | column |")
    assert meta["failures_markdown"].count("\n") == len(bad.failures) + 1
    assert "conversions >= 0" in meta["failures_markdown"]
    assert "-inf" in bad.summary()
    assert bad.summary().startswith(f"ml_roi_timeseries: {len(bad.failures)} of {bad.evaluated} expectations failed")
    assert good.metadata()["failures_markdown"] == "All expectations passed."


def test_failures_follow_suite_order():
    frame = fct_revenue_daily()
    frame.loc[0, "revenue"] = -1.0
    frame.loc[1, "date"] = frame.loc[2, "date"]
    frame.loc[3, "revenue"] = np.nan
    result = validate_table("fct_revenue_daily", frame)
    order = [e.description for e in suite_for("fct_revenue_daily")]
    assert [f["description"] for f in result.failures] == sorted(
        (f["description"] for f in result.failures), key=order.index
    )


def test_gx_prints_nothing(capfd):
    # Rebuild the context and suite under capture so their setup is covered too.
    quality._batch_definition.cache_clear()
    quality._suite.cache_clear()
    frame = ml_reach_ctr_timeseries()
    frame.loc[0, "reach"] = -1.0
    result = validate_table("ml_reach_ctr_timeseries", frame)
    validate_table("ml_reach_ctr_timeseries", ml_reach_ctr_timeseries())
    assert not result.passed
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    context = quality._batch_definition().data_asset.datasource.data_context
    assert type(context).__name__ == "EphemeralDataContext"
    assert context.config.analytics_enabled is False
    assert context.progress_bars.globally is False


@pytest.mark.slow
def test_cold_process_is_silent_and_imports_gx_lazily():
    script = (
        "import sys, pandas as pd\n"
        "from core.quality import validate_table\n"
        "assert 'great_expectations' not in sys.modules, 'GX imported at module import'\n"
        "frame = pd.DataFrame({'date': pd.date_range('2024-01-01', periods=3), 'revenue': [1.0, -2.0, 3.0]})\n"
        "result = validate_table('fct_revenue_daily', frame)\n"
        "assert not result.passed\n"
        "import os; assert os.environ['GX_ANALYTICS_ENABLED'] == 'false'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GX_ANALYTICS_ENABLED"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_module_source_imports_neither_dagster_nor_gx_at_top_level():
    import ast

    tree = ast.parse((REPO / "core" / "quality.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & {"dagster", "great_expectations", "dagster_ge"}
    anywhere = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            anywhere |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            anywhere.add(node.module.split(".")[0])
    assert not anywhere & {"dagster", "dagster_ge"}
    assert "great_expectations" in anywhere  # imported inside functions only


# --------------------------------------------------------------------------------------------
# Suites and parameters


def test_suite_for_returns_fresh_gx_expectations():
    import great_expectations as gx

    first = suite_for("ml_roi_forecast", channels=CHANNELS)
    assert all(isinstance(e, gx.expectations.Expectation) for e in first)
    kinds = {type(e).__name__ for e in first}
    assert {"ExpectColumnPairValuesAToBeGreaterThanB", "ExpectColumnValuesToBeUnique", "ExpectColumnValuesToBeInSet"} <= kinds
    first.clear()
    assert len(suite_for("ml_roi_forecast", channels=CHANNELS)) > 10
    # unchanged parameters give the same rules; channels change them
    assert len(suite_for("ml_roi_forecast")) == len(suite_for("ml_roi_forecast", channels=CHANNELS)) - 1


@pytest.mark.parametrize(
    ("table", "params", "message"),
    [
        ("ml_roi_forcast", {}, "no quality suite for table 'ml_roi_forcast'"),
        ("fct_revenue_daily", {"channels": CHANNELS}, "does not take parameter(s) ['channels']"),
        ("ml_roi_forecast", {"horizon": 30}, "it accepts ['channels', 'horizon_days']"),
        ("ml_roi_forecast", {"channels": "search"}, "must be a list of channel names"),
        ("ml_roi_forecast", {"channels": []}, "non-empty list"),
        ("ml_roi_forecast", {"horizon_days": 0}, "positive whole number of days, got 0"),
        ("fct_revenue_daily", {"expected_days": 2.5}, "positive whole number of days, got 2.5"),
    ],
)
def test_bad_table_or_parameters_are_refused(table, params, message):
    with pytest.raises(ValueError) as error:
        suite_for(table, **params)
    assert message in str(error.value)
    with pytest.raises(ValueError):
        validate_table(table, pd.DataFrame({"x": [1]}), **params)


def test_validate_table_needs_a_dataframe():
    with pytest.raises(TypeError, match="needs a pandas DataFrame, got dict"):
        validate_table("fct_revenue_daily", {"date": [], "revenue": []})


def test_suites_name_the_columns_ml_publishes():
    """The gates state the published contract themselves; this keeps them in step with ml/."""
    from ml import budget, forecasting, mmm
    from ml.attribution import report

    def gated_columns(table: str) -> list[str]:
        rule = next(e for e in suite_for(table) if type(e).__name__ == "ExpectTableColumnsToMatchSet")
        return [c for c in rule.column_set if c not in ("run_id", "generated_at")]

    assert quality.ATTRIBUTION_MODELS == report.ALL_MODELS
    assert quality.TOTAL_ROW == budget.TOTAL
    assert gated_columns("ml_roi_forecast") == list(forecasting.ROI_FORECAST_COLUMNS)
    assert gated_columns("ml_roi_timeseries") == list(forecasting.ROI_TIMESERIES_COLUMNS)
    assert sorted(gated_columns("ml_reach_ctr_timeseries")) == sorted(forecasting.REACH_CTR_COLUMNS)
    assert gated_columns("ml_budget_recommendation") == list(budget.TABLE_COLUMNS)
    assert sorted(gated_columns("mmm_channel_roas")) == sorted(mmm.CHANNEL_COLUMNS + mmm.review.PUBLISHED_REVIEW_COLUMNS)
    for table in ("channel_attribution", "campaign_attribution", "campaign_channel_attribution"):
        assert set(report.MEASURES) <= set(gated_columns(table))
    from ml import triangulation

    assert gated_columns("channel_triangulation") == triangulation.COLUMNS


def test_real_attribution_tables_pass():
    """The producer's own output, with bootstrap intervals and zero-spend channels, passes the gate."""
    from ml.attribution.report import RULE_BASED_MODELS, build_attribution_tables

    rng = np.random.default_rng(11)
    campaigns = {"c1": "display", "c2": "search", "c3": "search", "c4": "social"}
    rows = [
        (model, bucket, campaign, channel, rng.integers(1, 6), rng.uniform(50, 300))
        for model in RULE_BASED_MODELS for bucket in range(30) for campaign, channel in campaigns.items()
    ]
    buckets = pd.DataFrame(rows, columns=["model", "bucket", "campaign_id", "channel", "conversions", "revenue"])
    paths = pd.DataFrame({
        "path": ["search", "display > search", "social > search", "social", "display > social > search"],
        "conversions": [40, 25, 18, 9, 7], "conversion_value": [4000.0, 2600.0, 1500.0, 800.0, 700.0],
        "nulls": [300, 200, 150, 120, 90],
    })
    spend = pd.DataFrame(
        {"campaign_id": list(campaigns), "channel": list(campaigns.values()), "spend": [0.0, 900.0, 300.0, 500.0]}
    )
    tables = build_attribution_tables(buckets, paths, spend, n_bootstrap=60, seed=1)
    for table, frame in list(tables.frames().items())[:3]:
        result = validate_table(table, published(frame), channels=CHANNELS)
        assert result.passed, result.summary()


def test_channels_without_optional_raw_columns_may_be_null_where_the_data_has_none():
    """reach, platform conversions and revenue may be absent from the ad export: NULL then passes."""
    roi = ml_roi_forecast()
    roi.loc[0, ["predicted_revenue", "predicted_roi", "roi_lower", "roi_upper"]] = np.nan
    roi.loc[0, "method"] = "none: no platform revenue in the data"
    assert validate_table("ml_roi_forecast", roi).passed, validate_table("ml_roi_forecast", roi).summary()
    ts = ml_roi_timeseries()
    social = ts["channel"] == "social"
    ts.loc[social, ["roi", "roi_lower", "roi_upper", "conversions", "conversions_lower", "conversions_upper"]] = np.nan
    assert validate_table("ml_roi_timeseries", ts).passed, validate_table("ml_roi_timeseries", ts).summary()
    rc = ml_reach_ctr_timeseries()
    rc.loc[rc["channel"] == rc["channel"].iloc[0], ["reach", "reach_lower", "reach_upper"]] = np.nan
    assert validate_table("ml_reach_ctr_timeseries", rc).passed, validate_table("ml_reach_ctr_timeseries", rc).summary()
    daily = fct_channel_daily()
    daily[["reach", "conversions", "revenue"]] = np.nan
    assert validate_table("fct_channel_daily", daily).passed, validate_table("fct_channel_daily", daily).summary()
