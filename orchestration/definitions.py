"""The one Dagster `Definitions`: dbt assets, Python assets and checks, resources, job and schedule."""

from __future__ import annotations

from dagster import Definitions, EnvVar, in_process_executor, multiprocess_executor

from assets.raw import raw_tables
from orchestration.dbt import dbt_resource, spendwise_dbt_models
from orchestration.schedules import refresh_every_30_minutes, refresh_job
from orchestration.settings import get_settings
from orchestration.warehouse import Warehouse

settings = get_settings()


def _warehouse() -> Warehouse:
    # EnvVar keeps a PostgreSQL password out of the run config shown in the UI.
    if settings.warehouse.url and __import__("os").environ.get("SPENDWISE_WAREHOUSE_URL"):
        return Warehouse(url=EnvVar("SPENDWISE_WAREHOUSE_URL"))
    return Warehouse(url=settings.warehouse.url)


# DuckDB allows one writing process: run every step in the run's own process, one at a time.
# PostgreSQL takes concurrent writers, so independent assets run in parallel subprocesses.
executor = (
    in_process_executor
    if settings.warehouse.kind == "duckdb"
    else multiprocess_executor.configured({"max_concurrent": 2})
)

defs = Definitions(
    assets=[*raw_tables, spendwise_dbt_models],
    jobs=[refresh_job],
    schedules=[refresh_every_30_minutes],
    resources={"dbt": dbt_resource(), "warehouse": _warehouse()},
    executor=executor,
)
