"""Budget recommendation: re-split daily spend across channels to maximize media-mix revenue.
Works on a media-mix model's steady-state response curves, under a total budget and per-channel bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize

from core.spend_scenarios import ResponseCurves

__all__ = ["BudgetRecommendation", "SteadyStateResponses", "recommend_budget"]

TABLE_COLUMNS = [
    "channel", "current_spend", "recommended_spend", "change_pct", "current_expected_revenue",
    "recommended_expected_revenue", "recommended_expected_revenue_lower",
    "recommended_expected_revenue_upper", "marginal_roas_current", "marginal_roas_recommended", "reason",
]
TOTAL = "TOTAL"
_PEAK_GRID = 513


class SteadyStateResponses(ResponseCurves, Protocol):
    """What the optimizer reads from a media-mix model.

    :class:`ml.mmm.ResponseModel` provides it, whether rebuilt from the published
    ``mmm_response_parameters`` table (``ResponseModel.from_parameters``) or held by a fitted
    :class:`ml.mmm.MediaMixResult`, which provides it too.
    """

    def channel_marginal_roas(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class BudgetRecommendation:
    """A recommended daily allocation and what the model expects from it.

    Attributes
    ----------
    table:
        One row per channel plus a ``TOTAL`` row, columns ``channel, current_spend,
        recommended_spend, change_pct, current_expected_revenue, recommended_expected_revenue,
        recommended_expected_revenue_lower, recommended_expected_revenue_upper,
        marginal_roas_current, marginal_roas_recommended, reason``. Spend is average *daily* spend
        (the model window's average for ``current_spend``); expected revenue is the channel's
        steady-state daily incremental revenue, with the bootstrap interval for the recommendation.
        ``change_pct`` is NaN where current spend is 0. On the ``TOTAL`` row spend and revenue are
        sums (the interval is over the summed draws, not a sum of intervals) and the marginal ROAS
        columns hold the portfolio's marginal ROAS (spend-weighted).
    total_budget:
        Daily budget the recommendation spends exactly.
    current_revenue, recommended_revenue:
        Predicted steady-state daily revenue including the baseline.
    lift, lift_lower, lift_upper:
        Recommended minus reference media revenue per day with its bootstrap interval (paired draws).
    portfolio_marginal_roas:
        The marginal ROAS the free channels are balanced at (the budget constraint's multiplier).
    used_fallback:
        True when no candidate beat the reference allocation, which is then returned unchanged.
    reason:
        One sentence on the outcome, repeated on the ``TOTAL`` row.
    not_identifiable:
        Channels held within the smaller bound because the model cannot identify them (see
        :func:`recommend_budget`), in the model's channel order.
    """

    table: pd.DataFrame
    total_budget: float
    current_revenue: float
    recommended_revenue: float
    lift: float
    lift_lower: float
    lift_upper: float
    portfolio_marginal_roas: float
    used_fallback: bool
    reason: str
    not_identifiable: tuple[str, ...] = ()


def recommend_budget(
    model: SteadyStateResponses,
    *,
    total_budget: float | None = None,
    max_change: float = 0.30,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    locked: Iterable[str] = (),
    ci: float | None = None,
    not_identifiable: Mapping[str, str] | None = None,
    not_identifiable_max_change: float = 0.10,
) -> BudgetRecommendation:
    """Daily spend per channel that maximizes the model's predicted revenue.

    Maximizes ``sum_c r_c(x_c)`` over daily spends ``x`` (steady-state response curves of the
    fitted model) subject to ``sum_c x_c = total_budget`` and ``lo_c <= x_c <= hi_c``.

    Method: Lagrangian water-filling. For a multiplier ``lam`` every channel independently takes the
    spend in its bounds that maximizes ``r_c(x) - lam * x`` (where ``r_c'(x) = lam`` on the falling
    part of its marginal-ROAS curve, or a bound); total spend falls as ``lam`` rises, and bisection
    on ``lam`` meets the budget. For concave curves (exponential, Hill shape 1, and every S-curve past its
    inflection) this point satisfies the KKT conditions of a concave problem, so it is the global
    optimum: free channels end with equal marginal ROAS ``lam``, channels at a cap have a higher
    one and channels at a floor a lower one. When an S-shaped channel makes total spend jump over
    the budget, SLSQP (analytic gradients) finishes from that point and from the reference
    allocation, and the best feasible result is kept.

    The result never predicts less revenue than the reference allocation: the current spend when
    it is feasible (same total, within bounds), otherwise the current mix scaled to the budget and
    clipped to the bounds. If no candidate beats the reference it is returned and ``reason`` says so.

    Parameters
    ----------
    model:
        The media-mix model's response curves: a :class:`ml.mmm.ResponseModel` (e.g. rebuilt from
        the published ``mmm_response_parameters`` with ``ResponseModel.from_parameters``) or a
        fitted :class:`ml.mmm.MediaMixResult`; both give the same recommendation.
    total_budget:
        Daily budget to allocate; default the current total daily spend.
    max_change:
        Default per-channel bounds: ``current * (1 -/+ max_change)`` (floored at 0).
    bounds:
        ``{channel: (lo, hi)}`` daily-spend bounds overriding the default; ``None`` on a side means
        0 (lo) or unbounded (hi).
    locked:
        Channels that keep their current spend.
    ci:
        Interval coverage for the revenue intervals; default the model's.
    not_identifiable, not_identifiable_max_change:
        ``{channel: why}`` for channels whose effect the model cannot identify (the media-mix review
        gate, ``mmm_channel_roas.identifiable``): a response curve the data do not support must not
        move much money. Such a channel stays within ``current * (1 -/+ m)`` with
        ``m = min(max_change, not_identifiable_max_change)``; its ``bounds`` entry, if any, is
        narrowed to that band; a locked one stays locked. Its ``reason`` reads
        ``not identifiable, so held within ±m of current spend: <the optimizer's reason> [review: <why>]``.

    Raises
    ------
    ValueError
        Unknown channels, negative or crossed bounds, a channel both locked and bounded, bounds of a
        channel that is not identifiable outside its band, or bounds that cannot meet the budget
        (naming the sum, the budget and the channels that cause it).
    """
    names = list(model.channel_names)
    current = model.current_daily_spend.reindex(names).to_numpy(dtype=float)
    budget = float(current.sum()) if total_budget is None else float(total_budget)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError(f"total_budget must be a finite number >= 0, got {total_budget}")
    if not (math.isfinite(max_change) and max_change >= 0):
        raise ValueError(f"max_change must be >= 0 (0.3 means +/-30%), got {max_change}")
    if not (math.isfinite(not_identifiable_max_change) and not_identifiable_max_change >= 0):
        raise ValueError(f"not_identifiable_max_change must be >= 0 (0.1 means +/-10%), got {not_identifiable_max_change}")
    coverage = float(model.ci) if ci is None else float(ci)
    if not 0 < coverage < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")

    lo, hi, origin = _bounds(names, current, max_change, bounds, set(locked))
    held_why = _hold_not_identifiable(
        names, current, lo, hi, origin, dict(not_identifiable or {}), min(max_change, not_identifiable_max_change)
    )
    _check_feasible(names, lo, hi, budget, origin)

    curves = _Curves(model, names, hi)
    reference = _reference_allocation(current, lo, hi, budget)
    reference_is_current = bool(np.allclose(reference, current, rtol=1e-9, atol=1e-9))

    dual, lam = _water_fill(curves, lo, hi, budget)
    dual_is_kkt = _is_kkt_point(curves, dual, lo, hi, lam)
    candidates = [dual]
    if not dual_is_kkt:
        candidates += [_slsqp(curves, start, lo, hi, budget) for start in (dual, reference)]
    candidates = [_repair(x, lo, hi, budget) for x in candidates]
    values = [curves.total(x) for x in candidates]
    best = int(np.argmax(values))
    ref_value = curves.total(reference)
    # Differences below floating noise are not improvements worth moving money for.
    improves = values[best] > ref_value + 1e-9 * max(1.0, abs(ref_value))
    recommended = candidates[best] if improves else reference
    if not (improves and best == 0 and dual_is_kkt):
        lam = _portfolio_multiplier(curves, recommended, lo, hi)

    return _recommendation(
        model, curves, names, current, reference, recommended, lo, hi, origin, budget, lam, coverage,
        used_fallback=not improves, reference_is_current=reference_is_current, held_why=held_why,
    )


# --------------------------------------------------------------------------- bounds


def _bounds(
    names: list[str],
    current: np.ndarray,
    max_change: float,
    bounds: Mapping[str, tuple[float | None, float | None]] | None,
    locked: set[str],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Lower/upper daily spend per channel and where each pair came from (default, bounds, locked)."""
    known = set(names)
    bounds = dict(bounds or {})
    unknown = sorted((set(bounds) | locked) - known)
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown} in bounds/locked; the model has {names}")
    both = sorted(set(bounds) & locked)
    if both:
        raise ValueError(f"channel(s) {both} are both locked and given bounds; use one or the other")
    lo = np.maximum(current * (1.0 - max_change), 0.0)
    hi = current * (1.0 + max_change)
    origin = ["default"] * len(names)
    for i, name in enumerate(names):
        if name in locked:
            lo[i] = hi[i] = current[i]
            origin[i] = "locked"
        elif name in bounds:
            pair = bounds[name]
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"bounds[{name!r}] must be a (lo, hi) pair, got {pair!r}")
            low = 0.0 if pair[0] is None else float(pair[0])
            high = math.inf if pair[1] is None else float(pair[1])
            if math.isnan(low) or math.isnan(high) or low < 0:
                raise ValueError(f"bounds[{name!r}] = {pair!r}: lower bound must be a number >= 0")
            if low > high:
                raise ValueError(f"bounds[{name!r}] = {pair!r}: lower bound {low:,.2f} exceeds upper bound {high:,.2f}")
            lo[i], hi[i] = low, high
            origin[i] = "bounds"
    return lo, hi, origin


