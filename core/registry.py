"""The registry of everything a refresh publishes: prediction tables (grain, columns, intervals, suite,
owning asset, charts) and charts. Publishing, quality gates, the HTTP service and the docs read it.

Add a table here once; `python -m core.registry` prints the README's table list from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings import PREDICTIONS_SCHEMA

# Attribution models in the order every table, chart and suite shows them. The rule-based ones are
# computed in dbt (macro `attribution_model_names`, kept equal by a test), the others in ml/.
RULE_BASED_MODELS: tuple[str, ...] = (
    "first_touch", "last_touch", "linear", "time_decay", "position_based", "w_shaped", "assisted",
)
DATA_DRIVEN_MODELS: tuple[str, ...] = ("markov", "shapley")
ATTRIBUTION_MODELS: tuple[str, ...] = RULE_BASED_MODELS + DATA_DRIVEN_MODELS

TOTAL_ROW = "TOTAL"  # the budget recommendation's all-channel row
RUN_COLUMNS = ("run_id", "generated_at")  # added to every row by the publish path
COLUMN_TYPES = frozenset({"text", "integer", "number", "boolean", "date", "timestamp"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of COLUMN_TYPES
    description: str
    nullable: bool = False  # documented: when a value may be missing, the description says when


@dataclass(frozen=True)
class Interval:
    """`lower <= measure <= upper` for every row where all three are present."""

    measure: str
    lower: str
    upper: str


@dataclass(frozen=True)
class Table:
    name: str
    grain: str  # what one row is, in one line
    asset: str  # the Dagster asset that publishes it
    columns: tuple[Column, ...]
    charts: tuple[str, ...] = ()
    served: bool = True  # readable over HTTP (/data) and meant for BI tools
    # Intervals whose columns predate the naming rule (public ml_* columns that BI already reads).
    named_intervals: tuple[Interval, ...] = ()
    # Each publication also appends its rows to predictions_history.<name> (core.history); off for tables
    # rebuilt whole from that history every run, which would only store copies of it.
    history: bool = True
    intervals: tuple[Interval, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        # Interval columns follow one naming rule, so they are found, not listed.
        found = tuple(
            Interval(n, f"{n}_lower", f"{n}_upper")
            for n in names if f"{n}_lower" in names and f"{n}_upper" in names
        )
        unknown = [i for i in self.named_intervals if not {i.measure, i.lower, i.upper} <= set(names)]
        if unknown or len(set(names)) != len(names) or any(c.type not in COLUMN_TYPES for c in self.columns):
            raise ValueError(f"registry entry {self.name}: duplicate columns, unknown types or intervals {unknown}")
        object.__setattr__(self, "intervals", found + self.named_intervals)

    @property
    def qualified_name(self) -> str:
        return f"{PREDICTIONS_SCHEMA}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def published_columns(self) -> tuple[Column, ...]:
        """The columns as stored: the registered ones, then the run stamp every row carries."""
        return self.columns + RUN_STAMP_COLUMNS

    @property
    def suite(self) -> str:
        """The great-expectations suite (core.quality) that gates the table before it is published."""
        return self.name

    @property
    def check_name(self) -> str:
        return f"gx_{self.name}"


@dataclass(frozen=True)
class Chart:
    name: str  # the file stem: /charts/{name}.png and <charts dir>/{name}.png
    title: str
    table: str  # the registry table it draws


RUN_STAMP_COLUMNS = (
    Column("run_id", "text", "the Dagster run that published the row"),
    Column("generated_at", "timestamp", "when that run produced the row (UTC; one value per asset and run)"),
)
assert tuple(c.name for c in RUN_STAMP_COLUMNS) == RUN_COLUMNS


def _c(name: str, type_: str, description: str, nullable: bool = False) -> Column:
    return Column(name, type_, description, nullable)


def _interval(measure: str, what: str, type_: str = "number") -> tuple[Column, Column, Column]:
    return (
        _c(measure, type_, what),
        _c(f"{measure}_lower", type_, f"lower end of the 95% interval of {measure}"),
        _c(f"{measure}_upper", type_, f"upper end of the 95% interval of {measure}"),
    )


_CHANNEL = _c("channel", "text", "marketing channel")
_MODEL = _c("model", "text", f"attribution model: {', '.join(ATTRIBUTION_MODELS)}")
_CAMPAIGN = _c("campaign_id", "text", "campaign id as in the ad export; a campaign is (channel, campaign_id)")
_DATE = _c("date", "date", "day (UTC)")
_FORECAST_FLAG = _c("is_forecast", "boolean", "false: observed history (bounds equal the value); true: forecast")
_ATTRIBUTION_MEASURES = (
    _c("attributed_conversions", "number", "conversions the model credits"),
    _c("attributed_revenue", "number", "revenue of the credited conversions (the business's own sales)"),
    *_interval("share", "share of all credited conversions under this model (0-1); interval from a journey "
               "bootstrap (Markov, Shapley) or a bootstrap over 200 journey buckets (rule-based models)"),
    _c("spend", "number", "ad spend over the whole history"),
    _c("attributed_roas", "number", "attributed_revenue / spend (0 where there was no spend)"),
)

TABLES: dict[str, Table] = {t.name: t for t in (
    Table(
        "channel_attribution", "one row per attribution model and channel", "channel_attribution",
        (_MODEL, _CHANNEL, *_ATTRIBUTION_MEASURES),
        charts=("attribution_comparison",),
    ),
    Table(
        "campaign_attribution", "one row per attribution model and campaign (channel, campaign_id)", "campaign_attribution",
        (_MODEL, _CAMPAIGN, _c("campaign_name", "text", "campaign name, when the export has one", nullable=True),
         _c("channel", "text", "the campaign's channel (part of its key: platforms may share campaign ids)"), *_ATTRIBUTION_MEASURES),
    ),
    Table(
        "campaign_channel_attribution", "one row per attribution model, campaign and channel",
        "campaign_channel_attribution",
        (_MODEL, _CAMPAIGN, _CHANNEL, *_ATTRIBUTION_MEASURES),
    ),
    Table(
        "attribution_model_comparison", "one row per channel, one share column per attribution model",
        "attribution_model_comparison",
        (_CHANNEL, *(_c(m, "number", f"the channel's share of credited conversions under {m}")
                     for m in ATTRIBUTION_MODELS)),
    ),
    Table(
        "mmm_channel_roas", "one row per channel of the media-mix model", "media_mix_model",
        (
            _CHANNEL,
            _c("spend", "number", "spend over the model window"),
            *_interval("contribution", "incremental revenue the model credits to the channel over the window"),
            *_interval("contribution_share", "the channel's share of all media contribution (0-1)"),
            # ROAS divides by the window's spend: a channel that spent nothing has none.
            *(Column(c.name, c.type, c.description + " (empty when the channel spent nothing)", True)
              for c in _interval("roas", "contribution / spend over the window")),
            *_interval("marginal_roas", "revenue from one more unit of daily spend at the current daily spend"),
            _c("adstock_decay", "number", "share of a day's effect carried to the next day (0-1)"),
            _c("saturation_half", "number", "daily spend at which the channel reaches half its maximum effect"),
            _c("saturation_shape", "number", "Hill curve shape (1: concave; above 1: S-shaped)"),
            _c("identifiable", "boolean", "false when the model's review gate finds that the data cannot tell "
               "the channel's effect apart (spend that hardly varies or is never low, spend moving with another "
               "channel, an implausible or too uncertain ROAS, a poor out-of-sample fit): its ROAS is not "
               "supported by the data, and the budget recommendation moves it only within a smaller bound"),
            _c("review_reason", "text", "why the channel is not identifiable: every failed review check with its "
               "figure, separated by '; ' (empty when identifiable); the figures are in mmm_diagnostics"),
        ),
        charts=("mmm_roas",),
    ),
    Table(
        "mmm_diagnostics", "one row per fit diagnostic of the media-mix model", "media_mix_model",
        (
            _c("metric", "text", "diagnostic name, e.g. r2, mape, window dates, chosen hyperparameters per channel"),
            _c("value", "number", "numeric value (empty for dates and text)", nullable=True),
            _c("detail", "text", "what the metric means, or its text value", nullable=True),
        ),
    ),
    Table(
        "mmm_response_curves", "one row per channel and daily spend level", "media_mix_model",
        (
            _CHANNEL,
            _c("daily_spend", "number", "daily spend level on a grid from 0 past the current spend"),
            *_interval("predicted_incremental_revenue", "steady-state daily revenue the channel adds at that spend"),
            _c("is_current", "boolean", "true on the row at the window's average daily spend"),
        ),
    ),
    Table(
        "mmm_response_parameters", "one row per channel and draw of the media-mix model's response curves",
        "media_mix_model",
        (
            _CHANNEL,
            _c("draw", "integer", "0: the point estimate; 1..n: bootstrap draws"),
            _c("coefficient", "number", "the channel's maximum steady-state daily revenue (saturation curve scale)"),
            _c("saturation_half", "number", "daily spend at half the maximum effect"),
            _c("saturation_shape", "number", "Hill curve shape (1 and unused for the exponential curve)"),
            _c("adstock_decay", "number", "share of a day's effect carried to the next day (0-1)"),
            _c("current_daily_spend", "number", "average daily spend over the model window"),
            _c("baseline_daily", "number", "average daily revenue without media over the window (same on every row)"),
            _c("ci", "number", "coverage of the intervals computed from the draws (same on every row)"),
            _c("saturation_family", "text", "the draw's saturation curve, with u = daily spend / saturation_half: "
               "hill, coefficient * u^shape / (1 + u^shape), or exponential, coefficient * (1 - 2^-u)"),
        ),
    ),
    Table(
        "mmm_revenue_decomposition", "one row per day of the model window and component", "media_mix_model",
        (
            _DATE,
            _c("component", "text", "baseline, or a channel's contribution"),
            _c("value", "number", "revenue of that component on that day"),
        ),
        charts=("revenue_contribution",),
    ),
    Table(
        "ml_roi_forecast", "one row per channel: ROI over the forecast horizon", "roi_forecast",
        (
            _CHANNEL,
            _c("horizon_days", "integer", "days forecast"),
            _c("predicted_spend", "number", "forecast spend over the horizon"),
            _c("predicted_revenue", "number", "forecast platform-reported revenue over the horizon; empty when "
               "the data has no platform revenue for the channel", nullable=True),
            _c("predicted_roi", "number", "(revenue - spend) / spend over the horizon; empty without platform "
               "revenue", nullable=True),
            _c("roi_lower", "number", "lower end of the 95% interval of predicted_roi", nullable=True),
            _c("roi_upper", "number", "upper end of the 95% interval of predicted_roi", nullable=True),
            _c("method", "text", "forecasting method of the revenue forecast: the model with the lowest backtest "
               "error among those that beat the naive baselines (prophet; level_weekday: same-weekday mean of the "
               "last 730 days with spend; level_recent_mean: the mean of level_weekday and naive_28d_mean; "
               "level_reverting: level_weekday times the last 14 days' ratio to it, reverting to 1 by 0.7 a week "
               "ahead; spend_regression: weekday intercepts + adstocked spend, future spend held at its level_weekday "
               "forecast), or the naive baseline it falls back to where none does "
               "(naive_28d_mean: mean of the last 28 days with spend; naive_weekday: same-weekday mean of the last 4 "
               "weeks), followed by '(spend: <method>)' when the spend forecast's differs; or 'none: no platform "
               "revenue in the data'"),
            _c("backtest_mape", "number", "rolling-origin backtest error of the published daily revenue forecast "
               "(WAPE); empty when the held-out revenue was all zero", nullable=True),
            _c("naive_mape", "number", "the same backtest error of the better naive baseline (naive_28d_mean or "
               "naive_weekday) on the same folds and days; empty as backtest_mape", nullable=True),
            _c("skill", "number", "1 - backtest_mape / naive_mape: the share of the naive error the published "
               "daily revenue forecast removes (0 when it is the naive baseline, never negative); empty as "
               "backtest_mape", nullable=True),
            _c("total_skill", "number", "the same skill scored on the backtest's horizon totals of revenue (what "
               "predicted_revenue sums) instead of days; empty as backtest_mape", nullable=True),
        ),
        charts=("roi_forecast",),
        named_intervals=(Interval("predicted_roi", "roi_lower", "roi_upper"),),
    ),
    Table(
        "ml_roi_timeseries", "one row per day and channel, history and forecast", "roi_timeseries",
        (
            _DATE, _CHANNEL,
            _c("roi", "number", "(revenue - spend) / spend that day; empty on days without spend, and for a "
               "channel without platform revenue in the data", nullable=True),
            _c("conversions", "number", "platform-reported conversions; empty for a channel without them in the "
               "data", nullable=True),
            _FORECAST_FLAG,
            _c("roi_lower", "number", "lower end of the interval of roi", nullable=True),
            _c("roi_upper", "number", "upper end of the interval of roi", nullable=True),
            _c("conversions_lower", "number", "lower end of the interval of conversions", nullable=True),
            _c("conversions_upper", "number", "upper end of the interval of conversions", nullable=True),
        ),
        charts=("roi_timeseries",),
    ),
    Table(
        "ml_reach_ctr_timeseries", "one row per day and channel, history and forecast", "reach_ctr_timeseries",
        (
            _DATE, _CHANNEL,
            _c("reach", "number", "people reached; empty for a channel without reach in the data", nullable=True),
            _c("impressions", "number", "impressions"),
            _c("clicks", "number", "clicks"),
            _c("ctr", "number", "clicks / impressions; empty on days without impressions", nullable=True),
            _FORECAST_FLAG,
            *(Column(f"{m}_{side}", "number", f"{side} end of the interval of {m}", True)
              for m in ("reach", "impressions", "clicks", "ctr") for side in ("lower", "upper")),
        ),
        charts=("reach_ctr",),
    ),
    Table(
        "ml_budget_recommendation", f"one row per channel plus a {TOTAL_ROW} row", "budget_recommendation",
        (
            _c("channel", "text", f"marketing channel, or {TOTAL_ROW} for all channels"),
            _c("current_spend", "number", "average daily spend over the media-mix window"),
            _c("recommended_spend", "number", "recommended daily spend"),
            _c("change_pct", "number", "recommended vs current spend, in percent; empty when current spend is 0",
               nullable=True),
            _c("current_expected_revenue", "number", "predicted daily revenue at the current spend"),
            *_interval("recommended_expected_revenue", "predicted daily revenue at the recommended spend"),
            _c("marginal_roas_current", "number", "marginal ROAS at the current spend"),
            _c("marginal_roas_recommended", "number", "marginal ROAS at the recommended spend"),
            _c("reason", "text", "why the channel moves (or does not) in words; a channel the media-mix model "
               "cannot identify (mmm_channel_roas.identifiable false) says so and why, and is held within a smaller "
               "bound (default ±10% of its current spend)"),
        ),
        charts=("budget_recommendation",),
    ),
    Table(
        "ml_spend_scenarios", f"one row per spend plan and channel, plus a {TOTAL_ROW} row per plan", "spend_scenarios",
        (
            _c("scenario", "text", "the spend plan: current (every channel at its current daily spend), "
               "budget_recommendation (ml_budget_recommendation's recommended spend), current_minus_20pct, "
               "current_plus_20pct (every channel's current spend -/+20%)"),
            _c("channel", "text", f"marketing channel, or {TOTAL_ROW} for all channels of the plan"),
            _c("horizon_days", "integer", "days the plan runs (the next days after the model window)"),
            _c("daily_spend", "number", "planned daily spend"),
            _c("current_daily_spend", "number", "average daily spend over the media-mix window"),
            _c("change_pct", "number", "planned vs current daily spend, in percent; empty when current spend is 0",
               nullable=True),
            _c("planned_spend", "number", "daily_spend times horizon_days"),
            *_interval("incremental_revenue", "revenue the media-mix model expects the channel's spend to add over "
                       "the horizon (steady-state response curve; interval from its bootstrap draws; on the "
                       f"{TOTAL_ROW} row from the summed draws)"),
            _c("baseline_revenue", "number", f"revenue without media over the horizon (the model's daily baseline over "
               f"the window's last 28 days, times horizon_days; its interval in baseline_revenue_lower/upper: how "
               f"the window's baseline moved from one 28-day level to the next horizon_days); {TOTAL_ROW} row only", nullable=True),
            *(Column(c.name, c.type, c.description + f"; {TOTAL_ROW} row only", True)
              for c in _interval("total_revenue", "baseline_revenue + incremental_revenue; the interval pairs the "
                                 "baseline's draws with the media draws")),
            *(Column(c.name, c.type, c.description + " (empty when the plan spends nothing)", True)
              for c in _interval("roi", "(incremental_revenue - planned_spend) / planned_spend")),
            *(Column(c.name, c.type, f"{side} end of the interval of baseline_revenue: how far the model's daily "
                     f"baseline over any horizon_days-long stretch of its window lay from the window's average; "
                     f"{TOTAL_ROW} row only", True)
              for c, side in zip(_interval("baseline_revenue", "")[1:], ("lower", "upper"))),
            *(Column(c.name, c.type, c.description + " (empty without sales in the data)", True)
              for c in _interval("revenue_per_conversion", "revenue / conversions over the last 180 days of "
                                 "fct_revenue_daily; the interval: the same ratio over every horizon_days-long "
                                 "stretch of them (same on every row)")),
            *(Column(c.name, c.type, c.description + " (empty without sales in the data)", True)
              for c in _interval("incremental_conversions", "incremental_revenue / revenue_per_conversion (media "
                                 "and revenue-per-conversion draws paired)")),
            *(Column(c.name, c.type, c.description + f"; {TOTAL_ROW} row only (empty without sales in the data)",
                     True)
              for c in _interval("total_conversions", "total_revenue / revenue_per_conversion (baseline, media and "
                                 "revenue-per-conversion draws paired)")),
        ),
        charts=("spend_scenarios",),
    ),
    Table(
        "channel_triangulation", "one row per channel of the media-mix model", "channel_triangulation",
        (
            _CHANNEL,
            _c("window_start_date", "date", "first day of the media-mix model's window, which every number here "
               "covers"),
            _c("window_end_date", "date", "last day of that window"),
            _c("spend", "number", "ad spend over the window"),
            _c("platform_conversions", "number", "conversions the ad platform claims over the window (its own "
               "report in the ad export); empty when the export has no conversions for the channel", nullable=True),
            _c("platform_revenue", "number", "revenue the ad platform claims over the window; empty when the export "
               "has no revenue for the channel", nullable=True),
            *_interval("attributed_revenue", "revenue Markov attribution credits to the channel over the window: its "
                       "credit on all journeys (channel_attribution, model markov; the path table is not dated) "
                       "times the share of converted journeys' revenue that converted in the window; interval from "
                       "the Markov share interval"),
            *_interval("mmm_contribution", "incremental revenue the media-mix model credits to the channel over the "
                       "window (mmm_channel_roas.contribution)"),
            *(Column(c.name, c.type, c.description, True) for c in (
                _c("platform_overclaim", "number", "platform_revenue / mmm_contribution: how many times the "
                   "incremental revenue the platform claims (above 1: over-claims); empty without platform revenue "
                   "or without a positive contribution"),
                _c("platform_overclaim_lower", "number", "platform_revenue / mmm_contribution_upper (the "
                   "contribution interval turned over: a 95% interval)"),
                _c("platform_overclaim_upper", "number", "platform_revenue / mmm_contribution_lower; empty when "
                   "that lower end is 0 (unbounded)"),
                _c("attribution_vs_incrementality", "number", "attributed_revenue / mmm_contribution: how many times "
                   "the incremental revenue Markov credits; empty without a positive contribution"),
                _c("attribution_vs_incrementality_lower", "number", "attributed_revenue_lower / "
                   "mmm_contribution_upper (joins the ends of both intervals: wider than 95%)"),
                _c("attribution_vs_incrementality_upper", "number", "attributed_revenue_upper / "
                   "mmm_contribution_lower; empty when that lower end is 0 (unbounded)"),
            )),
            _c("identifiable", "boolean", "the media-mix model's review verdict (mmm_channel_roas.identifiable): "
               "when false, the contribution and both ratios are not supported by the data"),
            _c("reading", "text", "the row in words: what the platform claims and Markov credits per unit of "
               "incremental revenue, and why a ratio is empty or not to be trusted"),
        ),
        charts=("channel_triangulation",),
    ),
    Table(
        "forecast_accuracy", "one row per past daily forecast point: data cut, channel, metric and day forecast",
        "forecast_accuracy",
        (
            _c("forecast_run_id", "text", "the run that made the forecast (its rows are in predictions_history)"),
            _c("forecast_generated_at", "timestamp", "when that run made it (UTC); of several runs that forecast "
               "from the same last day of data, the latest stands for them"),
            _c("forecast_origin_date", "date", "last day of actuals the forecast saw"),
            _c("date", "date", "the day forecast"),
            _c("horizon_days", "integer", "days ahead: date - forecast_origin_date (1 = the next day)"),
            _CHANNEL,
            _c("metric", "text", "roi and conversions (ml_roi_timeseries); reach, impressions, clicks and ctr "
               "(ml_reach_ctr_timeseries)"),
            *_interval("predicted", "the forecast value of the metric that day"),
            _c("actual", "number", "the value in analytics.fct_channel_daily now (ROI and CTR as the forecasts define "
               "them); empty until the day arrives, or when the metric has no value that day", nullable=True),
            _c("error", "number", "predicted - actual; empty unless scored", nullable=True),
            _c("abs_error", "number", "|error|; empty unless scored", nullable=True),
            _c("in_interval", "boolean", "the actual lies inside [predicted_lower, predicted_upper]; empty unless "
               "scored", nullable=True),
            _c("status", "text", "scored; pending (the day is not in the actuals yet: every row of a first run); "
               "not scorable (the day arrived without a value for the metric, e.g. ROI on a day without spend)"),
        ),
        history=False,
    ),
    Table(
        "forecast_accuracy_by_horizon", "one row per metric and horizon (days ahead)", "forecast_accuracy",
        (
            _c("metric", "text", "the forecast metric, as in forecast_accuracy"),
            _c("horizon_days", "integer", "days ahead"),
            _c("scored_points", "integer", "forecast points scored (0 before any forecast day has arrived)"),
            _c("pending_points", "integer", "forecast points whose day has not arrived yet"),
            *(Column(c.name, c.type, c.description + "; empty without scored points", True) for c in (
                _c("mean_error", "number", "mean of predicted - actual (bias: above 0 over-forecasts)"),
                _c("mean_abs_error", "number", "mean |predicted - actual|"),
                _c("wape", "number", "sum |error| / sum |actual| (empty also when every actual is 0)"),
                _c("interval_hit_rate", "number", "share of scored points whose actual fell inside the interval"),
            )),
            _c("nominal_coverage", "number", "the coverage the intervals claim (0.95): compare interval_hit_rate"),
            _c("recent_scored_points", "integer", "scored points whose day is within the last 28 days of actuals"),
            _c("recent_wape", "number", "wape over those points: the rolling 28-day WAPE, one value per run "
               "(predictions_history keeps it across runs)", nullable=True),
            _c("recent_interval_hit_rate", "number", "interval_hit_rate over those points", nullable=True),
        ),
        charts=("forecast_accuracy",),
    ),
    Table(
        "run_changes", "one row per headline number and channel (and attribution model): this run against the "
        "previous one", "run_changes",
        (
            _c("number", "text", "attribution_share (channel_attribution.share, per model), mmm_roas "
               "(mmm_channel_roas.roas), forecast_roi (ml_roi_forecast.predicted_roi), recommended_spend "
               "(ml_budget_recommendation.recommended_spend)"),
            _c("model", "text", "attribution model (attribution_share only)", nullable=True),
            _c("channel", "text", f"marketing channel ({TOTAL_ROW} for the budget's all-channel row)"),
            _c("current_run_id", "text", "the run that published the current value"),
            _c("previous_run_id", "text", "the run before it in predictions_history; empty on the first run",
               nullable=True),
            *(Column(c.name, c.type, c.description, True) for c in (
                *_interval("value", "the current value (empty when the number has none, e.g. ROAS without spend); "
                           "the interval is the number's own (empty for recommended_spend)"),
                *_interval("previous_value", "the previous run's value and interval"),
                _c("change", "number", "value - previous_value"),
                _c("change_pct", "number", "change in percent of |previous_value| (empty when that is 0)"),
                _c("beyond_interval", "boolean", "the previous value lies outside the current interval (signal, "
                   "not noise); empty without an interval or a previous value"),
            )),
            _c("matters", "boolean", "beyond_interval, or for a number without an interval a move of at least 10%"),
            _c("likely_cause", "text", "the likely cause in words: new days of data (the window's new end), restated "
               "history (earlier days whose values changed), a different chosen media-mix transform, a changed "
               "setting; or that no input changed (model randomness), or that this is the first run"),
        ),
    ),
)}

CHARTS: dict[str, Chart] = {c.name: c for c in (
    Chart("roi_forecast", "ROI forecast by channel", "ml_roi_forecast"),
    Chart("roi_timeseries", "Daily ROI by channel, history and forecast", "ml_roi_timeseries"),
    Chart("reach_ctr", "Reach and click-through rate", "ml_reach_ctr_timeseries"),
    Chart("budget_recommendation", "Budget recommendation", "ml_budget_recommendation"),
    Chart("attribution_comparison", "Attribution model comparison", "channel_attribution"),
    Chart("mmm_roas", "Media mix ROAS by channel", "mmm_channel_roas"),
    Chart("revenue_contribution", "Revenue contribution: baseline and channels", "mmm_revenue_decomposition"),
    Chart("spend_scenarios", "Planned-spend scenarios: expected revenue", "ml_spend_scenarios"),
    Chart("channel_triangulation", "Platform claims, attribution and incrementality by channel",
          "channel_triangulation"),
    Chart("forecast_accuracy", "Forecast accuracy: error by horizon and interval hit rate",
          "forecast_accuracy_by_horizon"),
)}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a registered prediction table; registered: {', '.join(TABLES)}") from None


def tables_of_asset(asset: str) -> list[Table]:
    return [t for t in TABLES.values() if t.asset == asset]


def served_tables() -> dict[str, Table]:
    return {n: t for n, t in TABLES.items() if t.served}


def conform(name: str, df):
    """`df` with exactly the registered columns in registry order; ValueError naming what differs.

    Publishing through this keeps the warehouse, the docs and the HTTP service on one column list.
    """
    spec = table(name)
    have, want = list(df.columns), spec.column_names
    missing = [c for c in want if c not in have]
    unexpected = [c for c in have if c not in want]
    if missing or unexpected:
        raise ValueError(
            f"{spec.qualified_name} does not match its registry entry (core/registry.py): "
            f"missing columns {missing}, unregistered columns {unexpected}. "
            "Change the model output or the registry entry, not both halves separately."
        )
    return df[want]


def markdown_table_list() -> str:
    """The README's list of published tables and charts, generated from the registry."""
    lines = ["| table | one row per | columns | published by | chart |", "|---|---|---|---|---|"]
    for t in TABLES.values():
        columns = ", ".join(f"`{c}`" for c in t.column_names)
        charts = ", ".join(f"`{c}.png`" for c in t.charts) or "-"
        grain = t.grain.removeprefix("one row per ")
        lines.append(f"| `{t.name}` | {grain} | {columns} | asset `{t.asset}` | {charts} |")
    lines += ["", "Charts, one asset each (`<name>_chart`, group `charts`), served at `/charts/<name>.png`:", ""]
    lines += [f"- `{c.name}.png`: {c.title} (from `{c.table}`)" for c in CHARTS.values()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table_list())
