"""Great Expectations quality gates: one suite per published prediction table and per mart the models read.

Dagster-free on purpose (DataFrame in, QualityResult out); the asset checks in assets/ call validate_table.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from core import registry
from core.registry import ATTRIBUTION_MODELS, RUN_COLUMNS, TOTAL_ROW

__all__ = ["ATTRIBUTION_MODELS", "SUITES", "QualityResult", "suite_for", "validate_table"]

SAMPLE_SIZE = 5
_DEFAULT_HORIZON_DAYS = 30
_ATTRIBUTION_MEASURES = ("attributed_conversions", "attributed_revenue", "share", "share_lower", "share_upper")
_RUN_COLUMNS = RUN_COLUMNS


# --------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class QualityResult:
    """The outcome of one table's suite.

    table: the suite's table name.
    passed: True when every expectation held.
    evaluated: expectations evaluated.
    failures: one dict per failed expectation, in suite order, each with keys ``expectation``
        (GX type, e.g. ``expect_column_values_to_be_between``), ``description`` (the rule in
        words), ``column`` (a name, a list of names for pair/compound rules, or None for table
        rules), ``kwargs`` (the expectation's arguments), ``unexpected_count`` and
        ``unexpected_percent`` (failing rows; None for table-level rules such as row counts),
        ``sample_bad_values`` (up to 5 distinct offending values: a value, a ``{column: value}``
        dict for pair and compound-key rules, the missing columns, the mixed run ids, or the
        observed aggregate such as a row count),
        ``observed_value`` (the aggregate GX measured, for table-level rules) and ``error`` (GX's
        message when the rule could not be evaluated, e.g. a missing column). Every value is
        JSON-safe: NaN is None, timestamps are ISO strings, numpy scalars are Python numbers.
    row_count: rows in the validated frame.
    """

    table: str
    passed: bool
    evaluated: int
    failures: list[dict]
    row_count: int

    def summary(self) -> str:
        """One line: the verdict and, on failure, each failed rule with its sample values."""
        if self.passed:
            return f"{self.table}: all {self.evaluated} expectations passed on {self.row_count} rows"
        parts = []
        for failure in self.failures:
            if failure["error"]:
                detail = f"could not be evaluated: {failure['error']}"
            elif failure["unexpected_count"] is not None:
                detail = f"{failure['unexpected_count']} bad rows, e.g. {_compact(failure['sample_bad_values'])}"
            else:
                detail = f"observed {_compact(failure['sample_bad_values'])}"
            parts.append(f"{failure['description']} ({detail})")
        return (
            f"{self.table}: {len(self.failures)} of {self.evaluated} expectations failed on "
            f"{self.row_count} rows: " + "; ".join(parts)
        )

    def metadata(self) -> dict:
        """JSON-serialisable metadata for a Dagster asset check: counts and a markdown failure table."""
        return {
            "table": self.table,
            "passed": self.passed,
            "row_count": self.row_count,
            "expectations_evaluated": self.evaluated,
            "expectations_failed": len(self.failures),
            "failed_expectations": [f"{f['expectation']}: {f['description']}" for f in self.failures],
            "failures_markdown": _failures_markdown(self.failures),
        }


def _compact(values: list) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) or "-"


def _failures_markdown(failures: list[dict]) -> str:
    if not failures:
        return "All expectations passed."
    lines = [
        "| rule | expectation | column | bad rows | % | sample bad values |",
        "|---|---|---|---:|---:|---|",
    ]
    for f in failures:
        column = ", ".join(f["column"]) if isinstance(f["column"], list) else (f["column"] or "(table)")
        count = "-" if f["unexpected_count"] is None else str(f["unexpected_count"])
        percent = "-" if f["unexpected_percent"] is None else f"{f['unexpected_percent']:.2f}"
        sample = f"error: {f['error']}" if f["error"] else _compact(f["sample_bad_values"])
        cells = [f["description"], f["expectation"], column, count, percent, sample]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Great Expectations, imported and set up once per process


def _gx():
    """The ``great_expectations`` module, imported on first use (the import takes seconds)."""
    # Analytics are read from the environment when GX starts; an explicit user setting wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


@functools.cache
def _batch_definition():
    """A whole-DataFrame batch definition on an in-memory context, without progress bars."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GX logs store and datasource chatter at INFO/WARNING; the gate reports through QualityResult.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas(name="spendwise_quality").add_dataframe_asset(name="table")
    return asset.add_batch_definition_whole_dataframe("whole_table")


# --------------------------------------------------------------------------------------------
# Expectation builders: every rule carries a description, which is what reports show.


class _Rules:
    """Builds one suite's expectations; ``when`` restricts a rule to rows meeting a condition."""

    def __init__(self, table: str) -> None:
        self.table = table
        gx = _gx()
        from great_expectations.expectations.row_conditions import Column

        self._e = gx.expectations
        self._column = Column
        self.items: list = []

    def _add(self, expectation_cls, description: str, when=None, **kwargs) -> None:
        if when is not None:
            condition, label = when
            kwargs["row_condition"] = condition
            description = f"{description} ({label})"
        self.items.append(expectation_cls(description=description, **kwargs))

    def forecast_rows(self):
        return self._column("is_forecast") == True, "forecast rows"  # noqa: E712 (builds a GX condition)

    def present_rows(self, column: str):
        return self._column(column).is_not_null(), f"rows with {column}"

    def spending_rows(self):
        return self._column("spend") > 0, "rows with spend > 0"

    def spending_now_rows(self):
        return self._column("current_spend") > 0, "rows with current_spend > 0"

    def not_empty(self) -> None:
        self._add(self._e.ExpectTableRowCountToBeBetween, "table has at least one row", min_value=1)

    def row_count(self, rows: int) -> None:
        self._add(self._e.ExpectTableRowCountToEqual, f"table has exactly {rows} rows", value=rows)

    def columns_present(self, columns: Iterable[str]) -> None:
        columns = list(columns)
        self._add(
            self._e.ExpectTableColumnsToMatchSet, f"columns present: {', '.join(columns)}",
            column_set=columns, exact_match=False,
        )

    def not_null(self, *columns: str, when=None) -> None:
        for column in columns:
            self._add(self._e.ExpectColumnValuesToNotBeNull, f"{column} is not null", when=when, column=column)

    def unique(self, *columns: str) -> None:
        if len(columns) == 1:
            self._add(self._e.ExpectColumnValuesToBeUnique, f"{columns[0]} is unique", column=columns[0])
        else:
            self._add(
                self._e.ExpectCompoundColumnsToBeUnique, f"({', '.join(columns)}) is unique",
                column_list=list(columns),
            )

    def one_value(self, column: str) -> None:
        self._add(
            self._e.ExpectColumnUniqueValueCountToBeBetween, f"{column} has one distinct value",
            column=column, min_value=1, max_value=1,
        )

    def distinct_count(self, column: str, count: int) -> None:
        self._add(
            self._e.ExpectColumnUniqueValueCountToBeBetween, f"{column} has {count} distinct values",
            column=column, min_value=count, max_value=count,
        )

    def in_set(self, column: str, values: Iterable[Any], what: str | None = None) -> None:
        values = list(values)
        self._add(
            self._e.ExpectColumnValuesToBeInSet, f"{column} in {what or values}", column=column, value_set=values,
        )

    def contains(self, column: str, values: Iterable[Any]) -> None:
        values = list(values)
        self._add(
            self._e.ExpectColumnDistinctValuesToContainSet, f"{column} includes {values}",
            column=column, value_set=values,
        )

    def non_negative(self, *columns: str, when=None) -> None:
        for column in columns:
            self._add(self._e.ExpectColumnValuesToBeBetween, f"{column} >= 0", when=when, column=column, min_value=0)

    def between(self, column: str, low: float, high: float, strict_max: bool = False) -> None:
        upper = ")" if strict_max else "]"
        self._add(
            self._e.ExpectColumnValuesToBeBetween, f"{column} in [{low}, {high}{upper}",
            column=column, min_value=low, max_value=high, strict_max=strict_max,
        )

    def fraction(self, *columns: str) -> None:
        for column in columns:
            self._add(
                self._e.ExpectColumnValuesToBeBetween, f"{column} between 0 and 1",
                column=column, min_value=0, max_value=1,
            )

    def at_least(self, larger: str, smaller: str, when=None) -> None:
        # A NaN on one side fails the pair (the interval must exist); NaN on both sides is skipped.
        self._add(
            self._e.ExpectColumnPairValuesAToBeGreaterThanB, f"{smaller} <= {larger}", when=when,
            column_A=larger, column_B=smaller, or_equal=True, ignore_row_if="both_values_are_missing",
        )

    def within(self, value: str, lower: str, upper: str, when=None) -> None:
        """``lower <= value <= upper``, as two pair rules so a report names the broken side."""
        self.at_least(value, lower, when=when)
        self.at_least(upper, value, when=when)

    def channels(self, channels: tuple[str, ...] | None, extra: tuple[str, ...] = ()) -> None:
        if channels is not None:
            self.in_set("channel", [*channels, *extra], what=f"the expected channels {[*channels, *extra]}")

    def published(self) -> None:
        """The rules every published prediction table shares: rows, its registry columns, one run."""
        self.not_empty()
        self.columns_present([*registry.table(self.table).column_names, *_RUN_COLUMNS])
        self.not_null(*_RUN_COLUMNS)
        self.one_value("run_id")


# --------------------------------------------------------------------------------------------
# Suites


def _attribution(keys: tuple[str, ...], extra: tuple[str, ...] = ()) -> Callable[..., None]:
    def build(rules: _Rules, channels=None) -> None:
        rules.published()
        rules.not_null(*keys, *_ATTRIBUTION_MEASURES, "spend")
        rules.in_set("model", ATTRIBUTION_MODELS, what=f"the {len(ATTRIBUTION_MODELS)} attribution models")
        rules.channels(channels)
        rules.unique(*keys)
        rules.fraction("share", "share_lower", "share_upper")
        rules.within("share", "share_lower", "share_upper")
        rules.non_negative("attributed_conversions", "attributed_revenue", "spend", "attributed_roas")

    return build


def _mmm_channel_roas(rules: _Rules, channels=None) -> None:
    intervals = ("contribution", "contribution_share", "roas", "marginal_roas")
    interval_columns = [f"{m}{s}" for m in intervals for s in ("", "_lower", "_upper")]
    rules.published()
    rules.not_null("channel")
    rules.unique("channel")
    rules.channels(channels)
    always = [c for c in interval_columns if not c.startswith("roas")]
    rules.not_null("spend", *always, "adstock_decay", "saturation_half", "saturation_shape")
    # ROAS divides by the window's spend, so ml.mmm leaves it NaN for a channel that spent nothing.
    rules.not_null("roas", "roas_lower", "roas_upper", when=rules.spending_rows())
    rules.non_negative("spend", "contribution", "roas")
    for measure in intervals:
        rules.within(measure, f"{measure}_lower", f"{measure}_upper")
    rules.fraction("contribution_share", "contribution_share_lower", "contribution_share_upper")
    rules.between("adstock_decay", 0, 1, strict_max=True)


def _mmm_response_curves(rules: _Rules, channels=None) -> None:
    revenue = "predicted_incremental_revenue"
    columns = ["channel", "daily_spend", revenue, f"{revenue}_lower", f"{revenue}_upper", "is_current"]
    rules.published()
    rules.not_null(*columns)
    rules.unique("channel", "daily_spend")
    rules.channels(channels)
    rules.non_negative("daily_spend", revenue)
    rules.within(revenue, f"{revenue}_lower", f"{revenue}_upper")


def _mmm_response_parameters(rules: _Rules, channels=None) -> None:
    parameters = ["coefficient", "saturation_half", "saturation_shape", "adstock_decay", "current_daily_spend",
                  "baseline_daily", "ci"]
    rules.published()
    rules.not_null("channel", "draw", *parameters)
    rules.unique("channel", "draw")
    rules.channels(channels)
    rules.contains("draw", [0])
    rules.non_negative("draw", "coefficient", "current_daily_spend")
    rules.between("adstock_decay", 0, 1, strict_max=True)
    rules.between("ci", 0, 1, strict_max=True)
    rules.not_null("saturation_family")
    rules.in_set("saturation_family", ["hill", "exponential"])
    rules.one_value("baseline_daily")


def _mmm_revenue_decomposition(rules: _Rules, channels=None) -> None:
    rules.published()
    rules.not_null("date", "component", "value")
    rules.unique("date", "component")
    rules.contains("component", ["baseline"])
    if channels is not None:
        rules.in_set("component", ["baseline", *channels], what=f"baseline and the channels {list(channels)}")


def _attribution_model_comparison(rules: _Rules, channels=None) -> None:
    rules.published()
    rules.not_null("channel")
    rules.unique("channel")
    rules.channels(channels)
    # A model may be missing for a channel it never credits (NULL), but a share is always in [0, 1].
    rules.fraction(*ATTRIBUTION_MODELS)


def _mmm_diagnostics(rules: _Rules) -> None:
    rules.published()
    rules.not_null("metric")
    rules.unique("metric")


def _ml_roi_forecast(rules: _Rules, channels=None, horizon_days: int = _DEFAULT_HORIZON_DAYS) -> None:
    rules.published()
    # backtest_mape stays out: ml.forecasting leaves it NaN when the backtest saw no revenue at all.
    rules.not_null("channel", "horizon_days", "predicted_spend", "method")
    # Revenue and ROI are NULL for a channel without platform revenue in the data (`method` says so).
    rules.not_null("predicted_roi", "roi_lower", "roi_upper", when=rules.present_rows("predicted_revenue"))
    rules.unique("channel")
    rules.channels(channels)
    rules.in_set("horizon_days", [horizon_days])
    rules.within("predicted_roi", "roi_lower", "roi_upper")
    # Skill is never negative: a series that does not beat its naive baseline is published as the baseline.
    rules.non_negative("predicted_spend", "predicted_revenue", "backtest_mape", "naive_mape", "skill", "total_skill")


def _forecast_bounds(rules: _Rules, measures: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Forecast rows carry every measure and its bounds; an `optional` measure (NULL for a channel whose
    data has none of it) carries its bounds wherever it is present."""
    forecast = rules.forecast_rows()
    for measure in measures:
        if measure in optional:
            rules.not_null(f"{measure}_lower", f"{measure}_upper", when=rules.present_rows(measure))
        else:
            rules.not_null(measure, f"{measure}_lower", f"{measure}_upper", when=forecast)
    for measure in measures:
        # History rows carry bounds equal to the observed value, so the containment holds on every row.
        rules.within(measure, f"{measure}_lower", f"{measure}_upper")


def _ml_roi_timeseries(rules: _Rules, channels=None) -> None:
    rules.published()
    rules.not_null("date", "channel", "is_forecast")
    rules.unique("date", "channel")
    rules.channels(channels)
    rules.non_negative("conversions", "conversions_lower")
    # ROI and conversions are NULL for a channel whose data has no platform revenue / conversions.
    _forecast_bounds(rules, ("roi", "conversions"), optional=("roi", "conversions"))


def _ml_reach_ctr_timeseries(rules: _Rules, channels=None) -> None:
    counts = ("reach", "impressions", "clicks")
    rules.published()
    # reach is NULL for a channel whose data has no reach (an optional column of the ad export).
    rules.not_null("date", "channel", "is_forecast", "impressions", "clicks")
    rules.unique("date", "channel")
    rules.channels(channels)
    rules.non_negative(*counts, *(f"{m}_lower" for m in counts))
    rules.fraction("ctr", "ctr_lower", "ctr_upper")
    _forecast_bounds(rules, (*counts, "ctr"), optional=("reach",))


def _ml_budget_recommendation(rules: _Rules, channels=None) -> None:
    revenue = "recommended_expected_revenue"
    rules.published()
    rules.not_null(
        "channel", "current_spend", "recommended_spend", revenue, f"{revenue}_lower", f"{revenue}_upper", "reason",
    )
    rules.unique("channel")
    rules.contains("channel", [TOTAL_ROW])
    rules.channels(channels, extra=(TOTAL_ROW,))
    rules.non_negative("current_spend", "recommended_spend")
    # A percent change from zero is undefined; ml.budget leaves it NaN there.
    rules.not_null("change_pct", when=rules.spending_now_rows())
    rules.within(revenue, f"{revenue}_lower", f"{revenue}_upper")


def _ml_spend_scenarios(rules: _Rules, channels=None, horizon_days: int = _DEFAULT_HORIZON_DAYS) -> None:
    revenue = "incremental_revenue"
    rules.published()
    rules.not_null("scenario", "channel", "horizon_days", "daily_spend", "current_daily_spend", "planned_spend",
                   revenue, f"{revenue}_lower", f"{revenue}_upper")
    rules.unique("scenario", "channel")
    rules.contains("channel", [TOTAL_ROW])
    rules.channels(channels, extra=(TOTAL_ROW,))
    rules.in_set("horizon_days", [horizon_days])
    rules.non_negative("daily_spend", "current_daily_spend", "planned_spend", revenue, f"{revenue}_lower")
    # The baseline is not split by channel: total revenue is on the TOTAL rows only.
    total = rules._column("channel") == TOTAL_ROW, f"{TOTAL_ROW} rows"
    rules.not_null("baseline_revenue", "total_revenue", "total_revenue_lower", "total_revenue_upper", when=total)
    # A percent change from zero and the ROI of no spend are undefined; left empty there.
    rules.not_null("change_pct", when=(rules._column("current_daily_spend") > 0, "rows with current_daily_spend > 0"))
    rules.not_null("roi", "roi_lower", "roi_upper", when=(rules._column("daily_spend") > 0, "rows with daily_spend > 0"))
    for measure in (revenue, "total_revenue", "roi"):
        rules.within(measure, f"{measure}_lower", f"{measure}_upper")


def _channel_triangulation(rules: _Rules, channels=None) -> None:
    rules.published()
    rules.not_null("channel", "window_start_date", "window_end_date", "spend", "attributed_revenue",
                   "attributed_revenue_lower", "attributed_revenue_upper", "mmm_contribution", "mmm_contribution_lower",
                   "mmm_contribution_upper", "identifiable", "reading")
    rules.unique("channel")
    rules.channels(channels)
    rules.one_value("window_start_date")
    rules.one_value("window_end_date")
    rules.non_negative("spend", "platform_conversions", "platform_revenue", "attributed_revenue_lower",
                       "platform_overclaim_lower", "attribution_vs_incrementality_lower")
    # A ratio's bounds exist only with the ratio (its upper end may be unbounded, hence empty).
    for measure in ("attributed_revenue", "mmm_contribution"):
        rules.within(measure, f"{measure}_lower", f"{measure}_upper")
    for ratio in ("platform_overclaim", "attribution_vs_incrementality"):
        rules.not_null(f"{ratio}_lower", when=rules.present_rows(ratio))
        rules.at_least(ratio, f"{ratio}_lower")
        rules.at_least(f"{ratio}_upper", ratio, when=rules.present_rows(f"{ratio}_upper"))


def _forecast_accuracy(rules: _Rules) -> None:
    scored = rules._column("status") == "scored", "scored rows"
    rules.published()
    rules.not_null("forecast_run_id", "forecast_generated_at", "forecast_origin_date", "date", "horizon_days",
                   "channel", "metric", "predicted", "predicted_lower", "predicted_upper", "status")
    # Channels are not pinned: a past forecast may name a channel the data has since renamed or dropped.
    rules.in_set("metric", ["roi", "conversions", "reach", "impressions", "clicks", "ctr"])
    rules.in_set("status", ["scored", "pending", "not scorable"])
    rules.unique("forecast_origin_date", "channel", "metric", "date")
    rules.between("horizon_days", 1, 365)
    rules.within("predicted", "predicted_lower", "predicted_upper")
    rules.not_null("actual", "error", "abs_error", "in_interval", when=scored)
    rules.non_negative("abs_error")


def _forecast_accuracy_by_horizon(rules: _Rules) -> None:
    scored = rules._column("scored_points") > 0, "rows with scored points"
    rules.published()
    rules.not_null("metric", "horizon_days", "scored_points", "pending_points", "nominal_coverage",
                   "recent_scored_points")
    rules.not_null("mean_error", "mean_abs_error", "interval_hit_rate", when=scored)
    rules.unique("metric", "horizon_days")
    rules.between("horizon_days", 1, 365)
    rules.non_negative("scored_points", "pending_points", "recent_scored_points", "mean_abs_error", "wape",
                       "recent_wape")
    rules.fraction("interval_hit_rate", "recent_interval_hit_rate", "nominal_coverage")


def _run_changes(rules: _Rules) -> None:
    rules.published()
    rules.not_null("number", "channel", "current_run_id", "matters", "likely_cause")
    rules.in_set("number", ["attribution_share", "mmm_roas", "forecast_roi", "recommended_spend"])
    rules.not_null("model", when=(rules._column("number") == "attribution_share", "attribution_share rows"))
    rules.unique("number", "model", "channel")
    # recommended_spend has no interval: its bounds are empty while the value is not.
    for measure in ("value", "previous_value"):
        rules.within(measure, f"{measure}_lower", f"{measure}_upper", when=rules.present_rows(f"{measure}_lower"))


def _fct_channel_daily(rules: _Rules, channels=None, expected_days: int | None = None) -> None:
    counts = ("impressions", "reach", "clicks")
    rules.not_empty()
    rules.columns_present(["date", "channel", "spend", *counts, "conversions", "revenue", "ctr"])
    # reach, conversions and revenue are optional in the ad export: NULL on every day of a channel without them.
    rules.not_null("date", "channel", "spend", "impressions", "clicks")
    rules.unique("date", "channel")
    rules.channels(channels)
    if expected_days is not None:
        rules.distinct_count("date", expected_days)
    rules.non_negative("spend", *counts, "conversions", "revenue")
    rules.at_least("impressions", "clicks")
    # ctr is NULL on days without impressions; a between-rule skips nulls.
    rules.fraction("ctr")


def _fct_revenue_daily(rules: _Rules, expected_days: int | None = None) -> None:
    rules.not_empty()
    rules.columns_present(["date", "revenue"])
    rules.not_null("date", "revenue")
    rules.unique("date")
    rules.non_negative("revenue")
    if expected_days is not None:
        rules.row_count(expected_days)


_BUILDERS: dict[str, Callable[..., None]] = {
    "channel_attribution": _attribution(("model", "channel")),
    "campaign_attribution": _attribution(("model", "channel", "campaign_id")),
    "campaign_channel_attribution": _attribution(("model", "campaign_id", "channel")),
    "attribution_model_comparison": _attribution_model_comparison,
    "mmm_channel_roas": _mmm_channel_roas,
    "mmm_response_curves": _mmm_response_curves,
    "mmm_response_parameters": _mmm_response_parameters,
    "mmm_revenue_decomposition": _mmm_revenue_decomposition,
    "mmm_diagnostics": _mmm_diagnostics,
    "ml_roi_forecast": _ml_roi_forecast,
    "ml_roi_timeseries": _ml_roi_timeseries,
    "ml_reach_ctr_timeseries": _ml_reach_ctr_timeseries,
    "ml_budget_recommendation": _ml_budget_recommendation,
    "ml_spend_scenarios": _ml_spend_scenarios,
    "channel_triangulation": _channel_triangulation,
    "forecast_accuracy": _forecast_accuracy,
    "forecast_accuracy_by_horizon": _forecast_accuracy_by_horizon,
    "run_changes": _run_changes,
    "fct_channel_daily": _fct_channel_daily,
    "fct_revenue_daily": _fct_revenue_daily,
}
_PARAMS: dict[str, tuple[str, ...]] = {
    "channel_attribution": ("channels",),
    "campaign_attribution": ("channels",),
    "campaign_channel_attribution": ("channels",),
    "attribution_model_comparison": ("channels",),
    "mmm_channel_roas": ("channels",),
    "mmm_response_curves": ("channels",),
    "mmm_response_parameters": ("channels",),
    "mmm_revenue_decomposition": ("channels",),
    "mmm_diagnostics": (),
    "ml_roi_forecast": ("channels", "horizon_days"),
    "ml_roi_timeseries": ("channels",),
    "ml_reach_ctr_timeseries": ("channels",),
    "ml_budget_recommendation": ("channels",),
    "ml_spend_scenarios": ("channels", "horizon_days"),
    "channel_triangulation": ("channels",),
    "forecast_accuracy": (),
    "forecast_accuracy_by_horizon": (),
    "run_changes": (),
    "fct_channel_daily": ("channels", "expected_days"),
    "fct_revenue_daily": ("expected_days",),
}
SUITES: tuple[str, ...] = tuple(_BUILDERS)


def _normalised_params(table: str, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Checked, hashable parameters (so suites can be cached per table and parameter set)."""
    if table not in _BUILDERS:
        raise ValueError(f"no quality suite for table {table!r}; suites exist for {list(SUITES)}")
    allowed = _PARAMS[table]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"suite {table!r} does not take parameter(s) {unknown}; it accepts {list(allowed) or 'none'}"
        )
    out = []
    for name, value in sorted(params.items()):
        if value is None:
            continue
        if name == "channels":
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ValueError(f"channels for {table!r} must be a list of channel names, got {value!r}")
            names = tuple(dict.fromkeys(value))
            bad = [c for c in names if not isinstance(c, str) or not c]
            if not names or bad:
                raise ValueError(
                    f"channels for {table!r} must be a non-empty list of non-empty strings; got {list(value)!r}"
                )
            out.append((name, names))
        else:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} for {table!r} must be a positive whole number of days, got {value!r}")
            out.append((name, int(value)))
    return tuple(out)


