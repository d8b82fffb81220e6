"""Forecast assets (Prophet, long-run weekday levels, a spend regression; the best that beats naive per series):
ROI by channel, daily ROI/conversions and reach/CTR series with calibrated intervals."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AssetKey, AssetSpec, Config, MetadataValue, multi_asset
from pydantic import Field

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, markdown_table
from assets.resources import Warehouse

GROUP = "forecasts"
TABLE_OF = {"roi_forecast": "ml_roi_forecast", "roi_timeseries": "ml_roi_timeseries",
            "reach_ctr_timeseries": "ml_reach_ctr_timeseries"}
SUMMARIES = {
    "roi_forecast": "ROI by channel over the next horizon, with its interval, the backtest MAPE and the skill "
                    "against naive baselines (a series whose model does not beat them is published as the baseline).",
    "roi_timeseries": "Daily ROI and conversions per channel, history and forecast in one table.",
    "reach_ctr_timeseries": "Daily reach, impressions, clicks and CTR per channel, history and forecast.",
}
CHECKS = [
    ("roi_forecast", "roi_forecast_no_nan", "No missing value in the ROI forecast (backtest_mape, naive_mape, "
     "skill and total_skill may be empty when a channel's held-out revenue is all zero; revenue and ROI are empty, "
     "and named, for a channel without platform revenue in the data)."),
    ("roi_forecast", "roi_forecast_intervals_contain_estimates", "roi_lower <= predicted_roi <= roi_upper."),
    ("roi_timeseries", "roi_timeseries_forecast_no_nan", "Forecast rows have no missing value (ROI and conversions "
     "are empty, and named, for a channel without them in the data)."),
    ("roi_timeseries", "roi_timeseries_covers_horizon", "Every channel has the full forecast horizon."),
    ("roi_timeseries", "roi_timeseries_intervals_contain_estimates", "Forecast ROI and conversions lie in their bands."),
    ("reach_ctr_timeseries", "reach_ctr_forecast_no_nan", "Forecast rows have no missing value (reach is empty, "
     "and named, for a channel without reach in the data)."),
    ("reach_ctr_timeseries", "reach_ctr_covers_horizon", "Every channel has the full forecast horizon."),
    ("reach_ctr_timeseries", "reach_ctr_intervals_contain_estimates", "Forecast reach, impressions, clicks, CTR lie in their bands."),
]

# Non-blocking: a channel that cannot be forecast (too little history, or stopped) leaves the others published.
COVERAGE_CHECK = AssetCheckSpec(
    "forecast_covers_every_channel", asset="roi_forecast", blocking=False,
    description="warning: every channel of fct_channel_daily is forecast; a channel with too little history "
    "with spend, or none in the backtest windows (stopped, or renamed), is left out and named with the reason.",
)


def _coverage_check(channels: list[str], not_forecast: dict[str, str]) -> AssetCheckResult:
    described = "; ".join(f"{c}: {why}" for c, why in sorted(not_forecast.items()))
    return AssetCheckResult(
        asset_key="roi_forecast", check_name=COVERAGE_CHECK.name, passed=not not_forecast,
        severity=AssetCheckSeverity.WARN,
        description=(f"{len(not_forecast)} of {len(channels)} channels not forecast (the tables hold the others): "
                     f"{described}" if not_forecast else f"all {len(channels)} channels forecast"),
        metadata={"not_forecast": MetadataValue.json(dict(sorted(not_forecast.items())))},
    )


SKILL_SHOWN = ["method", "model_mape", "naive_method", "naive_mape", "skill", "model_total_error",
               "naive_total_error", "total_skill", "published_skill", "published_total_skill", "prophet_mape",
               "level_weekday_mape", "level_recent_mean_mape", "level_reverting_mape", "spend_regression_mape",
               "interval_factor", "backtest_coverage"]


def _records(frame):
    """Rows as JSON-ready dicts (NaN as null)."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _each(check, columns):
    return [(check, [c], {}) for c in columns]


