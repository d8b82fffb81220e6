"""GET /charts and GET /charts/{name}.png: the registry's charts as rendered by the last refresh."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

from fastapi import APIRouter, Depends, Header
from fastapi import Path as PathParam
from fastapi.responses import Response

from core import registry
from service.auth import caller_for_read
from service.chart_files import chart_files, etag_matches, read_chart, strong_etag
from service.deps import AppSettings
from service.errors import HOW_TO_PUBLISH, ApiError, error_responses
from service.models import ChartInfo

CHART_CACHE_CONTROL = "public, max-age=60"

router = APIRouter(tags=["charts"], dependencies=[Depends(caller_for_read)], responses=error_responses(401))


@router.get("/charts", response_model=list[ChartInfo], summary="List the charts",
            description="Every chart this service knows, whether it has been rendered, and when.")
def list_charts(settings: AppSettings) -> list[ChartInfo]:
    return [
        ChartInfo(name=c.name, title=c.title, url=f"/charts/{c.name}.png", exists=c.exists,
                  last_modified=c.last_modified, size_bytes=c.size_bytes)
        for c in chart_files(settings.charts_dir)
    ]


@router.get(
    "/charts/{name}.png", response_class=Response, summary="One chart as PNG",
    description="The PNG of the last refresh. Sends a strong ETag (hash of the bytes) and honours "
    "If-None-Match with 304.",
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
              "description": "the chart",
              "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}},
                          "Last-Modified": {"schema": {"type": "string"}}}},
        304: {"description": "the client's copy (If-None-Match) is current"},
        **error_responses(404, 422),
    },
)
def chart_png(
    settings: AppSettings,
    name: str = PathParam(description="chart name", json_schema_extra={"enum": list(registry.CHARTS)}),
    if_none_match: str | None = Header(None, description="ETag(s) of a cached copy"),
) -> Response:
    if name not in registry.CHARTS:
        raise ApiError(404, "unknown_chart", f"unknown chart {name[:80]!r}; charts: {', '.join(registry.CHARTS)}")
    try:
        content, st = read_chart(settings.charts_dir / f"{name}.png")
    except FileNotFoundError:
        raise ApiError(
            404, "chart_not_rendered", f"chart {name!r} has not been rendered yet: {HOW_TO_PUBLISH}"
        ) from None
    etag = strong_etag(content)
    headers = {
        "ETag": etag,
        "Cache-Control": CHART_CACHE_CONTROL,
        "Last-Modified": format_datetime(datetime.fromtimestamp(st.st_mtime, tz=timezone.utc), usegmt=True),
    }
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="image/png", headers=headers)
