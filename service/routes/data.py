"""GET /data and GET /data/{table}: the served registry tables, as an index and as pages of JSON, or as
CSV (streamed) and Excel exports."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse

from core import registry
from service.audit import audit
from service.auth import ReadCaller, caller_for_read, require_write
from service.deps import AppSettings, Reader
from service.errors import ApiError, error_responses
from service.exports import XLSX_MEDIA_TYPE, Export, ExportChanged
from service.models import ColumnInfo, DataPage, TableInfo
from service.reader import (
    DEFAULT_LIMIT, FILTER_COLUMNS, MAX_FILTER_VALUES, MAX_LIMIT, MAX_OFFSET, TableStats,
)
from service.values import Column, TablePage

DATA_PARAMETERS = frozenset({*FILTER_COLUMNS, "limit", "offset", "format"})

router = APIRouter(tags=["data"], dependencies=[Depends(caller_for_read)], responses=error_responses(401))


def column_infos(table: str, columns: list[Column]) -> list[dict[str, Any]]:
    """The warehouse's columns, each with its description from the registry."""
    described = {c.name: c.description for c in registry.table(table).published_columns}
    return [{"name": c.name, "type": c.kind, "warehouse_type": c.data_type, "description": described.get(c.name)}
            for c in columns]


def _table_info(table: registry.Table, stats: TableStats | None) -> TableInfo:
    return TableInfo(
        name=table.name, description=table.grain, published=stats is not None,
        rows=stats.rows if stats else None,
        generated_at=_aware(stats.generated_at) if stats else None,
        run_id=stats.run_id if stats else None,
        columns=[ColumnInfo(**c) for c in column_infos(table.name, stats.columns)] if stats else None,
        json_url=f"/data/{table.name}", csv_url=f"/data/{table.name}?format=csv",
        xlsx_url=f"/data/{table.name}?format=xlsx",
    )


@router.get("/data", response_model=list[TableInfo], summary="List the published tables",
            description="Every table this service serves, whether it is published, its rows and columns.",
            responses=error_responses(503))
def list_tables(reader: Reader) -> list[TableInfo]:
    index = reader.table_index()
    return [_table_info(table, index.get(name)) for name, table in registry.served_tables().items()]


