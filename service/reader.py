"""Reads of the published prediction tables for the HTTP service, through the one warehouse client
(core.warehouse): read-only, never waiting for a lock, one short connection per request, and on
DuckDB none at all while a refresh runs (core.refresh_lock), so readers never make a refresh fail."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core import registry
from core.refresh_lock import RefreshLock
from core.settings import PREDICTIONS_SCHEMA, WarehouseUrl
from core.warehouse import WarehouseClient, WarehouseMissing
from service.errors import HOW_TO_PUBLISH, ApiError, RefreshRunning
from service.values import Column, TablePage

APPLICATION_NAME = "spendwise-service"
# Query parameter -> the column it filters on; a filter is refused on tables without that column.
FILTER_COLUMNS = {
    "channel": "channel", "campaign_id": "campaign_id", "model": "model", "date_from": "date", "date_to": "date",
}
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_OFFSET = 1_000_000_000
MAX_FILTER_VALUES = 100


@dataclass(frozen=True)
class TableStats:
    """A published table as it is in the warehouse right now."""

    columns: list[Column]
    rows: int
    generated_at: datetime | None
    run_id: str | None


class _SharedOrExclusive:
    """Many holders at once, or one alone; a waiting exclusive holder goes before new shared ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def not_published(table: str) -> ApiError:
    return ApiError(
        404, "table_not_published",
        f"table {PREDICTIONS_SCHEMA}.{table} has not been published yet: {HOW_TO_PUBLISH}",
    )


class WarehouseReader:
    """Reads the served registry tables of one warehouse, read-only, never holding a connection.

    DuckDB lets one process write or several read, and a reader's connection locks the file: a
    refresh that meets one cannot open it. So while a refresh holds the warehouse's refresh lock
    (core.refresh_lock, held for the whole run) the reader does not open the file at all and raises
    RefreshRunning (HTTP 503 with Retry-After, naming the run). Otherwise connections are opened
    with `wait=False`: a writer that holds the file (a raw load) surfaces at once as WarehouseBusy,
    and a reader holds the file for milliseconds only. PostgreSQL readers never block writers (MVCC).
    """

    def __init__(self, url: WarehouseUrl, schema: str = PREDICTIONS_SCHEMA):
        self.client = WarehouseClient(url)
        self.schema = schema
        self.refresh_lock = RefreshLock(url) if url.kind == "duckdb" else None
        # DuckDB refuses, within one process, a read-write connection to a file while read-only ones are
        # open (and the reverse): the service's own writes (audit rows) wait for the reads to finish.
        self._gate = _SharedOrExclusive() if url.kind == "duckdb" else None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        if self.refresh_lock is not None:
            holder = self.refresh_lock.holder()  # a non-blocking probe; never creates the lock file
            if holder is not None:
                raise RefreshRunning(holder)
        with self._gate.shared() if self._gate else contextlib.nullcontext():
            with self.client.connect(read_only=True, wait=False, application_name=APPLICATION_NAME) as con:
                yield con

    @contextlib.contextmanager
    def writing(self) -> Iterator[WarehouseClient]:
        """The client, for one short write by the service itself (an audit row), while no read of this
        process holds the DuckDB file."""
        with self._gate.exclusive() if self._gate else contextlib.nullcontext():
            yield self.client

    def read_connection(self):
        """A short read-only connection under the same rules as the table reads (context manager), for the
        other schemas the service reports on (metrics: raw, ops)."""
        return self._connect()

    def _qualified(self, table: str) -> str:
        return f"{self.client.ident(self.schema)}.{self.client.ident(table)}"

    def _columns(self, con, tables: list[str]) -> dict[str, list[Column]]:
        p = self.client.placeholder
        rows = self.client.fetch(
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

    def table_index(self) -> dict[str, TableStats]:
        """The served registry tables that are published: columns, row count, latest generated_at and run_id."""
        try:
            with self._connect() as con:
                columns = self._columns(con, list(registry.served_tables()))
                if not columns:
                    return {}
                parts = []
                for table, cols in columns.items():
                    names = {c.name for c in cols}
                    generated = "max(generated_at)" if "generated_at" in names else "CAST(NULL AS TIMESTAMP)"
                    run_id = "max(CAST(run_id AS VARCHAR))" if "run_id" in names else "CAST(NULL AS VARCHAR)"
                    parts.append(
                        f"SELECT CAST({self.client.placeholder} AS VARCHAR) AS t, count(*) AS n, {generated} AS g, "
                        f"{run_id} AS r FROM {self._qualified(table)}"
                    )
                stats = self.client.fetch(con, " UNION ALL ".join(parts), list(columns))
        except WarehouseMissing:
            return {}
        return {str(t): TableStats(columns[str(t)], int(n), g, r) for t, n, g, r in stats}

    def table_page(self, table: str, filters: dict[str, Any], limit: int, offset: int) -> TablePage:
        """One page of `table` with the filters applied, ordered by date then the table's columns.

        filters: channel / model (lists of accepted values), date_from / date_to (inclusive dates),
        each only on tables that have the column (ApiError 400 otherwise). Raises ApiError 404 when
        the table has not been published.
        """
        ident, p = self.client.ident, self.client.placeholder
        try:
            with self._connect() as con:
                columns = self._columns(con, [table]).get(table, [])
                if not columns:
                    raise not_published(table)
                clause, params = self._where(table, [c.name for c in columns], filters)
                order = sorted((c.name for c in columns if c.kind != "other"), key=lambda n: n != "date")
                order_by = (" ORDER BY " + ", ".join(f"{ident(n)} NULLS LAST" for n in order)) if order else ""
                select = ", ".join(ident(c.name) for c in columns)
                source = f"{self._qualified(table)}{clause}"
                total = self.client.fetch(con, f"SELECT count(*) FROM {source}", params)[0][0]
                rows = self.client.fetch(
                    con, f"SELECT {select} FROM {source}{order_by} LIMIT {p} OFFSET {p}", [*params, limit, offset]
                )
        except WarehouseMissing:
            raise not_published(table) from None
        return TablePage(table=table, columns=columns, rows=rows, total=int(total))

    def _where(self, table: str, names: list[str], filters: dict[str, Any]) -> tuple[str, list[Any]]:
        ident, p = self.client.ident, self.client.placeholder
        where: list[str] = []
        params: list[Any] = []
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
            if parameter in ("channel", "campaign_id", "model"):
                where.append(f"CAST({ident(column)} AS VARCHAR) IN ({', '.join([p] * len(value))})")
                params.extend(value)
            elif parameter == "date_from":
                where.append(f"{ident(column)} >= {p}")
                params.append(value)
            elif value < date.max:  # date_to is inclusive: before the next day, also for timestamps
                where.append(f"{ident(column)} < {p}")
                params.append(value + timedelta(days=1))
        return (f" WHERE {' AND '.join(where)}" if where else ""), params
