"""The prediction tables' history: every publication appends its rows to HISTORY_SCHEMA.<table>, keyed by
run_id, and deletes the runs the retention no longer keeps, inside the publication's own transaction.

BI keeps reading `predictions.<table>` (the current run only); forecast scoring and run-to-run changes
read the history. Dagster-free: `core.warehouse.WarehouseClient.publish_tables` calls `record_history`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.settings import HISTORY_SCHEMA, HistoryRetention

if TYPE_CHECKING:
    from core.warehouse import WarehouseClient

# Registry column types as stored in the history, so a column that happens to be all empty in the first
# run (inferred as text) still gets its real type.
_SQL_TYPES = {"text": "TEXT", "integer": "BIGINT", "number": "DOUBLE PRECISION", "boolean": "BOOLEAN",
              "date": "DATE", "timestamp": "TIMESTAMP"}


@dataclass(frozen=True)
class HistoryWrite:
    table: str  # HISTORY_SCHEMA.<table>
    rows_appended: int
    columns_added: tuple[str, ...]  # columns the table gained (a registry column added since it was created)
    runs_removed: int  # runs the retention deleted
    runs_kept: int


def keeps_history(table: str) -> bool:
    """Whether publishing `table` also appends to its history (registry entries may opt out)."""
    from core import registry

    spec = registry.TABLES.get(table)
    return spec.history if spec is not None else True


def _declared_types(table: str) -> dict[str, str]:
    from core import registry

    spec = registry.TABLES.get(table)
    return {} if spec is None else {c.name: _SQL_TYPES[c.type] for c in spec.published_columns}


def record_history(client: WarehouseClient, con, schema: str, table: str, *, generated_at: datetime,
                   retention: HistoryRetention) -> HistoryWrite:
    """Append the rows of `schema.table` (just published, in the open transaction `con`) to its history,
    adding any column the history table lacks, then delete the runs outside `retention`.

    The history table is created on first use with the registry's column types; on PostgreSQL it is
    indexed by run_id and generated_at, which the retention and the readers filter on.
    """
    target = f"{client.ident(HISTORY_SCHEMA)}.{client.ident(table)}"
    source_columns = client.columns(con, schema, table)
    missing_stamp = {"run_id", "generated_at"} - {name for name, _ in source_columns}
    if missing_stamp:
        raise ValueError(f"{schema}.{table} has no {sorted(missing_stamp)} column(s): only run-stamped "
                         "publications keep a history")
    declared = _declared_types(table)
    client.execute(con, f"CREATE SCHEMA IF NOT EXISTS {client.ident(HISTORY_SCHEMA)}")
    existing = dict(client.columns(con, HISTORY_SCHEMA, table))
    added: list[str] = []
    if not existing:
        definition = ", ".join(f"{client.ident(n)} {declared.get(n, t)}" for n, t in source_columns)
        client.execute(con, f"CREATE TABLE {target} ({definition})")
        if client.kind == "postgres":
            for column in ("run_id", "generated_at"):
                client.execute(con, f"CREATE INDEX {client.ident(f'{table}__{column}')} ON {target} "
                                    f"({client.ident(column)})")
        existing = dict(client.columns(con, HISTORY_SCHEMA, table))
    else:
        for name, type_ in source_columns:
            if name not in existing:
                client.execute(con, f"ALTER TABLE {target} ADD COLUMN {client.ident(name)} {declared.get(name, type_)}")
                added.append(name)
        if added:
            existing = dict(client.columns(con, HISTORY_SCHEMA, table))
    names = [n for n, _ in source_columns]
    # Cast each value to the history's type: a column all empty in this run arrives as text.
    select = ", ".join(f"CAST({client.ident(n)} AS {existing[n]})" for n in names)
    source = f"{client.ident(schema)}.{client.ident(table)}"
    rows = int(client.fetch(con, f"SELECT count(*) FROM {source}")[0][0])
    try:
        client.execute(con, f"INSERT INTO {target} ({', '.join(client.ident(n) for n in names)}) "
                            f"SELECT {select} FROM {source}")
    except Exception as exc:
        raise ValueError(
            f"cannot append {schema}.{table} to {HISTORY_SCHEMA}.{table}: a column's type changed in a way the "
            f"history cannot hold ({exc}). Rename or drop {HISTORY_SCHEMA}.{table} to start a new history; "
            "nothing was published."
        ) from exc
    removed = _apply_retention(client, con, target, generated_at, retention)
    kept = int(client.fetch(con, f"SELECT count(DISTINCT run_id) FROM {target}")[0][0])
    return HistoryWrite(f"{HISTORY_SCHEMA}.{table}", rows, tuple(added), removed, kept)


def _apply_retention(client: WarehouseClient, con, target: str, now: datetime, retention: HistoryRetention) -> int:
    """Delete whole runs older than `retention.days` before `now`, or beyond the newest `retention.runs`."""
    p = client.placeholder
    run_id, stamp = client.ident("run_id"), client.ident("generated_at")
    # A run is dated by its newest row: one publication stamps all rows of a table alike.
    runs = f"SELECT {run_id} AS run_id, max({stamp}) AS published FROM {target} GROUP BY {run_id}"
    conditions, params = [], []
    if retention.days is not None:
        conditions.append(f"published < {p}")
        params.append(now - timedelta(days=retention.days))
    if retention.runs is not None:
        conditions.append(f"run_id NOT IN (SELECT run_id FROM ({runs}) AS r ORDER BY published DESC, run_id DESC "
                          f"LIMIT {int(retention.runs)})")
    if not conditions:
        return 0
    expired = f"SELECT run_id FROM ({runs}) AS all_runs WHERE {' OR '.join(conditions)}"
    gone = [r[0] for r in client.fetch(con, expired, tuple(params))]
    if gone:
        _execute(client, con, f"DELETE FROM {target} WHERE {run_id} IN ({', '.join([p] * len(gone))})", tuple(gone))
    return len(gone)


def _execute(client: WarehouseClient, con, sql: str, params: tuple) -> None:
    if client.kind == "duckdb":
        con.execute(sql, list(params))
    else:
        with con.cursor() as cur:
            cur.execute(sql, params)


def history_runs(client: WarehouseClient, table: str) -> list[tuple[str, datetime]]:
    """(run_id, generated_at) of every run in `table`'s history, newest first; empty without history."""
    target = f"{client.ident(HISTORY_SCHEMA)}.{client.ident(table)}"
    with client.connect() as con:
        if not client.columns(con, HISTORY_SCHEMA, table):
            return []
        rows = client.fetch(con, f"SELECT run_id, max(generated_at) AS g FROM {target} GROUP BY run_id "
                                 "ORDER BY g DESC, run_id DESC")
    return [(str(r[0]), r[1]) for r in rows]


