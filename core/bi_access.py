"""BI access on PostgreSQL: a read-only role for the prediction tables and the marts, and table and
column COMMENTs from the registry so a BI tool shows what every table and column means.

Never on raw or user-level tables: those hold user ids (see core.purge.user_level_relations).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from core import audit
from core.registry import TABLES
from core.settings import ANALYTICS_SCHEMA, DBT_DIR, HISTORY_SCHEMA, PREDICTIONS_SCHEMA, RAW_SCHEMA
from core.warehouse import WarehouseClient

# The roles `spendwise grant-bi` gave access; the marts' dbt post-hook (macros/bi_roles.sql) grants
# SELECT on every mart to each of them after every build, so marts added or rebuilt later stay readable.
BI_ROLES_TABLE = "bi_roles"
MARTS_DIR = DBT_DIR / "models" / "marts"
# Schemas the role reads whole, tables published later included: the predictions and their history.
PUBLISHED_SCHEMAS = (PREDICTIONS_SCHEMA, HISTORY_SCHEMA)
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class BiAccessError(RuntimeError):
    """grant-bi cannot do what was asked (wrong warehouse, bad role name, missing privilege)."""


@dataclass(frozen=True)
class BiGrant:
    role: str
    created: bool
    login: bool
    prediction_tables: tuple[str, ...]  # in predictions (and, by the same grant, predictions_history)
    mart_tables: tuple[str, ...]
    default_privileges_for: tuple[str, ...]  # roles whose future tables in PUBLISHED_SCHEMAS the role may read


def mart_tables() -> list[str]:
    """The marts (dbt models under models/marts): aggregates without user ids, meant for BI."""
    return sorted(p.stem for p in MARTS_DIR.glob("*.sql"))


# --------------------------------------------------------------------------------------- comments


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_tables(client: WarehouseClient, con, schema: str, tables: Iterable[str]) -> int:
    """PostgreSQL: COMMENT ON each registered table of `schema` and its columns, from core/registry.py.

    Called by WarehouseClient.publish_tables inside the publish transaction. Only comments that differ
    from what is stored are written (COMMENT takes a lock that waits for other writers). Returns how
    many comments were written; tables the registry does not know are left alone.
    """
    if client.kind != "postgres" or schema != PREDICTIONS_SCHEMA:
        return 0
    written = 0
    for name in tables:
        spec = TABLES.get(name)
        if spec is None:
            continue
        relation = f"{client.ident(schema)}.{client.ident(name)}"
        stored = dict(client.fetch(
            con,
            "SELECT coalesce(a.attname, ''), d.description FROM pg_class c "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass "
            "AND d.objsubid = coalesce(a.attnum, 0) "
            "WHERE c.oid = to_regclass(%s) "
            "UNION ALL SELECT '', obj_description(to_regclass(%s), 'pg_class')",
            (f"{schema}.{name}", f"{schema}.{name}"),
        ))
        wanted = {"": f"{spec.grain[0].upper()}{spec.grain[1:]}. Published by the Dagster asset {spec.asset}."}
        columns = {a for a in stored if a}
        wanted.update({c.name: c.description for c in spec.published_columns if c.name in columns})
        for column, text in wanted.items():
            if stored.get(column) == text:
                continue
            target = f"TABLE {relation}" if not column else f"COLUMN {relation}.{client.ident(column)}"
            client.execute(con, f"COMMENT ON {target} IS {_literal(text)}")
            written += 1
    return written


# ------------------------------------------------------------------------------------------ grants


def _check_role_name(role: str) -> str:
    if not _ROLE_NAME.match(role or ""):
        raise BiAccessError(
            f"role name {role!r} is not allowed: use lower-case letters, digits and underscores, starting with a "
            "letter or underscore, at most 63 characters (e.g. bi_reader)"
        )
    if role.startswith("pg_") or role == "public":
        raise BiAccessError(f"role name {role!r} is reserved by PostgreSQL; choose another, e.g. bi_reader")
    return role


def grant_bi(client: WarehouseClient, role: str, *, login: bool = False, actor: str | None = None) -> BiGrant:
    """Give `role` read access to the prediction tables and the marts; idempotent, one transaction.

    The role is created NOLOGIN if absent (`login=True`: LOGIN, still without a password; set one
    outside Spendwise, e.g. `\\password ROLE` in psql). It gets USAGE on the predictions,
    predictions_history and analytics schemas, SELECT on every table of the first two and on every
    mart, default privileges so tables published there later are readable, and is recorded in ops.bi_roles so the
    marts' dbt post-hook grants SELECT after every build. Any privilege it holds on raw tables or
    on analytics relations with a `user_id` column (journeys, touch-level credit, staging views) is
    revoked. Recorded in the audit log.
    """
    from core.purge import user_level_relations

    role = _check_role_name(role)
    if client.kind != "postgres":
        raise BiAccessError(
            f"grant-bi works on a PostgreSQL warehouse only; this one is DuckDB ({client.url.redacted()}), which has "
            "no roles: a BI tool reads the file directly (read-only) or through `spendwise export`"
        )
    with client.write_transaction(audit.AUDIT_SCHEMA) as con:
        me = client.fetch(con, "SELECT current_user", ())[0][0]
        found = client.fetch(con, "SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
        if role == me or (found and found[0][0]):
            raise BiAccessError(
                f"role {role!r} is {'the warehouse connection role' if role == me else 'a superuser'}: a BI role must be "
                "a separate role without write rights; choose another name, e.g. bi_reader"
            )
        created = not found
        if created:
            _privileged(client, con, f"CREATE ROLE {client.ident(role)} {'LOGIN' if login else 'NOLOGIN'}", me)
        elif login and not found[0][1]:
            _privileged(client, con, f"ALTER ROLE {client.ident(role)} LOGIN", me)
        quoted = client.ident(role)
        for schema in (*PUBLISHED_SCHEMAS, ANALYTICS_SCHEMA):
            client.execute(con, f"CREATE SCHEMA IF NOT EXISTS {client.ident(schema)}")
            client.execute(con, f"GRANT USAGE ON SCHEMA {client.ident(schema)} TO {quoted}")
        published = ", ".join(client.ident(s) for s in PUBLISHED_SCHEMAS)
        client.execute(con, f"GRANT SELECT ON ALL TABLES IN SCHEMA {published} TO {quoted}")
        prediction_tables = [r[0] for r in client.fetch(
            con, "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (PREDICTIONS_SCHEMA,))]
        # Tables published later are created by the publishing role (the warehouse URL's user): its
        # default privileges make them readable. Owners of today's tables get the same, when they differ.
        owners = sorted({me, *(r[0] for r in client.fetch(
            con, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = ANY(%s)", (list(PUBLISHED_SCHEMAS),)))})
        for owner in owners:
            _privileged(client, con, f"ALTER DEFAULT PRIVILEGES FOR ROLE {client.ident(owner)} IN SCHEMA "
                                     f"{published} GRANT SELECT ON TABLES TO {quoted}", me)
        existing_marts = {r[0] for r in client.fetch(
            con, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (ANALYTICS_SCHEMA,))}
        marts = [m for m in mart_tables() if m in existing_marts]
        for mart in marts:
            client.execute(con, f"GRANT SELECT ON {client.ident(ANALYTICS_SCHEMA)}.{client.ident(mart)} TO {quoted}")
        for schema, relation in user_level_relations(client, con, views=True):
            client.execute(con, f"REVOKE ALL ON {client.ident(schema)}.{client.ident(relation)} FROM {quoted}")
        if client.fetch(con, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (RAW_SCHEMA,))[0][0]:
            client.execute(con, f"REVOKE ALL ON ALL TABLES IN SCHEMA {client.ident(RAW_SCHEMA)} FROM {quoted}")
            client.execute(con, f"REVOKE ALL ON SCHEMA {client.ident(RAW_SCHEMA)} FROM {quoted}")
        client.execute(con, f"CREATE TABLE IF NOT EXISTS {audit.AUDIT_SCHEMA}.{BI_ROLES_TABLE} "
                            "(role_name TEXT PRIMARY KEY, granted_at TIMESTAMP NOT NULL, login BOOLEAN NOT NULL)")
        client.fetch(
            con,
            f"INSERT INTO {audit.AUDIT_SCHEMA}.{BI_ROLES_TABLE} (role_name, granted_at, login) VALUES (%s, %s, %s) "
            "ON CONFLICT (role_name) DO UPDATE SET granted_at = excluded.granted_at, login = excluded.login RETURNING 1",
            (role, datetime.now(timezone.utc).replace(tzinfo=None), bool(login or (found and found[0][1]))),
        )
        audit.record_in(client, con, "grant_bi", actor=actor or audit.default_actor(), detail={
            "role": role, "role_created": created, "prediction_tables": len(prediction_tables), "marts": marts,
        })
    return BiGrant(role, created, bool(login or (found and found[0][1])), tuple(prediction_tables), tuple(marts),
                   tuple(owners))


def _privileged(client: WarehouseClient, con, statement: str, me: str) -> None:
    """A statement that needs CREATEROLE or membership in another role: a refusal says what is missing."""
    import psycopg2.errors

    try:
        client.execute(con, statement)
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise BiAccessError(
            f"the warehouse role {me!r} may not run `{statement.split(' TO ')[0]}`: {str(exc).strip()}. Run grant-bi "
            "with a warehouse URL whose user has CREATEROLE and owns (or is a member of the owner of) the "
            "predictions tables, e.g. the pipeline's own role"
        ) from exc