def _hold_not_identifiable(
    names: list[str],
    current: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    origin: list[str],
    not_identifiable: dict[str, str],
    change: float,
) -> dict[str, str]:
    """Narrow the bounds (in place) of channels the model cannot identify to ``current * (1 -/+ change)``.

    Returns ``{channel: why}`` for the channels held (a locked channel is not: it keeps its own reason).
    """
    unknown = sorted(set(not_identifiable) - set(names))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown} in not_identifiable; the model has {names}")
    held: dict[str, str] = {}
    for i, name in enumerate(names):
        if name not in not_identifiable or origin[i] == "locked":
            continue
        band_lo, band_hi = max(current[i] * (1.0 - change), 0.0), current[i] * (1.0 + change)
        if lo[i] > band_hi or hi[i] < band_lo:
            raise ValueError(
                f"bounds[{name!r}] = ({lo[i]:,.2f}, {hi[i]:,.2f}) lie outside {band_lo:,.2f}..{band_hi:,.2f}, the "
                f"±{change:.0%} band of current spend a channel that is not identifiable is held to "
                f"({not_identifiable[name] or 'no reason given'}); give bounds inside it or lock the channel"
            )
        lo[i], hi[i] = max(lo[i], band_lo), min(hi[i], band_hi)
        origin[i] = "not identifiable"
        held[name] = str(not_identifiable[name] or "").strip()
    return held


