"""The model assets' gates: too little history, corrupted marts, and each output invariant."""

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from assets.media_mix import media_mix_model
from assets.quality_gates import gx_fct_channel_daily, gx_fct_revenue_daily
from core.checks import covers_horizon, equals, intervals_contain, no_nan
from core import registry
from assets.resources import Warehouse

CHANNELS = ["search", "social", "video"]


def _marts(days: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    channel_daily = pd.DataFrame(
        [(d, c, float(rng.uniform(50, 150)), 1000, 50) for d in dates for c in CHANNELS],
        columns=["date", "channel", "spend", "impressions", "clicks"],
    )
    channel_daily["ctr"] = channel_daily["clicks"] / channel_daily["impressions"]
    revenue = pd.DataFrame({"date": dates, "conversions": 20, "revenue": rng.uniform(800, 1200, days)})
    catalog = pd.DataFrame({"channel": CHANNELS})
    return {"fct_channel_daily": channel_daily, "fct_revenue_daily": revenue, "dim_channel": catalog}


def _warehouse(url: str, marts: dict[str, pd.DataFrame]) -> Warehouse:
    wh = Warehouse(url=url)
    wh.publish_tables(marts, schema="analytics", stamp=False)
    return wh


def test_media_mix_refuses_too_little_history_and_says_how_much_is_needed(duckdb_url):
    wh = _warehouse(duckdb_url, _marts(days=40))
    result = materialize([media_mix_model], resources={"warehouse": wh}, raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "40" in text and "60" in text
    assert wh.row_counts("predictions") == {}


@pytest.mark.parametrize(
    "corrupt, expectation",
    [
        (lambda m: m["fct_channel_daily"].assign(spend=lambda d: d["spend"].where(d.index != 5, -3.0)), "spend"),
        (lambda m: pd.concat([m["fct_channel_daily"], m["fct_channel_daily"].head(3)]), "date"),
        (lambda m: m["fct_channel_daily"].assign(channel=lambda d: d["channel"].where(d.index < 60, d["channel"].replace("social", "meta"))), "channel"),
        (lambda m: m["fct_channel_daily"][~m["fct_channel_daily"]["date"].between("2025-01-10", "2025-01-16")], "date"),
    ],
    ids=["negative_spend", "duplicated_rows", "channel_renamed_mid_series", "missing_week"],
)
def test_channel_daily_gate_fails_on_corrupted_marts(duckdb_url, corrupt, expectation):
    marts = _marts(days=90)
    marts["fct_channel_daily"] = corrupt(marts).reset_index(drop=True)
    wh = _warehouse(duckdb_url, marts)
    result = gx_fct_channel_daily(warehouse=wh)
    assert not result.passed
    assert expectation in str(result.metadata)


def test_revenue_gate_fails_on_a_missing_week_and_negative_revenue(duckdb_url):
    marts = _marts(days=90)
    revenue = marts["fct_revenue_daily"]
    marts["fct_revenue_daily"] = revenue[~revenue["date"].between("2025-02-01", "2025-02-07")]
    assert not gx_fct_revenue_daily(warehouse=_warehouse(duckdb_url, marts)).passed
    marts = _marts(days=90)
    marts["fct_revenue_daily"].loc[3, "revenue"] = -1.0
    assert not gx_fct_revenue_daily(warehouse=_warehouse(duckdb_url, marts)).passed
    assert gx_fct_revenue_daily(warehouse=_warehouse(duckdb_url, _marts(days=90))).passed


def test_output_invariants_fail_on_broken_outputs():
    df = pd.DataFrame({"channel": ["a", "b"], "roi": [0.5, np.nan], "roi_lower": [0.1, 0.0], "roi_upper": [0.4, 1.0]})
    assert not no_nan("x", df).passed
    broken = intervals_contain("x", df, [("roi", "roi_lower", "roi_upper")])
    assert not broken.passed and broken.detail["outside_by_column"] == {"roi": 2}
    ok = df.assign(roi=[0.3, 0.5])
    assert no_nan("x", ok).passed and intervals_contain("x", ok, [("roi", "roi_lower", "roi_upper")]).passed
    dates = pd.date_range("2025-01-01", periods=40, freq="D")
    series = pd.DataFrame({"date": dates, "channel": "a", "is_forecast": [False] * 30 + [True] * 10})
    assert covers_horizon("x", series, ["a"], 10).passed
    assert not covers_horizon("x", series.iloc[:-1], ["a"], 10).passed
    assert not covers_horizon("x", series, ["a", "b"], 10).passed
    assert equals("x", 100.0, 100.0 + 1e-5, "budget").passed
    assert not equals("x", 99.0, 100.0, "budget").passed


def _units_marts(business_revenue_scale: float) -> dict[str, pd.DataFrame]:
    marts = _marts(days=30)
    marts["fct_channel_daily"] = marts["fct_channel_daily"].assign(conversions=2.0, revenue=300.0)  # 150 per conversion
    marts["fct_revenue_daily"] = marts["fct_revenue_daily"].assign(
        conversions=10, revenue=1450.0 * business_revenue_scale)  # 145 per order
    return marts


def test_revenue_in_the_wrong_unit_fails_the_units_gate(duckdb_url):
    from assets.quality_gates import RevenueUnitsConfig, revenue_units_agree

    good = revenue_units_agree(config=RevenueUnitsConfig(), warehouse=_warehouse(duckdb_url, _units_marts(1.0)))
    assert good.passed
    cents = revenue_units_agree(config=RevenueUnitsConfig(), warehouse=_warehouse(duckdb_url, _units_marts(100.0)))
    assert not cents.passed
    assert "in cents" in cents.description and "96.7x apart" in cents.description


def test_every_published_asset_is_overdue_after_two_schedule_intervals(dbt_manifest):
    from datetime import timedelta

    from dagster import AssetKey

    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    published = [k for k in graph.get_all_asset_keys() if k.path[0] not in ("raw", "analytics")]
    # One asset per registry table owner and one per chart (23 with the prediction history's readers).
    assert len(published) == len({t.asset for t in registry.TABLES.values()}) + len(registry.CHARTS) == 23
    for key in published:
        policy = graph.get(key).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == timedelta(minutes=60), key
    assert graph.get(AssetKey(["analytics", "fct_channel_daily"])).freshness_policy is None


def test_media_mix_config_defaults_are_the_models_defaults():
    """The half-hourly asset fits with fit_media_mix_model's own defaults: a default changed in ml.mmm after a
    benchmark (e.g. curve_history_days 540 -> 1095) must reach the product, not stay behind in the config."""
    import inspect

    from assets.media_mix import MediaMixConfig
    from ml.mmm import DEFAULT_CURVE_HISTORY_DAYS, fit_media_mix_model

    model = inspect.signature(fit_media_mix_model).parameters
    config = MediaMixConfig()
    fields = [name for name in MediaMixConfig.model_fields if name != "lift_tests_file"]
    assert "curve_history_days" in fields and config.curve_history_days == DEFAULT_CURVE_HISTORY_DAYS
    differing = {name: (getattr(config, name), model[name].default) for name in fields
                 if name not in model or getattr(config, name) != model[name].default}
    assert not differing, f"MediaMixConfig default vs fit_media_mix_model default: {differing}"


def test_media_mix_run_config_reaches_the_model_and_a_bad_country_is_refused(duckdb_url):
    wh = _warehouse(duckdb_url, _marts(days=240))
    config = {"n_bootstrap": 10, "curve_history_days": 200, "holiday_country": "US"}
    result = materialize(
        [media_mix_model], resources={"warehouse": wh},
        run_config={"ops": {"media_mix_model": {"config": config}}},
    )
    metadata = result.asset_materializations_for_node("media_mix_model")[0].metadata
    assert metadata["curve_history"].value.endswith("(200 days; adstock/saturation chosen here)")
    # Window 2025-03-02 .. 2025-08-28: Memorial Day, Juneteenth and Independence Day; no peak days.
    assert metadata["days_left_out"].value == 3
    diagnostics = wh.read_table("predictions", "mmm_diagnostics", ["metric", "value"]).set_index("metric")["value"]
    assert diagnostics["curve_history_days"] == 200

    config["holiday_country"] = "XX"
    failed = materialize(
        [media_mix_model], resources={"warehouse": wh}, raise_on_error=False,
        run_config={"ops": {"media_mix_model": {"config": config}}},
    )
    assert not failed.success
    error = failed.get_step_failure_events()[0].step_failure_data.error
    assert "holiday_country='XX' is not in the holidays calendar" in error.message + (error.cause.message if error.cause else "")
    # The failed run kept the previous tables.
    assert wh.read_table("predictions", "mmm_diagnostics", ["run_id"])["run_id"].unique().tolist() == [result.run_id]


def test_the_users_events_calendar_is_left_out_of_the_media_mix(duckdb_url):
    """events.csv's days (through the staging model dbt builds from raw.calendar_events) are left out of
    the regression like holidays, and the UI says how many there were."""
    marts = _marts(days=240)
    wh = _warehouse(duckdb_url, marts)
    # Window 2025-03-02 .. 2025-08-28: a three-day sale and a one-day outage in it.
    events = pd.DataFrame({"event_date": pd.to_datetime(["2025-05-09", "2025-07-01"]),
                           "event_end_date": pd.to_datetime(["2025-05-11", "2025-07-01"]),
                           "event_name": ["Spring sale", "Checkout outage"], "event_kind": ["promotion", "outage"]})
    wh.publish_tables({"stg_events__calendar": events}, schema="analytics", stamp=False)
    config = {"n_bootstrap": 10, "curve_history_days": 200, "retail_peaks": False}
    result = materialize([media_mix_model], resources={"warehouse": wh},
                         run_config={"ops": {"media_mix_model": {"config": config}}})
    metadata = result.asset_materializations_for_node("media_mix_model")[0].metadata
    assert metadata["user_event_days"].value == 4
    assert metadata["days_left_out"].value == 4
    diagnostics = wh.read_table("predictions", "mmm_diagnostics", ["metric", "value"]).set_index("metric")["value"]
    assert diagnostics["user_event_days"] == 4 and diagnostics["n_holiday_days"] == 4
