"""The one Dagster `Definitions`: dbt assets, Python assets and checks, resources, job, schedule, the
landing-folder sensor and the run-status sensors that send the refresh webhooks."""

import os

from dagster import Definitions, EnvVar, in_process_executor, multiprocess_executor

from assets import ASSETS, ASSET_CHECKS
from assets.forecast_accuracy import forecast_accuracy
from assets.run_changes import run_changes
from assets.resources import ChartStore
from assets.freshness import with_freshness_policy
from assets.raw import raw_tables
from orchestration.dbt import dbt_resource, spendwise_dbt_models
from orchestration.runs import RunBoundWarehouse, refresh_locked
from orchestration.schedules import build_refresh_schedule, refresh_job
from orchestration.sensors import build_landing_sensor, build_webhook_sensors
from core.settings import SERVING_URL_ENV, WarehouseUrl, get_settings


def build_definitions(warehouse_url: str | None = None, charts_dir: str | None = None) -> Definitions:
    """Definitions for one warehouse (default: `SPENDWISE_WAREHOUSE_URL`, else the local DuckDB file)
    and one chart directory (default: `SPENDWISE_CHARTS_DIR`, else `<repo>/data/charts`)."""
    url = WarehouseUrl.parse(warehouse_url or get_settings().warehouse.url)
    # EnvVar keeps a PostgreSQL password out of the resource config shown in the UI.
    from_env = warehouse_url is None and bool(os.environ.get("SPENDWISE_WAREHOUSE_URL"))
    configured_url = EnvVar("SPENDWISE_WAREHOUSE_URL") if from_env else url.url
    serving = EnvVar(SERVING_URL_ENV) if os.environ.get(SERVING_URL_ENV) else ""
    warehouse = RunBoundWarehouse(url=configured_url, serving_url=serving)
    # DuckDB allows one writing process, Spark's Derby metastore one JVM: every step runs in the run's own
    # process, one at a time (on Spark the reads share one session, stopped before the dbt step).
    # PostgreSQL takes concurrent writers, so independent assets run in parallel subprocesses.
    executor = (
        refresh_locked(in_process_executor, url) if url.kind in ("duckdb", "spark")
        else refresh_locked(multiprocess_executor, url).configured({"max_concurrent": 2})
    )
    return Definitions(
        # The history readers run after the assets whose history they read, and a failure of theirs
        # leaves every other table published (nothing downstream of them but their chart).
        assets=[*raw_tables, spendwise_dbt_models, *with_freshness_policy([*ASSETS, forecast_accuracy, run_changes])],
        asset_checks=ASSET_CHECKS,
        jobs=[refresh_job],
        schedules=[build_refresh_schedule(url)],
        sensors=[build_landing_sensor(url), *build_webhook_sensors(url)],
        resources={
            "dbt": dbt_resource(url, warehouse_url=configured_url),
            "warehouse": warehouse,
            "charts": ChartStore(directory=charts_dir) if charts_dir else ChartStore(),
        },
        executor=executor,
    )


defs = build_definitions()
