"""GET /events (server-sent events: runs started and finished, tables and charts changed) and GET /metrics
(Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from service.auth import caller_for_read
from service.deps import AppSettings, Bridge, Reader
from service.errors import error_responses
from service.events import event_stream, take_snapshot
from service.metrics import render

router = APIRouter(tags=["live"], dependencies=[Depends(caller_for_read)], responses=error_responses(401))

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/events", response_class=StreamingResponse, summary="Live updates (server-sent events)",
    description=(
        "A `text/event-stream` that stays open: first `snapshot` (the latest refresh run, the published tables "
        "with run_id, generated_at and rows, the rendered charts), then `run_started` and `run_finished` "
        "(run_id, status, trigger, times, duration_seconds, reason) from the Dagster instance, and "
        "`tables_changed` / `charts_changed` (what changed, with URLs) as the server sees them; a `: keep-alive` "
        "comment when nothing happened for a while. Every data line is JSON. Each server process polls the "
        "shared state, so the stream is the same behind several workers. A browser's EventSource cannot send a "
        "bearer header: with SPENDWISE_READ_TOKEN set, read it from a client that can (or a proxy that adds it)."
    ),
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "the event stream (never ends by itself)"}},
)
def events(request: Request, settings: AppSettings, reader: Reader, bridge: Bridge) -> StreamingResponse:
    if request.scope.get("spendwise.head"):  # HEAD: the headers of the stream, not an endless body
        return StreamingResponse(iter(()), media_type="text/event-stream", headers=SSE_HEADERS)
    state = request.app.state
    stream = event_stream(
        lambda: take_snapshot(reader, bridge, settings.charts_dir), request.is_disconnected,
        poll_seconds=state.events_poll_seconds, keepalive_seconds=state.events_keepalive_seconds,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(
    "/metrics", response_class=Response, summary="Prometheus metrics",
    description=(
        "Prometheus text format, read afresh at each scrape: `spendwise_last_refresh_info` (run_id, status, "
        "trigger), `spendwise_last_refresh_success`, `spendwise_last_refresh_duration_seconds`, "
        "`spendwise_last_refresh_end_timestamp_seconds`, `spendwise_refresh_running`, `spendwise_published_rows` "
        "and `spendwise_published_generated_timestamp_seconds` per table, `spendwise_checks_failed` by severity "
        "and `spendwise_check_failed` per check, `spendwise_raw_data_age_seconds` per raw table, "
        "`spendwise_webhook_deliveries` by state and `spendwise_webhook_failures`, and `spendwise_source_up` "
        "(dagster, warehouse: 0 when that source could not be read, e.g. while a DuckDB refresh runs)."
    ),
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "the metrics (Prometheus text exposition format)"}},
)
def metrics(reader: Reader, bridge: Bridge, settings: AppSettings) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    # the raw tables' age is read where dbt reads them: the warehouse, not a serving database
    return Response(render(reader, bridge, settings.warehouse), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-cache"})
