"""GET /: the HTML page for people."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from core.warehouse import WarehouseBusy
from service.auth import caller_for_read
from service.chart_files import chart_files
from service.deps import AppSettings, Reader
from service.errors import HOW_TO_PUBLISH, json_error_responses
from service.page import PAGE_CSP, render_page

router = APIRouter(tags=["page"], dependencies=[Depends(caller_for_read)])


@router.get(
    "/", response_class=HTMLResponse, summary="Charts and data links for people",
    description="One self-contained HTML page (no external assets): every chart with its timestamp and "
    "JSON/CSV/XLSX links per table.",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"},
               **json_error_responses(401)},
)
def index(settings: AppSettings, reader: Reader) -> HTMLResponse:
    note = None
    try:
        tables = reader.table_index()
    except WarehouseBusy as exc:  # the page still shows the charts
        tables, note = None, f"Row counts are unavailable: {exc.detail}"
    if tables == {}:
        note = f"No table has been published yet: {HOW_TO_PUBLISH}."
    page = render_page(chart_files(settings.charts_dir), tables, note, settings.warehouse.redacted())
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})
