"""Planned-spend scenarios asset: revenue, conversions and ROI over the next days for the current spend, the budget
recommendation and current spend -/+20%, from the published response parameters, baseline and recommendation."""

from dagster import AssetExecutionContext, AssetKey, Config, MetadataValue, asset
from pydantic import Field

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, invariant_specs, markdown_table
from assets.resources import Warehouse

SCENARIO_CHECKS = {
    "scenarios_no_nan": "No missing value where the table promises one (total revenue on TOTAL rows, ROI where "
    "the plan spends, change_pct where current spend is positive).",
    "scenarios_intervals_contain_estimates": "Incremental revenue, baseline and total revenue, ROI and "
    "conversions lie inside their intervals.",
    "scenario_totals_equal_channel_sums": "Each plan's TOTAL row has the sum of its channels' spend and "
    "incremental revenue.",
    "scenario_matches_budget_recommendation": "The budget recommendation's plan predicts the recommendation's "
    "expected revenue (and interval) times the horizon: same model, same draws.",
}


class SpendScenarioConfig(Config):
    horizon_days: int = Field(30, ge=1, le=366, description="days each plan runs")
    change: float = Field(0.20, gt=0, lt=1, description="the -/+ plans scale current spend by 1 -/+ change")


@asset(
    deps=[AssetKey("media_mix_model"), AssetKey("budget_recommendation")],
    group_name="budget",
    kinds=python_kinds(),
    description=asset_description(
        "spend_scenarios", "Expected revenue, conversions and ROI over the next days for four spend plans (current, "
        "the budget recommendation, current -/+20%): the media-mix response curves with their bootstrap draws plus "
        "the model's baseline with its own draws; conversions at the last 180 days' revenue per conversion."),
    metadata=table_metadata("ml_spend_scenarios"),
    check_specs=invariant_specs("spend_scenarios", SCENARIO_CHECKS) + gx_specs("spend_scenarios"),
)
def spend_scenarios(context: AssetExecutionContext, config: SpendScenarioConfig, warehouse: Warehouse):
    from ml.mmm import ResponseModel
    from ml.scenarios import daily_baseline, revenue_per_conversion, spend_scenarios as evaluate, standard_plans

    model = ResponseModel.from_parameters(warehouse.read_table("predictions", "mmm_response_parameters"))
    budget = warehouse.read_table("predictions", "ml_budget_recommendation")
    baseline = daily_baseline(warehouse.read_table("predictions", "mmm_revenue_decomposition"))
    sales = warehouse.read_table("analytics", "fct_revenue_daily", ["date", "revenue", "conversions"])
    sales = sales.sort_values("date")
    conversion_value = revenue_per_conversion(sales["revenue"], sales["conversions"],
                                              horizon_days=config.horizon_days, ci=model.ci)
    table = evaluate(model, standard_plans(model, budget, config.change), horizon_days=config.horizon_days,
                     baseline=baseline, conversion_value=conversion_value)
    totals = table[table["channel"] == "TOTAL"].set_index("scenario")
    yield from check_and_publish(
        context, warehouse, {"ml_spend_scenarios": table},
        invariants={"spend_scenarios": _scenario_invariants(table, budget)},
        suite_params={"ml_spend_scenarios": {"channels": list(model.channel_names),
                                             "horizon_days": config.horizon_days}},
        metadata={"spend_scenarios": {
            "horizon_days": config.horizon_days,
            "scenarios": MetadataValue.md(markdown_table(totals[[
                "planned_spend", "incremental_revenue", "incremental_revenue_lower", "incremental_revenue_upper",
                "total_revenue", "total_revenue_lower", "total_revenue_upper", "total_conversions", "roi"]])),
            "revenue_per_conversion": conversion_value.value,
        }},
    )


def _scenario_invariants(table, budget) -> list:
    from core.checks import CheckOutcome, combine, equals, intervals_contain, no_nan

    is_total = table["channel"] == "TOTAL"
    channels, totals = table[~is_total], table[is_total].set_index("scenario")
    sums = channels.groupby("scenario")[["planned_spend", "incremental_revenue"]].sum()
    sum_checks = [
        (f"{name} {column}", equals("", float(totals.loc[name, column]), float(sums.loc[name, column]),
                                    f"{name}: TOTAL {column} vs sum of channels"))
        for name in totals.index for column in sums.columns
    ]
    revenue = "incremental_revenue"
    plan = table[table["scenario"] == "budget_recommendation"].set_index("channel")
    expected = budget.set_index("channel")
    days = float(table["horizon_days"].iloc[0])
    agree = [
        (f"{channel} {ours}", equals("", float(plan.loc[channel, ours]) / days, float(expected.loc[channel, theirs]),
                                     f"{channel}: daily {ours} vs the recommendation's {theirs}"))
        for channel in expected.index
        for ours, theirs in ((revenue, "recommended_expected_revenue"),
                             (f"{revenue}_lower", "recommended_expected_revenue_lower"),
                             (f"{revenue}_upper", "recommended_expected_revenue_upper"))
    ]
    spending_now, spending = table["current_daily_spend"] > 0, table["daily_spend"] > 0
    return [
        combine("scenarios_no_nan",
                ("every row", no_nan("", table, ["daily_spend", "planned_spend", revenue, f"{revenue}_lower",
                                                  f"{revenue}_upper"])),
                ("TOTAL rows", no_nan("", table, ["baseline_revenue", "total_revenue", "total_revenue_lower",
                                                  "total_revenue_upper", "baseline_revenue_lower",
                                                  "baseline_revenue_upper", "total_conversions",
                                                  "total_conversions_lower", "total_conversions_upper"],
                                      where=is_total)),
                ("conversions", no_nan("", table, ["revenue_per_conversion", "incremental_conversions",
                                                   "incremental_conversions_lower", "incremental_conversions_upper"])),
                ("rows with spend", no_nan("", table, ["roi", "roi_lower", "roi_upper"], where=spending)),
                ("rows with current spend", no_nan("", table, ["change_pct"], where=spending_now))),
        combine("scenarios_intervals_contain_estimates",
                ("incremental revenue", intervals_contain("", table, [(revenue, f"{revenue}_lower", f"{revenue}_upper")])),
                ("total revenue", intervals_contain("", table, [("total_revenue", "total_revenue_lower",
                                                                 "total_revenue_upper")], where=is_total)),
                ("baseline and total conversions", intervals_contain("", table, [
                    ("baseline_revenue", "baseline_revenue_lower", "baseline_revenue_upper"),
                    ("total_conversions", "total_conversions_lower", "total_conversions_upper")], where=is_total)),
                ("conversions", intervals_contain("", table, [
                    ("revenue_per_conversion", "revenue_per_conversion_lower", "revenue_per_conversion_upper"),
                    ("incremental_conversions", "incremental_conversions_lower", "incremental_conversions_upper")])),
                ("roi", intervals_contain("", table, [("roi", "roi_lower", "roi_upper")], where=spending))),
        combine("scenario_totals_equal_channel_sums", *sum_checks),
        combine("scenario_matches_budget_recommendation", *agree) if agree else CheckOutcome(
            "scenario_matches_budget_recommendation", False, "the budget recommendation has no rows"),
    ]
