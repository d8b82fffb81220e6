"""Triangulation asset: per channel, the platforms' claims, Markov attribution and the media-mix model's
incremental revenue over the model window; on the demo, a warning check of the model against the truth."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    asset,
)

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, invariant_specs, markdown_table
from assets.resources import Warehouse

CHECKS = {
    "triangulation_covers_mmm_channels": "One row per channel of the media-mix model, over its window.",
}
TRUTH_CHECK = AssetCheckSpec(
    "mmm_matches_demo_truth", asset="channel_triangulation", blocking=False,
    description="warning, demo only: the media-mix model's ROAS and contribution per channel against the demo "
    "generator's truth (raw.ground_truth_daily) over the model window. Fails when a major channel (at least 10% of "
    "the window's spend) is confidently wrong: ROAS off by more than 50% with the truth outside its 95% interval. "
    "Passes with 'no ground truth (your own data)' when the warehouse has no ground_truth tables.",
)
INPUTS = [AssetKey("channel_attribution"), AssetKey("media_mix_model"), AssetKey(["analytics", "fct_channel_daily"]),
          AssetKey(["analytics", "int_journeys"])]
# Converted journeys' revenue per conversion day: brings Markov credit (estimated on every journey) to the window.
JOURNEY_REVENUE_SQL = """
select cast(converted_at as date) as date, sum(revenue) as revenue
from analytics.int_journeys
where is_converted and touch_index = 1
group by cast(converted_at as date)
"""


@asset(
    deps=INPUTS,
    group_name="triangulation",
    kinds=python_kinds(),
    description=asset_description(
        "channel_triangulation", "Platform-claimed vs Markov-attributed vs media-mix incremental revenue per channel "
        "over the media-mix window, with the ratios between them."),
    metadata=table_metadata("channel_triangulation"),
    check_specs=invariant_specs("channel_triangulation", CHECKS) + gx_specs("channel_triangulation") + [TRUTH_CHECK],
)
def channel_triangulation(context: AssetExecutionContext, warehouse: Warehouse):
    from core.checks import CheckOutcome
    from ml.triangulation import triangulate, window_revenue_fraction

    mmm = warehouse.read_table("predictions", "mmm_channel_roas")
    start, end = _model_window(warehouse)
    platform = warehouse.read_table("analytics", "fct_channel_daily", ["date", "channel", "conversions", "revenue"])
    inside = pd.to_datetime(platform["date"]).between(start, end)
    # min_count=1: a channel whose export has no conversions/revenue stays empty, not 0.
    claims = platform[inside.to_numpy()].groupby("channel")[["conversions", "revenue"]].sum(min_count=1).reset_index()
    attribution = warehouse.read_table("predictions", "channel_attribution")
    fraction = window_revenue_fraction(warehouse.read_sql(JOURNEY_REVENUE_SQL), start, end)
    table = triangulate(claims, attribution[attribution["model"] == "markov"], mmm,
                        window_start=start, window_end=end, window_fraction=fraction)
    channels = sorted(mmm["channel"])
    covered = sorted(table["channel"]) == channels
    yield from check_and_publish(
        context, warehouse, {"channel_triangulation": table},
        invariants={"channel_triangulation": [CheckOutcome(
            "triangulation_covers_mmm_channels", covered,
            f"{len(table)} rows for the {len(channels)} media-mix channels, window {start:%Y-%m-%d} to {end:%Y-%m-%d}")]},
        suite_params={"channel_triangulation": {"channels": channels}},
        metadata={"channel_triangulation": {
            "window": f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
            "markov_window_fraction": MetadataValue.float(fraction),
            "triangulation": MetadataValue.md(markdown_table(table.set_index("channel")[[
                "platform_revenue", "attributed_revenue", "mmm_contribution", "platform_overclaim",
                "attribution_vs_incrementality", "identifiable"]])),
            "reading": MetadataValue.md("\n".join(f"- **{r.channel}**: {r.reading}" for r in table.itertuples())),
        }},
    )
    yield _truth_check(warehouse, mmm, start, end)


def _model_window(warehouse: Warehouse) -> tuple[pd.Timestamp, pd.Timestamp]:
    diag = warehouse.read_table("predictions", "mmm_diagnostics").set_index("metric")["detail"]
    if "start_date" not in diag or "end_date" not in diag:
        raise ValueError("predictions.mmm_diagnostics has no start_date/end_date rows: materialize media_mix_model "
                         "first, then channel_triangulation")
    return pd.Timestamp(diag["start_date"]), pd.Timestamp(diag["end_date"])


def _truth_check(warehouse: Warehouse, mmm: pd.DataFrame, start, end) -> AssetCheckResult:
    from ml.synthetic import true_roas
    from ml.triangulation import compare_with_truth

    def result(passed: bool, description: str, **metadata) -> AssetCheckResult:
        return AssetCheckResult(asset_key="channel_triangulation", check_name=TRUTH_CHECK.name, passed=passed,
                                severity=AssetCheckSeverity.WARN, description=description, metadata=metadata)

    if not warehouse.table_exists("raw", "ground_truth_daily"):
        return result(True, "no ground truth (your own data)")
    truth = warehouse.read_table("raw", "ground_truth_daily", ["date", "channel", "spend", "contribution"])
    comparison = compare_with_truth(mmm, true_roas(truth, start, end))
    shown = comparison.table.set_index("channel")[[
        "spend_share", "true_roas", "roas", "roas_lower", "roas_upper", "roas_error", "true_contribution",
        "contribution", "contribution_error", "identifiable", "verdict"]] if len(comparison.table) else comparison.table
    return result(
        comparison.passed, comparison.description[:1000],
        comparison=MetadataValue.md(markdown_table(shown)),
        roas_error=MetadataValue.json({r.channel: None if pd.isna(r.roas_error) else round(float(r.roas_error), 4)
                                       for r in comparison.table.itertuples()}),
    )