@router.get(
    "/data/{table}", response_model=DataPage, summary="Rows of one published table",
    description=(
        "JSON by default (one page: `limit`, default 1000). `format=csv` and `format=xlsx` are exports: every "
        "matching row from `offset` on (or `limit` rows), header row first; CSV is streamed in chunks, xlsx is "
        "one Excel sheet (at most 1,048,575 rows) with typed numbers, dates and UTC timestamps. Exports need the "
        "API token when SPENDWISE_API_TOKEN is set, and are recorded in the audit log. Filters apply only to "
        "tables with the column: `channel` and `model` (repeat for several values), `date_from` and "
        "`date_to` (inclusive, on the `date` column). Rows are ordered by date, then by the columns "
        "in table order. `X-Total-Count` gives the number of matching rows."
    ),
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}},
                          XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
              "description": "a page of rows (JSON), or the CSV or Excel export",
              "headers": {"X-Total-Count": {"schema": {"type": "integer"}}}},
        **error_responses(400, 401, 403, 404, 422, 503),
    },
)
def table_data(
    request: Request,
    reader: Reader,
    settings: AppSettings,
    caller: ReadCaller,
    background: BackgroundTasks,
    table: str = PathParam(description="published table name",
                           json_schema_extra={"enum": list(registry.served_tables())}),
    channel: list[str] | None = Query(None, description="keep rows of these channels", max_length=MAX_FILTER_VALUES),
    campaign_id: list[str] | None = Query(
        None, max_length=MAX_FILTER_VALUES,
        description="keep rows of these campaign ids (with channel, one campaign: platforms may share ids)"),
    model: list[str] | None = Query(None, description="keep rows of these attribution models",
                                    max_length=MAX_FILTER_VALUES),
    date_from: str | None = Query(None, description="first date, YYYY-MM-DD (inclusive)",
                                  json_schema_extra={"format": "date"}),
    date_to: str | None = Query(None, description="last date, YYYY-MM-DD (inclusive)",
                                json_schema_extra={"format": "date"}),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT,
                              description=f"rows per page (JSON default {DEFAULT_LIMIT}); exports: rows to send "
                              "(default every matching row)"),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="rows to skip"),
    fmt: Literal["json", "csv", "xlsx"] = Query("json", alias="format", description="json, csv or xlsx"),
) -> Response:
    served = registry.served_tables()
    if table not in served:
        raise ApiError(404, "unknown_table", f"unknown table {table[:80]!r}; tables: {', '.join(served)}")
    unknown = sorted(set(request.query_params.keys()) - DATA_PARAMETERS)
    if unknown:
        raise ApiError(
            400, "unknown_parameter",
            f"unknown query parameter {unknown[0][:40]!r}; allowed: {', '.join(sorted(DATA_PARAMETERS))}",
        )
    filters = _filters(channel, campaign_id, model, date_from, date_to)
    if fmt == "json":
        limit = limit or DEFAULT_LIMIT
        return _page_response(reader.table_page(table, filters, limit, offset), limit, offset)
    require_write(settings, caller, f"exporting {table} as {fmt}")
    export = Export(reader, table, filters, limit, offset)
    used = sorted(name for name, value in filters.items() if value)
    if not request.scope.get("spendwise.head"):  # HEAD only asks what an export would be
        background.add_task(audit, reader, "http_export", caller,
                            {"table": table, "format": fmt, "rows": export.rows, "filters": used})
    headers = {"X-Total-Count": str(export.first.total), "Cache-Control": "no-cache",
               "Content-Disposition": f'attachment; filename="{table}.{fmt}"'}
    if fmt == "xlsx":
        try:
            workbook = export.xlsx_bytes()
        except ExportChanged as exc:  # nothing sent yet: say so with a status instead of a cut transfer
            raise ApiError(503, "table_changed", f"{exc}", {"Retry-After": "1"}, retry_after=1) from None
        return Response(workbook, media_type=XLSX_MEDIA_TYPE, headers=headers, background=background)
    if export.rows <= len(export.first.rows):  # one chunk: sent whole, with its Content-Length
        return Response(b"".join(export.csv_chunks()), media_type="text/csv; charset=utf-8", headers=headers,
                        background=background)
    return StreamingResponse(export.csv_chunks(), media_type="text/csv; charset=utf-8", headers=headers,
                             background=background)


def _filters(channel: list[str] | None, campaign_id: list[str] | None, model: list[str] | None,
             date_from: str | None, date_to: str | None) -> dict[str, Any]:
    start, end = _parse_date("date_from", date_from), _parse_date("date_to", date_to)
    if start and end and start > end:
        raise ApiError(400, "empty_date_range", f"date_from {start} is after date_to {end}")
    return {"channel": _filter_values("channel", channel), "campaign_id": _filter_values("campaign_id", campaign_id),
            "model": _filter_values("model", model),
            "date_from": start, "date_to": end}


def _page_response(page: TablePage, limit: int, offset: int) -> Response:
    headers = {"X-Total-Count": str(page.total), "Cache-Control": "no-cache"}
    body = {
        "table": page.table, "columns": column_infos(page.table, page.columns), "rows": page.json_rows(),
        "total": page.total, "limit": limit, "offset": offset,
    }
    return JSONResponse(body, headers=headers)


def _parse_date(parameter: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, "invalid_date", f"{parameter}={value[:40]!r} is not a date; use YYYY-MM-DD, e.g. 2024-03-31"
        ) from None


def _filter_values(parameter: str, values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    if len(values) > MAX_FILTER_VALUES:
        raise ApiError(400, "too_many_values", f"{parameter} is given {len(values)} times; at most {MAX_FILTER_VALUES}")
    for value in values:
        if "\x00" in value:
            raise ApiError(400, "invalid_value", f"{parameter} contains a NUL character")
    return values


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
