"""The one warehouse resource: reads for Python assets and the one atomic publish path.

Every table a Python asset (or the raw loader) writes goes through `Warehouse.publish_tables`:
rows land in a staging table and are swapped in inside one transaction, so readers see the old
table or the new one, never a partial one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import csv
import io
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from orchestration.settings import PREDICTIONS_SCHEMA, RAW_SCHEMA, WarehouseUrl, warehouse_url_from_env

if TYPE_CHECKING:  # pandas is imported where used, so Definitions load without it
    import pandas as pd

_STAGING_SUFFIX = "__spendwise_staging"


@dataclass(frozen=True)
class PublishedTable:
    schema: str
    table: str
    rows: int
    columns: tuple[str, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"


def _quote(identifier: str) -> str:
    if not identifier or '"' in identifier or "\x00" in identifier:
        raise ValueError(f"invalid SQL identifier {identifier!r}")
    return f'"{identifier}"'


def _is_date_column(name: str) -> bool:
    return name == "date" or name.endswith("_date")


def _sql_type(name: str, series: pd.Series) -> str:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "DATE" if _is_date_column(name) else "TIMESTAMP"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    by_inferred = {
        "string": "TEXT", "empty": "TEXT", "categorical": "TEXT",
        "date": "DATE", "datetime": "TIMESTAMP", "datetime64": "TIMESTAMP",
        "boolean": "BOOLEAN", "integer": "BIGINT", "floating": "DOUBLE PRECISION",
        "mixed-integer-float": "DOUBLE PRECISION", "decimal": "DOUBLE PRECISION",
    }
    if inferred in by_inferred:
        return by_inferred[inferred]
    raise TypeError(
        f"column {name!r} holds {inferred} values (dtype {dtype}) that the warehouse cannot store; "
        "convert it to text, numbers, booleans, dates or timestamps"
    )


def _normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    """Timezone-aware timestamps become naive UTC; categoricals become text."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(str)
    return out


DUCKDB_LOCK_WAIT_SECONDS = 30.0


