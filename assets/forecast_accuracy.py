"""Forecast scoring asset: the daily forecasts kept in the prediction history against the actuals that have
arrived since, per point and by horizon, with a warning when intervals cover well below their nominal level."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, markdown_table
from assets.resources import Warehouse
from ml.forecast_scoring import MIN_POINTS_FOR_HIT_RATE

GROUP = "history"
HIT_RATE_CHECK = AssetCheckSpec(
    "forecast_intervals_cover_nominal", asset="forecast_accuracy", blocking=False,
    description="warning: per forecast metric, the share of scored actuals inside the forecast interval is not "
    "well below the nominal coverage (below nominal minus the larger of 10 points and 3 standard errors), judged "
    f"once the metric has at least {MIN_POINTS_FOR_HIT_RATE} scored points; passes with the reason before that.",
)
# The last day of actuals each run forecast from, and when it published.
ORIGINS_SQL = ("SELECT run_id, max(date) AS origin_date, max(generated_at) AS published FROM {history} "
               "WHERE NOT is_forecast GROUP BY run_id")


class ForecastAccuracyConfig(Config):
    nominal_coverage: float = Field(0.95, gt=0.5, lt=1.0, description="the coverage the forecast intervals claim "
                                    "(channel_forecasts' interval_width)")
    min_points: int = Field(MIN_POINTS_FOR_HIT_RATE, ge=1, description="scored points a metric needs before its "
                            "hit rate is judged")


@asset(
    deps=[AssetKey("roi_timeseries"), AssetKey("reach_ctr_timeseries"), AssetKey(["analytics", "fct_channel_daily"])],
    group_name=GROUP,
    kinds=python_kinds(),
    description=asset_description(
        "forecast_accuracy", "Every past daily forecast in predictions_history scored against the days that have "
        "arrived in fct_channel_daily: error, interval hit, and summaries by horizon."),
    metadata=table_metadata("forecast_accuracy"),
    check_specs=gx_specs("forecast_accuracy") + [HIT_RATE_CHECK],
)
def forecast_accuracy(context: AssetExecutionContext, config: ForecastAccuracyConfig, warehouse: Warehouse):
    import pandas as pd

    from core.history import query_history, read_history
    from ml.forecast_scoring import (SCORED, SCORED_METRICS, accuracy_by_horizon, daily_actuals, forecast_points,
                                     hit_rate_verdict, score_points)

    client = warehouse.serving_client  # the history lives with the prediction tables
    parts = []
    for table, metrics in SCORED_METRICS.items():
        origins = query_history(client, table, ORIGINS_SQL)
        if origins.empty:
            continue
        # Only the latest run of each data cut is scored (see forecast_points): read just those runs.
        origins = origins.sort_values("published").drop_duplicates("origin_date", keep="last")
        forecasts = read_history(client, table, run_ids=origins["run_id"].tolist(), where="is_forecast")
        parts.append(forecast_points(forecasts, origins, metrics))
    if not parts or not sum(len(p) for p in parts):
        raise Failure("no daily forecast in predictions_history.ml_roi_timeseries or ml_reach_ctr_timeseries: "
                      "materialize channel_forecasts first (its publication writes the history)")
    daily = warehouse.read_table("analytics", "fct_channel_daily",
                                 ["date", "channel", "spend", "revenue", "conversions", "reach", "impressions", "clicks"])
    points = score_points(pd.concat(parts, ignore_index=True), daily_actuals(daily))
    by_horizon = accuracy_by_horizon(points, config.nominal_coverage)
    verdict = hit_rate_verdict(points, config.nominal_coverage, config.min_points)
    scored = points[points["status"] == SCORED]
    pooled = (scored.groupby("metric").agg(points=("abs_error", "size"), mean_abs_error=("abs_error", "mean"),
                                           interval_hit_rate=("in_interval", "mean"))
              if len(scored) else pd.DataFrame())
    explained = (f"{len(scored)} forecast points scored from {points['forecast_origin_date'].nunique()} data cut(s)"
                 if len(scored) else
                 f"no forecast day has arrived yet: all {len(points)} points of "
                 f"{points['forecast_run_id'].nunique()} run(s) are pending, published with status 'pending'; the "
                 "next refresh with new days of data scores them")
    yield from check_and_publish(
        context, warehouse, {"forecast_accuracy": points, "forecast_accuracy_by_horizon": by_horizon},
        metadata={"forecast_accuracy": {
            "scoring": explained,
            "scored_points": len(scored), "pending_points": int((points["status"] == "pending").sum()),
            "by_metric": MetadataValue.md(markdown_table(pooled, digits=3) if len(pooled) else explained),
            "hit_rate": MetadataValue.md(markdown_table(verdict.per_metric.set_index("metric"), digits=3)
                                         if len(verdict.per_metric) else verdict.description),
        }},
    )
    yield AssetCheckResult(
        asset_key="forecast_accuracy", check_name=HIT_RATE_CHECK.name, passed=verdict.passed,
        severity=AssetCheckSeverity.WARN, description=verdict.description[:1000],
        metadata={"per_metric": MetadataValue.json(
            [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
             for row in verdict.per_metric.to_dict("records")])},
    )
