"""The assets' Dagster resources: `warehouse` (the one warehouse client, core.warehouse, as a
configurable resource) and `charts` (where chart PNGs are written).

The warehouse `url` (and `serving_url`) can be an `EnvVar`, so a PostgreSQL password never shows in
the run config or the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from core.settings import (
    HISTORY_SCHEMA, PREDICTIONS_SCHEMA, WarehouseUrl, get_settings, parse_serving_url, serving_for,
    warehouse_url_from_env,
)
from core.warehouse import PublishedTable, WarehouseClient

if TYPE_CHECKING:
    import pandas as pd

# The schemas the assets publish to and read back from the serving database when there is one (the ops
# tables the service and the CLI write go there too, through Settings.serving; ops.raw_changes, which dbt
# reads, stays in the warehouse).
SERVING_SCHEMAS = frozenset({PREDICTIONS_SCHEMA, HISTORY_SCHEMA})


class Warehouse(ConfigurableResource):
    """The warehouse every Python asset reads from and publishes to.

    `url` is `SPENDWISE_WAREHOUSE_URL` (`duckdb:///path`, `postgresql://user:pass@host:port/db` or
    `spark:///dir`): dbt's raw and analytics tables, read by `read_sql` and by `read_table`,
    `table_exists` and `row_counts` on those schemas. `serving_url` is `SPENDWISE_SERVING_URL` (empty:
    the warehouse itself; required with Spark): the prediction tables, their history and the ops tables
    are published there (`publish`, `publish_tables`; raw publications go to the warehouse) and read back
    from there (`serving_client` for the history reads). An asset never
    needs to know which of the two a table lives in.

    On Spark the reads of a run share one session (core.spark, `keep=True`): the dbt step stops it before
    dbt opens the metastore, and the run's end stops it (teardown_after_execution).
    """

    url: str = Field(default_factory=warehouse_url_from_env, description="SPENDWISE_WAREHOUSE_URL")
    serving_url: str = Field(
        default="", description="SPENDWISE_SERVING_URL: the PostgreSQL database the prediction, history and ops "
        "tables are published to; empty: the warehouse")

    @property
    def parsed(self) -> WarehouseUrl:
        return WarehouseUrl.parse(self.url)

    @property
    def kind(self) -> str:
        return self.parsed.kind

    @property
    def serving(self) -> WarehouseUrl:
        """Where the prediction, history and ops tables live (a ValueError on Spark without serving_url)."""
        return serving_for(self.parsed, parse_serving_url(self.serving_url), "the assets' publications")

    @property
    def client(self) -> WarehouseClient:
        """The client of the warehouse dbt builds (raw, analytics, ops.raw_changes)."""
        return WarehouseClient(self.parsed, keep_spark_session=True)

    @property
    def serving_client(self) -> WarehouseClient:
        """The client of the database holding the prediction, history and ops tables (the serving database
        when one is set, otherwise the warehouse): publication and the history reads."""
        return WarehouseClient(self.serving)

    def _for(self, schema: str) -> WarehouseClient:
        return self.serving_client if schema in SERVING_SCHEMAS else self.client

    def setup_for_execution(self, context) -> None:
        self.serving  # noqa: B018 -- a Spark warehouse without a serving database fails before any step

    def teardown_after_execution(self, context) -> None:
        if self.kind == "spark":
            from core.spark import release_kept_session

            release_kept_session()

    def read_sql(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """A query on the warehouse (raw and analytics), in its SQL dialect."""
        return self.client.read_sql(sql, params)

    def read_table(self, schema: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self._for(schema).read_table(schema, table, columns)

    def table_exists(self, schema: str, table: str) -> bool:
        return self._for(schema).table_exists(schema, table)

    def row_counts(self, schema: str) -> dict[str, int]:
        return self._for(schema).row_counts(schema)

    def publish(self, df: pd.DataFrame, table: str, *, schema: str = PREDICTIONS_SCHEMA, run_id: str | None = None,
                generated_at: datetime | None = None, allow_empty: bool = False) -> PublishedTable:
        return self._for(schema).publish(df, table, schema=schema, run_id=run_id, generated_at=generated_at,
                                         allow_empty=allow_empty)

    def publish_tables(self, frames: Mapping[str, pd.DataFrame], **kwargs) -> list[PublishedTable]:
        """See `core.warehouse.WarehouseClient.publish_tables`: all tables change in one transaction, in the
        serving database for its schemas (the default, predictions), in the warehouse for the others (raw)."""
        return self._for(kwargs.get("schema", PREDICTIONS_SCHEMA)).publish_tables(frames, **kwargs)


class ChartStore(ConfigurableResource):
    """Where chart PNGs are written (`SPENDWISE_CHARTS_DIR`, default `<repo>/data/charts`)."""

    directory: str = Field(default_factory=lambda: str(get_settings().charts_dir))

    def path(self, stem: str) -> Path:
        return Path(self.directory) / f"{stem}.png"