def read_history(client: WarehouseClient, table: str, *, run_ids: list[str] | None = None,
                 columns: list[str] | None = None, where: str = ""):
    """Rows of `table`'s history (all runs, or `run_ids`); an empty frame when it has no history yet."""
    import pandas as pd

    target = f"{client.ident(HISTORY_SCHEMA)}.{client.ident(table)}"
    with client.connect() as con:
        have = [n for n, _ in client.columns(con, HISTORY_SCHEMA, table)]
        if not have:
            return pd.DataFrame(columns=columns or [])
        wanted = [c for c in (columns or have) if c in have]
        conditions, params = ([where] if where else []), ()
        if run_ids is not None:
            if not run_ids:
                return pd.DataFrame(columns=wanted)
            conditions.append(f"run_id IN ({', '.join([client.placeholder] * len(run_ids))})")
            params = tuple(run_ids)
        sql = (f"SELECT {', '.join(client.ident(c) for c in wanted)} FROM {target}"
               + (f" WHERE {' AND '.join(conditions)}" if conditions else ""))
        frame = client.query(con, sql, params)
    for c in (columns or []):
        if c not in frame.columns:  # a column added after these runs: empty for them
            frame[c] = None
    return frame


def query_history(client: WarehouseClient, table: str, sql: str, params: tuple = ()):
    """`sql` run on `table`'s history, named `{history}` in it; an empty frame when there is no history yet."""
    import pandas as pd

    with client.connect() as con:
        if not client.columns(con, HISTORY_SCHEMA, table):
            return pd.DataFrame()
        target = f"{client.ident(HISTORY_SCHEMA)}.{client.ident(table)}"
        return client.query(con, sql.replace("{history}", target), params)