def _unless_absent(name, checks, frame, where, unreported):
    """Run `checks` (check function, columns, kwargs) on the rows selected by `where`, each column only on the
    channels whose data has its metric: `unreported` maps a column to the channels without it, which are NULL
    there by design (optional columns of the ad export) and are named in the outcome instead."""
    from core.checks import CheckOutcome

    outcomes = []
    for check, columns, kwargs in checks:
        key = columns[0] if isinstance(columns[0], str) else columns[0][0]
        missing = unreported.get(key, [])
        rows = where & ~frame["channel"].isin(missing)
        outcomes.append(check(name, frame, columns, where=rows, **kwargs))
    failed = [o for o in outcomes if not o.passed]
    notes = sorted({f"{column} not expected for {channels} (not in the data)"
                    for column, channels in unreported.items() if channels})
    description = "; ".join(o.description for o in (failed or outcomes[:1])) + "".join(f"; {n}" for n in notes)
    return CheckOutcome(name, not failed, description,
                        {"parts": [o.detail for o in outcomes], "not_in_the_data": {k: v for k, v in unreported.items() if v}})


class ForecastConfig(Config):
    horizon_days: int = Field(30, ge=1, le=365, description="days to forecast")
    interval_width: float = Field(0.95, gt=0.5, lt=1.0)
    backtest_folds: int = Field(3, ge=1, le=10, description="rolling-origin backtest folds")
    n_jobs: int = Field(2, ge=1, le=64, description="parallel Prophet fits (processes)")
    seed: int = Field(0, ge=0)


