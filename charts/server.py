"""The chart and data HTTP service: PNG charts, published prediction tables as JSON or CSV, pipeline
status and refresh, and one offline HTML page. Dagster is reached only through charts.dagster_status.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import html
import io
import logging
import math
import os
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from charts.dagster_status import DagsterBridge, DagsterUnavailable, RefreshAlreadyRunning, RefreshLauncher
from orchestration.settings import PREDICTIONS_SCHEMA, Settings, WarehouseUrl, get_settings

logger = logging.getLogger("spendwise.charts")

# What a row is, per published table: the fixed set this service serves (never a user-given name).
PUBLISHED_TABLES: dict[str, str] = {
    "channel_attribution": "one row per attribution model and channel: conversions, revenue, share with interval, "
    "spend, ROAS",
    "campaign_attribution": "one row per attribution model and campaign, with the same measures",
    "campaign_channel_attribution": "one row per attribution model, campaign and channel",
    "attribution_model_comparison": "one row per channel, one share column per attribution model",
    "mmm_channel_roas": "one row per channel: media mix spend, contribution, average and marginal ROAS with intervals",
    "mmm_diagnostics": "one row per media mix model fit diagnostic (metric, value, detail)",
    "mmm_response_curves": "one row per channel and daily spend level: predicted incremental revenue with interval",
    "ml_roi_forecast": "one row per channel and horizon: forecast spend, revenue and ROI with interval, backtest MAPE",
    "ml_roi_timeseries": "one row per day and channel: ROI and conversions, history and forecast",
    "ml_reach_ctr_timeseries": "one row per day and channel: reach, impressions, clicks and CTR, history and forecast",
    "ml_budget_recommendation": "one row per channel: current and recommended spend, expected revenue change",
}

# Chart file stems in the charts folder (charts.plots.CHARTS) and the title the page shows.
CHARTS: dict[str, str] = {
    "roi_forecast": "ROI forecast by channel",
    "roi_timeseries": "Daily ROI by channel, history and forecast",
    "reach_ctr": "Reach and click-through rate",
    "budget_recommendation": "Budget recommendation",
    "attribution_comparison": "Attribution model comparison",
    "mmm_roas": "Media mix ROAS by channel",
    "revenue_contribution": "Revenue contribution: baseline and channels",
}

# Query parameter -> the column it filters on; a filter is refused on tables without that column.
FILTER_COLUMNS = {"channel": "channel", "model": "model", "date_from": "date", "date_to": "date"}
DATA_PARAMETERS = frozenset({*FILTER_COLUMNS, "limit", "offset", "format"})
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_OFFSET = 1_000_000_000
MAX_FILTER_VALUES = 100
CHART_CACHE_CONTROL = "public, max-age=60"
LOCKED_RETRY_AFTER_S = 5
UNAVAILABLE_RETRY_AFTER_S = 30
HOW_TO_PUBLISH = "run `make run` (demo data and a full refresh) or `spendwise refresh`, or POST /refresh"


# --------------------------------------------------------------------------------------------
# Errors: every failure a client can meet has one JSON shape.


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable error code, e.g. table_not_published")
    detail: str = Field(description="what was wrong and what to do about it")
    retry_after: int | None = Field(None, description="seconds to wait before retrying (503 only)")
    run_ids: list[str] | None = Field(None, description="refresh runs in progress (409 only)")
    errors: list[dict[str, Any]] | None = Field(None, description="one entry per invalid parameter (422 only)")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers, self.extra = status, error, detail, headers or {}, extra


_ERROR_DESCRIPTIONS = {
    400: "A parameter value cannot be used (filter on a table without that column, unknown parameter, bad date)",
    404: "Unknown name, or a chart/table that has not been produced yet",
    409: "A refresh run is already queued or running",
    422: "A parameter has the wrong type or is out of range",
    503: "The warehouse or the Dagster instance is busy or unreachable; retry after Retry-After seconds",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        responses[code] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]}
        if code == 503:
            responses[code]["headers"] = {
                "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
            }
    return responses


def _error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
    body = {"error": error, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


class WarehouseBusy(Exception):
    """The warehouse cannot be read right now (DuckDB file locked by a writer, table being swapped)."""

    def __init__(self, detail: str, retry_after: int = LOCKED_RETRY_AFTER_S):
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


class WarehouseUnavailable(WarehouseBusy):
    def __init__(self, detail: str):
        super().__init__(detail, UNAVAILABLE_RETRY_AFTER_S)


class WarehouseMissing(Exception):
    """The DuckDB file does not exist yet: nothing has been published."""


def _warehouse_error(exc: WarehouseBusy) -> ApiError:
    code = "warehouse_unavailable" if isinstance(exc, WarehouseUnavailable) else "warehouse_busy"
    return ApiError(503, code, exc.detail, headers={"Retry-After": str(exc.retry_after)}, retry_after=exc.retry_after)


# --------------------------------------------------------------------------------------------
# Read-only warehouse access: one short connection per request.

_INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "INT2", "INT4", "INT8",
}
_NUMBER_TYPES = {"DOUBLE", "FLOAT", "REAL", "DOUBLE PRECISION", "FLOAT4", "FLOAT8"}
_STRING_TYPES = {"VARCHAR", "TEXT", "STRING", "CHARACTER VARYING", "CHARACTER", "CHAR", "BPCHAR"}


def column_kind(data_type: str) -> str:
    """JSON-level kind of a warehouse column type: string, integer, number, boolean, date, datetime, other."""
    t = data_type.upper().strip()
    base = t.split("(")[0].strip()
    if base == "DATE":
        return "date"
    if base.startswith("TIMESTAMP"):
        return "datetime"
    if base in ("BOOLEAN", "BOOL"):
        return "boolean"
    if base in _INTEGER_TYPES:
        return "integer"
    if base in _NUMBER_TYPES or base in ("DECIMAL", "NUMERIC"):
        return "number"
    if base in _STRING_TYPES:
        return "string"
    return "other"


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # publish stores naive UTC timestamps
            return value.isoformat() + "Z"
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return _number(value) if isinstance(value, float) else value
    if isinstance(value, (datetime, date)):
        return _timestamp(value) if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return _number(value)
    return str(value)


_JSON_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "date": lambda v: v.isoformat() if isinstance(v, date) else str(v),
    "datetime": _timestamp,
    "number": _number,
    "integer": int,
    "boolean": bool,
    "string": str,
    "other": _plain,
}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str

    @property
    def kind(self) -> str:
        return column_kind(self.data_type)


@dataclass(frozen=True)
class TablePage:
    table: str
    columns: list[Column]
    rows: list[tuple]
    total: int

    def json_columns(self) -> list[list[Any]]:
        """Column-wise JSON-ready values: NaN/inf -> None, dates and timestamps as ISO strings."""
        if not self.rows:
            return [[] for _ in self.columns]
        out = []
        for column, values in zip(self.columns, zip(*self.rows)):
            convert = _JSON_CONVERTERS[column.kind]
            out.append([None if v is None else convert(v) for v in values])
        return out


class WarehouseReader:
    """Reads the published tables of one warehouse, read-only, never holding a connection.

    DuckDB is opened with `read_only=True` per call: a running refresh holds the file's write lock,
    which surfaces as WarehouseBusy (HTTP 503 with Retry-After), and a reader holds the lock for
    milliseconds only, because the refresh cannot write while it is held.
    """

    def __init__(self, url: WarehouseUrl, schema: str = PREDICTIONS_SCHEMA):
        self.url = url
        self.schema = schema
        self.placeholder = "?" if url.kind == "duckdb" else "%s"

    def ident(self, name: str) -> str:
        quoted = '"' + name.replace('"', '""') + '"'
        # psycopg2 formats the statement with %-style parameters, so a literal % must be doubled.
        return quoted.replace("%", "%%") if self.url.kind == "postgres" else quoted

    def qualified(self, table: str) -> str:
        return f"{self.ident(self.schema)}.{self.ident(table)}"

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        if self.url.kind == "duckdb":
            con = self._connect_duckdb()
        else:
            con = self._connect_postgres()
        try:
            yield con
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            con.close()

    def _connect_duckdb(self):
        import duckdb

        path = self.url.duckdb_path
        if not path.exists():
            raise WarehouseMissing(f"DuckDB warehouse {path} does not exist yet")
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _connect_postgres(self):
        import psycopg2
        import psycopg2.extensions

        try:
            con = psycopg2.connect(
                host=self.url.host, port=self.url.port, user=self.url.user, password=self.url.password,
                dbname=self.url.database, application_name="spendwise-charts", connect_timeout=5,
                options="-c statement_timeout=30000",
            )
        except psycopg2.Error as exc:
            raise WarehouseUnavailable(
                f"cannot connect to the PostgreSQL warehouse {self.url.redacted()}: {str(exc).strip()}"
            ) from exc
        # One snapshot for the count and the page; read-only so this service can never write.
        con.set_session(readonly=True, isolation_level="REPEATABLE READ")
        numeric_as_float = psycopg2.extensions.new_type(
            psycopg2.extensions.DECIMAL.values, "SPENDWISE_CHARTS_NUMERIC",
            lambda v, cur: None if v is None else float(v),
        )
        psycopg2.extensions.register_type(numeric_as_float, con)
        return con

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, (WarehouseBusy, WarehouseMissing, ApiError)):
            return exc
        if self.url.kind == "duckdb":
            import duckdb

            if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
                return WarehouseBusy(
                    f"the DuckDB warehouse {self.url.duckdb_path} is locked by another process (a refresh is "
                    f"writing to it); retry in {LOCKED_RETRY_AFTER_S} seconds"
                )
            if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException)):
                return WarehouseUnavailable(f"cannot read the DuckDB warehouse {self.url.duckdb_path}: {exc}")
            return exc
        import psycopg2
        import psycopg2.errors

        if isinstance(exc, psycopg2.errors.UndefinedTable):
            return WarehouseBusy("the table was being replaced by a refresh while it was read; retry", retry_after=1)
        if isinstance(exc, (psycopg2.OperationalError, psycopg2.errors.QueryCanceled)):
            return WarehouseUnavailable(f"the PostgreSQL warehouse {self.url.redacted()} failed: {str(exc).strip()}")
        return exc

    def _query(self, con, sql: str, params: list | tuple = ()) -> list[tuple]:
        if self.url.kind == "duckdb":
            return con.execute(sql, list(params)).fetchall()
        with con.cursor() as cur:
            # Always a tuple, even empty: psycopg2 then unescapes the %% of quoted identifiers.
            cur.execute(sql, tuple(params))
            return cur.fetchall()

    def _columns(self, con, tables: list[str]) -> dict[str, list[Column]]:
        p = self.placeholder
        rows = self._query(
            con,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = {p} AND table_name IN ({', '.join([p] * len(tables))}) "
            "ORDER BY table_name, ordinal_position",
            [self.schema, *tables],
        )
        found: dict[str, list[Column]] = {}
        for table, name, data_type in rows:
            found.setdefault(str(table), []).append(Column(str(name), str(data_type)))
        return found

    def table_index(self) -> dict[str, dict[str, Any]]:
        """Published registry tables: columns, row count, latest generated_at and run_id."""
        try:
            with self.connect() as con:
                columns = self._columns(con, list(PUBLISHED_TABLES))
                if not columns:
                    return {}
                parts = []
                for table, cols in columns.items():
                    names = {c.name for c in cols}
                    generated = "max(generated_at)" if "generated_at" in names else "CAST(NULL AS TIMESTAMP)"
                    run_id = "max(CAST(run_id AS VARCHAR))" if "run_id" in names else "CAST(NULL AS VARCHAR)"
                    parts.append(
                        f"SELECT CAST({self.placeholder} AS VARCHAR) AS t, count(*) AS n, {generated} AS g, "
                        f"{run_id} AS r FROM {self.qualified(table)}"
                    )
                stats = self._query(con, " UNION ALL ".join(parts), list(columns))
        except WarehouseMissing:
            return {}
        return {
            str(t): {"columns": columns[str(t)], "rows": int(n), "generated_at": g, "run_id": r}
            for t, n, g, r in stats
        }

    def table_page(self, table: str, filters: dict[str, Any], limit: int, offset: int) -> TablePage:
        """One page of `table` with the filters applied, ordered by date then the table's columns.

        filters: channel / model (lists of accepted values), date_from / date_to (inclusive dates),
        each only on tables that have the column (ApiError 400 otherwise). Raises ApiError 404 when
        the table has not been published.
        """
        p = self.placeholder
        try:
            with self.connect() as con:
                columns = self._columns(con, [table]).get(table, [])
                if not columns:
                    raise _not_published(table)
                names = [c.name for c in columns]
                where, params = [], []
                for parameter, value in filters.items():
                    if value is None or value == []:
                        continue
                    column = FILTER_COLUMNS[parameter]
                    if column not in names:
                        raise ApiError(
                            400, "filter_not_applicable",
                            f"filter {parameter!r} cannot be used on table {table!r}: it has no column {column!r} "
                            f"(columns: {', '.join(names)})",
                        )
                    if parameter in ("channel", "model"):
                        where.append(f"CAST({self.ident(column)} AS VARCHAR) IN ({', '.join([p] * len(value))})")
                        params.extend(value)
                    elif parameter == "date_from":
                        where.append(f"{self.ident(column)} >= {p}")
                        params.append(value)
                    elif value < date.max:  # date_to is inclusive: before the next day, also for timestamps
                        where.append(f"{self.ident(column)} < {p}")
                        params.append(value + timedelta(days=1))
                clause = f" WHERE {' AND '.join(where)}" if where else ""
                orderable = [c.name for c in columns if c.kind != "other"]
                order = sorted(orderable, key=lambda n: n != "date")
                order_by = (" ORDER BY " + ", ".join(f"{self.ident(n)} NULLS LAST" for n in order)) if order else ""
                select = ", ".join(self.ident(n) for n in names)
                total = self._query(con, f"SELECT count(*) FROM {self.qualified(table)}{clause}", params)[0][0]
                rows = self._query(
                    con,
                    f"SELECT {select} FROM {self.qualified(table)}{clause}{order_by} LIMIT {p} OFFSET {p}",
                    [*params, limit, offset],
                )
        except WarehouseMissing:
            raise _not_published(table) from None
        return TablePage(table=table, columns=columns, rows=rows, total=int(total))


def _not_published(table: str) -> ApiError:
    return ApiError(
        404, "table_not_published",
        f"table {PREDICTIONS_SCHEMA}.{table} has not been published yet: {HOW_TO_PUBLISH}",
    )


# --------------------------------------------------------------------------------------------
# Chart files


@dataclass(frozen=True)
class ChartFile:
    name: str
    title: str
    path: Path
    exists: bool
    size_bytes: int | None
    last_modified: datetime | None
    version: str | None


def chart_files(charts_dir: Path) -> list[ChartFile]:
    """The registry charts with their file state (stat only, nothing read)."""
    out = []
    for name, title in CHARTS.items():
        path = charts_dir / f"{name}.png"
        try:
            st = path.stat()
        except OSError:
            out.append(ChartFile(name, title, path, False, None, None, None))
            continue
        modified = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
        out.append(ChartFile(name, title, path, True, st.st_size, modified, f"{st.st_mtime_ns:x}{st.st_size:x}"))
    return out


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/ prefixes are ignored; `*` matches any current file."""
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Response models (OpenAPI)


