"""Planned-spend scenarios: revenue and ROI over the next days at a given daily spend per channel, read off
the media-mix model's steady-state response curves. Here, not in ml/, because the HTTP service computes them too.

``ml.scenarios`` passes the fitted :class:`ml.mmm.ResponseModel` (the very curves the budget recommendation
uses); the service passes :class:`PublishedCurves`, rebuilt from ``predictions.mmm_response_parameters``.
Both go through :func:`spend_scenario`, so a plan gets one answer wherever it is asked.

What the numbers are, and are not:

- **Steady state.** A channel held at ``x`` per day adds ``coefficient * hill(x)`` per day once its adstock
  has settled (the same curve the budget optimizes); the ramp from today's spend to the plan is not modelled.
- **Baseline.** Given the model's daily baseline (``mmm_revenue_decomposition``), revenue without media is
  its level over the window's last ``RECENT_BASELINE_DAYS`` days times the horizon, and its draws are how far
  the baseline of every horizon-long stretch of the window moved from the level of the days just before it
  (season, trend and level shifts carried forward as the window saw them move). Scored as a forecast of the
  next 30 days' revenue at the realized spend (``benchmarks/bench_scenario_skill.py``, docs/scenario_skill.md),
  the window's average daily baseline, used before, missed by a median 6-9% of the actual, mostly its
  drift over the window (trend, season), and its interval (the stretches' spread around the window's mean)
  held the actual in 57-70% of cases. The draws are paired with the media draws in a fixed shuffled order
  (independent: the model's own trade-off between baseline and media is not published, so the total's
  interval errs wide). Without the daily baseline the baseline is the window's average daily baseline
  (``baseline_daily``) times the horizon, a point, and the total's interval holds the media draws only.
- **Conversions** are revenue divided by revenue per conversion (sales are counted as conversions in
  ``fct_revenue_daily``): its point is the last ``CONVERSION_WINDOW_DAYS`` days' ratio, its interval the spread
  of that ratio over horizon-long stretches of those days. Chosen over a conversions response curve because
  the media-mix model is fitted on revenue only (a second model would double the fitting time for a ratio
  that barely moves); the assumption it makes, that incremental sales have the average value, is what the
  interval does not cover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.registry import TOTAL_ROW

__all__ = [
    "CONVERSION_WINDOW_DAYS", "DEFAULT_HORIZON_DAYS", "MAX_HORIZON_DAYS", "MAX_SPEND_MULTIPLE", "SCENARIO_COLUMNS",
    "PlanError", "PublishedCurves", "RECENT_BASELINE_DAYS", "ResponseCurves", "RevenuePerConversion", "baseline_draws",
    "baseline_level", "complete_plan",
    "daily_baseline", "revenue_per_conversion", "spend_scenario",
]

DEFAULT_HORIZON_DAYS = 30
MAX_HORIZON_DAYS = 366
# Planned daily spend above this multiple of the channel's current daily spend is refused: the curve was
# fitted on spend near today's level and says nothing at that scale. A channel without current spend is
# measured against the average current daily spend of the channels that spend.
MAX_SPEND_MULTIPLE = 100.0
PARAMETER_COLUMNS = (
    "channel", "draw", "coefficient", "saturation_half", "saturation_shape", "current_daily_spend",
    "baseline_daily", "ci", "saturation_family",
)
SATURATION_FAMILIES = ("hill", "exponential")  # as ml.mmm.transforms.SATURATION_FAMILIES
SCENARIO_COLUMNS = [
    "scenario", "channel", "horizon_days", "daily_spend", "current_daily_spend", "change_pct", "planned_spend",
    "incremental_revenue", "incremental_revenue_lower", "incremental_revenue_upper", "baseline_revenue",
    "total_revenue", "total_revenue_lower", "total_revenue_upper", "roi", "roi_lower", "roi_upper",
    "baseline_revenue_lower", "baseline_revenue_upper", "revenue_per_conversion", "revenue_per_conversion_lower",
    "revenue_per_conversion_upper", "incremental_conversions", "incremental_conversions_lower",
    "incremental_conversions_upper", "total_conversions", "total_conversions_lower", "total_conversions_upper",
]
# Revenue per conversion is measured over this many of the latest days (DEFAULT_HORIZON_DAYS-long stretches in it).
CONVERSION_WINDOW_DAYS = 180
# Days of the model's daily baseline whose mean is the level a scenario's baseline starts from (the module's
# docstring); the naive forecasts' level uses the same 28 days (ml.forecasting).
RECENT_BASELINE_DAYS = 28
# The baseline and revenue-per-conversion draws are paired with the media draws in a fixed shuffled order, so
# the asset and the HTTP service give one answer for one plan.
_PAIRING_SEED = 13


class ResponseCurves(Protocol):
    """What a scenario reads from a media-mix model (``ml.mmm.ResponseModel`` provides it)."""

    @property
    def channel_names(self) -> tuple[str, ...]: ...

    @property
    def current_daily_spend(self) -> pd.Series: ...

    @property
    def baseline_daily(self) -> float: ...

    @property
    def ci(self) -> float: ...

    def channel_response(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray: ...


class PlanError(ValueError):
    """A plan that cannot be evaluated; ``problems`` holds one ``{channel, rule, message}`` per fault."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(p["message"] for p in problems))


