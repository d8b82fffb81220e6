"""Media-mix model and budget recommendation assets: incremental ROAS with intervals, reallocation."""

from typing import Literal, Optional

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

import pandas as pd

from assets.common import check_results, gx_check, gx_spec, markdown_table, python_kinds, table_metadata
from orchestration.warehouse import Warehouse

MMM_CHECKS = {
    "mmm_no_nan": "No missing value in the channel ROAS table or the response curves.",
    "mmm_intervals_contain_estimates": "Contribution, share, ROAS and marginal ROAS intervals and the "
    "response-curve band contain their estimates.",
}
BUDGET_CHECKS = {
    "budget_no_nan": "No missing value in the recommendation (change_pct may be empty for unfunded channels).",
    "recommended_total_equals_budget": "Recommended spend sums to the budget.",
    "budget_intervals_contain_estimates": "Recommended expected revenue lies inside its interval.",
    "never_worse_than_current": "The recommendation predicts at least the current allocation's revenue.",
}


class MediaMixConfig(Config):
    lookback_days: int = Field(180, ge=60, le=1095, description="days of history the model is fitted on")
    curve_history_days: int = Field(
        540, ge=60, le=3660,
        description="days (ending with the window) the adstock/saturation curves are chosen on; "
        "set it to lookback_days to learn them on the window alone",
    )
    min_days: int = Field(60, ge=30, description="refuse to fit on fewer days than this")
    n_bootstrap: int = Field(100, ge=0, le=2000, description="bootstrap draws for the intervals")
    ci: float = Field(0.95, gt=0.5, lt=1.0, description="interval coverage")
    seed: int = Field(0, ge=0)
    criterion: Literal["in_sample", "cv"] = Field(
        "in_sample",
        description="how adstock/saturation curves are chosen: penalized in-sample fit over the curve history "
        "(ridge strength by time-series CV; more accurate on the demo generator) or expanding-window CV",
    )
    prior_strength: float = Field(
        1.0, ge=0.0, le=100.0, description="weight of the adstock/saturation prior (0: none, 1: as stated in ml.mmm)"
    )
    retail_peaks: bool = Field(
        True, description="leave Thanksgiving to Cyber Tuesday and 21 Dec to 1 Jan out of the regression"
    )
    holiday_country: Optional[str] = Field(
        None, description="also leave this country's public holidays out (ISO code such as 'US'), or None"
    )


@asset(
    deps=[AssetKey(["analytics", "fct_channel_daily"]), AssetKey(["analytics", "fct_revenue_daily"])],
    group_name="media_mix",
    kinds=python_kinds("scikit-learn"),
    description="Adstock + saturation media-mix model with bootstrap intervals; publishes mmm_channel_roas, "
    "mmm_diagnostics, mmm_response_curves and mmm_revenue_decomposition.",
    metadata=table_metadata("mmm_channel_roas"),
    check_specs=[AssetCheckSpec(n, asset="media_mix_model", description=d, blocking=True) for n, d in MMM_CHECKS.items()]
    + [gx_spec(t, asset="media_mix_model") for t in ("mmm_channel_roas", "mmm_response_curves", "mmm_diagnostics")],
)
def media_mix_model(context: AssetExecutionContext, config: MediaMixConfig, warehouse: Warehouse):
    from ml.checks import combine, intervals_contain, no_nan
    from ml.mmm import daily_frame, fit_media_mix_model

    daily = daily_frame(
        warehouse.read_table("analytics", "fct_channel_daily", ["date", "channel", "spend"]),
        warehouse.read_table("analytics", "fct_revenue_daily", ["date", "revenue"]),
    )
    result = fit_media_mix_model(
        daily, lookback_days=config.lookback_days, curve_history_days=config.curve_history_days,
        min_days=config.min_days, n_bootstrap=config.n_bootstrap, ci=config.ci, seed=config.seed,
        criterion=config.criterion, prior_strength=config.prior_strength, retail_peaks=config.retail_peaks,
        holiday_country=config.holiday_country,
    )
    ch, curves = result.channels, result.response_curves
    outcomes = [
        combine("mmm_no_nan", ("channel table", no_nan("", ch)), ("response curves", no_nan("", curves))),
        combine(
            "mmm_intervals_contain_estimates",
            ("channel table", intervals_contain("", ch, [
                ("contribution", "contribution_lower", "contribution_upper"),
                ("contribution_share", "contribution_share_lower", "contribution_share_upper"),
                ("roas", "roas_lower", "roas_upper"),
                ("marginal_roas", "marginal_roas_lower", "marginal_roas_upper"),
            ])),
            ("response curves", intervals_contain("", curves, [("predicted_incremental_revenue", "lower", "upper")])),
        ),
    ]
    stamp = {"run_id": context.run_id, "generated_at": pd.Timestamp.now()}
    diagnostics = result.diagnostics_table()
    channels = sorted(ch["channel"])
    outcomes += [
        gx_check("mmm_channel_roas", ch.assign(**stamp), channels=channels),
        gx_check("mmm_response_curves", curves.assign(**stamp), channels=channels),
        gx_check("mmm_diagnostics", diagnostics.assign(**stamp)),
    ]
    yield from check_results("media_mix_model", outcomes)
    if not all(o.passed for o in outcomes):
        raise Failure("media-mix checks failed; the previous mmm_* tables are kept",
                      metadata={"failed": [o.name for o in outcomes if not o.passed]})

    decomposition = result.decomposition.melt(
        id_vars=["date"], value_vars=["baseline", *[c for c in result.decomposition if c.startswith("contribution_")]],
        var_name="component", value_name="value",
    )
    decomposition["component"] = decomposition["component"].str.removeprefix("contribution_")
    published = warehouse.publish_tables(
        {
            "mmm_channel_roas": ch,
            "mmm_diagnostics": diagnostics,
            "mmm_response_curves": curves,
            "mmm_revenue_decomposition": decomposition,
        },
        run_id=context.run_id,
    )
    diag = result.diagnostics
    headline = ch.set_index("channel")[["spend", "roas", "roas_lower", "roas_upper", "marginal_roas", "contribution_share"]]
    yield Output(
        result,
        metadata={
            **{f"rows/{t.table}": t.rows for t in published},
            "r2": float(diag.get("r2", float("nan"))),
            "mape": float(diag.get("mape", float("nan"))),
            "nrmse": float(diag.get("nrmse", float("nan"))),
            "window": f"{diag.get('start_date')} to {diag.get('end_date')} ({diag.get('n_days')} days)",
            "curve_history": f"{diag.get('curve_start_date')} to {diag.get('end_date')} "
            f"({diag.get('curve_history_days')} days; adstock/saturation chosen here)",
            "days_left_out": int(diag.get("n_holiday_days", 0)),
            "ridge_alpha": float(diag.get("ridge_alpha", float("nan"))),
            "hyperparameters": MetadataValue.json(
                ch.set_index("channel")[["adstock_decay", "saturation_half", "saturation_shape"]].round(4).to_dict("index")
            ),
            "roas_by_channel": MetadataValue.md(markdown_table(headline)),
        },
    )