class ChartInfo(BaseModel):
    name: str = Field(description="chart name; the image is at /charts/{name}.png")
    title: str
    url: str
    exists: bool = Field(description="false until a refresh has rendered the chart")
    last_modified: datetime | None = Field(description="when the PNG was written (UTC)")
    size_bytes: int | None


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="string, integer, number, boolean, date, datetime or other")
    warehouse_type: str = Field(description="the column's type in the warehouse")


class TableInfo(BaseModel):
    name: str
    description: str
    published: bool = Field(description="false until a refresh has published the table")
    rows: int | None
    generated_at: datetime | None = Field(description="when the run that published the table produced it (UTC)")
    run_id: str | None
    columns: list[ColumnInfo] | None
    json_url: str
    csv_url: str


class DataPage(BaseModel):
    table: str
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]] = Field(
        description="one object per row; NaN and infinities are null, dates YYYY-MM-DD, timestamps ISO 8601 UTC"
    )
    total: int = Field(description="rows matching the filters, over all pages")
    limit: int
    offset: int


class CheckStatus(BaseModel):
    name: str
    passed: bool | None = Field(description="null while the check is planned or was skipped")
    status: str = Field(description="SUCCEEDED, FAILED or PLANNED")
    severity: str | None
    run_id: str
    evaluated_at: datetime | None