def _build(table: str, params: tuple[tuple[str, Any], ...]) -> list:
    rules = _Rules(table)
    _BUILDERS[table](rules, **dict(params))
    return rules.items


def suite_for(table: str, **params: Any) -> list:
    """The GX expectation objects that gate ``table`` (a fresh list, safe to modify).

    table: one of ``SUITES``.
    params (all optional):
        channels: channel names the table may contain (every table with a ``channel`` column;
            ``ml_budget_recommendation`` and ``ml_spend_scenarios`` also allow their ``TOTAL`` rows).
            Catches a channel renamed mid-series or an unexpected new one.
        horizon_days: ``ml_roi_forecast`` and ``ml_spend_scenarios``; every row's ``horizon_days`` must equal
            it (default 30).
        expected_days: ``fct_revenue_daily`` (row count) and ``fct_channel_daily`` (distinct dates):
            the calendar length, so a missing day fails.

    Raises ValueError for an unknown table, a parameter the table does not take, or a bad value.
    """
    return _build(table, _normalised_params(table, params))


@functools.cache
def _suite(table: str, params: tuple[tuple[str, Any], ...]):
    expectations = _build(table, params)
    for order, expectation in enumerate(expectations):
        # GX evaluates expectations grouped by metric; the order lets failures come back in suite order.
        expectation.meta = {**(expectation.meta or {}), "spendwise_order": order}
    return _gx().ExpectationSuite(name=f"spendwise_{table}", expectations=expectations)


