"""Apache Spark as the warehouse: one local SparkSession configured as dbt's `spark` target is, and
the raw tables written into Spark tables. pyspark is imported only here and only when used.

dbt (profiles.yml, `method: session`) and this module build the same session: the same warehouse
folder and Derby metastore under the `spark://` URL's folder, UTC session time. Derby lets one JVM
open the metastore at a time, so a dbt run and a session of this process must never overlap.

A read either starts a session and stops it with its JVM afterwards (`keep=False`), or, during a
refresh run, keeps it for the next reads of the process (`keep=True`): starting a JVM costs seconds,
and a run reads the marts dozens of times. A kept session is stopped by `release_kept_session()`,
which the dbt resource calls before every dbt step (the dbt process opens the metastore itself) and
the warehouse resource at the end of the run, and at the latest when the process exits.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import RAW_SCHEMA, SparkSettings

if TYPE_CHECKING:
    import pandas as pd


def session_config(settings: SparkSettings) -> dict[str, str]:
    """The Spark configuration of a session on `settings`; profiles.yml sets the same values."""
    return {
        "spark.master": settings.master,
        "spark.app.name": "spendwise",
        "spark.sql.warehouse.dir": str(settings.warehouse_dir),
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={settings.metastore_dir};create=true",
        # derby.log lands beside the metastore, not in whatever folder the process started in.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.root}",
        # Timestamps are naive UTC everywhere in Spendwise; a session zone of the machine's would shift them.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.ui.enabled": "false",
        # the stage progress bars would be drawn over `spendwise refresh`'s step lines on the terminal
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # dbt-spark forces ANSI mode off in its session; Python reads see the same semantics.
        "spark.sql.ansi.enabled": "false",
    }


# The session kept by `spark_session(keep=True)`, and the lock that makes its start, use and release
# one at a time (Dagster runs a run's steps in threads of one process only with the in-process executor,
# one step at a time, but a resource teardown may come from another thread).
_kept: object | None = None
_kept_lock = threading.RLock()
_exit_hook = False


@contextmanager
def spark_session(settings: SparkSettings, *, keep: bool = False) -> Iterator[object]:
    """A SparkSession on the warehouse folder. A session this process already runs on the same folder
    (a test's, dbt's in-process run, or one kept by an earlier `keep=True` call) is lent and left
    running. Otherwise one is started; with `keep=False` it is stopped on exit with its JVM, which frees
    the Derby metastore for the next process (a dbt run); with `keep=True` it stays for the next calls
    until `release_kept_session()` (or the process's exit)."""
    global _exit_hook, _kept
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError(
            "the spark:// warehouse needs pyspark and dbt-spark: pip install -r requirements-spark.txt"
        ) from exc
    with _kept_lock:
        active = SparkSession.getActiveSession() or _kept
        if active is None and keep:
            _kept = active = _start(settings)
            if not _exit_hook:
                atexit.register(release_kept_session)
                _exit_hook = True
        if active is not None:
            _check_folder(active, settings)
            yield active
            return
    session = _start(settings)
    try:
        yield session
    finally:
        session.stop()
        _forget_jvm()


def kept_session_running() -> bool:
    return _kept is not None


def release_kept_session() -> bool:
    """Stop the session kept by `spark_session(keep=True)` and its JVM, freeing the Derby metastore;
    whether one was running."""
    global _kept
    with _kept_lock:
        if _kept is None:
            return False
        session, _kept = _kept, None
        try:
            session.stop()
        finally:
            _forget_jvm()
        return True


def _check_folder(active, settings: SparkSettings) -> None:
    running_on = active.conf.get("spark.sql.warehouse.dir", "")
    if running_on.removeprefix("file:").rstrip("/") != str(settings.warehouse_dir):
        raise RuntimeError(
            f"this process already runs a Spark session on {running_on}; the warehouse {settings.warehouse_dir} "
            "needs its own process (Spark allows one session configuration per JVM)"
        )


def _start(settings: SparkSettings):
    from pyspark.sql import SparkSession

    settings.root.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in session_config(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _forget_jvm() -> None:
    """Shut the JVM down with the session: Derby's metastore lock is held by the JVM, not the session,
    so a dbt run started after a read in this process (or the other way round) could not open it."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        proc = getattr(gateway, "proc", None)
        if proc is not None:
            proc.stdin.close()
            proc.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


def _spark_type(name: str, series: pd.Series):
    from pyspark.sql import types as T

    from core.warehouse import _sql_type

    sql = _sql_type(name, series)
    return {
        "BOOLEAN": T.BooleanType(), "BIGINT": T.LongType(), "DOUBLE PRECISION": T.DoubleType(),
        "DATE": T.DateType(), "TIMESTAMP": T.TimestampType(), "TEXT": T.StringType(),
    }[sql]


def write_tables(session, frames: Mapping[str, pd.DataFrame], schema: str) -> dict[str, int]:
    """Replace each table `schema`.`name` with the rows of its frame; the rows written per table.

    Column types follow the other warehouses (core.warehouse): date columns (`date`, `*_date`) are
    DATE, other datetimes TIMESTAMP, integers BIGINT, floats DOUBLE, the rest STRING.
    """
    import pandas as pd
    from pyspark.sql import types as T

    from core.warehouse import _normalise_frame

    session.sql(f"create database if not exists `{schema}`")
    written = {}
    for name, frame in frames.items():
        df = _normalise_frame(frame)
        fields = [T.StructField(str(c), _spark_type(str(c), df[c]), True) for c in df.columns]
        columns = {}
        for field in fields:
            s = df[field.name]
            if isinstance(field.dataType, T.DateType):
                s = pd.to_datetime(s).dt.date
            elif isinstance(field.dataType, T.TimestampType):
                s = pd.to_datetime(s).astype("datetime64[us]")
            columns[field.name] = s.astype(object).where(s.notna(), None)
        rows = pd.DataFrame(columns, index=df.index)
        spark_df = session.createDataFrame(rows, schema=T.StructType(fields))
        spark_df.write.mode("overwrite").format("parquet").saveAsTable(f"`{schema}`.`{name}`")
        written[name] = len(df)
    return written


def load_raw_tables(settings: SparkSettings, frames: Mapping[str, pd.DataFrame],
                    extra: Mapping[str, pd.DataFrame] | None = None) -> dict[str, int]:
    """Validate the raw tables as `spendwise load` does and write them (and `extra`, e.g. the demo's
    ground truth) into the Spark warehouse's raw database; the rows written per table."""
    with spark_session(settings) as session:
        return load_raw_tables_into(session, frames, extra)


def load_raw_tables_into(session, frames: Mapping[str, pd.DataFrame],
                         extra: Mapping[str, pd.DataFrame] | None = None) -> dict[str, int]:
    """load_raw_tables on a running session (one JVM for the load, a dbt run and the reads)."""
    from core.calendar_file import CALENDAR_TABLE, calendar_table
    from core.raw_contract import CHANNEL_TABLES, RAW_TABLES, RawDataError, channel_tables, validate_raw_frame

    missing = [name for name in RAW_TABLES if name not in frames]
    if missing:
        raise RawDataError([f"raw tables {missing} are missing: all of {list(RAW_TABLES)} are loaded together"])
    typed = {name: validate_raw_frame(name, frames[name]) for name in RAW_TABLES}
    optional = {name: frames[name] for name in (*CHANNEL_TABLES, CALENDAR_TABLE) if name in frames}
    typed.update({**channel_tables(), CALENDAR_TABLE: calendar_table(), **optional})
    typed.update(dict(extra or {}))
    return write_tables(session, typed, RAW_SCHEMA)


# ---------------------------------------------------------------- the table files, without a JVM
#
# `spendwise status`, the refresh summary and the service's metrics scrape look at a Spark warehouse
# often and while a refresh may be running. A Spark session would cost a JVM start each time and take the
# Derby metastore, which admits one JVM: a dbt step starting meanwhile could not open it. So they read the
# managed tables' parquet files directly (with DuckDB), where Spark keeps them in a local warehouse:
# <warehouse>/<database>.db/<table>/part-*.parquet (files being written sit in _temporary/ below, unread).

# Parquet files are immutable (a rewrite writes new names), so a file's newest value is computed once.
_newest_by_file: dict[tuple[str, str], dict[str, tuple[int, int, object]]] = {}
_newest_lock = threading.Lock()


def table_files(settings: SparkSettings, schema: str) -> dict[str, list[Path]]:
    """The parquet files of each table folder of database `schema`, by table name ({} when it has none)."""
    database = settings.warehouse_dir / f"{schema}.db"
    if not database.is_dir():
        return {}
    return {
        folder.name: sorted(folder.glob("*.parquet"))
        for folder in sorted(database.iterdir())
        if folder.is_dir() and not folder.name.startswith(("_", "."))
    }


def _changed_under_us(settings: SparkSettings, schema: str, exc: Exception) -> Exception:
    from core.warehouse import WarehouseBusy

    return WarehouseBusy(
        f"the Spark tables of {schema} in {settings.warehouse_dir} changed while they were read (a refresh or a load "
        f"is rewriting them): {' '.join(str(exc).split())[:200]}"
    )


def file_row_counts(settings: SparkSettings, schema: str) -> dict[str, int]:
    """Rows per table of database `schema`, from the parquet footers (no data is read); {} when the database
    has no table. WarehouseBusy when a table's files are replaced while they are counted."""
    import duckdb

    counts = {}
    with duckdb.connect() as con:
        for table, files in table_files(settings, schema).items():
            try:
                counts[table] = int(con.execute(
                    "SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]
                ).fetchone()[0]) if files else 0
            except (duckdb.Error, OSError) as exc:
                raise _changed_under_us(settings, schema, exc) from exc
    return counts


def newest_values(settings: SparkSettings, schema: str, columns: Mapping[str, str]) -> dict[str, object]:
    """The largest value of `columns[table]` in each of those tables of `schema` that exists (None when it has
    no rows). A file is read once, then remembered by name, size and modification time, so a caller that asks
    every few seconds (the metrics scrape) reads only files written since. WarehouseBusy as file_row_counts."""
    import duckdb

    found = table_files(settings, schema)
    newest: dict[str, object] = {}
    with duckdb.connect() as con:
        for table, column in columns.items():
            if table not in found:
                continue
            try:
                newest[table] = _newest_in_files(con, found[table], column)
            except (duckdb.Error, OSError) as exc:
                raise _changed_under_us(settings, schema, exc) from exc
    return newest


def _newest_in_files(con, files: list[Path], column: str):
    if not files:
        return None
    key = (str(files[0].parent), column)
    stamps = {str(f): (st.st_mtime_ns, st.st_size) for f in files for st in [f.stat()]}
    with _newest_lock:
        known = {p: v for p, v in _newest_by_file.get(key, {}).items() if v[:2] == stamps.get(p)}
    unread = [p for p in stamps if p not in known]
    if unread:
        schema_columns = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [unread]).fetchall()}
        if column not in schema_columns:
            return None
        quoted = '"' + column.replace('"', '""') + '"'
        rows = con.execute(
            f"SELECT filename, max({quoted}) FROM read_parquet(?, filename = true) GROUP BY filename", [unread]
        ).fetchall()
        values = dict(rows)
        known.update({p: (*stamps[p], values.get(p)) for p in unread})
    with _newest_lock:
        _newest_by_file[key] = known
    present = [v[2] for v in known.values() if v[2] is not None]
    return max(present) if present else None


def require_raw_tables(settings: SparkSettings) -> None:
    """WarehouseMissing unless the folder holds a Spark warehouse with raw tables; looks at files only."""
    from core.raw_contract import RAW_TABLES
    from core.warehouse import WarehouseMissing

    present = table_files(settings, RAW_SCHEMA)
    missing = [name for name in RAW_TABLES if name not in present]
    if missing:
        raise WarehouseMissing(
            f"no raw tables {', '.join(missing)} in the Spark warehouse {settings.warehouse_dir}: write them with "
            "core.spark.load_raw_tables (deploy/spark.md) before a refresh"
        )
