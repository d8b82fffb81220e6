"""The one warehouse client: connections, reads and the one atomic publish path. Dagster-free.

Every table a Python asset (or the raw loader) writes goes through `WarehouseClient.publish_tables`:
rows land in a staging table and are swapped in inside one transaction, so readers see the old
table or the new one, never a partial one. The Dagster resource (assets.resources) and the
HTTP service (service/) both use this client.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from core.settings import PREDICTIONS_SCHEMA, RAW_SCHEMA, HistoryRetention, WarehouseUrl

if TYPE_CHECKING:  # pandas is imported where used, so Definitions load without it
    import pandas as pd

    from core.history import HistoryWrite

_STAGING_SUFFIX = "__spendwise_staging"


@dataclass(frozen=True)
class PublishedTable:
    schema: str
    table: str
    rows: int
    columns: tuple[str, ...]
    history: HistoryWrite | None = None  # the rows appended to its history and the runs retention removed

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"


class FrameChunks:
    """A table too large to hold at once: DataFrames with the same columns, loaded one after another
    by `publish_tables` in its one transaction (a failure in any chunk leaves the previous table).
    Iterated once; `rows` and `columns` tell what was loaded."""

    def __init__(self, chunks: Iterable[pd.DataFrame]):
        self._chunks = chunks
        self.rows = 0
        self.columns: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for chunk in self._chunks:
            self.rows += len(chunk)
            self.columns = tuple(chunk.columns)
            yield chunk

    def map(self, transform: Callable[[pd.DataFrame], pd.DataFrame]) -> FrameChunks:
        """The same chunks, each passed through `transform` as it is loaded."""
        return FrameChunks(transform(chunk) for chunk in self._chunks)


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
LOCKED_RETRY_AFTER_S = 5
UNAVAILABLE_RETRY_AFTER_S = 30
# PostgreSQL: how long a write (publish here, dbt's models through dbt_project/macros) waits for a lock
# another session holds before it gives up and names that session. Read at each publication.
LOCK_TIMEOUT_ENV = "SPENDWISE_LOCK_TIMEOUT_SECONDS"
DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
# Lock modes whose holders make a request for the key's mode wait. Row lockers are listed for
# ROW EXCLUSIVE too: the DELETE of an in-place replacement waits for their row locks.
_BLOCKING_MODES = {
    "row exclusive": ("RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
                      "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"),
    "access exclusive": ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
                         "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"),
}


def lock_timeout_seconds() -> float:
    """SPENDWISE_LOCK_TIMEOUT_SECONDS (default 60): the longest a PostgreSQL write waits for a lock."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds above 0 (e.g. 60 or 2.5)")
    return value


class WarehouseMissing(FileNotFoundError):
    """The DuckDB file does not exist yet: nothing has been loaded or published."""


class WarehouseBusy(RuntimeError):
    """The warehouse cannot be read right now (DuckDB file locked by a writer, table being swapped)."""

    def __init__(self, detail: str, retry_after: int = LOCKED_RETRY_AFTER_S):
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


class WarehouseUnavailable(WarehouseBusy):
    """The warehouse cannot be reached (PostgreSQL down, DuckDB file unreadable)."""

    def __init__(self, detail: str):
        super().__init__(detail, UNAVAILABLE_RETRY_AFTER_S)


class WarehouseLockTimeout(RuntimeError):
    """A PostgreSQL write gave up waiting for a lock; the message names the sessions holding it."""