def _connect_duckdb_waiting_for_lock(path: str, read_only: bool):
    """Open a DuckDB file, waiting while another process holds its lock.

    DuckDB lets one process write or several read. The readers here (the HTTP service, summaries)
    hold connections for milliseconds, so a writer that meets one only needs to wait briefly.
    """
    import time

    import duckdb

    deadline = time.monotonic() + DUCKDB_LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class _Backend:
    """Connection to one warehouse: DuckDB (embedded file) or PostgreSQL."""

    def __init__(self, url: WarehouseUrl):
        self.url = url

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[object]:
        if self.url.kind == "duckdb":
            import duckdb

            path = self.url.duckdb_path
            if read_only and not path.exists():
                raise FileNotFoundError(
                    f"DuckDB warehouse {path} does not exist yet: run `spendwise demo` or `spendwise load DIR`"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_duckdb_waiting_for_lock(str(path), read_only)
        else:
            import psycopg2

            import psycopg2.extensions

            con = psycopg2.connect(
                host=self.url.host,
                port=self.url.port,
                user=self.url.user,
                password=self.url.password,
                dbname=self.url.database,
                application_name="spendwise",
            )
            # NUMERIC (e.g. sum() of integers) arrives as float, as DuckDB returns it, not Decimal.
            numeric_as_float = psycopg2.extensions.new_type(
                psycopg2.extensions.DECIMAL.values, "SPENDWISE_NUMERIC", lambda v, cur: None if v is None else float(v)
            )
            psycopg2.extensions.register_type(numeric_as_float, con)
        try:
            yield con
        finally:
            con.close()

    def query(self, con, sql: str, params: tuple = ()) -> pd.DataFrame:
        import pandas as pd

        if self.url.kind == "duckdb":
            return con.execute(sql, list(params)).df()
        with con.cursor() as cur:
            cur.execute(sql, params or None)
            columns = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=columns)

    def execute(self, con, sql: str) -> None:
        if self.url.kind == "duckdb":
            con.execute(sql)
        else:
            with con.cursor() as cur:
                cur.execute(sql)

    def begin(self, con) -> None:
        if self.url.kind == "duckdb":
            con.execute("BEGIN TRANSACTION")
        # psycopg2 opens a transaction implicitly on the first statement.

    def commit(self, con) -> None:
        con.commit() if self.url.kind == "postgres" else con.execute("COMMIT")

    def rollback(self, con) -> None:
        con.rollback() if self.url.kind == "postgres" else con.execute("ROLLBACK")

    def columns(self, con, schema: str, table: str) -> list[tuple[str, str]]:
        """(name, type) of a table's columns in order; empty when the table does not exist."""
        placeholder = "?" if self.url.kind == "duckdb" else "%s"
        rows = self.query(
            con,
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = {placeholder} AND table_name = {placeholder} ORDER BY ordinal_position",
            (schema, table),
        )
        return [(str(r.column_name), str(r.data_type).upper()) for r in rows.itertuples()]

    def swap_in(self, con, schema: str, staging: str, table: str, cascade: bool) -> None:
        """Replace `table` by `staging` inside the caller's transaction.

        Same columns and types: rows are replaced in place (DELETE + INSERT, MVCC-safe), so views
        and grants on the table (dbt staging views, BI users' views) survive. A changed shape drops
        and renames; `cascade` also drops dependent views (only for raw, whose views dbt rebuilds).
        """
        target, source = f"{_quote(schema)}.{_quote(table)}", f"{_quote(schema)}.{_quote(staging)}"
        existing = self.columns(con, schema, table)
        if existing and existing == self.columns(con, schema, staging):
            self.execute(con, f"DELETE FROM {target}")
            self.execute(con, f"INSERT INTO {target} SELECT * FROM {source}")
            self.execute(con, f"DROP TABLE {source}")
            return
        if existing:
            try:
                self.execute(con, f"DROP TABLE {target}{' CASCADE' if cascade and self.url.kind == 'postgres' else ''}")
            except Exception as exc:
                raise RuntimeError(
                    f"cannot replace {schema}.{table}: its columns changed from {existing} and other objects "
                    f"(views) depend on it ({exc}). Drop or update those views, then publish again."
                ) from exc
        self.execute(con, f"ALTER TABLE {source} RENAME TO {_quote(table)}")

    def load_frame(self, con, df: pd.DataFrame, schema: str, table: str) -> None:
        """Create `schema.table` with the frame's columns and bulk-load its rows."""
        target = f"{_quote(schema)}.{_quote(table)}"
        columns = ", ".join(f"{_quote(c)} {_sql_type(c, df[c])}" for c in df.columns)
        self.execute(con, f"CREATE TABLE {target} ({columns})")
        if df.empty:
            return
        if self.url.kind == "duckdb":
            con.register("__spendwise_frame", df)
            try:
                con.execute(f"INSERT INTO {target} SELECT * FROM __spendwise_frame")
            finally:
                con.unregister("__spendwise_frame")
            return
        column_list = ", ".join(_quote(c) for c in df.columns)
        chunk = 200_000
        with con.cursor() as cur:
            for start in range(0, len(df), chunk):
                buf = io.StringIO()
                part = df.iloc[start : start + chunk]
                part.to_csv(buf, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL,
                            date_format="%Y-%m-%d %H:%M:%S.%f")
                buf.seek(0)
                cur.copy_expert(
                    f"COPY {target} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf
                )