class BudgetConfig(Config):
    total_budget: float | None = Field(None, gt=0, description="daily budget; default: the current daily total")
    max_change: float = Field(0.30, ge=0, le=10, description="largest relative change per channel (0.3 = ±30%)")
    locked_channels: list[str] = Field(default_factory=list, description="channels whose spend stays as it is")


@asset(
    group_name="budget",
    kinds=python_kinds("scipy"),
    description="Daily spend per channel that maximizes the media-mix model's predicted revenue within the "
    "budget and per-channel bounds; publishes ml_budget_recommendation.",
    metadata=table_metadata("ml_budget_recommendation"),
    check_specs=[AssetCheckSpec(n, asset="budget_recommendation", description=d, blocking=True)
                 for n, d in BUDGET_CHECKS.items()] + [gx_spec("ml_budget_recommendation", asset="budget_recommendation")],
)
def budget_recommendation(context: AssetExecutionContext, config: BudgetConfig, warehouse: Warehouse,
                          media_mix_model):
    from ml.budget import recommend_budget
    from ml.checks import CheckOutcome, equals, intervals_contain, no_nan

    rec = recommend_budget(media_mix_model, total_budget=config.total_budget, max_change=config.max_change,
                           locked=config.locked_channels)
    table = rec.table
    channels = table[table["channel"] != "TOTAL"]
    outcomes = [
        no_nan("budget_no_nan", table, [c for c in table.select_dtypes("number").columns if c != "change_pct"]),
        equals("recommended_total_equals_budget", float(channels["recommended_spend"].sum()), rec.total_budget,
               "recommended daily spend vs budget"),
        intervals_contain("budget_intervals_contain_estimates", table, [(
            "recommended_expected_revenue", "recommended_expected_revenue_lower", "recommended_expected_revenue_upper")]),
        CheckOutcome("never_worse_than_current", rec.recommended_revenue >= rec.current_revenue - 1e-9,
                     f"predicted daily revenue {rec.recommended_revenue:,.2f} recommended vs "
                     f"{rec.current_revenue:,.2f} current"),
        gx_check("ml_budget_recommendation", table.assign(run_id=context.run_id, generated_at=pd.Timestamp.now()),
                 channels=list(media_mix_model.channel_names)),
    ]
    yield from check_results("budget_recommendation", outcomes)
    if not all(o.passed for o in outcomes):
        raise Failure("budget checks failed; the previous ml_budget_recommendation is kept")
    published = warehouse.publish(table, "ml_budget_recommendation", run_id=context.run_id)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": published.rows,
            "daily_budget": rec.total_budget,
            "expected_daily_lift": f"{rec.lift:,.0f} ({rec.lift_lower:,.0f} to {rec.lift_upper:,.0f})",
            "reason": rec.reason,
            "recommendation": MetadataValue.md(markdown_table(
                table.set_index("channel")[["current_spend", "recommended_spend", "change_pct",
                                             "marginal_roas_current", "marginal_roas_recommended"]])),
        },
    )
