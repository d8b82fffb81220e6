"""GET /status and POST /refresh: asset freshness and checks from the Dagster instance, and refresh launches."""

from __future__ import annotations

import dataclasses
import logging

from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.responses import JSONResponse

from service.audit import audit
from service.auth import WriteCaller, caller_for_read
from service.dagster_bridge import RefreshAlreadyRunning
from service.deps import AppSettings, Bridge, Reader
from service.errors import ApiError, error_responses
from service.models import RefreshAccepted, StatusResponse

logger = logging.getLogger("spendwise.service")

router = APIRouter(tags=["pipeline"])


@router.get("/status", response_model=StatusResponse, summary="Asset freshness and checks",
            description="Per asset in the Dagster instance: last materialization, its run, the latest check "
            "results and whether it is stale (older than two schedule intervals or never materialized).",
            responses=error_responses(401, 503), dependencies=[Depends(caller_for_read)])
def status(bridge: Bridge) -> StatusResponse:
    return StatusResponse(**dataclasses.asdict(bridge.status()))


@router.post(
    "/refresh", status_code=202, response_model=RefreshAccepted, summary="Start a refresh of every asset",
    description="Launches the `refresh_all` job in the Dagster instance and returns its run id at once; "
    "409 (`already running: run <id> since <time>`) while a refresh of this warehouse is queued or running, "
    "whoever started it (CLI, schedule, another request). A refresh whose process died does not count: it "
    "is marked failed with the reason and a new one starts. Needs the API token when SPENDWISE_API_TOKEN is set; "
    "without it, a request from a page on another site (an Origin that is not this server) is refused, and a "
    "form or plain-text body always is. Recorded in the audit log.",
    responses={202: {"headers": {"Location": {"schema": {"type": "string"}, "description": "GET /status"}}},
               **error_responses(401, 403, 409, 415, 503)},
)
def refresh(bridge: Bridge, settings: AppSettings, reader: Reader, caller: WriteCaller,
            background: BackgroundTasks) -> JSONResponse:
    try:
        run_id = bridge.start_refresh(warehouse=settings.warehouse)
    except RefreshAlreadyRunning as exc:
        raise ApiError(409, "refresh_running", str(exc), run_ids=exc.run_ids) from exc
    logger.info("refresh run %s launched by %s", run_id, caller)
    background.add_task(audit, reader, "http_refresh", caller, {"run": run_id})
    return JSONResponse({"run_id": run_id, "status_url": "/status"}, status_code=202, headers={"Location": "/status"},
                        background=background)