def validate_table(table: str, df: pd.DataFrame, **params: Any) -> QualityResult:
    """Validate ``df`` against the suite of ``table`` (see ``suite_for`` for ``params``).

    The GX context and each (table, params) suite are built once per process; the first call
    pays the GX import (several seconds), later calls only the validation itself.
    Returns a QualityResult; never raises on bad data, only on a bad table name or parameter.
    """
    key = _normalised_params(table, params)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_table({table!r}) needs a pandas DataFrame, got {type(df).__name__}")
    suite = _suite(table, key)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    outcome = batch.validate(suite, result_format="SUMMARY")
    failed = sorted(
        (r for r in outcome.results if not r.success),
        key=lambda r: (r.expectation_config.meta or {}).get("spendwise_order", math.inf),
    )
    return QualityResult(
        table=table,
        passed=bool(outcome.success),
        evaluated=int(outcome.statistics["evaluated_expectations"]),
        failures=[_failure(r, df) for r in failed],
        row_count=len(df),
    )


# --------------------------------------------------------------------------------------------
# Turning GX results into plain dicts


def _failure(result, df: pd.DataFrame) -> dict:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    if "column" in kwargs:
        column = kwargs["column"]
    elif "column_A" in kwargs:
        column = [kwargs["column_A"], kwargs["column_B"]]
    elif "column_list" in kwargs:
        column = list(kwargs["column_list"])
    else:
        column = None
    error = _error_message(result.exception_info)
    count = details.get("unexpected_count")
    percent = details.get("unexpected_percent")
    return {
        "expectation": config.type,
        "description": config.description or config.type,
        "column": column,
        "kwargs": _plain(kwargs),
        "unexpected_count": None if count is None else int(count),
        "unexpected_percent": None if percent is None else float(percent),
        "sample_bad_values": _sample(config.type, kwargs, details, df),
        "observed_value": _plain(details.get("observed_value")),
        "error": error,
    }