def _check_feasible(names: list[str], lo: np.ndarray, hi: np.ndarray, budget: float, origin: list[str]) -> None:
    def listing(values: np.ndarray, sign: str) -> str:
        order = np.argsort(-values)
        parts = [f"{names[i]} {sign} {values[i]:,.2f} ({origin[i]})" for i in order if values[i] > 0]
        return ", ".join(parts[:8]) + (f" and {len(parts) - 8} more" if len(parts) > 8 else "")

    tolerance = 1e-9 * max(1.0, budget)
    if lo.sum() > budget + tolerance:
        raise ValueError(
            f"sum of lower bounds {lo.sum():,.2f} > budget {budget:,.2f}: channels {listing(lo, '>=')}. "
            "Raise total_budget, allow larger cuts (max_change) or lower those bounds / unlock channels"
        )
    if hi.sum() < budget - tolerance:
        raise ValueError(
            f"sum of upper bounds {hi.sum():,.2f} < budget {budget:,.2f}: channels {listing(hi, '<=')}. "
            "Lower total_budget, allow larger increases (max_change) or raise those bounds / unlock channels"
        )


def _reference_allocation(current: np.ndarray, lo: np.ndarray, hi: np.ndarray, budget: float) -> np.ndarray:
    """The current allocation if feasible, else the current mix scaled to the budget and clipped to bounds."""
    tolerance = 1e-9 * max(1.0, budget)
    within = (current >= lo - tolerance).all() and (current <= hi + tolerance).all()
    if within and abs(current.sum() - budget) <= tolerance:
        return current.copy()
    if current.sum() <= 0:
        return _repair(lo.copy(), lo, hi, budget)

    def excess(k: float) -> float:
        return float(np.clip(k * current, lo, hi).sum() - budget)

    top = 1.0
    while excess(top) < 0 and top < 1e12:
        top *= 2.0
    if excess(top) < 0:
        # The spending channels hit their caps first; the rest of the budget goes where there is room.
        return _repair(np.clip(top * current, lo, hi), lo, hi, budget)
    k = brentq(excess, 0.0, top, xtol=1e-14, rtol=1e-14) if excess(0.0) < 0 else 0.0
    return _repair(np.clip(k * current, lo, hi), lo, hi, budget)