# --------------------------------------------------------------------------- the published curves


@dataclass(frozen=True)
class PublishedCurves:
    """The response curves as published in ``predictions.mmm_response_parameters`` (one row per channel and
    draw: draw 0 the point estimate, 1..n bootstrap draws), evaluated as ``ml.mmm`` does, by each row's
    ``saturation_family``: ``hill``, ``coefficient * u^shape / (1 + u^shape)``, or ``exponential``,
    ``coefficient * (1 - 2^-u)``, with ``u = daily_spend / saturation_half``. A table published before
    ``saturation_family`` existed is all Hill."""

    channel_names: tuple[str, ...]
    # coefficient, half, shape and family (a tuple without the family is Hill); draw_parameters per draw
    point: Mapping[str, tuple[float, float, float, str] | tuple[float, float, float]]
    draw_parameters: Mapping[str, tuple[np.ndarray, ...]]
    current: Mapping[str, float]
    baseline_daily: float
    ci: float

    @classmethod
    def from_parameters(cls, table: pd.DataFrame) -> PublishedCurves:
        """Rebuild the curves from the published rows (extra columns such as ``run_id`` are ignored).

        Raises ValueError naming the column or channel when the table is not one run's whole publication.
        """
        where = "predictions.mmm_response_parameters"
        if "saturation_family" not in table.columns:
            table = table.assign(saturation_family="hill")  # published before the family existed
        missing = [c for c in PARAMETER_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"{where} lacks column(s) {missing}; republish it (materialize media_mix_model)")
        if table.empty:
            raise ValueError(f"{where} has no rows; republish it (materialize media_mix_model)")
        frame = table.loc[:, list(PARAMETER_COLUMNS)].copy()
        frame["channel"] = frame["channel"].astype(str)
        numeric = [c for c in PARAMETER_COLUMNS[1:] if c != "saturation_family"]
        unknown = ~frame["saturation_family"].isin(SATURATION_FAMILIES)
        if unknown.any():
            raise ValueError(f"{where} has {int(unknown.sum())} row(s) whose saturation_family is not one of "
                             f"{list(SATURATION_FAMILIES)}, channel(s) {sorted(set(frame.loc[unknown, 'channel']))[:5]}")
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
        bad = ~np.isfinite(frame[numeric].to_numpy()).all(axis=1)
        if bad.any():
            raise ValueError(f"{where} has {int(bad.sum())} row(s) with a missing or non-finite parameter, "
                             f"channel(s) {sorted(set(frame.loc[bad, 'channel']))[:5]}")
        for column in ("baseline_daily", "ci"):
            if frame[column].nunique() != 1:
                raise ValueError(f"{where}: {column} differs between rows; the rows come from more than one run")
        names = tuple(sorted(frame["channel"].unique()))
        point, draws, current, counts = {}, {}, {}, set()
        for name, rows in frame.sort_values(["channel", "draw"]).groupby("channel", sort=True):
            if rows["draw"].iloc[0] != 0 or len(rows) < 2:
                raise ValueError(f"{where}: channel {name!r} needs draw 0 (the estimate) and bootstrap draws")
            head, rest = rows.iloc[0], rows.iloc[1:]
            point[name] = (float(head["coefficient"]), float(head["saturation_half"]), float(head["saturation_shape"]),
                           str(head["saturation_family"]))
            draws[name] = (*(rest[c].to_numpy(dtype=float) for c in ("coefficient", "saturation_half",
                                                                     "saturation_shape")),
                           rest["saturation_family"].astype(str).to_numpy())
            current[name] = float(head["current_daily_spend"])
            counts.add(len(rest))
        if len(counts) != 1:
            raise ValueError(f"{where}: channels have different numbers of bootstrap draws {sorted(counts)}")
        return cls(names, point, draws, current, float(frame["baseline_daily"].iloc[0]), float(frame["ci"].iloc[0]))

    @property
    def current_daily_spend(self) -> pd.Series:
        return pd.Series({c: self.current[c] for c in self.channel_names}, name="daily_spend", dtype=float)

    def channel_response(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        x = np.asarray(daily_spend, dtype=float)
        if draws:
            expand = (-1,) + (1,) * x.ndim
            beta, half, shape, *family = self.draw_parameters[channel]
            families = family[0] if family else np.full(beta.size, "hill")  # (coefficient, half, shape): Hill
            beta, half, shape = (p.reshape(expand) for p in (beta, half, shape))
            out = np.empty((families.size, *x.shape))
            for family in set(families.tolist()):
                rows = families == family
                out[rows] = beta[rows] * _saturation(x[None, ...], half[rows], shape[rows], family)
            return out
        beta, half, shape, *family = self.point[channel]
        return beta * _saturation(x, half, shape, family[0] if family else "hill")


def _saturation(x: np.ndarray, half: Any, shape: Any, family: str) -> np.ndarray:
    # The same operations as ml.mmm.transforms.saturation, so both give identical numbers.
    if family == "exponential":
        return -np.expm1(-_LN2 * np.asarray(x, dtype=float) / half)
    u = np.asarray(x, dtype=float) / half
    us = np.power(u, shape)
    return us / (1.0 + us)


_LN2 = float(np.log(2.0))


# --------------------------------------------------------------------------- plans


def spend_caps(curves: ResponseCurves) -> dict[str, float]:
    """The largest daily spend a plan may give each channel (see ``MAX_SPEND_MULTIPLE``)."""
    current = curves.current_daily_spend.reindex(list(curves.channel_names)).astype(float)
    spending = current[current > 0]
    reference = float(spending.mean()) if len(spending) else 0.0
    return {c: MAX_SPEND_MULTIPLE * (v if v > 0 else reference) for c, v in current.items()}


def complete_plan(curves: ResponseCurves, plan: Mapping[str, Any]) -> dict[str, float]:
    """Daily spend for every channel of the model: the plan's, and the current spend for channels it leaves out.

    Raises :class:`PlanError` (a ValueError) naming every channel at fault and the rule it breaks: a channel
    the model does not have, a value that is not a number, not finite, negative, or above the channel's cap
    (``MAX_SPEND_MULTIPLE`` times its current daily spend).
    """
    if not isinstance(plan, Mapping):
        raise PlanError([{"channel": "", "rule": "not_a_mapping", "message": "a plan maps channel names to planned "
                          f"daily spend, e.g. {{'search': 350}}; got {type(plan).__name__}"}])
    names = list(curves.channel_names)
    current = curves.current_daily_spend.reindex(names).astype(float)
    caps = spend_caps(curves)
    problems: list[dict[str, str]] = []

    def fault(channel: str, rule: str, message: str) -> None:
        problems.append({"channel": channel, "rule": rule, "message": f"{channel!r}: {message}"})

    complete = {c: float(current[c]) for c in names}
    for channel, value in plan.items():
        if channel not in complete:
            fault(str(channel), "unknown_channel", f"unknown channel; the media-mix model has channels {names}")
            continue
        if isinstance(value, bool) or not isinstance(value, Real):
            fault(channel, "not_a_number", f"daily spend must be a number, got {value!r}")
            continue
        spend = float(value)
        if not math.isfinite(spend):
            fault(channel, "not_finite", f"daily spend must be a finite number, got {value!r}")
        elif spend < 0:
            fault(channel, "negative", f"daily spend must be >= 0, got {spend:,.2f}")
        elif spend > caps[channel]:
            basis = (f"{MAX_SPEND_MULTIPLE:g} times its current daily spend {current[channel]:,.2f}"
                     if current[channel] > 0 else
                     f"{MAX_SPEND_MULTIPLE:g} times the average current daily spend of the channels that spend "
                     "(it spends nothing now)")
            fault(channel, "above_cap", f"daily spend {spend:,.2f} is above the cap {caps[channel]:,.2f}, "
                  f"{basis}: the response curve was fitted near current spend and says nothing at that scale")
        else:
            complete[channel] = spend
    if problems:
        raise PlanError(problems)
    return complete


def _horizon(horizon_days: Any) -> int:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)) or not (
            1 <= horizon_days <= MAX_HORIZON_DAYS):
        raise ValueError(f"horizon_days must be a whole number of days from 1 to {MAX_HORIZON_DAYS}, got {horizon_days!r}")
    return int(horizon_days)


