"""POST /scenarios: expected revenue and ROI over the next days for a planned daily spend per channel, computed
from the published media-mix response parameters by core.spend_scenarios (the service may not import ml/)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, BackgroundTasks, Body, Query
from pydantic import BaseModel, Field

from core import registry
from core.spend_scenarios import (
    DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS, MAX_SPEND_MULTIPLE, PlanError, PublishedCurves, spend_scenario,
)
from service.audit import audit
from service.auth import WriteCaller
from service.deps import Reader
from service.errors import ApiError, error_responses
from service.reader import MAX_LIMIT

PARAMETERS = "mmm_response_parameters"
# One request's plan is named like the published ones' (ml_spend_scenarios.scenario).
SCENARIO = "custom"

router = APIRouter(tags=["scenarios"])


class ScenarioAnswer(BaseModel):
    scenario: str = Field(description=f"always {SCENARIO!r}: the plan of this request")
    horizon_days: int
    ci: float = Field(description="coverage of the intervals (the media-mix model's)")
    model_run_id: str | None = Field(description="the run that published the response parameters used")
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
        "incremental revenue, total revenue (baseline + media, TOTAL row) and ROI, each with the interval of "
        "the model's bootstrap draws (the baseline carries none). Steady state: the ramp from today's spend is "
        "not modelled. Conversions are not estimated (the model is fitted on revenue). 422 names each channel at "
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
    try:
        rows = spend_scenario(curves, plan, horizon_days=horizon_days, scenario=SCENARIO)
    except PlanError as exc:
        raise ApiError(422, "invalid_plan", f"the plan cannot be evaluated: {exc}",
                       errors=[{"parameter": p["channel"], "location": "body", "rule": p["rule"],
                                "message": p["message"]} for p in exc.problems]) from None
    background.add_task(audit, reader, "http_scenario", caller,
                        {"channels": len(plan), "horizon_days": horizon_days, "model_run": run_id})
    described = {c.name: c.description for c in registry.table("ml_spend_scenarios").columns}
    return ScenarioAnswer(
        scenario=SCENARIO, horizon_days=horizon_days, ci=curves.ci, model_run_id=run_id,
        columns=[{"name": c, "description": described[c]} for c in rows.columns],
        rows=[{k: _json_value(v) for k, v in row.items()} for row in rows.to_dict("records")],
    )


def _parameters(reader: Reader) -> tuple[pd.DataFrame, str | None]:
    """The whole published parameter table (every page), refusing rows of two runs (a refresh in between)."""
    pages, offset = [], 0
    while True:
        page = reader.table_page(PARAMETERS, {}, MAX_LIMIT, offset)  # 404 table_not_published when absent
        pages.append(pd.DataFrame(page.rows, columns=[c.name for c in page.columns]))
        offset += len(page.rows)
        if not page.rows or offset >= page.total:
            break
    table = pd.concat(pages, ignore_index=True)
    runs = table["run_id"].dropna().astype(str).unique() if "run_id" in table else []
    if len(runs) > 1:
        raise ApiError(503, "model_changed", f"predictions.{PARAMETERS} changed while it was read (runs "
                       f"{', '.join(runs)}); retry", {"Retry-After": "1"}, retry_after=1)
    return table, (str(runs[0]) if len(runs) else None)


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value