class AssetStatus(BaseModel):
    asset_key: str
    last_materialization: datetime | None
    run_id: str | None
    stale: bool = Field(description="true when never materialized or older than stale_after_minutes")
    external: bool = Field(description="loaded outside Dagster (raw tables): checked, never materialized, never stale")
    checks: list[CheckStatus]


class StatusResponse(BaseModel):
    generated_at: datetime
    stale_after_minutes: int = Field(description="two refresh schedule intervals")
    stale: bool = Field(description="true when any asset is stale or none was ever materialized")
    refresh_running: bool
    running_run_ids: list[str]
    launch_error: str | None = Field(None, description="why the last refresh launched here failed to start")
    assets: list[AssetStatus]


class RefreshAccepted(BaseModel):
    run_id: str = Field(description="the Dagster run id of the refresh; follow it on GET /status or in the Dagster UI")
    status_url: str


# --------------------------------------------------------------------------------------------
# The HTML page

_PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; }
header, section { padding: 16px 28px; }
header { background: #fff; border-bottom: 1px solid #dde1e6; }
h1 { margin: 0 0 4px; font-size: 24px; } h2 { font-size: 19px; margin: 8px 0 12px; } h3 { font-size: 15px; margin: 0; }
nav a, td a { margin-right: 12px; } a { color: #1a5fb4; }
.muted { color: #5f6368; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; align-items: start; }
figure { margin: 0; background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px; }
figcaption { display: flex; flex-wrap: wrap; gap: 2px 12px; justify-content: space-between; align-items: baseline;
             margin-bottom: 8px; }
figure img { width: 100%; height: auto; display: block; }
.missing p { color: #8a4b08; }
table { border-collapse: collapse; background: #fff; width: 100%; font-size: 14px; }
th, td { border: 1px solid #dde1e6; padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f4; } td.nowrap { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff4e5; border: 1px solid #f0c36d; padding: 8px 12px; border-radius: 4px; }
""".strip()

# Marks every chart image with data-loaded / data-natural-width once it has loaded (or failed), so a
# headless browser's DOM dump shows whether the charts really rendered.
_PAGE_SCRIPT = """
document.querySelectorAll("img[data-chart]").forEach(function (img) {
  function mark() { img.setAttribute("data-loaded", img.naturalWidth > 0 ? "true" : "false");
                    img.setAttribute("data-natural-width", String(img.naturalWidth)); }
  if (img.complete) { mark(); } else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
});
""".strip()


def _csp_hash(source: str) -> str:
    return "'sha256-" + b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE_CSP = (
    f"default-src 'none'; img-src 'self'; style-src {_csp_hash(_PAGE_STYLE)}; script-src {_csp_hash(_PAGE_SCRIPT)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _utc_text(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_page(charts: list[ChartFile], tables: dict[str, dict[str, Any]] | None, warehouse_note: str | None,
                warehouse: str) -> str:
    """The offline HTML page: every chart with its timestamp, and JSON/CSV links per table."""
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731
    rendered = sum(c.exists for c in charts)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Spendwise: charts and data</title>",
        f"<style>{_PAGE_STYLE}</style></head><body>",
        "<header><h1>Spendwise</h1>",
        f'<p class="muted">{rendered} of {len(charts)} charts rendered · warehouse {e(warehouse)} · '
        f"page generated {e(_utc_text(datetime.now(timezone.utc)))}</p>",
        '<nav><a href="/status">pipeline status (JSON)</a><a href="/data">table index (JSON)</a>'
        '<a href="/charts">chart index (JSON)</a><a href="/openapi.json">OpenAPI</a></nav></header>',
        '<section id="charts"><h2>Charts</h2><div class="grid">',
    ]
    for chart in charts:
        if chart.exists:
            url = f"/charts/{chart.name}.png"
            parts.append(
                f'<figure id="chart-{e(chart.name)}"><figcaption><h3>{e(chart.title)}</h3>'
                f'<span class="muted">updated {e(_utc_text(chart.last_modified))} · '
                f"{e(f'{(chart.size_bytes or 0) / 1024:.0f}')} KB</span></figcaption>"
                f'<a href="{e(url)}"><img data-chart="{e(chart.name)}" src="{e(url)}?v={e(chart.version)}" '
                f'width="1200" height="700" alt="{e(chart.title)}"></a></figure>'
            )
        else:
            parts.append(
                f'<figure id="chart-{e(chart.name)}" class="missing"><figcaption><h3>{e(chart.title)}</h3>'
                "</figcaption><p>Not rendered yet: run <code>make run</code> or <code>spendwise refresh</code>.</p>"
                "</figure>"
            )
    parts.append("</div></section>")
    parts.append('<section id="data"><h2>Data</h2>')
    if warehouse_note:
        parts.append(f'<p class="note">{e(warehouse_note)}</p>')
    parts.append(
        "<table><thead><tr><th>Table</th><th>What a row is</th><th>Rows</th><th>Updated</th>"
        "<th>Download</th></tr></thead><tbody>"
    )
    for name, description in PUBLISHED_TABLES.items():
        info = (tables or {}).get(name)
        if tables is None:
            rows, updated = "?", "?"
        elif info is None:
            rows, updated = "not published yet", ""
        else:
            rows, updated = f"{info['rows']:,}", _utc_text(info["generated_at"])
        json_url, csv_url = f"/data/{name}", f"/data/{name}?format=csv&limit={MAX_LIMIT}"
        parts.append(
            f"<tr><td><code>{e(name)}</code></td><td>{e(description)}</td><td class=\"num\">{e(rows)}</td>"
            f"<td class=\"nowrap\">{e(updated)}</td>"
            f"<td class=\"nowrap\"><a href=\"{e(json_url)}\">JSON</a><a href=\"{e(csv_url)}\">CSV</a></td></tr>"
        )
    parts.append("</tbody></table>")
    parts.append(
        '<p class="muted">JSON and CSV take <code>channel</code>, <code>model</code>, <code>date_from</code>, '
        f"<code>date_to</code>, <code>limit</code> (1 to {MAX_LIMIT:,}) and <code>offset</code>; "
        "see the OpenAPI document for details.</p></section>"
    )
    parts.append(f"<script>{_PAGE_SCRIPT}</script></body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# The app


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


def _csv_text(page: TablePage) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in page.columns])
    columns = page.json_columns()
    for row in zip(*columns) if columns else ():
        writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v) for v in row])
    return buffer.getvalue()


def _column_infos(columns: list[Column]) -> list[dict[str, str]]:
    return [{"name": c.name, "type": c.kind, "warehouse_type": c.data_type} for c in columns]


def create_app(
    settings: Settings | None = None,
    *,
    dagster_instance: Any = None,
    refresh_launcher: RefreshLauncher | None = None,
) -> FastAPI:
    """The FastAPI app for one warehouse, charts folder and Dagster instance.

    settings: default `get_settings()` (SPENDWISE_WAREHOUSE_URL, SPENDWISE_CHARTS_DIR, DAGSTER_HOME).
    dagster_instance: an open DagsterInstance to read status from and launch into (default: the
        one in settings.dagster_home, opened at the first /status or /refresh).
    refresh_launcher: `launcher(instance) -> run_id`, starting a refresh without waiting (default:
        a detached child process running `refresh_all` in-process under a preassigned run id).
    """
    settings = settings or get_settings()
    reader = WarehouseReader(settings.warehouse)
    bridge = DagsterBridge(
        settings.dagster_home,
        instance=dagster_instance,
        launcher=refresh_launcher,
        # The refresh child writes to this app's warehouse and charts folder, whatever its environment says.
        child_env={"SPENDWISE_WAREHOUSE_URL": settings.warehouse.url,
                   "SPENDWISE_CHARTS_DIR": str(settings.charts_dir)},
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        bridge.close()

    app = FastAPI(
        title="Spendwise charts and data",
        version="1.0.0",
        summary="Charts rendered by the pipeline, the prediction tables behind them, pipeline status and refresh.",
        description=(
            "Read-only access to the `predictions` tables of the Spendwise warehouse (JSON or CSV, with "
            "filters and pagination), the PNG charts of the last refresh, asset freshness from the Dagster "
            "instance, and a way to start a refresh. `GET /` is a page for people."
        ),
        lifespan=lifespan,
    )
    app.state.settings, app.state.reader, app.state.bridge = settings, reader, bridge

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return _error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such endpoint; GET / lists the charts and tables, /openapi.json documents the API"
        return _error_response(exc.status_code, codes.get(exc.status_code, "http_error"), detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ())]
            errors.append({
                "parameter": loc[-1] if loc else "", "location": loc[0] if loc else "",
                "message": err.get("msg", ""), "input": repr(err.get("input"))[:80],
            })
        detail = "; ".join(f"{e['location']} parameter {e['parameter']!r}: {e['message']} (got {e['input']})"
                           for e in errors)
        return _error_response(422, "invalid_parameter", detail, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        logger.exception("unexpected error", exc_info=exc)
        return _error_response(500, "internal_error", f"unexpected {exc.__class__.__name__}; see the server log")

    @app.get(
        "/", response_class=HTMLResponse, tags=["page"], summary="Charts and data links for people",
        description="One self-contained HTML page (no external assets): every chart with its timestamp and "
        "JSON/CSV links per table.",
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"}},
    )
    def index() -> HTMLResponse:
        charts = chart_files(settings.charts_dir)
        note = None
        try:
            tables: dict[str, dict[str, Any]] | None = reader.table_index()
        except WarehouseBusy as exc:
            tables, note = None, f"Row counts are unavailable: {exc.detail}"
        if tables == {}:
            note = f"No table has been published yet: {HOW_TO_PUBLISH}."
        page = render_page(charts, tables, note, settings.warehouse.redacted())
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/charts", response_model=list[ChartInfo], tags=["charts"], summary="List the charts",
             description="Every chart this service knows, whether it has been rendered, and when.")
    def list_charts() -> list[ChartInfo]:
        return [
            ChartInfo(name=c.name, title=c.title, url=f"/charts/{c.name}.png", exists=c.exists,
                      last_modified=c.last_modified, size_bytes=c.size_bytes)
            for c in chart_files(settings.charts_dir)
        ]

    @app.get(
        "/charts/{name}.png", response_class=Response, tags=["charts"], summary="One chart as PNG",
        description="The PNG of the last refresh. Sends a strong ETag (hash of the bytes) and honours "
        "If-None-Match with 304.",
        responses={
            200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                  "description": "the chart",
                  "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}},
                              "Last-Modified": {"schema": {"type": "string"}}}},
            304: {"description": "the client's copy (If-None-Match) is current"},
            **_errors(404, 422),
        },
    )
    def chart_png(
        name: str = PathParam(description="chart name", json_schema_extra={"enum": list(CHARTS)}),
        if_none_match: str | None = Header(None, description="ETag(s) of a cached copy"),
    ) -> Response:
        if name not in CHARTS:
            raise ApiError(404, "unknown_chart", f"unknown chart {name[:80]!r}; charts: {', '.join(CHARTS)}")
        path = settings.charts_dir / f"{name}.png"
        try:
            # fstat and read on one descriptor: the ETag always describes the bytes sent, even when
            # a refresh swaps the file in between.
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                content = handle.read()
        except FileNotFoundError:
            raise ApiError(
                404, "chart_not_rendered", f"chart {name!r} has not been rendered yet: {HOW_TO_PUBLISH}"
            ) from None
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        headers = {
            "ETag": etag,
            "Cache-Control": CHART_CACHE_CONTROL,
            "Last-Modified": format_datetime(datetime.fromtimestamp(st.st_mtime, tz=timezone.utc), usegmt=True),
        }
        if _etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(content, media_type="image/png", headers=headers)

    @app.get("/data", response_model=list[TableInfo], tags=["data"], summary="List the published tables",
             description="Every table this service serves, whether it is published, its rows and columns.",
             responses=_errors(503))
    def list_tables() -> list[TableInfo]:
        try:
            index_ = reader.table_index()
        except WarehouseBusy as exc:
            raise _warehouse_error(exc) from exc
        out = []
        for name, description in PUBLISHED_TABLES.items():
            info = index_.get(name)
            out.append(TableInfo(
                name=name, description=description, published=info is not None,
                rows=info["rows"] if info else None,
                generated_at=_aware(info["generated_at"]) if info else None,
                run_id=info["run_id"] if info else None,
                columns=[ColumnInfo(**c) for c in _column_infos(info["columns"])] if info else None,
                json_url=f"/data/{name}", csv_url=f"/data/{name}?format=csv",
            ))
        return out

    @app.get(
        "/data/{table}", response_model=DataPage, tags=["data"], summary="Rows of one published table",
        description=(
            "JSON by default; `format=csv` gives CSV (same page, header row first). Filters apply only to "
            "tables with the column: `channel` and `model` (repeat for several values), `date_from` and "
            "`date_to` (inclusive, on the `date` column). Rows are ordered by date, then by the columns "
            "in table order. `X-Total-Count` gives the number of matching rows."
        ),
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                  "description": "a page of rows (JSON) or CSV",
                  "headers": {"X-Total-Count": {"schema": {"type": "integer"}}}},
            **_errors(400, 404, 422, 503),
        },
    )
    def table_data(
        request: Request,
        table: str = PathParam(description="published table name", json_schema_extra={"enum": list(PUBLISHED_TABLES)}),
        channel: list[str] | None = Query(None, description="keep rows of these channels",
                                          max_length=MAX_FILTER_VALUES),
        model: list[str] | None = Query(None, description="keep rows of these attribution models",
                                        max_length=MAX_FILTER_VALUES),
        date_from: str | None = Query(None, description="first date, YYYY-MM-DD (inclusive)",
                                      json_schema_extra={"format": "date"}),
        date_to: str | None = Query(None, description="last date, YYYY-MM-DD (inclusive)",
                                    json_schema_extra={"format": "date"}),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="rows per page"),
        offset: int = Query(0, ge=0, le=MAX_OFFSET, description="rows to skip"),
        fmt: Literal["json", "csv"] = Query("json", alias="format", description="json or csv"),
    ) -> Response:
        if table not in PUBLISHED_TABLES:
            raise ApiError(404, "unknown_table", f"unknown table {table[:80]!r}; tables: {', '.join(PUBLISHED_TABLES)}")
        unknown = sorted(set(request.query_params.keys()) - DATA_PARAMETERS)
        if unknown:
            raise ApiError(
                400, "unknown_parameter",
                f"unknown query parameter {unknown[0][:40]!r}; allowed: {', '.join(sorted(DATA_PARAMETERS))}",
            )
        start, end = _parse_date("date_from", date_from), _parse_date("date_to", date_to)
        if start and end and start > end:
            raise ApiError(400, "empty_date_range", f"date_from {start} is after date_to {end}")
        filters = {
            "channel": _filter_values("channel", channel), "model": _filter_values("model", model),
            "date_from": start, "date_to": end,
        }
        try:
            page = reader.table_page(table, filters, limit, offset)
        except WarehouseBusy as exc:
            raise _warehouse_error(exc) from exc
        headers = {"X-Total-Count": str(page.total), "Cache-Control": "no-cache"}
        if fmt == "csv":
            headers["Content-Disposition"] = f'attachment; filename="{table}.csv"'
            return Response(_csv_text(page), media_type="text/csv; charset=utf-8", headers=headers)
        names = [c.name for c in page.columns]
        body = {
            "table": table, "columns": _column_infos(page.columns),
            "rows": [dict(zip(names, row)) for row in zip(*page.json_columns())] if page.rows else [],
            "total": page.total, "limit": limit, "offset": offset,
        }
        return JSONResponse(body, headers=headers)

    @app.get("/status", response_model=StatusResponse, tags=["pipeline"], summary="Asset freshness and checks",
             description="Per asset in the Dagster instance: last materialization, its run, the latest check "
             "results and whether it is stale (older than two schedule intervals or never materialized).",
             responses=_errors(503))
    def status() -> StatusResponse:
        try:
            report = bridge.status()
        except DagsterUnavailable as exc:
            raise ApiError(503, "dagster_unavailable", str(exc), headers={"Retry-After": str(LOCKED_RETRY_AFTER_S)},
                           retry_after=LOCKED_RETRY_AFTER_S) from exc
        return StatusResponse(**dataclasses.asdict(report))

    @app.post(
        "/refresh", status_code=202, response_model=RefreshAccepted, tags=["pipeline"],
        summary="Start a refresh of every asset",
        description="Launches the `refresh_all` job in the Dagster instance and returns its run id at once; "
        "409 while a refresh is queued or running.",
        responses={202: {"headers": {"Location": {"schema": {"type": "string"}, "description": "GET /status"}}},
                   **_errors(409, 503)},
    )
    def refresh() -> JSONResponse:
        try:
            run_id = bridge.start_refresh()
        except RefreshAlreadyRunning as exc:
            raise ApiError(409, "refresh_running", str(exc), run_ids=exc.run_ids) from exc
        except DagsterUnavailable as exc:
            raise ApiError(503, "dagster_unavailable", str(exc), headers={"Retry-After": str(LOCKED_RETRY_AFTER_S)},
                           retry_after=LOCKED_RETRY_AFTER_S) from exc
        logger.info("refresh run %s launched", run_id)
        return JSONResponse({"run_id": run_id, "status_url": "/status"}, status_code=202,
                            headers={"Location": "/status"})

    return app


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def __getattr__(name: str) -> Any:
    # `uvicorn charts.server:app` finds the app; importing this module builds nothing.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
