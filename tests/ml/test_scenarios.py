"""Tests for ml.scenarios (and core.spend_scenarios behind it): plan validation, the numbers of a plan, agreement
with the budget recommendation, and the curves the HTTP service rebuilds from the published parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.spend_scenarios import (
    CONVERSION_WINDOW_DAYS, MAX_SPEND_MULTIPLE, SCENARIO_COLUMNS, PlanError, PublishedCurves, RECENT_BASELINE_DAYS, baseline_draws, baseline_level,
    daily_baseline, revenue_per_conversion,
)
from ml.budget import recommend_budget
from ml.mmm import ChannelResponse, ResponseModel
from ml.scenarios import spend_scenario, spend_scenarios, standard_plans

HORIZON = 30


def make_model(curves: dict[str, tuple[float, float, float, float]], n_draws: int = 60, seed: int = 0,
               baseline: float = 1000.0) -> ResponseModel:
    """Known Hill curves {channel: (coefficient, half, shape, current daily spend)}; draws scatter coefficient
    and half point so the intervals have width."""
    rng = np.random.default_rng(seed)
    return ResponseModel(
        responses={
            name: ChannelResponse(
                channel=name, coefficient=beta, adstock_decay=0.3, saturation_half=half, saturation_shape=shape,
                current_daily_spend=spend, coefficient_draws=beta * rng.lognormal(0.0, 0.1, n_draws),
                half_draws=half * rng.lognormal(0.0, 0.05, n_draws), shape_draws=np.full(n_draws, shape),
                decay_draws=np.full(n_draws, 0.3),
            )
            for name, (beta, half, shape, spend) in curves.items()
        },
        baseline_daily=baseline, ci=0.9,
    )


# "saturated" spends far past its half point: another unit there returns almost nothing.
MODEL = make_model({
    "search": (6000.0, 400.0, 1.0, 300.0),
    "social": (3000.0, 250.0, 1.0, 200.0),
    "saturated": (800.0, 20.0, 1.0, 400.0),
    "idle": (500.0, 100.0, 1.0, 0.0),
})


def by_channel(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("channel")


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("plan, channel, rule, fragment", [
    ({"tiktok": 100}, "tiktok", "unknown_channel", "unknown channel; the media-mix model has channels"),
    ({"search": -5}, "search", "negative", "daily spend must be >= 0, got -5.00"),
    ({"search": math.nan}, "search", "not_finite", "must be a finite number, got nan"),
    ({"search": math.inf}, "search", "not_finite", "must be a finite number, got inf"),
    ({"search": "350"}, "search", "not_a_number", "daily spend must be a number, got '350'"),
    ({"search": True}, "search", "not_a_number", "daily spend must be a number, got True"),
    ({"search": 300 * MAX_SPEND_MULTIPLE + 1}, "search", "above_cap",
     "is above the cap 30,000.00, 100 times its current daily spend 300.00"),
    # A channel without current spend is measured against the average spending channel (300 + 200 + 400) / 3.
    ({"idle": 30_001}, "idle", "above_cap", "above the cap 30,000.00, 100 times the average current daily spend"),
])
def test_bad_plans_name_the_channel_and_the_rule(plan, channel, rule, fragment):
    with pytest.raises(PlanError) as caught:
        spend_scenario(MODEL, plan)
    assert caught.value.problems == [{"channel": channel, "rule": rule, "message": caught.value.problems[0]["message"]}]
    message = str(caught.value)
    assert message.startswith(f"{channel!r}: ") and fragment in message, message
    assert isinstance(caught.value, ValueError)


def test_every_fault_of_a_plan_is_named_at_once_and_caps_are_inclusive():
    with pytest.raises(PlanError) as caught:
        spend_scenario(MODEL, {"tiktok": 1, "search": -1, "social": 1e9})
    assert [(p["channel"], p["rule"]) for p in caught.value.problems] == [
        ("tiktok", "unknown_channel"), ("search", "negative"), ("social", "above_cap")]
    assert spend_scenario(MODEL, {"social": 200 * MAX_SPEND_MULTIPLE, "idle": 0})["daily_spend"].iloc[1] == 20_000


@pytest.mark.parametrize("kwargs, message", [
    ({"horizon_days": 0}, "horizon_days must be a whole number of days from 1 to 366, got 0"),
    ({"horizon_days": 30.5}, "got 30.5"),
    ({"ci": 1.0}, "ci must be in (0, 1)"),
])
def test_bad_horizon_or_coverage_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spend_scenario(MODEL, {}, **kwargs)
    with pytest.raises(PlanError, match="a plan maps channel names to planned daily spend"):
        spend_scenario(MODEL, [("search", 1)])


# --------------------------------------------------------------------------------------------
# The numbers of one plan


def test_a_plan_is_the_response_curve_times_the_horizon_with_channels_left_out_at_current_spend():
    table = spend_scenario(MODEL, {"search": 350, "social": 270}, horizon_days=HORIZON, scenario="mine")
    assert list(table.columns) == SCENARIO_COLUMNS
    assert list(table["channel"]) == [*MODEL.channel_names, "TOTAL"]
    assert set(table["scenario"]) == {"mine"} and set(table["horizon_days"]) == {HORIZON}
    rows = by_channel(table)
    spend = {"search": 350.0, "social": 270.0, "saturated": 400.0, "idle": 0.0}
    for channel, daily in spend.items():
        row = rows.loc[channel]
        assert row["daily_spend"] == daily and row["planned_spend"] == HORIZON * daily
        expected = HORIZON * float(MODEL.channel_response(channel, daily))
        assert row["incremental_revenue"] == pytest.approx(expected, rel=1e-12)
        draws = HORIZON * MODEL.channel_response(channel, daily, draws=True)
        assert row["incremental_revenue_lower"] == pytest.approx(min(np.quantile(draws, 0.05), expected), rel=1e-12)
        assert row["incremental_revenue_upper"] == pytest.approx(max(np.quantile(draws, 0.95), expected), rel=1e-12)
        assert pd.isna(row["total_revenue"]) and pd.isna(row["baseline_revenue"])
        if daily > 0:
            assert row["roi"] == pytest.approx((expected - HORIZON * daily) / (HORIZON * daily))
            assert row["roi_lower"] <= row["roi"] <= row["roi_upper"]
        else:
            assert pd.isna(row["roi"]) and pd.isna(row["change_pct"])
    assert rows.loc["search", "change_pct"] == pytest.approx(350 / 300 * 100 - 100)
    total = rows.loc["TOTAL"]
    channels = table[table["channel"] != "TOTAL"]
    assert total["planned_spend"] == pytest.approx(channels["planned_spend"].sum())
    assert total["incremental_revenue"] == pytest.approx(channels["incremental_revenue"].sum())
    assert total["baseline_revenue"] == HORIZON * MODEL.baseline_daily
    assert total["total_revenue"] == pytest.approx(HORIZON * MODEL.predict(spend))
    # The total's interval is over the summed draws: narrower than the sum of the channel intervals.
    assert channels["incremental_revenue_lower"].sum() <= total["incremental_revenue_lower"]
    assert total["incremental_revenue_upper"] <= channels["incremental_revenue_upper"].sum()
    assert total["total_revenue_lower"] == pytest.approx(total["baseline_revenue"] + total["incremental_revenue_lower"])


def test_moving_spend_into_a_saturated_channel_predicts_less_than_the_recommendation():
    rec = recommend_budget(MODEL)
    recommended = by_channel(spend_scenario(MODEL, standard_plans(MODEL, rec)["budget_recommendation"]))
    # Same total daily spend, but 150/day taken from search and social and put into the saturated channel.
    current = MODEL.current_daily_spend
    into_saturated = {"search": current["search"] - 100, "social": current["social"] - 50,
                      "saturated": current["saturated"] + 150}
    moved = by_channel(spend_scenario(MODEL, into_saturated))
    assert moved.loc["TOTAL", "planned_spend"] == pytest.approx(recommended.loc["TOTAL", "planned_spend"])
    assert moved.loc["TOTAL", "total_revenue"] < recommended.loc["TOTAL", "total_revenue"]
    assert moved.loc["TOTAL", "roi"] < recommended.loc["TOTAL", "roi"]
    # ... and less than leaving spend where it is: the saturated channel returns under 0.1 per extra unit.
    assert moved.loc["TOTAL", "incremental_revenue"] < by_channel(spend_scenario(MODEL, {})).loc["TOTAL", "incremental_revenue"]
    assert moved.loc["saturated", "incremental_revenue"] - HORIZON * float(MODEL.channel_response("saturated", 400)) < (
        0.1 * HORIZON * 150)


# --------------------------------------------------------------------------------------------
# Agreement with the budget recommendation


@pytest.mark.parametrize("kwargs", [{}, {"max_change": 0.5}, {"total_budget": 1200.0, "max_change": 0.8}])
def test_the_recommendations_scenario_is_its_expected_revenue_times_the_horizon(kwargs):
    rec = recommend_budget(MODEL, **kwargs)
    plans = standard_plans(MODEL, rec)
    table = by_channel(spend_scenario(MODEL, plans["budget_recommendation"], horizon_days=HORIZON))
    budget = rec.table.set_index("channel")
    for channel in budget.index:
        assert table.loc[channel, "daily_spend"] == pytest.approx(budget.loc[channel, "recommended_spend"], rel=1e-12)
        for ours, theirs in (("incremental_revenue", "recommended_expected_revenue"),
                             ("incremental_revenue_lower", "recommended_expected_revenue_lower"),
                             ("incremental_revenue_upper", "recommended_expected_revenue_upper")):
            assert table.loc[channel, ours] / HORIZON == pytest.approx(budget.loc[channel, theirs], rel=1e-12), (
                channel, ours)
    assert table.loc["TOTAL", "total_revenue"] / HORIZON == pytest.approx(rec.recommended_revenue, rel=1e-12)
    current = by_channel(spend_scenario(MODEL, plans["current"], horizon_days=HORIZON))
    assert current.loc["TOTAL", "total_revenue"] / HORIZON == pytest.approx(rec.current_revenue, rel=1e-12)


def test_standard_plans_are_current_the_recommendation_and_current_minus_and_plus_20pct():
    rec = recommend_budget(MODEL)
    plans = standard_plans(MODEL, rec)
    assert list(plans) == ["current", "budget_recommendation", "current_minus_20pct", "current_plus_20pct"]
    current = MODEL.current_daily_spend
    assert plans["current"] == current.to_dict()
    assert plans["current_minus_20pct"] == pytest.approx((current * 0.8).to_dict())
    assert plans["current_plus_20pct"] == pytest.approx((current * 1.2).to_dict())
    # The published recommendation (a table read back) gives the same plans as the object.
    assert standard_plans(MODEL, rec.table) == plans
    table = spend_scenarios(MODEL, plans)
    assert list(table.groupby("scenario", sort=False).size().items()) == [(name, 5) for name in plans]
    totals = table[table["channel"] == "TOTAL"].set_index("scenario")["incremental_revenue"]
    # Concave curves: more spend, more revenue, each extra unit returning less.
    assert totals["current_minus_20pct"] < totals["current"] < totals["current_plus_20pct"]
    with pytest.raises(ValueError, match="different runs"):
        standard_plans(make_model({"search": (1.0, 1.0, 1.0, 1.0)}), rec)


# --------------------------------------------------------------------------------------------
# The curves the HTTP service reads


def test_published_parameters_give_the_same_scenario_as_the_model():
    parameters = MODEL.response_parameters().sample(frac=1.0, random_state=3)  # a warehouse keeps no order
    published = PublishedCurves.from_parameters(parameters.assign(run_id="r1"))
    assert published.channel_names == tuple(sorted(MODEL.channel_names))
    plan = {"search": 350, "saturated": 10}
    ours = spend_scenario(published, plan).set_index("channel")
    theirs = spend_scenario(MODEL, plan).set_index("channel").loc[ours.index]
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-13)
    with pytest.raises(ValueError, match="lacks column"):
        PublishedCurves.from_parameters(parameters.drop(columns="coefficient"))
    with pytest.raises(ValueError, match="more than one run"):
        PublishedCurves.from_parameters(parameters.assign(baseline_daily=np.arange(len(parameters))))


# --------------------------------------------------------------------------------------------
# Baseline draws and conversions


def seasonal_baseline(days: int = 180, mean: float = 1000.0) -> np.ndarray:
    """A daily baseline with a +/-20% season over the window and a weekday pattern, averaging ``mean``."""
    t = np.arange(days)
    values = 1.0 + 0.2 * np.sin(2 * np.pi * t / days) + 0.05 * np.cos(2 * np.pi * t / 7)
    return mean * values / values.mean()


def test_the_daily_baseline_sets_the_level_and_its_draws_widen_the_total_interval():
    plan = {"search": 350}
    without = by_channel(spend_scenario(MODEL, plan))
    daily = seasonal_baseline()
    with_baseline = by_channel(spend_scenario(MODEL, plan, baseline=daily))
    media = ["daily_spend", "incremental_revenue", "incremental_revenue_lower", "incremental_revenue_upper",
             "roi", "roi_lower", "roi_upper"]
    pd.testing.assert_frame_equal(with_baseline[media], without[media])
    total, old = with_baseline.loc["TOTAL"], without.loc["TOTAL"]
    # Without the daily baseline: the window's average, a point. With it: the last 28 days' level.
    assert old["baseline_revenue"] == HORIZON * MODEL.baseline_daily
    assert pd.isna(old["baseline_revenue_lower"]) and pd.isna(old["baseline_revenue_upper"])
    assert total["baseline_revenue"] == pytest.approx(HORIZON * daily[-RECENT_BASELINE_DAYS:].mean())
    assert total["baseline_revenue"] == pytest.approx(HORIZON * baseline_level(daily))
    assert total["total_revenue"] == pytest.approx(total["baseline_revenue"] + total["incremental_revenue"])
    assert total["baseline_revenue_lower"] < total["baseline_revenue"] < total["baseline_revenue_upper"]
    # Paired draws: the total's interval is narrower than the sum of its parts' and wider than either.
    media_width = total["incremental_revenue_upper"] - total["incremental_revenue_lower"]
    baseline_width = total["baseline_revenue_upper"] - total["baseline_revenue_lower"]
    width = total["total_revenue_upper"] - total["total_revenue_lower"]
    assert max(media_width, baseline_width) < width < media_width + baseline_width
    # A flat baseline has no spread: the total's interval is the media's again, moved by the level.
    flat = by_channel(spend_scenario(MODEL, plan, baseline=np.full(90, 1000.0))).loc["TOTAL"]
    assert flat["baseline_revenue_lower"] == pytest.approx(flat["baseline_revenue"]) == pytest.approx(HORIZON * 1000.0)
    assert flat["total_revenue_lower"] - flat["baseline_revenue"] == pytest.approx(
        old["total_revenue_lower"] - old["baseline_revenue"])


def test_a_baseline_that_grew_over_the_window_is_carried_forward_from_where_it_ended():
    # Demand that grew by half over the window: the next 30 days start from the last 28 days' level, not from
    # the window's average (which missed the next month by a median 6-9% on two data families,
    # docs/scenario_skill.md), and the draws carry the growth the window showed from one month to the next.
    growing = np.linspace(800.0, 1200.0, 180)
    total = by_channel(spend_scenario(MODEL, {}, baseline=growing)).loc["TOTAL"]
    assert total["baseline_revenue"] == pytest.approx(HORIZON * growing[-28:].mean())
    assert total["baseline_revenue"] > 1.15 * HORIZON * growing.mean()
    assert total["baseline_revenue_lower"] == pytest.approx(total["baseline_revenue"])  # the interval holds it
    assert total["baseline_revenue_upper"] > 1.05 * total["baseline_revenue"]
    # Drift both ways over the window: the draws span a fall and a rise around the level.
    draws = baseline_draws(seasonal_baseline(), HORIZON, 200)
    level = HORIZON * baseline_level(seasonal_baseline())
    assert draws.min() < 0.9 * level and draws.max() > 1.05 * level
    # A window shorter than 28 days plus the horizon still gives draws (recent days at most half of it).
    short = baseline_draws(np.linspace(800.0, 1200.0, 40), HORIZON, 50)
    assert np.isfinite(short).all() and short.min() > HORIZON * np.linspace(800.0, 1200.0, 40)[-28:].mean()
    assert baseline_draws(np.array([500.0]), HORIZON, 5) == pytest.approx(np.full(5, HORIZON * 500.0))


def test_a_baseline_without_a_positive_mean_still_gives_the_total_its_spread():
    # On a user's export the model can credit media with more than all the revenue over the window (seen in a
    # real refresh of tests/orchestration/test_own_data.py): the stretches' differences from their recent level
    # are added, so the spread is the season's, whatever the (meaningless) level.
    plan = {"search": 350}
    negative = seasonal_baseline(mean=1000.0) - 1500.0  # mean -500, the same +/-200 season
    rows = by_channel(spend_scenario(MODEL, plan, baseline=negative))
    total = rows.loc["TOTAL"]
    assert total["baseline_revenue_lower"] < total["baseline_revenue"] < total["baseline_revenue_upper"]
    assert total["baseline_revenue"] == pytest.approx(HORIZON * negative[-28:].mean())
    width = total["baseline_revenue_upper"] - total["baseline_revenue_lower"]
    assert 0.05 * HORIZON * 400 < width < HORIZON * 400  # within the season's peak-to-peak
    lower = by_channel(spend_scenario(MODEL, plan, baseline=negative - 700.0)).loc["TOTAL"]
    assert lower["baseline_revenue_upper"] - lower["baseline_revenue_lower"] == pytest.approx(width, rel=1e-9)
    with pytest.raises(ValueError, match="finite values"):
        baseline_draws(np.array([1.0, np.nan, 2.0]), 30, 10)


def test_conversions_are_revenue_over_revenue_per_conversion_with_the_spread_of_both():
    rng = np.random.default_rng(1)
    days = 365
    conversions = rng.poisson(40, days).astype(float)
    order_value = 50.0 * np.exp(0.1 * np.sin(2 * np.pi * np.arange(days) / 91))
    revenue = conversions * order_value
    value = revenue_per_conversion(revenue, conversions, horizon_days=HORIZON, ci=0.9)
    recent = slice(days - CONVERSION_WINDOW_DAYS, days)
    assert value.value == pytest.approx(revenue[recent].sum() / conversions[recent].sum())
    assert 45 < value.lower < value.value < value.upper < 56
    table = by_channel(spend_scenario(MODEL, {"search": 350}, baseline=seasonal_baseline(), conversion_value=value))
    total = table.loc["TOTAL"]
    assert set(table["revenue_per_conversion"]) == {value.value}
    for channel, row in table.iterrows():
        assert row["incremental_conversions"] == pytest.approx(row["incremental_revenue"] / value.value)
        assert row["incremental_conversions_lower"] <= row["incremental_conversions"] <= row[
            "incremental_conversions_upper"]
        if channel != "TOTAL":
            assert pd.isna(row["total_conversions"])
    assert total["total_conversions"] == pytest.approx(total["total_revenue"] / value.value)
    assert total["total_conversions_lower"] < total["total_revenue_lower"] / value.value
    assert total["total_conversions_upper"] > total["total_revenue_upper"] / value.value
    # Without a conversion value the columns are empty, not made up.
    assert table.columns.equals(by_channel(spend_scenario(MODEL, {})).columns)
    assert by_channel(spend_scenario(MODEL, {}))[["incremental_conversions", "total_conversions"]].isna().all().all()
    # The draws give back the interval they were built from.
    draws = value.draws(4000)
    assert np.quantile(draws, [0.05, 0.5, 0.95]) == pytest.approx([value.lower, value.value, value.upper], rel=2e-3)


@pytest.mark.parametrize("revenue, conversions, message", [
    ([1.0, 2.0], [1.0], "two series of one length"),
    ([1.0, -2.0], [1.0, 1.0], "negative, missing or non-finite"),
    ([1.0, np.nan], [1.0, 1.0], "negative, missing or non-finite"),
    ([0.0, 0.0], [0.0, 0.0], "have no sale in the last 180 days"),
])
def test_revenue_per_conversion_refuses_data_it_cannot_use(revenue, conversions, message):
    with pytest.raises(ValueError, match=message):
        revenue_per_conversion(revenue, conversions)


def test_daily_baseline_reads_the_published_decomposition_and_names_what_is_wrong():
    dates = pd.date_range("2026-01-01", periods=4)
    table = pd.DataFrame({"date": list(dates[::-1]) * 2, "component": ["baseline"] * 4 + ["search"] * 4,
                          "value": [4.0, 3.0, 2.0, 1.0, 9.0, 9.0, 9.0, 9.0]})
    assert list(daily_baseline(table)) == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="lacks column"):
        daily_baseline(table.drop(columns="value"))
    with pytest.raises(ValueError, match="no baseline rows"):
        daily_baseline(table[table["component"] == "search"])
    with pytest.raises(ValueError, match="more than one run"):
        daily_baseline(pd.concat([table, table]))
