"""Deleting a person's data (GDPR/CCPA) and raw user-level retention.

User-level relations are found, not listed: every table in raw, analytics, predictions(_history) with a
`user_id` column (today raw.touchpoints, raw.conversions and the dbt tables int_journeys and
touchpoint_credit; the staging views over raw need nothing). Aggregates (marts, predictions) hold no
user ids and reflect a deletion at the next refresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core import audit
from core.settings import ANALYTICS_SCHEMA, HISTORY_SCHEMA, PREDICTIONS_SCHEMA, RAW_SCHEMA
from core.warehouse import WarehouseClient

USER_COLUMN = "user_id"
TIME_COLUMN = "occurred_at"  # raw.touchpoints and raw.conversions: when the touch or sale happened (UTC)
SCHEMAS_WITH_USER_DATA = (RAW_SCHEMA, ANALYTICS_SCHEMA, PREDICTIONS_SCHEMA, HISTORY_SCHEMA)


@dataclass(frozen=True)
class PurgeReport:
    """Rows deleted per table (`schema.table`), zeros included, and how many ids were asked for."""

    ids: int
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def user_level_relations(client: WarehouseClient, con, *, views: bool = False,
                         time_column: str | None = None) -> list[tuple[str, str]]:
    """(schema, name) of every table (and view, with `views`) holding a `user_id` column, sorted.

    `time_column`: only those that also have that column (retention works on raw.occurred_at).
    """
    p = client.placeholder
    kinds = "('BASE TABLE', 'VIEW')" if views else "('BASE TABLE')"
    schemas = ", ".join(p for _ in SCHEMAS_WITH_USER_DATA)
    sql = (
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        f"WHERE c.column_name = {p} AND c.table_schema IN ({schemas}) AND t.table_type IN {kinds}"
    )
    params: list = [USER_COLUMN, *SCHEMAS_WITH_USER_DATA]
    if time_column:
        sql += (f" AND EXISTS (SELECT 1 FROM information_schema.columns o WHERE o.table_schema = c.table_schema "
                f"AND o.table_name = c.table_name AND o.column_name = {p})")
        params.append(time_column)
    rows = client.fetch(con, sql + " ORDER BY 1, 2", params)
    return [(str(s), str(t)) for s, t in rows]


def read_ids(path: str | Path) -> list[str]:
    """One user id per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read the id file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); write one user id per line") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _clean_ids(ids: Iterable[str]) -> list[str]:
    cleaned = sorted({str(i).strip() for i in ids if str(i).strip()})
    if not cleaned:
        raise ValueError("no user id given: pass an id, or --file with one id per line")
    return cleaned


def _delete(client: WarehouseClient, con, sql: str, params: list) -> int:
    """Run a DELETE and return how many rows it removed."""
    if client.kind == "duckdb":
        return int(con.execute(sql, params).fetchone()[0])
    with con.cursor() as cur:
        cur.execute(sql, tuple(params))
        return int(cur.rowcount)


def purge_users(client: WarehouseClient, ids: Iterable[str], *, actor: str) -> PurgeReport:
    """Delete every row of these user ids from every user-level table, in ONE transaction.

    Unknown ids delete nothing (the report says zeros). The audit row, written in the same
    transaction, holds the number of ids and the counts per table, never the ids.
    """
    wanted = _clean_ids(ids)
    deleted: dict[str, int] = {}
    with client.write_transaction(RAW_SCHEMA) as con:
        for schema, table in user_level_relations(client, con):
            target = f"{client.ident(schema)}.{client.ident(table)}"
            if client.kind == "duckdb":
                sql = f"DELETE FROM {target} WHERE list_contains(?, CAST({USER_COLUMN} AS VARCHAR))"
            else:
                sql = f"DELETE FROM {target} WHERE CAST({USER_COLUMN} AS TEXT) = ANY(%s::text[])"
            deleted[f"{schema}.{table}"] = _delete(client, con, sql, [wanted])
        audit.record_in(client, con, "purge_user", actor=actor,
                        detail={"persons_requested": len(wanted), "rows_deleted": deleted})
    return PurgeReport(len(wanted), deleted)


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The oldest moment (naive UTC, as raw timestamps are stored) a raw user-level row may hold."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention must be a whole number of days above 0, not {days!r}")
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    return now - timedelta(days=days)


def enforce_retention(client: WarehouseClient, days: int, *, actor: str,
                      now: datetime | None = None) -> PurgeReport:
    """Delete raw user-level rows (raw tables with user_id and occurred_at) older than `days` days.

    Derived tables (journeys, touch-level credit) are rebuilt from raw by the next refresh. The
    pipeline applies the same rule before every dbt build (macros/raw_retention.sql).
    """
    cutoff = retention_cutoff(days, now)
    deleted: dict[str, int] = {}
    with client.write_transaction(RAW_SCHEMA) as con:
        for schema, table in user_level_relations(client, con, time_column=TIME_COLUMN):
            if schema != RAW_SCHEMA:
                continue
            target = f"{client.ident(schema)}.{client.ident(table)}"
            deleted[f"{schema}.{table}"] = _delete(
                client, con, f"DELETE FROM {target} WHERE {TIME_COLUMN} < {client.placeholder}", [cutoff])
        audit.record_in(client, con, "raw_retention", actor=actor,
                        detail={"days": days, "cutoff": cutoff.isoformat(sep=" ", timespec="seconds"),
                                "rows_deleted": deleted})
    return PurgeReport(0, deleted)