class Warehouse(ConfigurableResource):
    """The warehouse every Python asset reads from and publishes to.

    `url` is `SPENDWISE_WAREHOUSE_URL` (`duckdb:///path` or `postgresql://user:pass@host:port/db`).
    Connections are short-lived because DuckDB allows one writing process at a time.
    """

    url: str = Field(default_factory=warehouse_url_from_env, description="SPENDWISE_WAREHOUSE_URL")

    @property
    def parsed(self) -> WarehouseUrl:
        return WarehouseUrl.parse(self.url)

    @property
    def kind(self) -> str:
        return self.parsed.kind

    def _backend(self) -> _Backend:
        return _Backend(self.parsed)

    def read_sql(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        backend = self._backend()
        with backend.connect() as con:
            return backend.query(con, sql, params)

    def read_table(self, schema: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        cols = ", ".join(_quote(c) for c in columns) if columns else "*"
        return self.read_sql(f"SELECT {cols} FROM {_quote(schema)}.{_quote(table)}")

    def table_exists(self, schema: str, table: str) -> bool:
        rows = self.read_sql(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
            if self.kind == "duckdb"
            else "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return int(rows["n"].iloc[0]) > 0

    def row_counts(self, schema: str) -> dict[str, int]:
        """Rows per table in `schema` (tables only, staging leftovers excluded)."""
        placeholder = "?" if self.kind == "duckdb" else "%s"
        names = self.read_sql(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = {placeholder} AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )["table_name"].tolist()
        names = [n for n in names if _STAGING_SUFFIX not in n]
        if not names:
            return {}
        union = " UNION ALL ".join(
            f"SELECT '{n}' AS table_name, count(*) AS n FROM {_quote(schema)}.{_quote(n)}" for n in names
        )
        counts = self.read_sql(union)
        return {str(r.table_name): int(r.n) for r in counts.itertuples()}

    def publish(
        self,
        df: pd.DataFrame,
        table: str,
        *,
        schema: str = PREDICTIONS_SCHEMA,
        run_id: str | None = None,
        generated_at: datetime | None = None,
        allow_empty: bool = False,
    ) -> PublishedTable:
        """Atomically replace `schema.table` with `df` plus `run_id` and `generated_at` columns."""
        return self.publish_tables(
            {table: df}, schema=schema, run_id=run_id, generated_at=generated_at, allow_empty=allow_empty
        )[0]

    def publish_tables(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        schema: str = PREDICTIONS_SCHEMA,
        run_id: str | None = None,
        generated_at: datetime | None = None,
        allow_empty: bool = False,
        stamp: bool = True,
        drop: list[str] | tuple[str, ...] = (),
    ) -> list[PublishedTable]:
        """Replace several tables in one transaction: all of them change, or none does.

        `stamp=False` writes the frames as they are (raw inputs); otherwise every row gets the
        `run_id` and `generated_at` (UTC) of this publication. Tables named in `drop` are removed
        in the same transaction.
        """
        import pandas as pd

        if not frames:
            raise ValueError("publish_tables needs at least one table")
        generated_at = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
        prepared: dict[str, pd.DataFrame] = {}
        for table, df in frames.items():
            if df.empty and not allow_empty:
                raise ValueError(
                    f"refusing to publish {schema}.{table} with 0 rows: the previous table is kept. "
                    "An empty result means an upstream input was empty; check the raw tables."
                )
            if stamp:
                if {"run_id", "generated_at"} & set(df.columns):
                    raise ValueError(f"{schema}.{table}: run_id/generated_at are added by publish, drop them first")
                df = df.assign(run_id=run_id or "manual", generated_at=pd.Timestamp(generated_at))
            prepared[table] = _normalise_frame(df)

        backend = self._backend()
        token = uuid.uuid4().hex[:8]
        with backend.connect() as con:
            backend.begin(con)
            try:
                backend.execute(con, f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
                for table, df in prepared.items():
                    staging = f"{table}{_STAGING_SUFFIX}_{token}"
                    backend.load_frame(con, df, schema, staging)
                    backend.swap_in(con, schema, staging, table, cascade=schema == RAW_SCHEMA)
                for table in drop:
                    backend.execute(con, f"DROP TABLE IF EXISTS {_quote(schema)}.{_quote(table)}")
                backend.commit(con)
            except BaseException:
                backend.rollback(con)
                raise
        return [PublishedTable(schema, t, len(df), tuple(df.columns)) for t, df in prepared.items()]