def _connect_duckdb_waiting_for_lock(path: str, read_only: bool, config: dict | None = None):
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
            return duckdb.connect(path, read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class WarehouseClient:
    """Connection to one warehouse, DuckDB (embedded file) or PostgreSQL: reads and atomic publication.
    A Spark warehouse (spark://, core.spark) is read only: read_sql, read_table, table_exists, row_counts;
    its prediction and ops tables live in the serving database (`Settings.serving`, a second client).

    Connections are short-lived because DuckDB allows one writing process at a time. Writers that
    meet a reader's lock wait up to DUCKDB_LOCK_WAIT_SECONDS; read-only connections with
    `wait=False` (the HTTP service) fail at once with WarehouseBusy instead.
    """

    def __init__(self, url: WarehouseUrl | str, *, lock_timeout: float | None = None,
                 history_retention: HistoryRetention | None = None, keep_spark_session: bool = False):
        """lock_timeout: seconds a PostgreSQL write waits for a lock (default SPENDWISE_LOCK_TIMEOUT_SECONDS).
        history_retention: which runs the prediction history keeps (default HistoryRetention.from_env(),
        read at each publication).
        keep_spark_session: Spark reads keep their session for the next reads of this process (a refresh
        run, see core.spark) instead of starting and stopping a JVM per call."""
        self.url = url if isinstance(url, WarehouseUrl) else WarehouseUrl.parse(url)
        self.lock_timeout = lock_timeout
        self.history_retention = history_retention
        self.keep_spark_session = keep_spark_session

    @property
    def kind(self) -> str:
        return self.url.kind

    @property
    def placeholder(self) -> str:
        return "%s" if self.kind == "postgres" else "?"

    def ident(self, name: str) -> str:
        """A quoted identifier that is safe inside a statement with parameters."""
        if self.kind == "spark":
            return "`" + name.replace("`", "``") + "`"
        quoted = '"' + name.replace('"', '""') + '"'
        # psycopg2 formats statements with %-style parameters, so a literal % must be doubled.
        return quoted.replace("%", "%%") if self.kind == "postgres" else quoted

    # ---------------------------------------------------------------- connections

    @contextlib.contextmanager
    def connect(self, read_only: bool = False, *, wait: bool = True,
                application_name: str = "spendwise") -> Iterator[object]:
        """One connection, closed on exit; driver errors become WarehouseBusy/Unavailable/Missing.

        read_only: DuckDB opens the file read-only (a missing file is WarehouseMissing, never
            created); PostgreSQL runs a read-only REPEATABLE READ session with a statement timeout.
        wait: wait for a DuckDB file lock held by another process (writers); readers that answer
            users pass False and get WarehouseBusy at once.
        """
        con = self._open(read_only, wait, application_name)
        try:
            yield con
        except (WarehouseBusy, WarehouseMissing):
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            con.close()

    def _open(self, read_only: bool, wait: bool, application_name: str):
        if self.kind == "spark":
            from core.settings import SERVING_URL_ENV

            raise ValueError(
                f"the Spark warehouse {self.url.redacted()} is read through read_sql, read_table, table_exists and "
                "row_counts; connections and publication (the prediction, history and ops tables) go to the "
                f"PostgreSQL serving database: set {SERVING_URL_ENV} and publish through "
                "WarehouseClient(get_settings().serving)"
            )
        if self.kind == "duckdb":
            import duckdb

            path = self.url.duckdb_path
            if read_only and not path.exists():
                raise WarehouseMissing(
                    f"DuckDB warehouse {path} does not exist yet: run `spendwise demo` or `spendwise load DIR`"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            # memory_limit / threads / temp_directory from the URL: the same limits dbt runs with
            config = self.url.duckdb_limits.connect_config()
            try:
                if wait:
                    con = _connect_duckdb_waiting_for_lock(str(path), read_only, config)
                else:
                    con = duckdb.connect(str(path), read_only=read_only, config=config)
                for name, value in self.url.duckdb_limits.default_settings().items():  # the bounded defaults
                    con.execute(f"SET {name} = '{value}'")
                return con
            except duckdb.Error as exc:
                raise self._translate(exc) from exc
        import psycopg2
        import psycopg2.extensions

        options = "-c statement_timeout=30000" if read_only else None
        try:
            con = psycopg2.connect(
                host=self.url.host, port=self.url.port, user=self.url.user, password=self.url.password,
                dbname=self.url.database, application_name=application_name, connect_timeout=10,
                **({"options": options} if options else {}),
            )
        except psycopg2.Error as exc:
            raise WarehouseUnavailable(
                f"cannot connect to the PostgreSQL warehouse {self.url.redacted()}: {str(exc).strip()}"
            ) from exc
        if read_only:
            # One snapshot for every statement of the connection; read-only so a reader can never write.
            con.set_session(readonly=True, isolation_level="REPEATABLE READ")
        # NUMERIC (e.g. sum() of integers) arrives as float, as DuckDB returns it, not Decimal.
        numeric_as_float = psycopg2.extensions.new_type(
            psycopg2.extensions.DECIMAL.values, "SPENDWISE_NUMERIC", lambda v, cur: None if v is None else float(v)
        )
        psycopg2.extensions.register_type(numeric_as_float, con)
        return con

    def _translate(self, exc: Exception) -> Exception:
        if self.kind == "duckdb":
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

    # ---------------------------------------------------------------- statements on an open connection

    def query(self, con, sql: str, params: tuple | list = ()) -> pd.DataFrame:
        import pandas as pd

        if self.kind == "duckdb":
            return con.execute(sql, list(params)).df()
        with con.cursor() as cur:
            cur.execute(sql, tuple(params) or None)  # no parameters: a literal % stays as written
            columns = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=columns)

    def fetch(self, con, sql: str, params: tuple | list = ()) -> list[tuple]:
        """Rows as tuples (no pandas), for small answers such as the HTTP service's pages."""
        if self.kind == "duckdb":
            return con.execute(sql, list(params)).fetchall()
        with con.cursor() as cur:
            # Always a tuple, even empty: psycopg2 then unescapes the %% of quoted identifiers.
            cur.execute(sql, tuple(params))
            return cur.fetchall()

    def execute(self, con, sql: str) -> None:
        if self.kind == "duckdb":
            con.execute(sql)
        else:
            with con.cursor() as cur:
                cur.execute(sql)

    def begin(self, con) -> None:
        if self.kind == "duckdb":
            con.execute("BEGIN TRANSACTION")
        # psycopg2 opens a transaction implicitly on the first statement.

    def commit(self, con) -> None:
        con.commit() if self.kind == "postgres" else con.execute("COMMIT")

    def rollback(self, con) -> None:
        con.rollback() if self.kind == "postgres" else con.execute("ROLLBACK")

    def columns(self, con, schema: str, table: str) -> list[tuple[str, str]]:
        """(name, type) of a table's columns in order; empty when the table does not exist."""
        placeholder = self.placeholder
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
            with self._bounded_lock_wait(con, schema, table, "row exclusive"):
                self.execute(con, f"DELETE FROM {target}")
            self.execute(con, f"INSERT INTO {target} SELECT * FROM {source}")
            self.execute(con, f"DROP TABLE {source}")
            return
        if existing:
            try:
                with self._bounded_lock_wait(con, schema, table, "access exclusive"):
                    self.execute(con, f"DROP TABLE {target}{' CASCADE' if cascade and self.kind == 'postgres' else ''}")
            except WarehouseLockTimeout:
                raise
            except Exception as exc:
                raise RuntimeError(
                    f"cannot replace {schema}.{table}: its columns changed from {existing} and other objects "
                    f"(views) depend on it ({exc}). Drop or update those views, then publish again."
                ) from exc
        self.execute(con, f"ALTER TABLE {source} RENAME TO {_quote(table)}")

    @contextlib.contextmanager
    def _bounded_lock_wait(self, con, schema: str, table: str, mode: str) -> Iterator[None]:
        """Turn PostgreSQL's lock timeout on `schema.table` into WarehouseLockTimeout naming who holds the lock.

        The transaction is aborted by then; it is rolled back here so that the same connection can
        read pg_locks while the blocking session still holds its lock.
        """
        if self.kind != "postgres":
            yield
            return
        import psycopg2.errors

        try:
            yield
        except psycopg2.errors.LockNotAvailable as exc:
            con.rollback()
            raise WarehouseLockTimeout(self._lock_timeout_message(con, schema, table, mode)) from exc

    def _lock_timeout_message(self, con, schema: str, table: str, mode: str) -> str:
        session = ("a.pid, a.application_name, a.usename, a.state, a.xact_start, "
                   "left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 160)")
        holders = self.fetch(
            con,
            f"SELECT {session}, l.modes FROM (SELECT pid, string_agg(DISTINCT mode, ', ') AS modes FROM pg_locks "
            "WHERE relation = to_regclass(%s) AND granted AND pid <> pg_backend_pid() AND mode = ANY(%s) "
            "GROUP BY pid) l JOIN pg_stat_activity a ON a.pid = l.pid ORDER BY a.pid",
            (f"{_quote(schema)}.{_quote(table)}", list(_BLOCKING_MODES[mode])),
        )
        if not holders:  # the wait was on something else (a row lock): the idle transactions are the suspects
            holders = self.fetch(
                con,
                f"SELECT {session}, NULL FROM pg_stat_activity a WHERE a.datname = current_database() "
                "AND a.pid <> pg_backend_pid() AND a.state LIKE 'idle in transaction%%' ORDER BY a.pid",
                (),
            )
        con.rollback()
        blockers = "; ".join(
            f"pid {pid} (application_name {app!r}, user {user}, state {state!r}, transaction started "
            f"{started.isoformat(sep=' ', timespec='seconds') if started else 'never'}"
            f"{f', holds {modes}' if modes else ''}; last query: {query})"
            for pid, app, user, state, started, query, modes in holders
        ) or "a session that has ended since"
        return (
            f"{schema}.{table}: gave up after waiting {self._lock_timeout_s():g} s for the {mode.upper()} lock "
            f"it needs; blocked by {blockers}. Ask that session to commit or roll back, or end it "
            "(SELECT pg_terminate_backend(<pid>)), then publish again; the previous tables are kept. "
            f"{LOCK_TIMEOUT_ENV} sets how long a write waits."
        )

    @contextlib.contextmanager
    def write_transaction(self, schema: str) -> Iterator[object]:
        """One connection in one transaction for a writer: lock waits bounded on PostgreSQL (a BI
        session idling in a transaction must not stall it for ever), `schema` created; committed on
        success, rolled back on any exception."""
        with self.connect() as con:
            self.begin(con)
            try:
                if self.kind == "postgres":
                    self.execute(con, f"SET LOCAL lock_timeout = {round(self._lock_timeout_s() * 1000):d}")
                self.execute(con, f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
                yield con
                self.commit(con)
            except BaseException:
                self.rollback(con)
                raise

    def _preload_chunks(self, prepared: Mapping[str, object], schema: str, token: str) -> set[str]:
        """Load each FrameChunks table into its staging table, committing chunk by chunk (DuckDB)."""
        done: set[str] = set()
        with self._dropping_on_failure(schema, [f"{t}{_STAGING_SUFFIX}_{token}" for t in prepared]), \
                self.connect() as con:
            self.execute(con, f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
            for table, df in prepared.items():
                if isinstance(df, FrameChunks):
                    self.load_frame(con, df, schema, f"{table}{_STAGING_SUFFIX}_{token}")
                    done.add(table)
        return done

    @contextlib.contextmanager
    def _dropping_on_failure(self, schema: str, tables: list[str]) -> Iterator[None]:
        """Drop the named staging tables when the block fails (best effort: the failure is what matters)."""
        try:
            yield
        except BaseException:
            if tables:
                with contextlib.suppress(Exception), self.connect() as con:
                    for table in tables:
                        self.execute(con, f"DROP TABLE IF EXISTS {_quote(schema)}.{_quote(table)}")
            raise

    def _lock_timeout_s(self) -> float:
        return self.lock_timeout if self.lock_timeout is not None else lock_timeout_seconds()

    def load_frame(self, con, df: pd.DataFrame | FrameChunks, schema: str, table: str) -> None:
        """Create `schema.table` with the frame's columns and bulk-load its rows (chunk by chunk for
        FrameChunks: the first chunk gives the column types; no chunks at all is an error)."""
        target = f"{_quote(schema)}.{_quote(table)}"
        if isinstance(df, FrameChunks):
            created = False
            for chunk in df:
                if not created:
                    self.load_frame(con, chunk, schema, table)
                    created = True
                elif not chunk.empty:
                    self._insert_rows(con, chunk, target)
            if not created:
                raise ValueError(f"{schema}.{table}: the chunked table had no chunks")
            return
        columns = ", ".join(f"{_quote(c)} {_sql_type(c, df[c])}" for c in df.columns)
        self.execute(con, f"CREATE TABLE {target} ({columns})")
        if not df.empty:
            self._insert_rows(con, df, target)

    def _insert_rows(self, con, df: pd.DataFrame, target: str) -> None:
        if self.kind == "duckdb":
            con.register("__spendwise_frame", df)
            try:
                con.execute(f"INSERT INTO {target} SELECT * FROM __spendwise_frame")
            finally:
                con.unregister("__spendwise_frame")
            return
        column_list = ", ".join(_quote(c) for c in df.columns)
        # A NULL marker no value can equal: with a fixed one (e.g. \\N) a text value spelled like it
        # would silently become NULL. (Kept short: a 47-character marker was not recognised by COPY.)
        null = f"@null{uuid.uuid4().hex[:12]}@"
        chunk = 200_000
        with con.cursor() as cur:
            for start in range(0, len(df), chunk):
                buf = io.StringIO()
                part = df.iloc[start : start + chunk]
                part.to_csv(buf, index=False, header=False, na_rep=null, quoting=csv.QUOTE_MINIMAL,
                            date_format="%Y-%m-%d %H:%M:%S.%f")
                buf.seek(0)
                cur.copy_expert(
                    f"COPY {target} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '{null}')", buf
                )



    # ---------------------------------------------------------------- one connection per call

    def read_sql(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Rows of a query in the warehouse's SQL dialect (Spark SQL for spark://), `?`/`%s` parameters."""
        if self.kind == "spark":
            from core.spark import spark_session

            # One session per call, stopped afterwards unless this process already runs one or keeps it
            # (a refresh run): a dbt run in another process needs the Derby metastore this JVM locks.
            with spark_session(self.url.spark, keep=self.keep_spark_session) as session:
                return session.sql(sql, args=list(params) or None).toPandas()
        with self.connect() as con:
            return self.query(con, sql, params)

    def read_table(self, schema: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        quote = self.ident if self.kind == "spark" else _quote
        cols = ", ".join(quote(c) for c in columns) if columns else "*"
        return self.read_sql(f"SELECT {cols} FROM {quote(schema)}.{quote(table)}")

    def _spark_tables(self, schema: str) -> list[str]:
        from core.spark import spark_session

        with spark_session(self.url.spark, keep=self.keep_spark_session) as session:
            if not session.catalog.databaseExists(schema):
                return []
            return sorted(t.name for t in session.catalog.listTables(schema) if t.tableType != "VIEW")

    def table_exists(self, schema: str, table: str) -> bool:
        if self.kind == "spark":
            return table in self._spark_tables(schema)
        rows = self.read_sql(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
            .replace("?", self.placeholder),
            (schema, table),
        )
        return int(rows["n"].iloc[0]) > 0

    def row_counts(self, schema: str) -> dict[str, int]:
        """Rows per table in `schema` (tables only, staging leftovers excluded)."""
        if self.kind == "spark":
            names = self._spark_tables(schema)
            if not names:
                return {}
            union = " UNION ALL ".join(
                f"SELECT '{n}' AS table_name, count(*) AS n FROM {self.ident(schema)}.{self.ident(n)}" for n in names
            )
            return {str(r.table_name): int(r.n) for r in self.read_sql(union).itertuples()}
        names = self.read_sql(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = {self.placeholder} AND table_type = 'BASE TABLE' ORDER BY table_name",
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
        frames: Mapping[str, pd.DataFrame | FrameChunks],
        *,
        schema: str = PREDICTIONS_SCHEMA,
        run_id: str | None = None,
        generated_at: datetime | None = None,
        allow_empty: bool = False,
        stamp: bool = True,
        drop: list[str] | tuple[str, ...] = (),
        history: bool | None = None,
    ) -> list[PublishedTable]:
        """Replace several tables in one transaction: all of them change, or none does.

        `stamp=False` writes the frames as they are (raw inputs); otherwise every row gets the
        `run_id` and `generated_at` (UTC) of this publication. Tables named in `drop` are removed
        in the same transaction. On PostgreSQL no statement waits longer than the lock timeout
        (`lock_timeout`, default SPENDWISE_LOCK_TIMEOUT_SECONDS) for another session's lock: then
        WarehouseLockTimeout names that session and nothing is changed.

        `history` (default: every run-stamped publication to the predictions schema) also appends each
        table's rows to `predictions_history.<table>` and deletes the runs outside the retention
        (core.history), in the same transaction: a failed publication leaves no history rows either.
        Registry tables declared with `history=False` are left out.
        """
        import pandas as pd

        from core.history import keeps_history, record_history

        if not frames:
            raise ValueError("publish_tables needs at least one table")
        generated_at = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
        prepared: dict[str, pd.DataFrame | FrameChunks] = {}
        for table, df in frames.items():
            if isinstance(df, FrameChunks):  # raw inputs too large to hold at once (stamp=False)
                if stamp:
                    raise ValueError(f"{schema}.{table}: chunked tables are published as they are (stamp=False)")
                prepared[table] = df.map(_normalise_frame)
                continue
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

        if history is None:
            history = stamp and schema == PREDICTIONS_SCHEMA
        if history and not stamp:
            raise ValueError(f"{schema}: a history needs run-stamped rows; publish with stamp=True")
        retention = (self.history_retention or HistoryRetention.from_env()) if history else None
        token = uuid.uuid4().hex[:8]
        written: dict[str, HistoryWrite] = {}
        # DuckDB holds a transaction's appended rows in memory beyond its memory_limit: chunked tables
        # are loaded into their staging table first, one committed INSERT per chunk, and only renamed
        # in the transaction below (readers see the old table until then; a failure drops the staging).
        preloaded = self._preload_chunks(prepared, schema, token) if self.kind == "duckdb" else set()
        with self._dropping_on_failure(schema, [f"{t}{_STAGING_SUFFIX}_{token}" for t in preloaded]), \
                self.write_transaction(schema) as con:
            for table, df in prepared.items():
                staging = f"{table}{_STAGING_SUFFIX}_{token}"
                if table in preloaded:  # DuckDB views bind late: dropping the old table leaves them valid
                    self.execute(con, f"DROP TABLE IF EXISTS {_quote(schema)}.{_quote(table)}")
                    self.execute(con, f"ALTER TABLE {_quote(schema)}.{_quote(staging)} RENAME TO {_quote(table)}")
                    continue
                self.load_frame(con, df, schema, staging)
                self.swap_in(con, schema, staging, table, cascade=schema == RAW_SCHEMA)
                if history and keeps_history(table):
                    written[table] = record_history(self, con, schema, table, generated_at=generated_at,
                                                    retention=retention)
            for table in drop:
                with self._bounded_lock_wait(con, schema, table, "access exclusive"):
                    self.execute(con, f"DROP TABLE IF EXISTS {_quote(schema)}.{_quote(table)}")
            if self.kind == "postgres":  # BI tools show the registry's descriptions (COMMENTs)
                from core.bi_access import comment_tables

                comment_tables(self, con, schema, list(prepared))
        return [
            PublishedTable(schema, t, df.rows, df.columns, written.get(t)) if isinstance(df, FrameChunks)
            else PublishedTable(schema, t, len(df), tuple(df.columns), written.get(t))
            for t, df in prepared.items()
        ]
