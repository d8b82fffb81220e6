"""The append-only audit log `ops.audit_log`: who loaded, merged, purged, granted or exported what, and when.

Rows carry counts, table names and file names only, never personal data (no user ids, no tokens).
"""

from __future__ import annotations

import getpass
import json
import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from core.warehouse import WarehouseClient

AUDIT_SCHEMA = "ops"
AUDIT_TABLE = "audit_log"
AUDIT_QUALIFIED = f"{AUDIT_SCHEMA}.{AUDIT_TABLE}"

# Keys that would carry a person's data, a secret or a free-form value nobody reviewed. `record`
# refuses them so that a caller cannot put ids in the log by accident (a purge logs counts only).
_FORBIDDEN_KEYS = {"id", "ids", "user", "users", "person", "email", "emails", "ip", "ip_address", "token", "phone"}
_FORBIDDEN_PARTS = ("user_id", "email", "password", "secret", "token_value")
_MAX_TEXT = 500

_DDL = (
    f"CREATE TABLE IF NOT EXISTS {AUDIT_SCHEMA}.{AUDIT_TABLE} ("
    "id TEXT PRIMARY KEY, recorded_at TIMESTAMP NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL)"
)
# PostgreSQL: a trigger refuses UPDATE, DELETE and TRUNCATE for every role, the table's owner included
# (a REVOKE would not bind the owner, and the pipeline's own role owns the table). Only a superuser
# or the owner dropping the trigger on purpose can rewrite history, and that is itself visible DDL.
_PG_GUARD = f"""
CREATE OR REPLACE FUNCTION {AUDIT_SCHEMA}.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ops.audit_log is append-only: % is not allowed', TG_OP;
END $$;
DROP TRIGGER IF EXISTS audit_log_append_only ON {AUDIT_SCHEMA}.{AUDIT_TABLE};
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {AUDIT_SCHEMA}.{AUDIT_TABLE}
  FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_SCHEMA}.audit_log_append_only();
"""


def default_actor(channel: str = "cli") -> str:
    """`cli:<operating-system user>`: who ran a command on this machine."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in a bare container: still say where it came from
        name = "unknown"
    return f"{channel}:{name}"


def _check_value(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _check_value(f"{key}.{k}", v) for k, v in _checked_items(value, key)}
    if isinstance(value, (list, tuple)):
        return [_check_value(f"{key}[]", v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit detail {key!r}: {value} is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise ValueError(f"audit detail {key!r}: text longer than {_MAX_TEXT} characters")
        return value
    raise TypeError(f"audit detail {key!r}: {type(value).__name__} is not allowed (numbers, text, lists, mappings)")


def _checked_items(detail: Mapping[str, Any], where: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in detail.items():
        lowered = str(key).lower()
        if lowered in _FORBIDDEN_KEYS or any(part in lowered for part in _FORBIDDEN_PARTS):
            raise ValueError(
                f"audit detail key {where + '.' if where else ''}{key!r} looks like personal data or a secret; "
                "the audit log holds counts, table names and file names only"
            )
        items.append((str(key), value))
    return items


def _serialise(detail: Mapping[str, Any] | None) -> str:
    checked = {k: _check_value(k, v) for k, v in _checked_items(detail or {})}
    return json.dumps(checked, sort_keys=True, separators=(",", ":"))


def ensure_audit_table(client: WarehouseClient, con) -> None:
    """Create `ops.audit_log` (and its append-only trigger on PostgreSQL) if absent, on an open connection."""
    if client.kind == "duckdb":
        client.execute(con, f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
        client.execute(con, _DDL)
        return
    trigger_sql = ("SELECT count(*) FROM pg_trigger "
                   "WHERE tgname = 'audit_log_append_only' AND tgrelid = to_regclass(%s)")
    if client.fetch(con, trigger_sql, (AUDIT_QUALIFIED,))[0][0]:
        return
    # Two first writers at once would race on CREATE TABLE IF NOT EXISTS (a unique violation in
    # pg_type); the transaction-scoped advisory lock serialises them.
    client.fetch(con, "SELECT pg_advisory_xact_lock(hashtext('spendwise.ops.audit_log'))", ())
    client.execute(con, f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
    client.execute(con, _DDL)
    if not client.fetch(con, trigger_sql, (AUDIT_QUALIFIED,))[0][0]:
        client.execute(con, _PG_GUARD)


def record_in(client: WarehouseClient, con, action: str, *, actor: str,
              detail: Mapping[str, Any] | None = None) -> None:
    """Append one audit row inside the caller's open transaction (so it commits or rolls back with it)."""
    if not action or not action.strip():
        raise ValueError("audit action must be a non-empty name such as 'load' or 'purge'")
    if not actor or not actor.strip():
        raise ValueError("audit actor must say who acted, e.g. 'cli:alice' or 'token:dashboard'")
    payload = _serialise(detail)
    ensure_audit_table(client, con)
    at = datetime.now(timezone.utc).replace(tzinfo=None)
    p = client.placeholder
    client.fetch(
        con,
        f"INSERT INTO {AUDIT_SCHEMA}.{AUDIT_TABLE} (id, recorded_at, action, actor, detail) "
        f"VALUES ({p}, {p}, {p}, {p}, {p}) RETURNING id",
        (uuid.uuid4().hex, at, action.strip(), actor.strip(), payload),
    )


def record(client: WarehouseClient, action: str, *, actor: str, detail: Mapping[str, Any] | None = None) -> None:
    """Append one row to `ops.audit_log` in its own transaction: UTC time, action, actor, detail as JSON.

    `detail` holds counts, table names and file names only; keys that look like personal data or
    secrets (user_id, ids, email, token, ...) are refused with ValueError before anything is written.
    """
    _serialise(detail)  # refuse a bad detail before a connection is opened or a schema created
    with client.write_transaction(AUDIT_SCHEMA) as con:
        record_in(client, con, action, actor=actor, detail=detail)


def entries(client: WarehouseClient, *, action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit rows first (at most `limit`), detail parsed; empty when nothing was recorded yet."""
    if not client.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return []
    p = client.placeholder
    where, params = (f" WHERE action = {p}", (action,)) if action else ("", ())
    with client.connect(read_only=True) as con:
        rows = client.fetch(
            con,
            f"SELECT id, recorded_at, action, actor, detail FROM {AUDIT_SCHEMA}.{AUDIT_TABLE}{where} "
            f"ORDER BY recorded_at DESC, id LIMIT {int(limit):d}",
            params,
        )
    return [
        {"id": r[0], "at": r[1], "action": r[2], "actor": r[3], "detail": json.loads(r[4])} for r in rows
    ]