# --------------------------------------------------------------------------- baseline and conversions


@dataclass(frozen=True)
class RevenuePerConversion:
    """Revenue per conversion with its interval (coverage ``ci``), as :func:`revenue_per_conversion` measures it."""

    value: float
    lower: float
    upper: float
    ci: float

    def __post_init__(self) -> None:
        if not (np.isfinite([self.value, self.lower, self.upper]).all() and 0 < self.lower <= self.value <= self.upper):
            raise ValueError(f"revenue per conversion needs 0 < lower <= value <= upper, got {self.value!r} "
                             f"[{self.lower!r}, {self.upper!r}]")
        if not 0 < self.ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {self.ci}")

    def draws(self, n_draws: int) -> np.ndarray:
        """``n_draws`` values whose central ``ci`` interval is (lower, upper): a log-normal with one spread below
        the value and another above it, at evenly spaced quantiles in a fixed shuffled order."""
        from scipy.stats import norm

        z = norm.ppf((np.arange(n_draws) + 0.5) / n_draws)
        z_ci = float(norm.ppf(0.5 + self.ci / 2))
        spread = np.where(z < 0, np.log(self.value / self.lower), np.log(self.upper / self.value)) / z_ci
        return self.value * np.exp(z * spread)[_pairing(n_draws, 1)]


