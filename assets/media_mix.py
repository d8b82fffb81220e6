"""Media-mix model and budget recommendation assets: incremental ROAS with intervals, reallocation.

The budget reads the model's published response parameters (predictions.mmm_response_parameters) and
which channels it cannot identify (predictions.mmm_channel_roas), so nothing passes between the two
assets but warehouse tables.
"""

from typing import Literal, Optional

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, invariant_specs, markdown_table
from assets.resources import Warehouse

MMM_CHECKS = {
    "mmm_no_nan": "No missing value in the channel ROAS table or the response curves.",
    "mmm_intervals_contain_estimates": "Contribution, share, ROAS and marginal ROAS intervals and the "
    "response-curve band contain their estimates.",
}
# A warning: the tables are still published, with the verdict on each channel's row.
IDENTIFIABLE_CHECK = AssetCheckSpec(
    "mmm_channels_identifiable", asset="media_mix_model", blocking=False,
    description="warning: channels whose effect the data cannot identify (the model's review gate: spend that "
    "hardly varies or is never low, spend moving with another channel, variance inflation, an implausible or too "
    "uncertain ROAS, a poor out-of-sample fit). They are marked in mmm_channel_roas (identifiable, review_reason) "
    "and the budget recommendation moves them only within a smaller bound.",
)
BUDGET_CHECKS = {
    "budget_no_nan": "No missing value in the recommendation (change_pct may be empty for unfunded channels).",
    "recommended_total_equals_budget": "Recommended spend sums to the budget.",
    "budget_intervals_contain_estimates": "Recommended expected revenue lies inside its interval.",
    "never_worse_than_current": "The recommendation predicts at least the current allocation's revenue.",
}


