"""The whole Dagster graph on Apache Spark (local mode) with a PostgreSQL serving database, end to end, the
way a user runs it: `spendwise refresh` and `spendwise status` as commands, configured by their environment.

The demo's raw tables are written into Spark, then `spendwise refresh` runs in a subprocess with
SPENDWISE_WAREHOUSE_URL=spark://..., SPENDWISE_SERVING_URL and DAGSTER_HOME set (in-process executor: dbt
builds the marts on Spark in its own process, the Python assets read them through one kept Spark session and
publish to the serving database), and `spendwise status` after it. Then: the run recorded in DAGSTER_HOME
succeeded and every check passed, the commands' summaries give the same row counts as Spark and the serving
database, every registry prediction table and its history are in the serving database, the attribution
shares (deterministic) equal those of a DuckDB run on the same raw data, and real HTTP requests to the
service read a table from the serving database and the raw tables' age from Spark.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, instance_for_test
from prometheus_client.parser import text_string_to_metric_families

from assets.attribution import ASSET_NAMES as ATTRIBUTION_ASSETS
from core import registry
from core.raw_contract import RAW_TABLES
from core.settings import HISTORY_SCHEMA, REPO_ROOT, SERVING_URL_ENV, Settings, WarehouseUrl, parse_serving_url
from core.warehouse import WarehouseClient
from orchestration.schedules import REFRESH_JOB_NAME
from service.metrics import RAW_TIME_COLUMNS
from tests.conftest import IN_CI, LIGHT_RUN_CONFIG_FILE, load_demo
from tests.orchestration.test_pipeline import DEMO_MAY_WARN, LIGHT_CONFIG

try:
    import pyspark  # noqa: F401
except ImportError:
    if IN_CI:  # `make test` installs requirements-spark.txt; there a missing pyspark is a failure
        raise
    pytest.skip("pyspark is not installed: `make test` installs it from requirements-spark.txt",
                allow_module_level=True)
pytestmark = pytest.mark.slow

SHARE_RTOL = 1e-9


def _refresh(url: str, charts_dir, selection=None):
    from orchestration.definitions import build_definitions

    defs = build_definitions(url, charts_dir=str(charts_dir))
    job = defs.resolve_job_def(REFRESH_JOB_NAME)
    keys = None
    if selection is not None:
        keys = list(selection.resolve(defs.resolve_asset_graph()))
    with instance_for_test() as instance:
        started = time.monotonic()
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=LIGHT_CONFIG,
                                        asset_selection=keys)
        return result, time.monotonic() - started


# `spendwise <command>` as the `spendwise` script runs it (orchestration.cli.main), plus one line on stderr:
# whether the process still keeps a Spark session once the command is done. The refresh summary reads the
# Spark tables' files, never a session, so a session still kept is one the run's end failed to stop.
COMMAND_THEN_SESSION_PROBE = """
import sys
from orchestration.cli import main
code = main(sys.argv[1:])
from core.spark import kept_session_running
print(f"kept Spark session after the command: {kept_session_running()}", file=sys.stderr)
sys.exit(code)
"""


def command_env(root, spark_url: WarehouseUrl, serving_url: str | None) -> dict[str, str]:
    """The environment of a user's shell: this one without any Spendwise setting, then the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDWISE_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(root / "dagster_home"), "SPENDWISE_WAREHOUSE_URL": spark_url.url,
                "SPENDWISE_CHARTS_DIR": str(root / "charts"), "SPENDWISE_RUN_CONFIG": str(LIGHT_RUN_CONFIG_FILE)})
    if serving_url is not None:
        env[SERVING_URL_ENV] = serving_url
    return env


