"""Each corrupted input of the issue's list blocks the models it feeds and keeps the published tables and
charts; a channel renamed mid-series is only a warning. One DuckDB refresh of the demo for the module
(its own, so that xdist runs it beside test_pipeline.py), then one refresh per case on a copy."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from dagster import instance_for_test

from assets.resources import Warehouse
from core.raw_contract import RAW_TABLES
from tests.orchestration.test_pipeline import (  # noqa: F401  (refreshed: the module's refreshed warehouse)
    PREDICTION_TABLES, refreshed, run_refresh_job, snapshot,
)

pytestmark = pytest.mark.slow


def _shift_channel_mid_series(raw):
    """'social' is called 'meta' from the middle of the period on, in ads and touchpoints."""
    ads, touches = raw["ad_performance_daily"], raw["touchpoints"]
    middle = ads["date"].min() + (ads["date"].max() - ads["date"].min()) / 2
    ads.loc[(ads["channel"] == "social") & (ads["date"] > middle), "channel"] = "meta"
    touches.loc[(touches["channel"] == "social") & (touches["occurred_at"] > middle), "channel"] = "meta"


def _negative_spend(raw):
    ads = raw["ad_performance_daily"]
    ads.loc[ads.index[:3], "spend"] = -10.0


def _drop_a_week(raw):
    ads, conversions = raw["ad_performance_daily"], raw["conversions"]
    week_start = ads["date"].min() + pd.Timedelta(days=100)
    week = (ads["date"] >= week_start) & (ads["date"] < week_start + pd.Timedelta(days=7))
    raw["ad_performance_daily"] = ads[~week]
    sold = conversions["occurred_at"].dt.normalize()
    raw["conversions"] = conversions[~((sold >= week_start) & (sold < week_start + pd.Timedelta(days=7)))]


CORRUPTIONS = {
    "negative_spend": (_negative_spend, "source_non_negative_raw_ad_performance_daily_spend"),
    "duplicated_rows": (lambda raw: raw.__setitem__("ad_performance_daily", pd.concat(
        [raw["ad_performance_daily"], raw["ad_performance_daily"].head(5)], ignore_index=True)),
        "source_unique_combination_raw_ad_performance_daily_date__channel__campaign_id"),
    "missing_week": (_drop_a_week, "no_date_gaps_stg_ads__performance_daily_date_day__2"),
    "revenue_in_cents": (lambda raw: raw["conversions"].__setitem__("revenue", raw["conversions"]["revenue"] * 100),
                         "revenue_units_agree"),
    "empty_table": (lambda raw: raw.__setitem__("touchpoints", raw["touchpoints"].iloc[0:0]),
                    "touchpoints_volume_and_freshness"),
}
# Touchpoints feed attribution only: with them broken the media mix and forecasts may still refresh.
ATTRIBUTION = {"channel_attribution", "campaign_attribution", "campaign_channel_attribution",
               "attribution_model_comparison"}
# Business revenue feeds the media mix, the budget and attributed revenue; forecasts use platform revenue.
KEPT = {"empty_table": ATTRIBUTION,
        "revenue_in_cents": ATTRIBUTION | {"mmm_channel_roas", "mmm_diagnostics", "mmm_response_curves",
                                           "mmm_revenue_decomposition", "ml_budget_recommendation",
                                           "ml_spend_scenarios"}}


# The matrix runs on DuckDB only; PostgreSQL is covered by the negative-spend test above.
@pytest.mark.parametrize("refreshed", ["duckdb"], indirect=True)
@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_each_corrupted_input_blocks_the_models_and_keeps_tables_and_charts(refreshed, tmp_path, case):
    """The issue's corruption list: the named check fails, nothing downstream is replaced."""
    shutil.copyfile(refreshed["url"].removeprefix("duckdb://"), tmp_path / "warehouse.duckdb")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    charts = tmp_path / "charts"
    shutil.copytree(refreshed["charts"], charts)
    wh = Warehouse(url=url)
    before = snapshot(wh)
    charts_before = {p.name: p.stat().st_mtime_ns for p in charts.glob("*.png")}
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    corrupt, check_name = CORRUPTIONS[case]
    corrupt(raw)
    # Written as they are (the loader would refuse an empty file): the pipeline must guard itself.
    wh.publish_tables(raw, schema="raw", stamp=False, allow_empty=True)
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, charts)
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert not result.success or failed
    assert check_name in failed, failed
    kept = {f"predictions.{t}" for t in KEPT.get(case, PREDICTION_TABLES)}
    after = snapshot(wh)
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    if case in KEPT:
        assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}.isdisjoint(KEPT[case])
    else:
        assert {p.name: p.stat().st_mtime_ns for p in charts.glob("*.png")} == charts_before


# Channels come from the data, so a renamed channel no longer blocks: the warning says what it saw
# and how to map it, and the refresh goes on.
@pytest.mark.parametrize("refreshed", ["duckdb"], indirect=True)
def test_a_channel_renamed_mid_series_is_a_warning_that_says_how_to_map_it(refreshed, tmp_path):
    shutil.copyfile(refreshed["url"].removeprefix("duckdb://"), tmp_path / "warehouse.duckdb")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    wh = Warehouse(url=url)
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    _shift_channel_mid_series(raw)
    wh.publish_tables(raw, schema="raw", stamp=False)
    ads = raw["ad_performance_daily"]
    stop, start = ads.query("channel == 'social'")["date"].max(), ads.query("channel == 'meta'")["date"].min()
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, tmp_path / "charts")
    warnings = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert "channel_names_consistent" in warnings, sorted(warnings)
    assert warnings["channel_names_consistent"].severity.value == "WARN"
    described = warnings["channel_names_consistent"].description
    assert (f"'social' stops on {stop:%Y-%m-%d} and 'meta' starts on {start:%Y-%m-%d}: "
            "if they are one channel, add social to meta's aliases in channels.csv") in described
    # The rest goes on: 'social' (no spend in the recent windows) is left out of the forecasts and named.
    assert result.success, {name: e.description for name, e in warnings.items()}
    assert "social: not forecast: last spend on" in warnings["forecast_covers_every_channel"].description
    published = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"channel_attribution", "roi_forecast", "media_mix_model", "budget_recommendation"} <= published