class MediaMixConfig(Config):
    lookback_days: int = Field(180, ge=60, le=1095, description="days of history the model is fitted on")
    curve_history_days: int = Field(
        1095, ge=60, le=3660,  # ml.mmm.DEFAULT_CURVE_HISTORY_DAYS (not imported: ml.mmm loads in ~2 s)
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
    lift_tests_file: Optional[str] = Field(
        None, description="optional CSV of lift-test results (channel,start,end,roas,roas_se) the model is "
        "calibrated with (ml.mmm.calibration); None: no lift tests",
    )


@asset(
    deps=[AssetKey(["analytics", "fct_channel_daily"]), AssetKey(["analytics", "fct_revenue_daily"]),
          AssetKey(["analytics", "stg_events__calendar"])],
    group_name="media_mix",
    kinds=python_kinds("scikit-learn"),
    description=asset_description("media_mix_model", "Adstock + saturation media-mix model with bootstrap intervals."),
    metadata=table_metadata("mmm_channel_roas"),
    check_specs=invariant_specs("media_mix_model", MMM_CHECKS) + gx_specs("media_mix_model") + [IDENTIFIABLE_CHECK],
)
def media_mix_model(context: AssetExecutionContext, config: MediaMixConfig, warehouse: Warehouse):
    from ml.mmm import daily_frame, fit_media_mix_model
    from ml.mmm.review import review_diagnostics, reviewed_channels

    daily = daily_frame(
        warehouse.read_table("analytics", "fct_channel_daily", ["date", "channel", "spend"]),
        warehouse.read_table("analytics", "fct_revenue_daily", ["date", "revenue"]),
    )
    from ml.mmm.calibration import read_lift_tests_csv

    event_days = _user_event_days(warehouse)
    settings = config.model_dump()
    lift_tests_file = settings.pop("lift_tests_file")
    lift_tests = read_lift_tests_csv(lift_tests_file) if lift_tests_file else None
    result = fit_media_mix_model(daily, holidays=event_days, lift_tests=lift_tests, **settings)
    result.diagnostics["user_event_days"] = len(event_days)
    channels = {"channels": sorted(result.channels["channel"])}
    yield from check_and_publish(
        context, warehouse,
        {
            "mmm_channel_roas": reviewed_channels(result.channels, result.review),
            "mmm_diagnostics": pd.concat([result.diagnostics_table(), review_diagnostics(result.review)],
                                         ignore_index=True),
            "mmm_response_curves": result.response_curves,
            "mmm_response_parameters": result.response_parameters(),
            "mmm_revenue_decomposition": _long_decomposition(result.decomposition),
        },
        invariants={"media_mix_model": _mmm_invariants(result)},
        suite_params={t: channels for t in ("mmm_channel_roas", "mmm_response_curves", "mmm_response_parameters",
                                            "mmm_revenue_decomposition")},
        metadata={"media_mix_model": _mmm_metadata(result)},
    )
    yield _identifiable_check(result.review)


def _user_event_days(warehouse: Warehouse) -> list:
    """The days of the user's events calendar (events.csv: promotions, outages...), left out of the
    regression like holidays; none when the calendar is empty or its model not built yet."""
    from core.calendar_file import event_days

    if not warehouse.table_exists("analytics", "stg_events__calendar"):
        return []
    events = warehouse.read_table("analytics", "stg_events__calendar", ["event_date", "event_end_date"])
    return event_days(events.rename(columns={"event_date": "date", "event_end_date": "end_date"}))


def _identifiable_check(review) -> AssetCheckResult:
    flagged = review[~review["identifiable"].astype(bool)]
    described = " | ".join(f"{r.channel}: {r.review_reason}" for r in flagged.itertuples())
    return AssetCheckResult(
        asset_key="media_mix_model", check_name=IDENTIFIABLE_CHECK.name, passed=flagged.empty,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{len(flagged)} of {len(review)} channels not identifiable (their ROAS is not supported by the data; "
            f"the budget moves them only within a smaller bound): {described}"
            if len(flagged) else f"all {len(review)} channels pass the review gate"
        ),
        metadata={"not_identifiable": MetadataValue.json(dict(zip(flagged["channel"], flagged["review_reason"])))},
    )


def _mmm_invariants(result) -> list:
    from core.checks import combine, intervals_contain, no_nan

    ch, curves = result.channels, result.response_curves
    revenue = "predicted_incremental_revenue"
    # A channel without spend in the window (stopped, or renamed) has no ROAS by design: it is empty
    # there, and the review gate marks it not identifiable with the reason. Every other row is checked.
    spent = ch["spend"] > 0
    idle = set(ch.loc[~spent, "channel"])
    curve_rows = ~curves["channel"].isin(idle)
    return [
        combine("mmm_no_nan", ("channel table", no_nan("", ch, where=spent)),
                ("response curves", no_nan("", curves, where=curve_rows))),
        combine(
            "mmm_intervals_contain_estimates",
            ("channel table", intervals_contain("", ch, [
                (m, f"{m}_lower", f"{m}_upper") for m in ("contribution", "contribution_share", "roas", "marginal_roas")
            ], where=spent)),
            ("response curves", intervals_contain("", curves, [(revenue, f"{revenue}_lower", f"{revenue}_upper")],
                                                  where=curve_rows)),
        ),
    ]


def _long_decomposition(decomposition):
    """One row per day and component (baseline or channel), the shape BI tools stack."""
    components = ["baseline", *[c for c in decomposition if c.startswith("contribution_")]]
    long = decomposition.melt(id_vars=["date"], value_vars=components, var_name="component", value_name="value")
    long["component"] = long["component"].str.removeprefix("contribution_")
    return long


def _mmm_metadata(result) -> dict:
    ch, diag, review = result.channels, result.diagnostics, result.review.set_index("channel")
    headline = ch.set_index("channel")[["spend", "roas", "roas_lower", "roas_upper", "marginal_roas", "contribution_share"]]
    headline = headline.assign(identifiable=review["identifiable"].reindex(headline.index))
    figures = review[["spend_variation", "spend_floor", "max_correlation", "correlated_with", "variance_inflation",
                      "roas_relative_width", "out_of_sample_error", "identifiable", "review_reason"]]
    flagged = review.loc[~review["identifiable"].astype(bool), "review_reason"]
    return {
        "r2": float(diag.get("r2", float("nan"))),
        "mape": float(diag.get("mape", float("nan"))),
        "nrmse": float(diag.get("nrmse", float("nan"))),
        "window": f"{diag.get('start_date')} to {diag.get('end_date')} ({diag.get('n_days')} days)",
        "curve_history": f"{diag.get('curve_start_date')} to {diag.get('end_date')} "
        f"({diag.get('curve_history_days')} days; adstock/saturation chosen here)",
        "days_left_out": int(diag.get("n_holiday_days", 0)),
        "user_event_days": int(diag.get("user_event_days", 0)),
        "ridge_alpha": float(diag.get("ridge_alpha", float("nan"))),
        "hyperparameters": MetadataValue.json(
            ch.set_index("channel")[["adstock_decay", "saturation_half", "saturation_shape"]].round(4).to_dict("index")
        ),
        "roas_by_channel": MetadataValue.md(markdown_table(headline)),
        "not_identifiable": MetadataValue.json(flagged.to_dict()),
        "review": MetadataValue.md(markdown_table(figures)),
    }


class BudgetConfig(Config):
    total_budget: float | None = Field(None, gt=0, description="daily budget; default: the current daily total")
    max_change: float = Field(0.30, ge=0, le=10, description="largest relative change per channel (0.3 = ±30%)")
    locked_channels: list[str] = Field(default_factory=list, description="channels whose spend stays as it is")
    not_identifiable_max_change: float = Field(
        0.10, ge=0, le=10,
        description="largest relative change of a channel the media-mix model cannot identify "
        "(mmm_channel_roas.identifiable false; 0.1 = ±10%; never more than max_change)",
    )


@asset(
    deps=[AssetKey("media_mix_model")],
    group_name="budget",
    kinds=python_kinds("scipy"),
    description=asset_description(
        "budget_recommendation", "Daily spend per channel that maximizes the media-mix model's predicted revenue "
        "within the budget and per-channel bounds, from predictions.mmm_response_parameters."),
    metadata=table_metadata("ml_budget_recommendation"),
    check_specs=invariant_specs("budget_recommendation", BUDGET_CHECKS) + gx_specs("budget_recommendation"),
)
def budget_recommendation(context: AssetExecutionContext, config: BudgetConfig, warehouse: Warehouse):
    from ml.budget import recommend_budget
    from ml.mmm import ResponseModel

    model = ResponseModel.from_parameters(warehouse.read_table("predictions", "mmm_response_parameters"))
    # The verdict is read where it is published, with the ROAS it qualifies (one run, one transaction).
    verdict = warehouse.read_table("predictions", "mmm_channel_roas")
    if not {"identifiable", "review_reason"} <= set(verdict.columns):
        raise ValueError("predictions.mmm_channel_roas has no identifiable/review_reason columns (published before "
                         "the review gate): materialize media_mix_model first, then the budget")
    held = verdict[verdict["identifiable"].eq(False) & verdict["channel"].isin(model.channel_names)]
    rec = recommend_budget(model, total_budget=config.total_budget, max_change=config.max_change,
                           locked=config.locked_channels,
                           not_identifiable=dict(zip(held["channel"], held["review_reason"].fillna(""))),
                           not_identifiable_max_change=config.not_identifiable_max_change)
    table = rec.table
    yield from check_and_publish(
        context, warehouse, {"ml_budget_recommendation": table},
        invariants={"budget_recommendation": _budget_invariants(rec)},
        suite_params={"ml_budget_recommendation": {"channels": list(model.channel_names)}},
        metadata={"budget_recommendation": {
            "daily_budget": rec.total_budget,
            "expected_daily_lift": f"{rec.lift:,.0f} ({rec.lift_lower:,.0f} to {rec.lift_upper:,.0f})",
            "reason": rec.reason,
            "not_identifiable": MetadataValue.json(list(rec.not_identifiable)),
            "recommendation": MetadataValue.md(markdown_table(
                table.set_index("channel")[["current_spend", "recommended_spend", "change_pct",
                                             "marginal_roas_current", "marginal_roas_recommended"]])),
        }},
    )


def _budget_invariants(rec) -> list:
    from core.checks import CheckOutcome, equals, intervals_contain, no_nan

    table = rec.table
    channels = table[table["channel"] != "TOTAL"]
    revenue = "recommended_expected_revenue"
    return [
        no_nan("budget_no_nan", table, [c for c in table.select_dtypes("number").columns if c != "change_pct"]),
        equals("recommended_total_equals_budget", float(channels["recommended_spend"].sum()), rec.total_budget,
               "recommended daily spend vs budget"),
        intervals_contain("budget_intervals_contain_estimates", table, [(revenue, f"{revenue}_lower", f"{revenue}_upper")]),
        CheckOutcome("never_worse_than_current", rec.recommended_revenue >= rec.current_revenue - 1e-9,
                     f"predicted daily revenue {rec.recommended_revenue:,.2f} recommended vs "
                     f"{rec.current_revenue:,.2f} current"),
    ]
