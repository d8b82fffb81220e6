"""The spend_scenarios asset against a real DuckDB warehouse: the media-mix model and the budget recommendation
materialized first, then four plans published with their checks, the chart drawn, and a failed check keeping
the previous table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import materialize
from scipy.signal import lfilter

from assets.charts import chart_assets
from assets.media_mix import budget_recommendation, media_mix_model
from assets.resources import ChartStore, Warehouse
from assets.scenarios import SCENARIO_CHECKS, spend_scenarios
from charts.plots import PNG_SIGNATURE
from core import registry

DAYS = 220
CHANNELS = ["radio", "search", "social"]
PLANS = ["current", "budget_recommendation", "current_minus_20pct", "current_plus_20pct"]
MMM_CONFIG = {"lookback_days": 150, "curve_history_days": DAYS, "n_bootstrap": 12}
SCENARIO_CHART = next(a for a in chart_assets if a.key.to_user_string() == "spend_scenarios_chart")


def _marts(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Three channels with independent, strongly varying spend and dark weeks; revenue is a baseline plus each
    channel through carryover and saturation."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-02-03", periods=DAYS, freq="D")
    spend = {}
    for channel, scale in zip(CHANNELS, (500.0, 1200.0, 800.0)):
        level = np.exp(lfilter([1.0], [1.0, -0.85], rng.normal(0.0, 0.2, DAYS)))
        x = scale * level * rng.lognormal(0.0, 0.25, DAYS)
        for start in range(int(rng.integers(0, 20)), DAYS, 45):
            x[start:start + 7] = 0.0
        spend[channel] = x
    revenue = 15_000.0 + 600.0 * (dates.day_of_week >= 5)
    for roas, x in zip((1.5, 2.5, 2.0), spend.values()):
        carried = lfilter([0.6], [1.0, -0.4], x)
        saturated = carried / (carried + x.mean())
        revenue = revenue + roas * x.mean() * saturated / saturated.mean()
    revenue = revenue + rng.normal(0.0, 0.01 * revenue.mean(), DAYS)
    channel_daily = pd.DataFrame(
        [(d, c, float(x[i]), 1000, 50) for c, x in spend.items() for i, d in enumerate(dates)],
        columns=["date", "channel", "spend", "impressions", "clicks"],
    )
    channel_daily["ctr"] = channel_daily["clicks"] / channel_daily["impressions"]
    return {
        "fct_channel_daily": channel_daily,
        "fct_revenue_daily": pd.DataFrame({"date": dates, "conversions": 20, "revenue": revenue}),
        "dim_channel": pd.DataFrame({"channel": CHANNELS}),
    }


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenarios")
    wh = Warehouse(url=f"duckdb:///{root / 'warehouse.duckdb'}")
    wh.publish_tables(_marts(), schema="analytics", stamp=False)
    result = materialize(
        [media_mix_model, budget_recommendation, spend_scenarios, SCENARIO_CHART],
        resources={"warehouse": wh, "charts": ChartStore(directory=str(root / "charts"))},
        run_config={"ops": {"media_mix_model": {"config": MMM_CONFIG}}},
    )
    return {"warehouse": wh, "result": result, "root": root}


def test_four_plans_are_published_per_channel_with_a_total_row_and_every_check_passes(refreshed):
    result, wh = refreshed["result"], refreshed["warehouse"]
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "spend_scenarios"}
    assert checks == {**{name: True for name in SCENARIO_CHECKS}, "gx_ml_spend_scenarios": True}
    table = wh.read_table("predictions", "ml_spend_scenarios")
    assert list(table.columns) == [*registry.table("ml_spend_scenarios").column_names, *registry.RUN_COLUMNS]
    assert list(dict.fromkeys(table["scenario"])) == PLANS
    assert sorted(table.groupby("scenario").size().items()) == sorted((p, len(CHANNELS) + 1) for p in PLANS)
    assert set(table["channel"]) == {*CHANNELS, "TOTAL"} and set(table["horizon_days"]) == {30}
    assert table["run_id"].nunique() == 1
    totals = table[table["channel"] == "TOTAL"].set_index("scenario")
    current = totals.loc["current"]
    assert totals.loc["current_plus_20pct", "planned_spend"] == pytest.approx(1.2 * current["planned_spend"])
    assert totals.loc["current_minus_20pct", "planned_spend"] == pytest.approx(0.8 * current["planned_spend"])
    assert totals.loc["current_minus_20pct", "total_revenue"] < current["total_revenue"] < (
        totals.loc["current_plus_20pct", "total_revenue"])
    # The recommendation moves money to where it earns more, at the same total spend.
    assert totals.loc["budget_recommendation", "planned_spend"] == pytest.approx(current["planned_spend"])
    assert totals.loc["budget_recommendation", "total_revenue"] >= current["total_revenue"] - 1e-6


def test_the_recommendations_plan_predicts_what_the_published_budget_says(refreshed):
    wh = refreshed["warehouse"]
    budget = wh.read_table("predictions", "ml_budget_recommendation").set_index("channel")
    table = wh.read_table("predictions", "ml_spend_scenarios")
    plan = table[table["scenario"] == "budget_recommendation"].set_index("channel")
    for column in ("", "_lower", "_upper"):
        np.testing.assert_allclose(plan[f"incremental_revenue{column}"].loc[budget.index] / 30,
                                   budget[f"recommended_expected_revenue{column}"], rtol=1e-9)
    np.testing.assert_allclose(plan["daily_spend"].loc[budget.index], budget["recommended_spend"], rtol=1e-12)


def test_conversions_and_the_baseline_interval_come_from_the_published_sales_and_decomposition(refreshed):
    wh = refreshed["warehouse"]
    table = wh.read_table("predictions", "ml_spend_scenarios")
    sales = _marts()["fct_revenue_daily"].tail(180)
    np.testing.assert_allclose(table["revenue_per_conversion"], sales["revenue"].sum() / sales["conversions"].sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(table["incremental_conversions"],
                               table["incremental_revenue"] / table["revenue_per_conversion"], rtol=1e-12)
    totals = table[table["channel"] == "TOTAL"].set_index("scenario")
    np.testing.assert_allclose(totals["total_conversions"], totals["total_revenue"] / totals["revenue_per_conversion"],
                               rtol=1e-12)
    # The daily baseline moves over the model window, so the baseline has an interval and widens the total's.
    assert (totals["baseline_revenue_lower"] < totals["baseline_revenue"]).all()
    assert (totals["baseline_revenue"] < totals["baseline_revenue_upper"]).all()
    media_width = totals["incremental_revenue_upper"] - totals["incremental_revenue_lower"]
    assert (totals["total_revenue_upper"] - totals["total_revenue_lower"] > media_width).all()


def test_the_chart_is_drawn_from_the_published_table(refreshed):
    png = (refreshed["root"] / "charts" / "spend_scenarios.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


def test_a_failed_check_publishes_nothing_and_keeps_the_previous_table(refreshed, tmp_path):
    import shutil

    shutil.copyfile(refreshed["warehouse"].url.removeprefix("duckdb:///"), tmp_path / "warehouse.duckdb")
    wh = Warehouse(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    before = wh.read_table("predictions", "ml_spend_scenarios")
    # A recommendation that no longer matches the model's curves (e.g. published by another run).
    budget = wh.read_table("predictions", "ml_budget_recommendation")
    budget["recommended_expected_revenue"] *= 1.1
    wh.publish_tables({"ml_budget_recommendation": budget.drop(columns=list(registry.RUN_COLUMNS))},
                      run_id="tampered")
    result = materialize([spend_scenarios], resources={"warehouse": wh}, raise_on_error=False)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"scenario_matches_budget_recommendation"}
    pd.testing.assert_frame_equal(wh.read_table("predictions", "ml_spend_scenarios"), before)