def _repair(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, budget: float) -> np.ndarray:
    """Clip to the bounds and spread any remaining budget gap over the channels with room, by room."""
    x = np.clip(np.asarray(x, dtype=float), lo, hi)
    for _ in range(len(x) + 1):
        gap = budget - x.sum()
        if abs(gap) <= 1e-12 * max(1.0, budget):
            break
        room = (np.minimum(hi, x + abs(gap) + 1.0) - x) if gap > 0 else (x - lo)
        if room.sum() <= 0:
            break
        x = np.clip(x + np.sign(gap) * room * min(1.0, abs(gap) / room.sum()), lo, hi)
    return x


# --------------------------------------------------------------------------- curves and solvers


class _Curves:
    """Vectorized access to every channel's response r_c and marginal r_c' at one spend per channel."""

    def __init__(self, model: SteadyStateResponses, names: list[str], hi: np.ndarray):
        self.model, self.names = model, names
        # Where each channel's marginal ROAS peaks (0 for concave curves); the falling branch starts there.
        self.peak = np.zeros(len(names))
        for i, name in enumerate(names):
            top = hi[i] if math.isfinite(hi[i]) and hi[i] > 0 else max(model.current_daily_spend[name], 1.0) * 10.0
            grid = np.linspace(0.0, top, _PEAK_GRID)
            self.peak[i] = grid[int(np.argmax(model.channel_marginal_roas(name, grid)))]

    def value(self, x: np.ndarray) -> np.ndarray:
        return np.array([float(self.model.channel_response(n, v)) for n, v in zip(self.names, x)])

    def marginal(self, x: np.ndarray) -> np.ndarray:
        return np.array([float(self.model.channel_marginal_roas(n, v)) for n, v in zip(self.names, x)])

    def total(self, x: np.ndarray) -> float:
        return float(self.value(x).sum())

    def draws(self, x: np.ndarray) -> np.ndarray:
        """(draws, channels) bootstrap responses at spend ``x``."""
        return np.column_stack([self.model.channel_response(n, v, draws=True) for n, v in zip(self.names, x)])


def _best_response(curves: _Curves, i: int, lam: float, lo: float, hi: float) -> float:
    """argmax over [lo, hi] of r_i(x) - lam * x: a bound or the point where r_i'(x) = lam on its falling branch."""
    if hi <= lo:
        return lo
    name, model = curves.names[i], curves.model

    def slope(x: float) -> float:
        return float(model.channel_marginal_roas(name, x)) - lam

    start = min(max(lo, curves.peak[i]), hi)
    if slope(start) <= 0:
        falling = start
    elif not math.isfinite(hi):
        if lam <= 0:
            return math.inf  # an unbounded channel with positive slope takes any amount at a zero price
        top = max(2.0 * start, 1.0)
        for _ in range(200):
            if slope(top) <= 0:
                break
            top *= 2.0
        falling = brentq(slope, start, top, xtol=1e-13 * top, rtol=1e-15) if slope(top) <= 0 else top
    elif slope(hi) >= 0:
        falling = hi
    else:
        falling = brentq(slope, start, hi, xtol=1e-13 * max(hi, 1.0), rtol=1e-15)
    if falling <= lo:
        return lo

    def gain(x: float) -> float:
        return float(model.channel_response(name, x)) - lam * x

    return falling if gain(falling) >= gain(lo) else lo


