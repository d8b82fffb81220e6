"""Planned-spend scenarios on the media-mix model: revenue, conversions and ROI over the next days at a daily spend
per channel.
The evaluation is core.spend_scenarios (the HTTP service uses it too); this module adds the model and the standard plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.spend_scenarios import (
    DEFAULT_HORIZON_DAYS,
    MAX_SPEND_MULTIPLE,
    SCENARIO_COLUMNS,
    PlanError,
    RevenuePerConversion,
    complete_plan,
    daily_baseline,
    revenue_per_conversion,
    spend_caps,
    spend_scenario as _evaluate,
)
from ml.budget import TOTAL, BudgetRecommendation
from ml.mmm import ResponseModel

__all__ = [
    "DEFAULT_HORIZON_DAYS", "MAX_SPEND_MULTIPLE", "SCENARIO_COLUMNS", "PlanError", "RevenuePerConversion",
    "complete_plan", "daily_baseline", "revenue_per_conversion", "spend_caps", "spend_scenario", "spend_scenarios",
    "standard_plans",
]

CURRENT, RECOMMENDED = "current", "budget_recommendation"


def spend_scenario(
    model: ResponseModel,
    plan: Mapping[str, Any],
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    scenario: str = "custom",
    ci: float | None = None,
    baseline: Any = None,
    conversion_value: RevenuePerConversion | None = None,
) -> pd.DataFrame:
    """Expected revenue, conversions and ROI over the next ``horizon_days`` if every channel spends the plan's daily
    amount.

    model: the media-mix response curves, e.g. ``ResponseModel.from_parameters(<predictions.mmm_response_parameters>)``
        or a fitted ``MediaMixResult``'s model.
    plan: ``{channel: daily spend}``; channels left out keep their current daily spend.
    baseline: the model's daily baseline (:func:`daily_baseline` of ``mmm_revenue_decomposition``); gives the
        baseline revenue draws that widen the total's interval. None: the baseline is a point.
    conversion_value: :func:`revenue_per_conversion` of the daily sales; gives the conversions columns. None: NaN.

    Returns one row per channel plus a ``TOTAL`` row (columns :data:`SCENARIO_COLUMNS`, described in
    :func:`core.spend_scenarios.spend_scenario`): planned spend, incremental revenue with the interval of the
    bootstrap draws, total revenue (baseline + media, with the interval of both) on the TOTAL row, ROI with its
    interval, incremental and total conversions.

    Raises :class:`PlanError` (a ValueError) naming each channel at fault and the rule (unknown channel, not a
    number, not finite, negative, above ``MAX_SPEND_MULTIPLE`` times current spend), and ValueError for a
    horizon outside 1..366 days.
    """
    return _evaluate(model, plan, horizon_days=horizon_days, scenario=scenario, ci=ci, baseline=baseline,
                     conversion_value=conversion_value)


def standard_plans(
    model: ResponseModel, recommendation: BudgetRecommendation | pd.DataFrame, change: float = 0.20
) -> dict[str, dict[str, float]]:
    """The plans published every run: ``current``, ``budget_recommendation``, ``current_minus_20pct`` and
    ``current_plus_20pct`` (every channel's current daily spend scaled by ``1 -/+ change``).

    recommendation: a :class:`ml.budget.BudgetRecommendation` or its published table
        (``ml_budget_recommendation``: ``channel, recommended_spend``; the TOTAL row is ignored).
    """
    if not 0 < change < 1:
        raise ValueError(f"change must be in (0, 1) (0.2 means -/+20%), got {change}")
    table = recommendation.table if isinstance(recommendation, BudgetRecommendation) else recommendation
    rows = table[table["channel"] != TOTAL]
    recommended = dict(zip(rows["channel"].astype(str), rows["recommended_spend"].astype(float)))
    names = list(model.channel_names)
    if sorted(recommended) != sorted(names):
        raise ValueError(f"the budget recommendation has channels {sorted(recommended)} but the media-mix model "
                         f"has {sorted(names)}: they come from different runs; materialize budget_recommendation")
    current = model.current_daily_spend.reindex(names).astype(float)
    step = round(change * 100)
    return {
        CURRENT: current.to_dict(),
        RECOMMENDED: {c: recommended[c] for c in names},
        f"current_minus_{step}pct": (current * (1 - change)).to_dict(),
        f"current_plus_{step}pct": (current * (1 + change)).to_dict(),
    }


def spend_scenarios(
    model: ResponseModel,
    plans: Mapping[str, Mapping[str, Any]],
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    ci: float | None = None,
    baseline: Any = None,
    conversion_value: RevenuePerConversion | None = None,
) -> pd.DataFrame:
    """:func:`spend_scenario` for every named plan, one block of rows per plan (the name in ``scenario``)."""
    if not plans:
        raise ValueError("no plans given; pass {name: {channel: daily spend}}")
    return pd.concat(
        [spend_scenario(model, plan, horizon_days=horizon_days, scenario=name, ci=ci, baseline=baseline,
                        conversion_value=conversion_value) for name, plan in plans.items()],
        ignore_index=True,
    )