def revenue_per_conversion(
    revenue: Any, conversions: Any, *, horizon_days: int = DEFAULT_HORIZON_DAYS, ci: float = 0.9,
    window_days: int = CONVERSION_WINDOW_DAYS,
) -> RevenuePerConversion:
    """Revenue per conversion over the last ``window_days`` of the daily ``revenue`` and ``conversions`` (date
    order, e.g. ``fct_revenue_daily``), with the central ``ci`` interval of the same ratio over every
    ``horizon_days``-long stretch of those days (all of them when the window is shorter).

    Raises ValueError when the series differ in length, hold a negative or non-finite value, or the window has
    no conversion.
    """
    days = _horizon(horizon_days)
    revenue, conversions = (np.asarray(v, dtype=float) for v in (revenue, conversions))
    where = "the daily revenue and conversions (fct_revenue_daily)"
    if revenue.shape != conversions.shape or revenue.ndim != 1:
        raise ValueError(f"{where} must be two series of one length, got {revenue.shape} and {conversions.shape}")
    if not (np.isfinite(revenue).all() and np.isfinite(conversions).all()) or (revenue < 0).any() or (
            conversions < 0).any():
        raise ValueError(f"{where} hold a negative, missing or non-finite value; rebuild fct_revenue_daily")
    revenue, conversions = revenue[-window_days:], conversions[-window_days:]
    if conversions.sum() <= 0 or revenue.sum() <= 0:
        raise ValueError(f"{where} have no sale in the last {window_days} days: revenue per conversion is undefined")
    value = float(revenue.sum() / conversions.sum())
    block = min(days, len(revenue))
    sums = [np.convolve(v, np.ones(block), mode="valid") for v in (revenue, conversions)]
    usable = sums[1] > 0
    ratios = sums[0][usable] / sums[1][usable]
    lower, upper = np.quantile(ratios, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    value_floor = max(value, 1e-12)
    return RevenuePerConversion(value_floor, float(min(max(lower, 1e-12), value_floor)), float(max(upper, value_floor)),
                                float(ci))


def daily_baseline(decomposition: pd.DataFrame) -> np.ndarray:
    """The media-mix model's daily baseline in date order, from ``predictions.mmm_revenue_decomposition``
    (``date, component, value``; the rows of component ``baseline``)."""
    where = "predictions.mmm_revenue_decomposition"
    missing = [c for c in ("date", "component", "value") if c not in decomposition.columns]
    if missing:
        raise ValueError(f"{where} lacks column(s) {missing}; republish it (materialize media_mix_model)")
    rows = decomposition[decomposition["component"].astype(str) == "baseline"]
    if rows.empty:
        raise ValueError(f"{where} has no baseline rows; republish it (materialize media_mix_model)")
    if rows["date"].duplicated().any():
        raise ValueError(f"{where} has more than one baseline row for a date; the rows come from more than one run")
    values = pd.to_numeric(rows.sort_values("date")["value"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{where} has {int((~np.isfinite(values)).sum())} missing or non-finite baseline value(s)")
    return values


def baseline_level(daily: Any) -> float:
    """The daily baseline a scenario starts from: the mean of the model's ``daily`` baseline (in date order) over
    its last :data:`RECENT_BASELINE_DAYS` days, or all of it when shorter."""
    daily = _daily_baseline_values(daily)
    return float(daily[-RECENT_BASELINE_DAYS:].mean())


def baseline_draws(daily: Any, horizon_days: int, n_draws: int) -> np.ndarray:
    """``n_draws`` draws of the baseline revenue over ``horizon_days``: :func:`baseline_level` times the horizon,
    times how the mean baseline of every ``horizon_days``-long stretch of the model's ``daily`` baseline compared
    with its mean over the :data:`RECENT_BASELINE_DAYS` days just before the stretch (evenly spaced quantiles of
    those ratios, in a fixed shuffled order). On a window shorter than the recent days plus the horizon, the
    recent days are at most half of it and the stretches as long as what is left.

    Where a recent level is not positive (on some data the model credits media with more than all the revenue) a
    ratio to it means nothing: the stretches' differences from their recent level are added instead."""
    days = _horizon(horizon_days)
    daily = _daily_baseline_values(daily)
    level = float(daily[-RECENT_BASELINE_DAYS:].mean())
    if len(daily) < 2:
        return np.full(n_draws, days * level)
    recent = min(RECENT_BASELINE_DAYS, len(daily) // 2)
    block = min(days, len(daily) - recent)
    sums = np.concatenate([[0.0], np.cumsum(daily)])
    starts = np.arange(recent, len(daily) - block + 1)
    before = (sums[starts] - sums[starts - recent]) / recent
    after = (sums[starts + block] - sums[starts]) / block
    quantiles = (np.arange(n_draws) + 0.5) / n_draws
    order = _pairing(n_draws, 0)
    if level > 0 and (before > 0).all():
        return days * level * np.quantile(after / before, quantiles)[order]
    return days * (level + np.quantile(after - before, quantiles)[order])


def _daily_baseline_values(daily: Any) -> np.ndarray:
    daily = np.asarray(daily, dtype=float)
    if daily.ndim != 1 or not len(daily) or not np.isfinite(daily).all():
        raise ValueError("the daily baseline must be a non-empty series of finite values")
    return daily


def _pairing(n_draws: int, stream: int) -> np.ndarray:
    return np.random.default_rng([_PAIRING_SEED, stream]).permutation(n_draws)


# --------------------------------------------------------------------------- evaluation


def spend_scenario(
    curves: ResponseCurves,
    plan: Mapping[str, Any],
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    scenario: str = "custom",
    ci: float | None = None,
    baseline: Any = None,
    conversion_value: RevenuePerConversion | None = None,
) -> pd.DataFrame:
    """What the model expects over the next ``horizon_days`` at the plan's daily spend.

    One row per channel (the model's order) plus a ``TOTAL`` row, columns ``SCENARIO_COLUMNS``:

    - ``daily_spend`` (the plan's, or current spend for channels it leaves out), ``current_daily_spend``,
      ``change_pct`` (NaN from zero) and ``planned_spend`` (daily spend times the horizon);
    - ``incremental_revenue``: the channel's steady-state response times the horizon, with the interval of
      its bootstrap draws (the TOTAL row: the interval of the summed draws, paired by draw, not a sum of
      intervals); the budget recommendation computes its daily expected revenue the same way, so the
      scenario of its plan is its ``recommended_expected_revenue`` times the horizon;
    - ``baseline_revenue`` and ``total_revenue`` (baseline plus media), on the TOTAL row only (the baseline
      is not split by channel). With ``baseline`` (the model's daily baseline, :func:`daily_baseline`) the
      baseline is its recent level (:func:`baseline_level`) times the horizon, with draws
      (:func:`baseline_draws`) paired with the media draws for the total's interval; without it the baseline
      is the model's ``baseline_daily`` (the window's average) times the horizon, a point, and its interval
      columns are NaN;
    - ``roi`` = (incremental revenue - spend) / spend, with the interval of the draws; NaN without spend;
    - with ``conversion_value`` (:func:`revenue_per_conversion`): ``revenue_per_conversion`` on every row,
      ``incremental_conversions`` (incremental revenue / revenue per conversion) and on the TOTAL row
      ``total_conversions``, each with the interval of the paired draws; NaN without it.

    ``ci`` is the interval coverage (default the model's). Raises :class:`PlanError` for a bad plan (see
    :func:`complete_plan`) and ValueError for a horizon outside 1..``MAX_HORIZON_DAYS`` or a bad ``ci``.
    """
    days = _horizon(horizon_days)
    coverage = float(curves.ci) if ci is None else float(ci)
    if not 0 < coverage < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    spend = complete_plan(curves, plan)
    names = list(curves.channel_names)
    x = np.array([spend[c] for c in names])
    current = curves.current_daily_spend.reindex(names).to_numpy(dtype=float)
    point = np.array([float(curves.channel_response(c, v)) for c, v in zip(names, x)])
    draws = np.column_stack([np.asarray(curves.channel_response(c, v, draws=True), dtype=float).reshape(-1)
                             for c, v in zip(names, x)])  # (draws, channels)
    lo_q, hi_q = (1 - coverage) / 2, 1 - (1 - coverage) / 2

    def band(values: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # As the budget recommendation does: the interval always holds its estimate.
        return (np.minimum(np.quantile(values, lo_q, axis=0), estimate),
                np.maximum(np.quantile(values, hi_q, axis=0), estimate))

    lower, upper = band(draws, point)
    total_draws = draws.sum(axis=1)
    total_lower, total_upper = band(total_draws, np.array(point.sum()))
    daily = np.append(x, x.sum())
    media = np.append(point, point.sum())
    media_lower = np.append(lower, float(total_lower))
    media_upper = np.append(upper, float(total_upper))
    baseline_point = days * (float(curves.baseline_daily) if baseline is None else baseline_level(baseline))
    is_total = np.append(np.zeros(len(names), dtype=bool), True)
    nan = np.full(len(names) + 1, np.nan)
    # Every draw of revenue over the horizon: the channels' and, last, the total's (baseline + media).
    media_draws = days * np.column_stack([draws, total_draws])
    if baseline is None:
        baseline_draw = np.full(len(total_draws), baseline_point)
        baseline_band = (np.nan, np.nan)
    else:
        baseline_draw = baseline_draws(baseline, days, len(total_draws))
        baseline_band = band(baseline_draw, np.array(baseline_point))
    revenue_draws = baseline_draw + media_draws[:, -1]
    total_band = band(revenue_draws, np.array(baseline_point + days * point.sum()))
    conversions = {"revenue_per_conversion": nan, "incremental_conversions": nan, "total_conversions": nan}
    conversions.update({f"{k}_{side}": nan for k in list(conversions) for side in ("lower", "upper")})
    if conversion_value is not None:
        value = conversion_value.draws(len(total_draws))
        rate = float(conversion_value.value)
        incremental = days * media / rate
        conversions["revenue_per_conversion"] = np.full(len(names) + 1, rate)
        conversions["revenue_per_conversion_lower"] = np.full(len(names) + 1, conversion_value.lower)
        conversions["revenue_per_conversion_upper"] = np.full(len(names) + 1, conversion_value.upper)
        conversions["incremental_conversions"] = incremental
        (conversions["incremental_conversions_lower"],
         conversions["incremental_conversions_upper"]) = band(media_draws / value[:, None], incremental)
        total = (baseline_point + days * point.sum()) / rate
        total_lower_c, total_upper_c = band(revenue_draws / value, np.array(total))
        conversions["total_conversions"] = np.where(is_total, total, np.nan)
        conversions["total_conversions_lower"] = np.where(is_total, float(total_lower_c), np.nan)
        conversions["total_conversions_upper"] = np.where(is_total, float(total_upper_c), np.nan)
    rows = pd.DataFrame({
        "scenario": scenario,
        "channel": [*names, TOTAL_ROW],
        "horizon_days": days,
        "daily_spend": daily,
        "current_daily_spend": np.append(current, current.sum()),
        "change_pct": _change_pct(daily, np.append(current, current.sum())),
        "planned_spend": days * daily,
        "incremental_revenue": days * media,
        "incremental_revenue_lower": days * media_lower,
        "incremental_revenue_upper": days * media_upper,
        "baseline_revenue": np.where(is_total, baseline_point, np.nan),
        "total_revenue": np.where(is_total, baseline_point + days * media, np.nan),
        "total_revenue_lower": np.where(is_total, float(total_band[0]), np.nan),
        "total_revenue_upper": np.where(is_total, float(total_band[1]), np.nan),
        "baseline_revenue_lower": np.where(is_total, float(baseline_band[0]), np.nan),
        "baseline_revenue_upper": np.where(is_total, float(baseline_band[1]), np.nan),
        **conversions,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        for measure, revenue in (("roi", media), ("roi_lower", media_lower), ("roi_upper", media_upper)):
            rows[measure] = np.where(daily > 0, (revenue - daily) / np.where(daily > 0, daily, 1.0), np.nan)
    return rows[SCENARIO_COLUMNS]


def _change_pct(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(old > 0, (new / np.where(old > 0, old, 1.0) - 1.0) * 100.0, np.nan)
    return np.where(np.abs(pct) < 1e-7, 0.0, pct)