def _water_fill(curves: _Curves, lo: np.ndarray, hi: np.ndarray, budget: float) -> tuple[np.ndarray, float]:
    """Bisection on the budget multiplier; returns a feasible allocation and the multiplier."""
    n = len(lo)

    def allocate(lam: float) -> np.ndarray:
        return np.array([_best_response(curves, i, lam, lo[i], hi[i]) for i in range(n)])

    peaks = curves.marginal(np.minimum(np.maximum(curves.peak, lo), np.where(np.isfinite(hi), hi, np.inf)))
    lam_hi = max(float(peaks.max()) * 1.01, 1e-12)
    lam_lo = 0.0
    x_lo = allocate(lam_lo)  # most spend
    if x_lo.sum() <= budget:
        return _repair(x_lo, lo, hi, budget), 0.0
    x_hi = allocate(lam_hi)  # least spend
    for _ in range(200):
        mid = 0.5 * (lam_lo + lam_hi)
        x_mid = allocate(mid)
        if x_mid.sum() > budget:
            lam_lo, x_lo = mid, x_mid
        else:
            lam_hi, x_hi = mid, x_mid
        if lam_hi - lam_lo <= 1e-15 * max(1.0, lam_hi):
            break
    # Between the two sides only channels that jump (S-curves leaving a floor) differ much; blend
    # them to meet the budget exactly (SLSQP takes over if the blend is not optimal).
    span = x_lo.sum() - x_hi.sum()
    if not np.isfinite(span) or span <= 0:
        return _repair(x_hi, lo, hi, budget), 0.5 * (lam_lo + lam_hi)
    theta = (budget - x_hi.sum()) / span
    return _repair(x_hi + theta * (x_lo - x_hi), lo, hi, budget), 0.5 * (lam_lo + lam_hi)


def _is_kkt_point(curves: _Curves, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, lam: float) -> bool:
    """First-order optimality within tolerance (bound channels on the right side of ``lam``)."""
    slope = curves.marginal(x)
    tol = 1e-6 * max(1.0, abs(lam))
    at_lo, at_hi = _at_bounds(x, lo, hi)
    free = ~(at_lo | at_hi)
    return bool(
        (np.abs(slope[free] - lam) <= tol).all()
        and (slope[at_lo & ~at_hi] <= lam + tol).all()
        and (slope[at_hi & ~at_lo] >= lam - tol).all()
    )


