"""The response bodies of the HTTP service, as the OpenAPI document describes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
    description: str | None = Field(None, description="what the column holds (from the table registry)")


class TableInfo(BaseModel):
    name: str
    description: str = Field(description="what one row of the table is")
    published: bool = Field(description="false until a refresh has published the table")
    rows: int | None
    generated_at: datetime | None = Field(description="when the run that published the table produced it (UTC)")
    run_id: str | None
    columns: list[ColumnInfo] | None
    json_url: str
    csv_url: str
    xlsx_url: str


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
