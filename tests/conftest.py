"""Shared fixtures: the dbt manifest, temp DuckDB files, fresh PostgreSQL databases, demo data."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Tests must never write into the developer's own warehouse or Dagster instance.
os.environ.pop("SPENDWISE_WAREHOUSE_URL", None)
# Every refresh a test starts as a command (and the schedule's runs) takes the light run config; the
# in-process ones pass the same file's settings (LIGHT_CONFIG). A test of the defaults removes it.
LIGHT_RUN_CONFIG_FILE = Path(__file__).with_name("light_run_config.yaml")
os.environ["SPENDWISE_RUN_CONFIG"] = str(LIGHT_RUN_CONFIG_FILE)

PG_ADMIN_URL = os.environ.get("SPENDWISE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_connection():
    import psycopg2

    parsed = urlparse(PG_ADMIN_URL)
    con = psycopg2.connect(
        host=parsed.hostname, port=parsed.port or 5432, user=parsed.username or "postgres",
        password=parsed.password or "", dbname=parsed.path.lstrip("/") or "postgres", connect_timeout=5,
    )
    con.autocommit = True
    return con


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server; required in CI, skipped elsewhere when down."""
    try:
        _admin_connection().close()
    except Exception as exc:
        message = (
            f"PostgreSQL at {urlparse(PG_ADMIN_URL).hostname}:{urlparse(PG_ADMIN_URL).port or 5432} "
            f"is unreachable ({exc.__class__.__name__}: {str(exc).strip()[:200]})"
        )
        if IN_CI:
            pytest.fail(message + " -- the PostgreSQL tests are required in CI")
        pytest.skip(
            message + ". To run these tests start PostgreSQL or point SPENDWISE_TEST_PG_URL at a server "
            "where the user may CREATE DATABASE."
        )
    return PG_ADMIN_URL


def _create_database(prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    con = _admin_connection()
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    con.close()
    return name, urlparse(PG_ADMIN_URL)._replace(path=f"/{name}").geturl()


def _drop_database(name: str) -> None:
    con = _admin_connection()
    with con.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    con.close()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name, url = _create_database("spendwise_test")
    try:
        yield url
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def pg_module_url(postgres_server) -> str:
    """A fresh PostgreSQL database shared by the tests of one module."""
    name, url = _create_database("spendwise_test")
    try:
        yield url
    finally:
        _drop_database(name)


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", "postgres"])
def engine_url(request, tmp_path) -> str:
    """A fresh, empty warehouse on each engine in turn: a DuckDB file in tmp_path, then a new PostgreSQL
    database (dropped after the test)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def dbt_manifest(tmp_path_factory) -> str:
    """The dbt manifest the Dagster definitions load (what `make manifest` prepares).

    Parsed once per test session. Under pytest-xdist (`make test` runs two workers) the workers
    share one parse: the first takes a lock and parses, the others wait for it and reuse the file,
    so no worker reads a manifest that another one is rewriting."""
    import fcntl

    from orchestration.dbt import prepare_manifest

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return str(prepare_manifest(force=True))
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this session
    with open(shared / "dbt_manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "dbt_manifest.parsed"
        manifest = prepare_manifest(force=not done.exists())
        done.touch()
    return str(manifest)


@pytest.fixture(scope="session")
def demo_data():
    """A small but complete demo data set: two years daily, ~20k touchpoints."""
    from ml.synthetic import generate_demo_data

    return generate_demo_data(scale=0.1, seed=7)


def load_demo(url: str, data) -> None:
    """Write the demo set's raw and ground-truth tables into the warehouse at `url`."""
    from core.raw_contract import RAW_TABLES, replace_raw_tables
    from assets.resources import Warehouse

    tables = data.tables()
    replace_raw_tables(
        Warehouse(url=url),
        {n: tables[n] for n in RAW_TABLES},
        extra={n: df for n, df in tables.items() if n not in RAW_TABLES},
    )


# The files that take longest (worker-seconds from `make test`'s durations on 2026-11-30, longest first) start
# first, so that under pytest-xdist (`--dist loadfile`, one file per worker at a time) no long file is left to
# run alone at the end. Order only: every test still runs. xdist would otherwise reorder the files by their
# number of tests, which puts the long one- and two-test files last: `make test` passes --no-loadscope-reorder.
LONG_FILES_FIRST = (
    "tests/orchestration/test_pipeline_corruptions.py",  # ~520 s: a refresh per corruption
    "tests/orchestration/test_spark_graph.py",  # ~400 s: two JVMs and a refresh on Spark
    "tests/orchestration/test_pipeline.py",  # ~350 s: DuckDB and PostgreSQL refreshes
    "tests/dbt/test_incremental.py",  # ~330 s: 12 dbt runs per engine
    "tests/dbt/test_spark.py",  # ~250 s: dbt build on Spark
    "tests/dbt/test_attribution_sql.py",  # ~210 s
    "tests/orchestration/test_runs_and_locks.py",  # ~190 s
    "tests/orchestration/test_cli_run.py",  # ~160 s: `spendwise run` on the defaults
    "tests/orchestration/test_history_e2e.py",  # ~160 s: two refreshes
    "tests/orchestration/test_refresh_outcome.py",
    "tests/dbt/test_postgres_dependents.py",
    "tests/dbt/test_finite_check.py",
    "tests/dbt/test_channel_sources.py",
    "tests/dbt/test_text_ids.py",
    "tests/orchestration/test_webhook_refresh.py",
    "tests/service/test_fuzz.py",
    "tests/service/test_readers_vs_refresh.py",
    "tests/core/test_purge.py",
    "tests/orchestration/test_own_data.py",
    "tests/ml/test_forecasting.py",
    "tests/orchestration/test_optional_columns.py",
    "tests/ml/test_mmm.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONG_FILES_FIRST)}

    def key(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the order inside a file and among the other files is kept