def spendwise(env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", COMMAND_THEN_SESSION_PROBE, *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def listed_counts(output: str, schema: str) -> dict[str, int]:
    """The `<table> <rows> rows` lines `spendwise status` prints under `  <schema>: N tables`."""
    block = re.search(rf"^  {schema}: \d+ tables\n((?:    .*\n)*)", output + "\n", flags=re.M)
    assert block, (schema, output)
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^ +(\S+) +([\d,]+) rows$", block[1], flags=re.M)}


def read_through_spark(spark_url: WarehouseUrl) -> dict[str, object]:
    """What Spark itself says after the refresh, read through one Spark session (a JVM costs ~45 s here, so
    the checks share it): row counts per schema and the newest timestamp of each raw table."""
    from core.spark import release_kept_session

    spark = WarehouseClient(spark_url, keep_spark_session=True)
    try:
        counts = {schema: spark.row_counts(schema) for schema in ("raw", "analytics", "predictions")}
        newest = spark.read_sql(" UNION ALL ".join(
            f"SELECT '{table}' AS t, CAST(max(`{column}`) AS TIMESTAMP) AS newest FROM raw.`{table}`"
            for table, column in RAW_TIME_COLUMNS.items()))
    finally:
        release_kept_session()
    return {"counts": counts, "raw_newest": newest}


@pytest.fixture(scope="module")
def spark_graph(tmp_path_factory, demo_data, dbt_manifest, pg_module_url):
    from core.spark import load_raw_tables
    from orchestration.refresh import outcome_from_run

    root = tmp_path_factory.mktemp("spark_graph")
    spark_url = WarehouseUrl.parse(f"spark:///{root / 'spark'}")
    tables = demo_data.tables()
    load_raw_tables(spark_url.spark, {n: tables[n] for n in RAW_TABLES},
                    extra={n: df for n, df in tables.items() if n not in RAW_TABLES})
    env = command_env(root, spark_url, pg_module_url)
    started = time.monotonic()
    refresh = spendwise(env, "refresh", timeout=3600)  # generous: a busy 2-core machine took over 30 min
    seconds = time.monotonic() - started
    print(f"`spendwise refresh` on Spark with a PostgreSQL serving database: {seconds:.1f} s")
    assert refresh.returncode == 0, refresh.stdout[-3000:] + refresh.stderr[-3000:]
    status = spendwise(env, "status")
    assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-3000:]
    with DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == [REFRESH_JOB_NAME]
        result = outcome_from_run(instance, runs[0].run_id)
    spark_facts = read_through_spark(spark_url)

    # The same raw data on DuckDB, only as far as the attribution tables (their shares are deterministic).
    duck_url = f"duckdb:///{root / 'warehouse.duckdb'}"
    load_demo(duck_url, demo_data)
    # every dbt model (the checks on the marts read other marts), then the attribution assets
    upstream = AssetSelection.assets(*ATTRIBUTION_ASSETS).upstream() | AssetSelection.key_prefixes("analytics")
    duck, _ = _refresh(duck_url, root / "charts_duckdb", upstream)
    assert duck.success, duck.get_failed_step_keys()
    return {"result": result, "refresh": refresh, "status": status, "env": env, "spark_url": spark_url,
            "spark": spark_facts,
            "serving": pg_module_url, "duckdb": duck_url, "root": root,
            "session_left_running": "kept Spark session after the command: False" not in refresh.stderr}


def test_the_graph_succeeds_on_spark_and_every_check_passes(spark_graph):
    result = spark_graph["result"]  # the run as DAGSTER_HOME recorded it
    assert result.success, result.failed_steps
    assert result.failed_steps == []
    failed = [f"{c.asset}::{c.name}" for c in result.checks if not c.passed and c.name not in DEMO_MAY_WARN]
    assert failed == []
    checked = {c.asset for c in result.checks}
    # dbt's tests on the Spark marts and the Python assets' checks before publication
    assert {"analytics/fct_channel_daily", "channel_attribution", "media_mix_model", "roi_forecast"} <= checked
    # the run's end stopped the kept session: no JVM holds the Derby metastore after a run
    assert spark_graph["session_left_running"] is False, spark_graph["refresh"].stderr[-2000:]


def test_the_refresh_command_summarises_the_run_from_spark_and_the_serving_database(spark_graph):
    out, run_id = spark_graph["refresh"].stdout, spark_graph["result"].run_id
    assert f"Run {run_id}: succeeded" in out, out
    assert f"Warehouse: {spark_graph['spark_url'].url}" in out
    serving = WarehouseClient(spark_graph["serving"])
    assert f"Serving database ({SERVING_URL_ENV}): {serving.url.redacted()}" in out
    predictions = serving.row_counts("predictions")
    assert f"predictions: {len(predictions)} tables, {sum(predictions.values()):,} rows" in out, out
    assert re.search(r"^  raw: \d+ tables, [\d,]+ rows$", out, flags=re.M), out
    assert re.search(r"^  analytics: \d+ tables, [\d,]+ rows$", out, flags=re.M), out
    # the headline numbers come from this run's rows in the serving database
    assert re.search(r"Top channel by media-mix ROAS: \w+ \d+\.\d\d revenue per unit of spend", out), out
    assert "Result: published; exit code 0" in out
    assert len(out.splitlines()) < 40, out


