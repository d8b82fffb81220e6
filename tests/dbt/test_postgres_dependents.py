"""dbt refreshes on a real PostgreSQL with BI users around: their views and grants on analytics.*
survive a refresh, a column change never drops their views silently, sessions reading the marts
never stall a refresh, and a lock held in an idle transaction fails it after the lock timeout with
a message naming that session. Real `dbt build`/`dbt run` subprocesses on a tiny demo data set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import pytest

from core.settings import DBT_DIR, WarehouseUrl
from ml.synthetic import generate_demo_data
from tests.conftest import load_demo

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DBT = str(Path(sys.executable).with_name("dbt"))
MART = "analytics.fct_channel_daily"
STAGING_VIEW = "analytics.stg_ads__performance_daily"


def connect(url: str, application_name: str = "spendwise-test", autocommit: bool = True):
    parsed = urlparse(url)
    con = psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username or "postgres",
                           password=parsed.password or "", dbname=parsed.path.lstrip("/"),
                           application_name=application_name)
    con.autocommit = autocommit
    return con


def one(url: str, sql: str, params: tuple = ()):
    con = connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params or None)  # no parameters: a literal % stays as written
            return cur.fetchone()[0]
    finally:
        con.close()


def run_dbt(url: str, tmp: Path, *args: str, lock_timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    if lock_timeout is not None:
        env["SPENDWISE_LOCK_TIMEOUT_SECONDS"] = str(lock_timeout)
    return subprocess.run(
        [DBT, *args, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=600,
    )


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"dbt failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def warehouse(pg_module_url, tmp_path_factory):
    """A PostgreSQL warehouse with a tiny demo loaded and every model built once."""
    tmp = tmp_path_factory.mktemp("dbt_pg_dependents")
    load_demo(pg_module_url, generate_demo_data(scale=0.02, seed=11, days=120))
    assert_ok(run_dbt(pg_module_url, tmp, "build"))
    return {"url": pg_module_url, "tmp": tmp}


@pytest.fixture
def bi(warehouse):
    """A BI role with SELECT on a mart and a staging view, and views of its own on both."""
    url, role = warehouse["url"], f"spendwise_bi_{uuid.uuid4().hex[:8]}"
    con = connect(url)
    with con.cursor() as cur:
        cur.execute(f"CREATE ROLE {role}")
        cur.execute("CREATE SCHEMA IF NOT EXISTS bi")
        cur.execute(f"CREATE VIEW bi.channel_spend AS SELECT channel, sum(spend) AS spend, count(*) AS days "
                    f"FROM {MART} GROUP BY channel")
        cur.execute(f"CREATE VIEW bi.ad_rows AS SELECT date_day, channel, spend FROM {STAGING_VIEW}")
        cur.execute(f"GRANT USAGE ON SCHEMA analytics, bi TO {role}")
        cur.execute(f"GRANT SELECT ON {MART}, {STAGING_VIEW}, bi.channel_spend, bi.ad_rows TO {role}")
    try:
        yield {**warehouse, "role": role}
    finally:
        with con.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS bi CASCADE")
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE {role}")
        con.close()


def can_select(url: str, role: str, relation: str) -> bool:
    return one(url, "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, relation))


def test_views_and_grants_of_bi_users_survive_a_refresh(bi):
    url, role, tmp = bi["url"], bi["role"], bi["tmp"]
    oids = {rel: one(url, "SELECT %s::regclass::oid", (rel,)) for rel in (MART, STAGING_VIEW)}
    rows_before = one(url, f"SELECT count(*) FROM {MART}")
    # New raw data with a shorter history: the refresh must really replace the mart's rows.
    load_demo(url, generate_demo_data(scale=0.02, seed=12, days=100))
    assert_ok(run_dbt(url, tmp, "build"))

    rows_after = one(url, f"SELECT count(*) FROM {MART}")
    assert rows_after != rows_before and rows_after == one(url, f"SELECT count(DISTINCT (date, channel)) FROM {MART}")
    for relation, oid in oids.items():  # the same relations, not look-alikes
        assert one(url, "SELECT %s::regclass::oid", (relation,)) == oid, relation
    for relation in (MART, STAGING_VIEW, "bi.channel_spend", "bi.ad_rows"):
        assert can_select(url, role, relation), relation
    con = connect(url, "bi-dashboard")
    try:
        with con.cursor() as cur:
            cur.execute(f"SET ROLE {role}")
            cur.execute("SELECT sum(days) FROM bi.channel_spend")
            assert cur.fetchone()[0] == rows_after
            cur.execute("SELECT count(*) FROM bi.ad_rows")
            assert cur.fetchone()[0] == one(url, "SELECT count(*) FROM raw.ad_performance_daily")
    finally:
        con.close()


def test_a_column_change_never_drops_users_views_and_keeps_grants(bi):
    url, role, tmp = bi["url"], bi["role"], bi["tmp"]
    # The deployed mart has a column the model no longer makes: the next refresh must rebuild it.
    one(url, f"ALTER TABLE {MART} ADD COLUMN legacy_flag integer; SELECT 1")
    refused = run_dbt(url, tmp, "run", "--select", "fct_channel_daily")
    assert refused.returncode != 0
    output = " ".join(refused.stdout.split())
    assert "analytics\".\"fct_channel_daily\" must be rebuilt because its columns changed" in output, output[-3000:]
    assert "legacy_flag integer" in output and "bi.channel_spend (owner" in output
    assert "nothing was changed" in output
    assert one(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fct_channel_daily' "
                    "AND column_name = 'legacy_flag'") == 1
    assert one(url, "SELECT to_regclass('bi.channel_spend') IS NOT NULL")
    assert one(url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'fct_channel_daily__dbt_%'") == 0

    # Once the user's view is gone the mart is rebuilt with the model's columns and keeps its grants.
    old_oid = one(url, "SELECT %s::regclass::oid", (MART,))
    one(url, "DROP VIEW bi.channel_spend; SELECT 1")
    assert_ok(run_dbt(url, tmp, "run", "--select", "fct_channel_daily"))
    assert one(url, "SELECT %s::regclass::oid", (MART,)) != old_oid
    assert one(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fct_channel_daily' "
                    "AND column_name = 'legacy_flag'") == 0
    assert can_select(url, role, MART)
    assert one(url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'fct_channel_daily__dbt_%'") == 0


def dashboard_session(url: str, *relations: str):
    """A BI tool that read `relations` in a transaction it leaves open (ACCESS SHARE locks), and its pid."""
    con = connect(url, "bi-dashboard", autocommit=False)
    with con.cursor() as cur:
        for relation in relations:
            cur.execute(f"SELECT count(*) FROM {relation}")
        cur.execute("SELECT pg_backend_pid()")
        return con, cur.fetchone()[0]


def test_readers_never_stall_a_refresh_and_a_held_lock_fails_it_naming_the_session(bi):
    url, tmp = bi["url"], bi["tmp"]

    # Dashboards idle in transactions on the mart and the staging view do not hold the refresh up.
    dashboard, _ = dashboard_session(url, MART, STAGING_VIEW)
    try:
        started = time.monotonic()
        assert_ok(run_dbt(url, tmp, "run", "--select", "fct_channel_daily", "stg_ads__performance_daily",
                          lock_timeout=2))
        refreshed_in = time.monotonic() - started
    finally:
        dashboard.rollback()
        dashboard.close()

    # An index built in a transaction left open holds a SHARE lock, which row replacement waits for.
    admin = connect(url, "bi-maintenance", autocommit=False)
    with admin.cursor() as cur:
        cur.execute(f"CREATE INDEX fct_channel_daily_by_date ON {MART} (date)")
        cur.execute("SELECT pg_backend_pid()")
        admin_pid = cur.fetchone()[0]
    try:
        started = time.monotonic()
        blocked = run_dbt(url, tmp, "run", "--select", "fct_channel_daily", lock_timeout=2)
        # Bounded: the wait adds about the lock timeout, not the minutes the session stays open.
        assert time.monotonic() - started < refreshed_in + 30
    finally:
        admin.rollback()
        admin.close()
    assert blocked.returncode != 0
    output = " ".join(blocked.stdout.split())
    assert "fct_channel_daily\": gave up after waiting 2s for the ROW EXCLUSIVE lock it needs" in output, output[-3000:]
    assert f"pid {admin_pid} (application_name 'bi-maintenance'" in output
    assert "state 'idle in transaction'" in output and "holds ShareLock" in output
    assert "pg_terminate_backend" in output
    assert_ok(run_dbt(url, tmp, "run", "--select", "fct_channel_daily", lock_timeout=2))

    # A staging view whose deployed definition differs from the model must be replaced, which needs an
    # exclusive lock: a dashboard idle on it makes the refresh fail naming it; once it is gone the view is
    # replaced in place (same relation, users' views on it kept).
    view_oid = one(url, "SELECT %s::regclass::oid", (STAGING_VIEW,))
    definition = one(url, "SELECT pg_get_viewdef(%s::regclass)", (STAGING_VIEW,)).rstrip().rstrip(";")
    one(url, f"CREATE OR REPLACE VIEW {STAGING_VIEW} AS SELECT * FROM ({definition}) AS drifted; SELECT 1")
    dashboard, dashboard_pid = dashboard_session(url, STAGING_VIEW)
    try:
        blocked = run_dbt(url, tmp, "run", "--select", "stg_ads__performance_daily", lock_timeout=2)
    finally:
        dashboard.rollback()
        dashboard.close()
    assert blocked.returncode != 0
    output = " ".join(blocked.stdout.split())
    assert "stg_ads__performance_daily\": gave up after waiting 2s for the ACCESS EXCLUSIVE lock" in output, \
        output[-3000:]
    assert f"pid {dashboard_pid} (application_name 'bi-dashboard'" in output and "AccessShareLock" in output
    assert_ok(run_dbt(url, tmp, "run", "--select", "stg_ads__performance_daily", lock_timeout=2))
    assert one(url, "SELECT %s::regclass::oid", (STAGING_VIEW,)) == view_oid
    assert "drifted" not in one(url, "SELECT pg_get_viewdef(%s::regclass)", (STAGING_VIEW,))
    assert one(url, "SELECT count(*) FROM bi.ad_rows") == one(url, "SELECT count(*) FROM raw.ad_performance_daily")