def _at_bounds(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = 1e-7 * np.maximum(1.0, np.abs(x))
    return x <= lo + scale, x >= hi - scale


def _slsqp(curves: _Curves, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, budget: float) -> np.ndarray:
    """SLSQP on the free channels in units of their bound width (better conditioned than raw money)."""
    free = hi > lo
    if not free.any():
        return lo.copy()
    fixed_total = float(lo[~free].sum())
    finite_hi = np.where(np.isfinite(hi), hi, np.maximum(lo, start) * 4.0 + budget)
    width = np.maximum(finite_hi - lo, 1e-12)[free]
    base = lo[free]
    scale = max(1.0, abs(curves.total(start)))

    def expand(u: np.ndarray) -> np.ndarray:
        x = lo.copy()
        x[free] = base + u * width
        return x

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        x = expand(u)
        return -curves.total(x) / scale, -curves.marginal(x)[free] * width / scale

    u0 = np.clip((start[free] - base) / width, 0.0, 1.0)
    upper = np.where(np.isfinite(hi[free]), 1.0, None)
    result = minimize(
        objective, u0, jac=True, method="SLSQP",
        bounds=list(zip(np.zeros(free.sum()), upper)),
        constraints=[{
            "type": "eq",
            "fun": lambda u: float((base + u * width).sum() + fixed_total - budget) / max(budget, 1.0),
            "jac": lambda u: width / max(budget, 1.0),
        }],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return expand(result.x)


def _portfolio_multiplier(curves: _Curves, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Marginal ROAS of the free channels (spend-weighted), else the midpoint the bound channels allow."""
    slope = curves.marginal(x)
    at_lo, at_hi = _at_bounds(x, lo, hi)
    free = ~(at_lo | at_hi)
    if free.any():
        weights = np.where(x[free] > 0, x[free], 1.0)
        return float(np.average(slope[free], weights=weights))
    floor = slope[at_lo & (hi > lo)].max(initial=0.0)
    cap = slope[at_hi & (hi > lo)].min(initial=math.inf)
    return float(0.5 * (floor + cap)) if math.isfinite(cap) else float(floor)


# --------------------------------------------------------------------------- output


def _recommendation(
    model: SteadyStateResponses,
    curves: _Curves,
    names: list[str],
    current: np.ndarray,
    reference: np.ndarray,
    recommended: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    origin: list[str],
    budget: float,
    lam: float,
    coverage: float,
    *,
    used_fallback: bool,
    reference_is_current: bool,
    held_why: Mapping[str, str],
) -> BudgetRecommendation:
    lo_q, hi_q = (1 - coverage) / 2, 1 - (1 - coverage) / 2
    current_value = curves.value(current)
    recommended_value = curves.value(recommended)
    draws = curves.draws(recommended)  # (draws, channels)
    lower = np.minimum(np.quantile(draws, lo_q, axis=0), recommended_value)
    upper = np.maximum(np.quantile(draws, hi_q, axis=0), recommended_value)
    slope_current = curves.marginal(current)
    slope_recommended = curves.marginal(recommended)
    change = _change_pct(recommended, current)

    reasons = [
        _channel_reason(i, names, current, recommended, lo, hi, origin, slope_current, lam, used_fallback,
                        reference_is_current)
        for i in range(len(names))
    ]
    reasons = [_held_reason(r, held_why[n], current[i], lo[i], hi[i]) if n in held_why else r
               for i, (n, r) in enumerate(zip(names, reasons))]

    total_draws = draws.sum(axis=1)
    lift_draws = total_draws - curves.draws(reference).sum(axis=1)
    lift = float(recommended_value.sum() - curves.value(reference).sum())
    lift_lower = float(min(np.quantile(lift_draws, lo_q), lift))
    lift_upper = float(max(np.quantile(lift_draws, hi_q), lift))
    versus = "the current allocation" if reference_is_current else "the current mix scaled to the budget"
    if used_fallback:
        summary = (
            f"keep {versus}: no allocation within the bounds predicts more revenue "
            f"(portfolio marginal ROAS {lam:.2f})"
        )
    else:
        base = max(abs(curves.value(reference).sum()), 1e-12)
        summary = (
            f"predicted media revenue {lift:+,.2f}/day ({lift / base:+.1%}) versus {versus}, "
            f"interval {lift_lower:+,.2f} to {lift_upper:+,.2f}; free channels balanced at marginal ROAS {lam:.2f}"
        )
    if held_why:
        held = [n for n in names if n in held_why]
        summary += (f"; {len(held)} channel(s) the model cannot identify held within a smaller bound: "
                    f"{', '.join(held)}")

    def weighted(slope: np.ndarray, spend: np.ndarray) -> float:
        return float(np.average(slope, weights=spend)) if spend.sum() > 0 else float(slope.mean())

    table = pd.DataFrame({
        "channel": names,
        "current_spend": current,
        "recommended_spend": recommended,
        "change_pct": change,
        "current_expected_revenue": current_value,
        "recommended_expected_revenue": recommended_value,
        "recommended_expected_revenue_lower": lower,
        "recommended_expected_revenue_upper": upper,
        "marginal_roas_current": slope_current,
        "marginal_roas_recommended": slope_recommended,
        "reason": reasons,
    })
    total_current = float(current.sum())
    total_row = pd.DataFrame([{
        "channel": TOTAL,
        "current_spend": total_current,
        "recommended_spend": float(recommended.sum()),
        "change_pct": float(_change_pct(recommended.sum(keepdims=True), current.sum(keepdims=True))[0]),
        "current_expected_revenue": float(current_value.sum()),
        "recommended_expected_revenue": float(recommended_value.sum()),
        "recommended_expected_revenue_lower": float(min(np.quantile(total_draws, lo_q), recommended_value.sum())),
        "recommended_expected_revenue_upper": float(max(np.quantile(total_draws, hi_q), recommended_value.sum())),
        "marginal_roas_current": weighted(slope_current, current),
        "marginal_roas_recommended": weighted(slope_recommended, recommended),
        "reason": summary,
    }])
    return BudgetRecommendation(
        table=pd.concat([table, total_row], ignore_index=True)[TABLE_COLUMNS],
        total_budget=budget,
        current_revenue=float(model.baseline_daily + current_value.sum()),
        recommended_revenue=float(model.baseline_daily + recommended_value.sum()),
        lift=lift,
        lift_lower=lift_lower,
        lift_upper=lift_upper,
        portfolio_marginal_roas=float(lam),
        used_fallback=used_fallback,
        reason=summary,
        not_identifiable=tuple(n for n in names if n in held_why),
    )


def _change_pct(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Percent change, NaN from zero; solver noise below 1e-7 % reads as 0 rather than -0.00."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(old > 0, (new / np.where(old > 0, old, 1.0) - 1.0) * 100.0, np.nan)
    return np.where(np.abs(pct) < 1e-7, 0.0, pct)


def _held_reason(reason: str, why: str, current: float, lo: float, hi: float) -> str:
    """A channel the model cannot identify: the band first, the optimizer's reason, then the review's why."""
    if current > 0:
        band = f"±{max(1.0 - lo / current, hi / current - 1.0):.0%} of current spend"
    else:
        band = f"{lo:,.2f}..{hi:,.2f}/day"
    return f"not identifiable, so held within {band}: {reason}" + (f" [review: {why}]" if why else "")


def _channel_reason(
    i: int,
    names: list[str],
    current: np.ndarray,
    recommended: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    origin: list[str],
    slope: np.ndarray,
    lam: float,
    used_fallback: bool,
    reference_is_current: bool,
) -> str:
    if origin[i] == "locked":
        return "locked at current spend"
    if used_fallback:
        if reference_is_current:
            return "keep current spend: no reallocation within the bounds predicts more revenue"
        return "current mix scaled to the budget: no reallocation within the bounds predicts more revenue"
    if hi[i] <= lo[i]:
        return f"fixed by bounds at {lo[i]:,.2f}/day"
    at_lo, at_hi = _at_bounds(recommended[i:i + 1], lo[i:i + 1], hi[i:i + 1])
    where = "the default" if origin[i] == "default" else "its"

    def limit(value: float) -> str:
        if current[i] > 0:
            return f"{(value / current[i] - 1.0) * 100:+.0f}%"
        return f"{value:,.2f}/day"

    m = slope[i]
    if at_hi[0] and not at_lo[0]:
        relation = "above" if m > lam else "at"
        return f"marginal ROAS {m:.2f} {relation} the portfolio's {lam:.2f}: increase to {where} cap ({limit(hi[i])})"
    if at_lo[0] and not at_hi[0]:
        relation = "below" if m < lam else "at"
        return f"marginal ROAS {m:.2f} {relation} the portfolio's {lam:.2f}: decrease to {where} floor ({limit(lo[i])})"
    change = recommended[i] - current[i]
    if abs(change) <= 1e-6 * max(1.0, current[i]):
        return f"keep: marginal ROAS {m:.2f} already matches the portfolio's {lam:.2f}"
    verb = "increase" if change > 0 else "decrease"
    direction = "falls" if change > 0 else "rises"
    if current[i] > 0:
        pct = abs(change) / current[i] * 100
        amount = f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"
    else:
        amount = f"{abs(change):,.2f}/day"
    return f"marginal ROAS {m:.2f} vs the portfolio's {lam:.2f}: {verb} by {amount} until it {direction} to {lam:.2f}"