def test_the_status_command_reads_spark_the_serving_database_and_the_run(spark_graph):
    out = spark_graph["status"].stdout
    expected = {schema: spark_graph["spark"]["counts"][schema] for schema in ("raw", "analytics")}
    assert expected["raw"] and expected["analytics"]
    for schema, counts in expected.items():
        assert listed_counts(out, schema) == counts, schema
    assert listed_counts(out, "predictions") == WarehouseClient(spark_graph["serving"]).row_counts("predictions")
    run_id = spark_graph["result"].run_id
    assert re.search(rf"^Last refresh: run {run_id} SUCCESS \(trigger cli\), started ", out, flags=re.M), out
    assert "Refresh lock: free" in out


def test_every_prediction_table_and_its_history_is_in_the_serving_database(spark_graph):
    serving = WarehouseClient(spark_graph["serving"])
    counts = serving.row_counts("predictions")
    empty = sorted(t for t in registry.TABLES if counts.get(t, 0) == 0)
    assert empty == [], f"not published (or empty) in the serving database: {empty}"
    run_id = spark_graph["result"].run_id
    for table in registry.TABLES:
        stamps = serving.read_sql(f'select distinct run_id from predictions."{table}"')
        assert stamps["run_id"].tolist() == [run_id], table
    history = serving.row_counts(HISTORY_SCHEMA)
    kept = [t for t in registry.TABLES if registry.table(t).history]
    assert kept and all(history.get(t, 0) == counts[t] for t in kept), (history, counts)


def test_spark_holds_the_marts_and_no_prediction_table(spark_graph):
    counts = spark_graph["spark"]["counts"]
    assert counts["analytics"]["fct_channel_daily"] > 0
    assert counts["predictions"] == {}


def test_attribution_shares_equal_a_duckdb_run_on_the_same_raw_data(spark_graph):
    keys = ["model", "channel"]
    on_spark = WarehouseClient(spark_graph["serving"]).read_table("predictions", "channel_attribution")
    on_duckdb = WarehouseClient(spark_graph["duckdb"]).read_table("predictions", "channel_attribution")
    assert len(on_spark) == len(on_duckdb) > 0
    merged = on_duckdb.merge(on_spark, on=keys, suffixes=("_duckdb", "_spark"), validate="one_to_one")
    assert len(merged) == len(on_duckdb)
    for row in merged.itertuples():
        assert math.isclose(row.share_duckdb, row.share_spark, rel_tol=SHARE_RTOL, abs_tol=1e-12), (
            row.model, row.channel, row.share_duckdb, row.share_spark)
    assert set(merged["model"]) == set(registry.ATTRIBUTION_MODELS)


def test_the_service_reads_the_prediction_tables_from_the_serving_database(spark_graph):
    from service.app import create_app
    from tests.service.test_server import LiveServer, refusing_launcher

    root = spark_graph["root"]
    settings = Settings(warehouse=spark_graph["spark_url"], charts_dir=root / "charts",
                        dagster_home=root / "dagster_home", serving_url=parse_serving_url(spark_graph["serving"]))
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.get("/data/channel_attribution", params={"model": "linear"})
            metrics = client.get("/metrics")
            scraped_at = time.time()
    assert response.status_code == 200, response.text
    body = response.json()
    expected = WarehouseClient(spark_graph["serving"]).read_sql(
        "select channel, share from predictions.channel_attribution where model = 'linear'")
    assert body["total"] == len(expected) > 0
    got = {r["channel"]: r["share"] for r in body["rows"]}
    assert got == pytest.approx(dict(zip(expected["channel"], expected["share"])))
    assert {r["run_id"] for r in body["rows"]} == {spark_graph["result"].run_id}

    # The metrics: rows published in the serving database, and the raw tables' age from the Spark tables.
    assert metrics.status_code == 200, metrics.text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics.text) for s in family.samples}
    assert samples[("spendwise_source_up", (("source", "warehouse"),))] == 1
    assert samples[("spendwise_published_rows", (("table", "channel_attribution"),))] == len(
        WarehouseClient(spark_graph["serving"]).read_table("predictions", "channel_attribution"))
    age = {dict(k[1])["table"]: v for k, v in samples.items() if k[0] == "spendwise_raw_data_age_seconds"}
    newest = spark_graph["spark"]["raw_newest"]
    assert set(age) == set(RAW_TIME_COLUMNS) == set(newest["t"])
    for row in newest.itertuples():
        # a day's data counts as complete at the end of the day (service.metrics)
        end = row.newest + pd.Timedelta(days=1) if RAW_TIME_COLUMNS[row.t] == "date" else row.newest
        expected = scraped_at - end.tz_localize("UTC").timestamp()
        assert expected - 60 <= age[row.t] <= expected + 1, (row.t, age[row.t], expected)


