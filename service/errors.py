"""One JSON shape for every failure a client can meet: the error type routes raise, the handlers that
turn it (and warehouse, Dagster and validation failures) into that shape, and its OpenAPI entries."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.warehouse import LOCKED_RETRY_AFTER_S, WarehouseBusy, WarehouseUnavailable
from service.dagster_bridge import DagsterUnavailable

logger = logging.getLogger("spendwise.service")

HOW_TO_PUBLISH = "run `make run` (demo data and a full refresh) or `spendwise refresh`, or POST /refresh"


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable error code, e.g. table_not_published")
    detail: str = Field(description="what was wrong and what to do about it")
    retry_after: int | None = Field(None, description="seconds to wait before retrying (503 only)")
    run_ids: list[str] | None = Field(None, description="refresh runs in progress (409, and 503 refresh_running)")
    errors: list[dict[str, Any]] | None = Field(None, description="one entry per invalid parameter (422 only)")


# Seconds a client is asked to wait while a DuckDB refresh runs (a demo refresh takes a few minutes).
REFRESH_RETRY_AFTER_S = 15


class RefreshRunning(WarehouseBusy):
    """A refresh holds the DuckDB warehouse's refresh lock: its file is not opened until the run ends."""

    def __init__(self, holder: dict):
        self.run_id = holder.get("run_id")
        run = f"run {self.run_id}" if self.run_id else "a run"
        where = f" (pid {holder['pid']} on {holder.get('host') or '?'})" if holder.get("pid") else ""
        since = f" since {holder['since']}" if holder.get("since") else ""
        super().__init__(
            f"a refresh is writing the warehouse: {run}{where}{since}; the tables are served again when it "
            f"ends, retry in {REFRESH_RETRY_AFTER_S} seconds (GET /status shows the run)",
            retry_after=REFRESH_RETRY_AFTER_S,
        )


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers, self.extra = status, error, detail, headers or {}, extra


_ERROR_DESCRIPTIONS = {
    400: "A parameter value cannot be used (filter on a table without that column, unknown parameter, bad date)",
    401: "A bearer token is needed (the server has SPENDWISE_READ_TOKEN or SPENDWISE_API_TOKEN set) or the one "
         "sent is not valid",
    403: "The read token was sent where the API token is needed, or a page on another site tried to change state",
    404: "Unknown name, or a chart/table that has not been produced yet",
    409: "A refresh run is already queued or running",
    415: "A form or plain-text body was sent; state-changing endpoints take JSON or no body",
    422: "A parameter has the wrong type or is out of range",
    503: "A refresh is writing the DuckDB warehouse (refresh_running), or the warehouse or the Dagster "
         "instance is busy or unreachable; retry after Retry-After seconds",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries of a route for these error status codes (OpenAPI)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        responses[code] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]}
        if code == 401:
            responses[code]["headers"] = {
                "WWW-Authenticate": {"description": "the bearer challenge", "schema": {"type": "string"}}
            }
        if code == 503:
            responses[code]["headers"] = {
                "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
            }
    return responses


def json_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """error_responses for a route whose own responses are not JSON (the HTML page): FastAPI would document
    a `model` under the route's media type, so the JSON body is referenced explicitly."""
    responses = error_responses(*codes)
    for entry in responses.values():
        del entry["model"]
        entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return responses


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    body = {"error": error, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _retry_later(error: str, detail: str, retry_after: int) -> JSONResponse:
    return error_response(503, error, detail, {"Retry-After": str(retry_after)}, retry_after=retry_after)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)


async def _warehouse_busy(_request: Request, exc: WarehouseBusy) -> JSONResponse:
    if isinstance(exc, RefreshRunning):
        code, run_ids = "refresh_running", [exc.run_id] if exc.run_id else None
    else:
        code = "warehouse_unavailable" if isinstance(exc, WarehouseUnavailable) else "warehouse_busy"
        run_ids = None
    return error_response(503, code, exc.detail, {"Retry-After": str(exc.retry_after)},
                          retry_after=exc.retry_after, run_ids=run_ids)


async def _dagster_unavailable(_request: Request, exc: DagsterUnavailable) -> JSONResponse:
    return _retry_later("dagster_unavailable", str(exc), LOCKED_RETRY_AFTER_S)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed"}
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such endpoint; GET / lists the charts and tables, /openapi.json documents the API"
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), detail, exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        errors.append({
            "parameter": loc[-1] if loc else "", "location": loc[0] if loc else "",
            "message": err.get("msg", ""), "input": repr(err.get("input"))[:80],
        })
    detail = "; ".join(f"{e['location']} parameter {e['parameter']!r}: {e['message']} (got {e['input']})"
                       for e in errors)
    return error_response(422, "invalid_parameter", detail, errors=errors)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", f"unexpected {exc.__class__.__name__}; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    # WarehouseBusy covers WarehouseUnavailable: a locked or unreachable warehouse is 503 on every route.
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(WarehouseBusy, _warehouse_busy)
    app.add_exception_handler(DagsterUnavailable, _dagster_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
