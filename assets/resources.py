"""The assets' Dagster resources: `warehouse` (the one warehouse client, core.warehouse, as a
configurable resource) and `charts` (where chart PNGs are written).

The warehouse `url` can be an `EnvVar`, so a PostgreSQL password never shows in the run config or the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from core.settings import PREDICTIONS_SCHEMA, WarehouseUrl, get_settings, warehouse_url_from_env
from core.warehouse import PublishedTable, WarehouseClient

if TYPE_CHECKING:
    import pandas as pd


class Warehouse(ConfigurableResource):
    """The warehouse every Python asset reads from and publishes to.

    `url` is `SPENDWISE_WAREHOUSE_URL` (`duckdb:///path` or `postgresql://user:pass@host:port/db`).
    Every method opens a short connection through `core.warehouse.WarehouseClient`.
    """

    url: str = Field(default_factory=warehouse_url_from_env, description="SPENDWISE_WAREHOUSE_URL")

    @property
    def parsed(self) -> WarehouseUrl:
        return WarehouseUrl.parse(self.url)

    @property
    def kind(self) -> str:
        return self.parsed.kind

    @property
    def client(self) -> WarehouseClient:
        return WarehouseClient(self.parsed)

    def read_sql(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        return self.client.read_sql(sql, params)

    def read_table(self, schema: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self.client.read_table(schema, table, columns)

    def table_exists(self, schema: str, table: str) -> bool:
        return self.client.table_exists(schema, table)

    def row_counts(self, schema: str) -> dict[str, int]:
        return self.client.row_counts(schema)

    def publish(self, df: pd.DataFrame, table: str, *, schema: str = PREDICTIONS_SCHEMA, run_id: str | None = None,
                generated_at: datetime | None = None, allow_empty: bool = False) -> PublishedTable:
        return self.client.publish(df, table, schema=schema, run_id=run_id, generated_at=generated_at,
                                   allow_empty=allow_empty)

    def publish_tables(self, frames: Mapping[str, pd.DataFrame], **kwargs) -> list[PublishedTable]:
        """See `core.warehouse.WarehouseClient.publish_tables`: all tables change in one transaction."""
        return self.client.publish_tables(frames, **kwargs)


class ChartStore(ConfigurableResource):
    """Where chart PNGs are written (`SPENDWISE_CHARTS_DIR`, default `<repo>/data/charts`)."""

    directory: str = Field(default_factory=lambda: str(get_settings().charts_dir))

    def path(self, stem: str) -> Path:
        return Path(self.directory) / f"{stem}.png"
