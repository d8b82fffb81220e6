"""BI access on a real PostgreSQL: `grant-bi` gives a role read access to predictions and the marts (also
after republishing and rebuilding), never write access, never raw or user-level tables; the registry's
descriptions and dbt's docs are COMMENTs a BI tool shows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import psycopg2
import psycopg2.errors
import pytest

from core import audit
from core.bi_access import BiAccessError, comment_tables, grant_bi, mart_tables
from core.registry import TABLES
from core.settings import DBT_DIR, WarehouseUrl
from core.warehouse import WarehouseClient
from tests.conftest import load_demo

DBT = str(Path(sys.executable).with_name("dbt"))
TABLE = "channel_attribution"


def _frame(extra: bool = False) -> pd.DataFrame:
    spec = TABLES[TABLE]
    row = {c.name: ("search" if c.type == "text" else 0.5) for c in spec.columns}
    df = pd.DataFrame([row, {**row, "channel": "social"}])
    return df.assign(note="a column that changes the table's shape") if extra else df


def _connect(url: str):
    parsed = urlparse(url)
    con = psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username or "postgres",
                           password=parsed.password or "", dbname=parsed.path.lstrip("/"))
    con.autocommit = True
    return con


def _as_role(url: str, role: str, sql: str):
    """Run `sql` with the privileges of `role` (SET ROLE, so a NOLOGIN role needs no password)."""
    con = _connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        con.close()


@pytest.fixture
def role(pg_url):
    name = f"bi_test_{uuid.uuid4().hex[:8]}"
    yield name
    con = _connect(pg_url)  # roles are cluster-wide: drop it, and what it was granted in this database
    with con.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        if cur.fetchone():
            cur.execute(f'DROP OWNED BY "{name}"')
            cur.execute(f'DROP ROLE "{name}"')
    con.close()


def _grant_from_cli(url: str, role: str) -> str:
    result = subprocess.run([sys.executable, "-m", "orchestration.cli", "grant-bi", role], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "SPENDWISE_WAREHOUSE_URL": url})
    assert result.returncode == 0, result.stderr
    return result.stdout


def _dbt_run(url: str, tmp: Path, *args: str) -> None:
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    result = subprocess.run(
        [DBT, "run", *args, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"dbt failed:\n{result.stdout[-5000:]}\n{result.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.postgres
def test_the_bi_role_reads_predictions_and_marts_after_republishing_and_nothing_else(pg_url, role, tmp_path):
    from ml.synthetic import generate_demo_data

    client = WarehouseClient(pg_url)
    load_demo(pg_url, generate_demo_data(scale=0.02, days=90, seed=3))
    _dbt_run(pg_url, tmp_path, "--select", "+marts", "+touchpoint_credit")
    client.publish(_frame(), TABLE, run_id="r1")

    first = grant_bi(client, role)
    again = _grant_from_cli(pg_url, role)  # idempotent: nothing fails, nothing doubles
    assert "already existed, NOLOGIN" in again and "SELECT on 6 marts" in again
    assert first.created and not first.login
    assert TABLE in first.prediction_tables and set(first.mart_tables) == set(mart_tables())
    assert "fct_channel_daily" in first.mart_tables and "int_journeys" not in first.mart_tables
    assert _as_role(pg_url, role, "SELECT rolcanlogin FROM pg_roles WHERE rolname = current_user") == [(False,)]

    # Republished: same shape (rows replaced in place), a new shape (a new table swapped in), a new table;
    # and the marts rebuilt from scratch by dbt (new tables): the role still reads all of them.
    client.publish(_frame(), TABLE, run_id="r2")
    client.publish(_frame(extra=True), TABLE, run_id="r3")
    client.publish(_frame(), "bi_probe_new_table", run_id="r3")
    _dbt_run(pg_url, tmp_path, "--select", "marts", "--full-refresh")
    assert _as_role(pg_url, role, f"SELECT DISTINCT run_id FROM predictions.{TABLE}") == [("r3",)]
    assert _as_role(pg_url, role, "SELECT count(*) FROM predictions.bi_probe_new_table") == [(2,)]
    history = _as_role(pg_url, role, f"SELECT DISTINCT run_id FROM predictions_history.{TABLE} ORDER BY 1")
    assert history == [("r1",), ("r2",), ("r3",)]
    # A history table created after the grant is readable too (default privileges in predictions_history).
    assert _as_role(pg_url, role, "SELECT count(*) FROM predictions_history.bi_probe_new_table") == [(2,)]
    for mart in mart_tables():
        assert _as_role(pg_url, role, f"SELECT count(*) FROM analytics.{mart}")[0][0] >= 0

    denied = [
        "SELECT * FROM raw.touchpoints LIMIT 1",
        "SELECT * FROM raw.conversions LIMIT 1",
        "SELECT * FROM analytics.int_journeys LIMIT 1",
        "SELECT * FROM analytics.touchpoint_credit LIMIT 1",
        "SELECT * FROM analytics.stg_events__touchpoints LIMIT 1",  # a view over raw
        "SELECT * FROM ops.audit_log LIMIT 1",
        f"INSERT INTO predictions.{TABLE} (channel) VALUES ('x')",
        f"DELETE FROM predictions.{TABLE}",
        "UPDATE analytics.fct_channel_daily SET channel = 'x'",
        "CREATE TABLE predictions.by_bi (x int)",
    ]
    for statement in denied:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            _as_role(pg_url, role, statement)

    # \d+ shows these: registry descriptions on the prediction tables, dbt's on the marts.
    def description(sql: str) -> str | None:
        return client.read_sql(sql)["d"].iloc[0]

    spec = TABLES[TABLE]
    assert description(f"SELECT obj_description('predictions.{TABLE}'::regclass, 'pg_class') AS d").startswith(
        spec.grain[0].upper() + spec.grain[1:])
    column = spec.columns[-1]
    position = client.read_sql(
        f"SELECT attnum AS n FROM pg_attribute WHERE attrelid = 'predictions.{TABLE}'::regclass "
        f"AND attname = '{column.name}'")["n"].iloc[0]
    assert description(f"SELECT col_description('predictions.{TABLE}'::regclass, {position}) AS d") == column.description
    assert "campaign" in description("SELECT obj_description('analytics.fct_campaign_daily'::regclass, 'pg_class') AS d")
    assert description("SELECT col_description('analytics.fct_campaign_daily'::regclass, "
                       "(SELECT attnum FROM pg_attribute WHERE attrelid = 'analytics.fct_campaign_daily'::regclass "
                       "AND attname = 'ctr')) AS d").startswith("clicks / impressions")

    grants = audit.entries(client, action="grant_bi")
    assert len(grants) == 2 and grants[-1]["detail"]["role"] == role and grants[-1]["detail"]["role_created"]


def test_comments_are_written_once_and_only_for_registered_prediction_tables(pg_url):
    client = WarehouseClient(pg_url)
    client.publish(_frame(), TABLE, run_id="r1")
    client.publish(_frame(), "not_registered", run_id="r1")
    with client.write_transaction("predictions") as con:
        assert comment_tables(client, con, "predictions", [TABLE]) == 0  # publish wrote them already
        assert comment_tables(client, con, "predictions", ["not_registered"]) == 0
        assert comment_tables(client, con, "raw", [TABLE]) == 0


def test_bad_requests_are_refused_with_what_to_do(pg_url, tmp_path):
    duck = WarehouseClient(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(BiAccessError, match="PostgreSQL warehouse only"):
        grant_bi(duck, "bi_reader")
    client = WarehouseClient(pg_url)
    for bad in ("BI Reader", "x; DROP TABLE y", "", "pg_monitor"):
        with pytest.raises(BiAccessError, match="not allowed|reserved"):
            grant_bi(client, bad)
    me = client.read_sql("SELECT current_user AS u")["u"].iloc[0]
    with pytest.raises(BiAccessError, match="separate role"):
        grant_bi(client, me)
    assert audit.entries(client) == []


def test_grant_bi_cli_on_duckdb_says_it_needs_postgresql(tmp_path, monkeypatch, capsys):
    from core.settings import get_settings
    from orchestration.cli import main

    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    get_settings.cache_clear()
    try:
        assert main(["grant-bi", "bi_reader"]) == 2
    finally:
        get_settings.cache_clear()
    assert "PostgreSQL warehouse only" in capsys.readouterr().err