@multi_asset(
    specs=[
        AssetSpec(name, deps=[AssetKey(["analytics", "fct_channel_daily"])], group_name=GROUP,
                  description=asset_description(name, SUMMARIES[name]), kinds=python_kinds("prophet"),
                  metadata=table_metadata(table), skippable=True)
        for name, table in TABLE_OF.items()
    ],
    check_specs=[AssetCheckSpec(check, asset=asset_name, description=text, blocking=True)
                 for asset_name, check, text in CHECKS]
    + [spec for asset_name in TABLE_OF for spec in gx_specs(asset_name)] + [COVERAGE_CHECK],
    can_subset=False,
)
def channel_forecasts(context: AssetExecutionContext, config: ForecastConfig, warehouse: Warehouse):
    """Per channel and metric, the best of Prophet, level_weekday and spend_regression on a rolling-origin backtest
    (else the better naive baseline), with intervals widened to cover the backtest's held-out days."""
    from core.checks import covers_horizon, intervals_contain, no_nan
    from ml.forecasting import FUTURE_SPEND, MODEL_METHODS, NAIVE_METHODS, forecast_channel_metrics

    daily = warehouse.read_table(
        "analytics", "fct_channel_daily",
        ["date", "channel", "spend", "revenue", "conversions", "impressions", "reach", "clicks"],
    )
    forecast = forecast_channel_metrics(
        daily, horizon_days=config.horizon_days, interval_width=config.interval_width,
        backtest_folds=config.backtest_folds, n_jobs=config.n_jobs, seed=config.seed,
    )
    tables = {
        "roi_forecast": forecast.roi_forecast_table(),
        "roi_timeseries": forecast.roi_timeseries_table(),
        "reach_ctr_timeseries": forecast.reach_ctr_timeseries_table(),
    }
    # The channels forecast; the others (too little history, stopped) are named by the coverage warning.
    channels = forecast.channels
    roi, ts, rc = tables["roi_forecast"], tables["roi_timeseries"], tables["reach_ctr_timeseries"]
    ts_future, rc_future = ts["is_forecast"].astype(bool), rc["is_forecast"].astype(bool)
    # Optional columns of the ad export: a channel without them has NULLs there, named in the check outcomes.
    lacking = {m: [c for c in channels if not forecast.reports(c, m)] for m in ("revenue", "conversions", "reach")}
    roi_unreported = {c: lacking["revenue"] for c in ("predicted_revenue", "predicted_roi", "roi_lower", "roi_upper")}
    ts_unreported = {**{c: lacking["revenue"] for c in ("roi", "roi_lower", "roi_upper")},
                     **{c: lacking["conversions"] for c in ("conversions", "conversions_lower", "conversions_upper")}}
    rc_unreported = {c: lacking["reach"] for c in ("reach", "reach_lower", "reach_upper")}

    # Backtest scores are NULL when a channel's held-out revenue is all zero (WAPE undefined).
    scores = ("backtest_mape", "naive_mape", "skill", "total_skill")
    roi_numbers = [c for c in roi.select_dtypes("number").columns if c not in scores]
    every_row = roi["channel"].notna()
    outcomes = {
        "roi_forecast": [
            _unless_absent("roi_forecast_no_nan", _each(no_nan, roi_numbers), roi, every_row, roi_unreported),
            _unless_absent("roi_forecast_intervals_contain_estimates",
                           [(intervals_contain, [("predicted_roi", "roi_lower", "roi_upper")], {})],
                           roi, every_row, {"predicted_roi": lacking["revenue"]}),
        ],
        "roi_timeseries": [
            _unless_absent("roi_timeseries_forecast_no_nan",
                           _each(no_nan, ts.select_dtypes("number").columns), ts, ts_future, ts_unreported),
            covers_horizon("roi_timeseries_covers_horizon", ts, channels, config.horizon_days),
            _unless_absent("roi_timeseries_intervals_contain_estimates",
                           [(intervals_contain, [(m, f"{m}_lower", f"{m}_upper")], {}) for m in ("roi", "conversions")],
                           ts, ts_future, ts_unreported),
        ],
        "reach_ctr_timeseries": [
            _unless_absent("reach_ctr_forecast_no_nan",
                           _each(no_nan, rc.select_dtypes("number").columns), rc, rc_future, rc_unreported),
            covers_horizon("reach_ctr_covers_horizon", rc, channels, config.horizon_days),
            _unless_absent("reach_ctr_intervals_contain_estimates",
                           [(intervals_contain, [(m, f"{m}_lower", f"{m}_upper")], {})
                            for m in ("reach", "impressions", "clicks", "ctr")],
                           rc, rc_future, rc_unreported),
        ],
    }
    backtest = forecast.backtest.pivot_table(index="channel", columns="metric", values="mape")
    skill = forecast.skill.set_index(["channel", "metric"])
    yield from check_and_publish(
        context, warehouse, {TABLE_OF[name]: frame for name, frame in tables.items()},
        invariants=outcomes,
        suite_params={table: {"channels": channels, **({"horizon_days": config.horizon_days}
                                                        if table == "ml_roi_forecast" else {})}
                      for table in TABLE_OF.values()},
        metadata={
            **{name: {"horizon_days": config.horizon_days} for name in TABLE_OF},
            "roi_forecast": {
                "horizon_days": config.horizon_days,
                "roi_forecast": MetadataValue.md(markdown_table(roi.set_index("channel")[
                    ["predicted_spend", "predicted_revenue", "predicted_roi", "roi_lower", "roi_upper", "method",
                     "backtest_mape", "naive_mape", "skill", "total_skill"]])),
                "backtest_mape": MetadataValue.md(markdown_table(backtest, digits=3)),
                # Every series' model error next to the naive baselines', and what was published.
                "forecast_skill": MetadataValue.md(markdown_table(skill[SKILL_SHOWN], digits=3, max_rows=len(skill))),
                "forecast_skill_records": MetadataValue.json(_records(forecast.skill)),
                # Plain numbers, so the UI plots them across materializations.
                "median_model_skill": float(skill["skill"].median()),
                "median_published_skill": float(skill["published_skill"].median()),
                "median_published_total_skill": float(skill["published_total_skill"].median()),
                "series_on_naive_fallback": int(skill["method"].isin(list(NAIVE_METHODS)).sum()),
                "published_methods": MetadataValue.json(skill["method"].value_counts().to_dict()),
                "methods": MetadataValue.json({**MODEL_METHODS, **NAIVE_METHODS}),
                # The spend path behind every spend_regression forecast (revenue and conversions).
                "future_spend": FUTURE_SPEND,
                # Interval calibration on the backtest folds: share of held-out days inside the 95% interval
                # before widening, and the conformal factor the draws were widened by (1 = already covered).
                "median_backtest_coverage": float(skill["backtest_coverage"].median()),
                "median_interval_factor": float(skill["interval_factor"].median()),
                "not_forecast": MetadataValue.json(dict(sorted(forecast.not_forecast.items()))),
            },
        },
    )
    yield _coverage_check(sorted(daily["channel"].unique()), forecast.not_forecast)
