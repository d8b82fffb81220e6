"""POST /scenarios: expected revenue, conversions and ROI over the next days for a planned daily spend per channel,
computed from the published media-mix response parameters and baseline by core.spend_scenarios (the service may
not import ml/), with revenue per conversion as the last refresh published it in ml_spend_scenarios."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, BackgroundTasks, Body, Query
from pydantic import BaseModel, Field

from core import registry
from core.spend_scenarios import (
    DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS, MAX_SPEND_MULTIPLE, PlanError, PublishedCurves, RevenuePerConversion,
    daily_baseline, spend_scenario,
)
from service.audit import audit
from service.auth import WriteCaller
from service.deps import Reader
from service.errors import ApiError, error_responses
from service.reader import MAX_LIMIT

PARAMETERS = "mmm_response_parameters"
DECOMPOSITION = "mmm_revenue_decomposition"
PUBLISHED_SCENARIOS = "ml_spend_scenarios"
# One request's plan is named like the published ones' (ml_spend_scenarios.scenario).
SCENARIO = "custom"

router = APIRouter(tags=["scenarios"])


class ScenarioAnswer(BaseModel):
    scenario: str = Field(description=f"always {SCENARIO!r}: the plan of this request")
    horizon_days: int
    ci: float = Field(description="coverage of the intervals (the media-mix model's)")
    model_run_id: str | None = Field(description="the run that published the response parameters used")
    baseline_draws: bool = Field(description=f"true when the published daily baseline ({DECOMPOSITION}) gives the "
                                 "baseline (its last 28 days' level) and its draws widen the total revenue interval; "
                                 "false when that table is not published or is from another run (the baseline is "
                                 "then the window's average, a point)")
    conversions_run_id: str | None = Field(
        description=f"the run of {PUBLISHED_SCENARIOS} whose revenue per conversion (and interval) converts revenue "
        "to conversions; null when it is not published, and the conversion columns are then null")
    columns: list[dict[str, str]] = Field(description="name and description of every row field")
    rows: list[dict[str, Any]] = Field(
        description="one object per channel, then the TOTAL row: the columns of predictions.ml_spend_scenarios; "
        "a value that does not exist (total revenue on a channel row, ROI without spend) is null"
    )


@router.post(
    "/scenarios", response_model=ScenarioAnswer, summary="Expected revenue and ROI for a spend plan",
    description=(
        "The body maps channels to planned daily spend, e.g. `{\"search\": 350, \"social\": 270}`; channels "
        "left out keep their current daily spend (the media-mix window's average). Answers what the published "
        "media-mix model expects over the next `horizon_days`: per channel and in total, planned spend, "
        "incremental revenue, total revenue (baseline + media, TOTAL row), ROI, incremental and total conversions, "
        "each with an interval: the model's bootstrap draws paired with the baseline's draws (how the model's "
        "baseline moved from a 28-day level to the next horizon-long stretch, over the model window; the "
        "baseline starts from its last 28 days) and with revenue per conversion's (as the last refresh "
        "published it). Steady state: the ramp from today's spend is not modelled. 422 names each channel at "
        f"fault: unknown, not a number, not finite, negative, or above {MAX_SPEND_MULTIPLE:g} times its current "
        "daily spend (a channel without current spend: that multiple of the average spending channel's). "
        "Needs the API token when SPENDWISE_API_TOKEN is set; recorded in the audit log (channel count and "
        "horizon, not the amounts)."
    ),
    responses=error_responses(400, 401, 403, 404, 415, 422, 503),
)
def scenario(
    reader: Reader,
    caller: WriteCaller,
    background: BackgroundTasks,
    plan: dict[str, Any] = Body(
        ..., description="channel -> planned daily spend", examples=[{"search": 350, "social": 270}]),
    horizon_days: int = Query(DEFAULT_HORIZON_DAYS, ge=1, le=MAX_HORIZON_DAYS, description="days the plan runs"),
) -> ScenarioAnswer:
    parameters, run_id = _parameters(reader)
    try:
        curves = PublishedCurves.from_parameters(parameters)
    except ValueError as exc:
        raise ApiError(503, "model_unavailable", f"{exc}", {"Retry-After": "15"}, retry_after=15) from None
    baseline = _baseline(reader, run_id)
    conversion_value, conversions_run = _conversion_value(reader, curves.ci)
    try:
        rows = spend_scenario(curves, plan, horizon_days=horizon_days, scenario=SCENARIO, baseline=baseline,
                              conversion_value=conversion_value)
    except PlanError as exc:
        raise ApiError(422, "invalid_plan", f"the plan cannot be evaluated: {exc}",
                       errors=[{"parameter": p["channel"], "location": "body", "rule": p["rule"],
                                "message": p["message"]} for p in exc.problems]) from None
    background.add_task(audit, reader, "http_scenario", caller,
                        {"channels": len(plan), "horizon_days": horizon_days, "model_run": run_id})
    described = {c.name: c.description for c in registry.table("ml_spend_scenarios").columns}
    return ScenarioAnswer(
        scenario=SCENARIO, horizon_days=horizon_days, ci=curves.ci, model_run_id=run_id,
        baseline_draws=baseline is not None, conversions_run_id=conversions_run,
        columns=[{"name": c, "description": described[c]} for c in rows.columns],
        rows=[{k: _json_value(v) for k, v in row.items()} for row in rows.to_dict("records")],
    )


def _parameters(reader: Reader) -> tuple[pd.DataFrame, str | None]:
    """The whole published parameter table (every page), refusing rows of two runs (a refresh in between)."""
    return _whole_table(reader, PARAMETERS)  # 404 table_not_published when absent


def _whole_table(reader: Reader, name: str) -> tuple[pd.DataFrame, str | None]:
    pages, offset = [], 0
    while True:
        page = reader.table_page(name, {}, MAX_LIMIT, offset)
        pages.append(pd.DataFrame(page.rows, columns=[c.name for c in page.columns]))
        offset += len(page.rows)
        if not page.rows or offset >= page.total:
            break
    table = pd.concat(pages, ignore_index=True)
    runs = table["run_id"].dropna().astype(str).unique() if "run_id" in table else []
    if len(runs) > 1:
        raise ApiError(503, "model_changed", f"predictions.{name} changed while it was read (runs "
                       f"{', '.join(runs)}); retry", {"Retry-After": "1"}, retry_after=1)
    return table, (str(runs[0]) if len(runs) else None)


def _optional_table(reader: Reader, name: str) -> tuple[pd.DataFrame | None, str | None]:
    try:
        return _whole_table(reader, name)
    except ApiError as exc:
        if exc.status == 404:
            return None, None
        raise


def _baseline(reader: Reader, model_run: str | None):
    """The model's daily baseline, when the decomposition published with these parameters is there."""
    table, run = _optional_table(reader, DECOMPOSITION)
    if table is None or (model_run is not None and run is not None and run != model_run):
        return None
    try:
        return daily_baseline(table)
    except ValueError:
        return None


def _conversion_value(reader: Reader, ci: float) -> tuple[RevenuePerConversion | None, str | None]:
    """Revenue per conversion and its interval as the last refresh published them (any row: same on all)."""
    table, run = _optional_table(reader, PUBLISHED_SCENARIOS)
    columns = ["revenue_per_conversion", "revenue_per_conversion_lower", "revenue_per_conversion_upper"]
    if table is None or table.empty or any(c not in table.columns for c in columns):
        return None, None
    values = pd.to_numeric(table[columns].iloc[0], errors="coerce").astype(float).tolist()
    try:
        return RevenuePerConversion(*values, ci=ci), run
    except ValueError:
        return None, None


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value