def _sample(kind: str, kwargs: dict, details: dict, df: pd.DataFrame) -> list:
    if "partial_unexpected_list" in details and "column_A" in kwargs:
        # GX gives (A, B) tuples; naming the columns keeps "lower <= value" readable.
        names = (kwargs["column_A"], kwargs["column_B"])
        values = [dict(zip(names, pair)) for pair in details["partial_unexpected_list"]]
    elif "partial_unexpected_list" in details:
        values = details["partial_unexpected_list"]
    elif kind == "expect_table_columns_to_match_set":
        values = details.get("details", {}).get("mismatched", {}).get("missing", [])
    elif kind == "expect_column_distinct_values_to_contain_set":
        seen = set(details.get("observed_value") or [])
        values = [v for v in kwargs["value_set"] if v not in seen]
    elif (
        kind == "expect_column_unique_value_count_to_be_between"
        and kwargs.get("max_value") == 1
        and kwargs.get("column") in df.columns
    ):
        # GX reports only the count; for a one-value column (run_id) the values say which runs mixed.
        values = df[kwargs["column"]].drop_duplicates().head(SAMPLE_SIZE).tolist()
    elif details.get("observed_value") is not None:
        values = [details["observed_value"]]
    else:
        values = []
    sample, seen_keys = [], set()
    for value in values:
        plain = _plain(value)
        marker = repr(plain)
        if marker not in seen_keys:
            seen_keys.add(marker)
            sample.append(plain)
        if len(sample) == SAMPLE_SIZE:
            break
    return sample


def _error_message(info) -> str | None:
    if not info:
        return None
    entries = info.values() if not {"raised_exception", "exception_message"} & set(info) else [info]
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "GX raised an exception").strip()
    return None


def _plain(value: Any) -> Any:
    """A JSON-safe copy: NaN/NaT/NA -> None, numpy -> Python, datetimes -> ISO strings."""
    if isinstance(value, np.generic):
        return _plain(value.item())
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, (float, Decimal)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (pd.Timedelta, _dt.timedelta)):
        return None if pd.isna(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [_plain(v) for v in value]
    if hasattr(value, "dict") and callable(value.dict):
        return _plain(value.dict())
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
