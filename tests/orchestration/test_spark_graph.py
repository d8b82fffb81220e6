"""The whole Dagster graph on Apache Spark (local mode) with a PostgreSQL serving database, end to end.

The demo's raw tables are written into Spark, the refresh job runs in this process (in-process executor:
dbt builds the marts on Spark in its own process, the Python assets read them through one kept Spark
session and publish to the serving database), and then: every registry prediction table and its
history are in the serving database, every check passed, the attribution shares (deterministic) equal
those of a DuckDB run on the same raw data, and a real HTTP request to the service reads a table from the
serving database.
"""

from __future__ import annotations

import math
import time

import httpx
import pandas as pd
import pytest
from dagster import AssetSelection, instance_for_test

from assets.attribution import ASSET_NAMES as ATTRIBUTION_ASSETS
from core import registry
from core.raw_contract import RAW_TABLES
from core.settings import HISTORY_SCHEMA, SERVING_URL_ENV, Settings, WarehouseUrl, parse_serving_url
from core.warehouse import WarehouseClient
from orchestration.schedules import REFRESH_JOB_NAME
from tests.conftest import IN_CI, load_demo
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


@pytest.fixture(scope="module")
def spark_graph(tmp_path_factory, demo_data, dbt_manifest, pg_module_url):
    from core.spark import kept_session_running, load_raw_tables

    root = tmp_path_factory.mktemp("spark_graph")
    spark_url = WarehouseUrl.parse(f"spark:///{root / 'spark'}")
    tables = demo_data.tables()
    load_raw_tables(spark_url.spark, {n: tables[n] for n in RAW_TABLES},
                    extra={n: df for n, df in tables.items() if n not in RAW_TABLES})
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SERVING_URL_ENV, pg_module_url)
        result, seconds = _refresh(spark_url.url, root / "charts")
    print(f"refresh on Spark with a PostgreSQL serving database: {seconds:.1f} s")
    session_left_running = kept_session_running()

    # The same raw data on DuckDB, only as far as the attribution tables (their shares are deterministic).
    duck_url = f"duckdb:///{root / 'warehouse.duckdb'}"
    load_demo(duck_url, demo_data)
    # every dbt model (the checks on the marts read other marts), then the attribution assets
    upstream = AssetSelection.assets(*ATTRIBUTION_ASSETS).upstream() | AssetSelection.key_prefixes("analytics")
    duck, _ = _refresh(duck_url, root / "charts_duckdb", upstream)
    assert duck.success, duck.get_failed_step_keys()
    return {"result": result, "spark_url": spark_url, "serving": pg_module_url, "duckdb": duck_url,
            "root": root, "session_left_running": session_left_running}


def test_the_graph_succeeds_on_spark_and_every_check_passes(spark_graph):
    result = spark_graph["result"]
    assert result.success, result.get_failed_step_keys()
    failed = [f"{e.asset_key.to_user_string()}::{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed and e.check_name not in DEMO_MAY_WARN]
    assert failed == []
    checked = {e.asset_key.to_user_string() for e in result.get_asset_check_evaluations()}
    # dbt's tests on the Spark marts and the Python assets' checks before publication
    assert {"analytics/fct_channel_daily", "channel_attribution", "media_mix_model", "roi_forecast"} <= checked
    # the run's end stopped the kept session: no JVM holds the Derby metastore after a run
    assert spark_graph["session_left_running"] is False


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
    from core.spark import release_kept_session

    spark = WarehouseClient(spark_graph["spark_url"], keep_spark_session=True)  # one JVM for both reads
    try:
        assert spark.row_counts("analytics")["fct_channel_daily"] > 0
        assert spark.row_counts("predictions") == {}
    finally:
        release_kept_session()


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
    assert response.status_code == 200, response.text
    body = response.json()
    expected = WarehouseClient(spark_graph["serving"]).read_sql(
        "select channel, share from predictions.channel_attribution where model = 'linear'")
    assert body["total"] == len(expected) > 0
    got = {r["channel"]: r["share"] for r in body["rows"]}
    assert got == pytest.approx(dict(zip(expected["channel"], expected["share"])))
    assert {r["run_id"] for r in body["rows"]} == {spark_graph["result"].run_id}


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