def test_a_refresh_over_http_runs_with_the_apps_serving_database(spark_graph, monkeypatch):
    """POST /refresh starts `orchestration.cli` in a child process: it must publish where the app reads, even
    when the app got its serving database from its Settings rather than the environment. The child here runs
    `status` (no second materialization), which on Spark refuses to run without a serving database."""
    from service.app import create_app
    from tests.service.test_server import LiveServer

    monkeypatch.delenv(SERVING_URL_ENV, raising=False)
    root = spark_graph["root"]
    serving = parse_serving_url(spark_graph["serving"])
    settings = Settings(warehouse=spark_graph["spark_url"], charts_dir=root / "charts",
                        dagster_home=root / "http_dagster_home", serving_url=serving)
    with instance_for_test() as instance:
        app = create_app(settings, dagster_instance=instance)
        launcher = app.state.bridge.launcher
        launcher.command = [sys.executable, "-m", "orchestration.cli", "status"]
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            accepted = client.post("/refresh")
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["run_id"]
            deadline = time.monotonic() + 120
            while (status := client.get("/status").json())["refresh_running"]:
                assert time.monotonic() < deadline, "the child never finished"
                time.sleep(0.2)
    # `status` records no run, so the service reports the child's end as a launch that started none
    assert f"run {run_id} exited with code 0 before starting the run" in status["launch_error"], status
    out = (launcher.log_dir / f"refresh-{run_id}.log").read_text()
    assert f"Serving database ({SERVING_URL_ENV}): {serving.redacted()}" in out, out
    assert listed_counts(out, "predictions") == WarehouseClient(serving).row_counts("predictions")


def test_a_spark_warehouse_without_a_serving_database_is_refused_with_a_reason(tmp_path):
    spark = WarehouseUrl.parse(f"spark:///{tmp_path / 'spark'}")
    with pytest.raises(ValueError, match=f"{SERVING_URL_ENV} is required when SPENDWISE_WAREHOUSE_URL is spark://"):
        Settings(warehouse=spark, charts_dir=tmp_path, dagster_home=tmp_path).serving
    from assets.resources import Warehouse

    with pytest.raises(ValueError, match=f"{SERVING_URL_ENV} is required"):
        Warehouse(url=spark.url).publish_tables({"channel_attribution": pd.DataFrame({"a": [1]})})
    with pytest.raises(ValueError, match=f"set {SERVING_URL_ENV}"):
        WarehouseClient(spark).publish(pd.DataFrame({"a": [1]}), "anything")
    with pytest.raises(ValueError, match="must be a postgresql://"):
        parse_serving_url(f"duckdb:///{tmp_path / 'x.duckdb'}")
    # the commands say what to set, before anything starts (exit code 2, one line, no traceback)
    env = command_env(tmp_path, spark, serving_url=None)
    for command in ("refresh", "status"):
        proc = spendwise(env, command)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith(f"spendwise {command}: {SERVING_URL_ENV} is required when "
                                      f"SPENDWISE_WAREHOUSE_URL is spark:// ({spark.url}) for `spendwise {command}`")
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "dagster_home").exists()


def test_a_refresh_of_a_spark_folder_without_raw_tables_says_what_is_missing(tmp_path, pg_url):
    spark = WarehouseUrl.parse(f"spark:///{tmp_path / 'spark'}")
    proc = spendwise(command_env(tmp_path, spark, pg_url), "refresh")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert proc.stderr.startswith("spendwise refresh: no raw tables ad_performance_daily, touchpoints, conversions "
                                  f"in the Spark warehouse {spark.spark.warehouse_dir}"), proc.stderr
    assert "Traceback" not in proc.stderr
