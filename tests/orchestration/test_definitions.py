"""Definitions shape, executor choice, the 30-minute schedule, and PostgreSQL-backed Dagster storage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
)

from orchestration.schedules import REFRESH_JOB_NAME
from core.settings import REPO_ROOT
from tests.conftest import load_demo


@pytest.fixture(scope="module")
def defs(dbt_manifest, tmp_path_factory):
    from orchestration.definitions import build_definitions

    return build_definitions(f"duckdb:///{tmp_path_factory.mktemp('defs') / 'w.duckdb'}")


def test_graph_holds_raw_dbt_and_python_assets_with_groups_and_kinds(defs):
    graph = defs.resolve_asset_graph()
    specs = {spec.key: spec for spec in graph.get_all_asset_specs()} if hasattr(graph, "get_all_asset_specs") else None
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw/touchpoints", "raw/conversions", "raw/ad_performance_daily"} <= keys
    assert {"analytics/fct_channel_daily", "analytics/int_journeys", "analytics/conversion_paths"} <= keys
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["analytics/stg_events__touchpoints"] == "staging"
    assert groups["analytics/int_journeys"] == "intermediate"
    assert groups["analytics/fct_channel_daily"] == "marts"
    assert groups["raw/touchpoints"] == "raw"
    node = graph.get(AssetKey(["analytics", "fct_channel_daily"]))
    assert {"dbt", "duckdb"} <= set(node.kinds)
    # dbt tests on sources and models arrive as asset checks
    check_names = {c.name for c in graph.asset_check_keys}
    assert "source_non_negative_raw_ad_performance_daily_spend" in check_names
    assert specs is None or all(s.owners for k, s in specs.items() if k.path[0] == "analytics")


def test_executor_serialises_duckdb_and_parallelises_postgres(tmp_path, dbt_manifest):
    from orchestration.definitions import build_definitions

    duck = build_definitions(f"duckdb:///{tmp_path / 'w.duckdb'}").resolve_job_def(REFRESH_JOB_NAME)
    pg = build_definitions("postgresql://u:secret@127.0.0.1:5432/db").resolve_job_def(REFRESH_JOB_NAME)
    assert duck.executor_def.name == "in_process"
    assert pg.executor_def.name == "multiprocess"


def test_schedule_runs_every_30_minutes_and_skips_while_a_refresh_is_in_progress(defs):
    schedule = defs.resolve_schedule_def("refresh_every_30_minutes")
    assert schedule.cron_schedule == "*/30 * * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(REFRESH_JOB_NAME)
    with instance_for_test() as instance:
        first = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert first.run_requests and isinstance(first.run_requests[0], RunRequest)
        running = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED)
        skipped = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert not skipped.run_requests
        assert running.run_id in (skipped.skip_message or "")
        instance.report_run_failed(running)
        again = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert again.run_requests


def test_the_schedule_runs_with_the_run_config_file_and_skips_naming_a_bad_one(defs, tmp_path, monkeypatch):
    """SPENDWISE_RUN_CONFIG is read at each tick: its ops' settings go into the run request (and so into a
    run Dagster accepts), and a file that cannot be read skips the tick with the reason."""
    from dagster import validate_run_config

    from orchestration.run_config import RUN_CONFIG_ENV

    schedule = defs.resolve_schedule_def("refresh_every_30_minutes")
    path = tmp_path / "run.yaml"
    path.write_text("ops:\n  media_mix_model: {config: {n_bootstrap: 30}}\n")
    monkeypatch.setenv(RUN_CONFIG_ENV, str(path))
    with instance_for_test() as instance:
        (request,) = schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
        assert request.run_config == {"ops": {"media_mix_model": {"config": {"n_bootstrap": 30}}}}
        validate_run_config(defs.resolve_job_def(REFRESH_JOB_NAME), request.run_config)
        path.write_text("ops: [")
        skipped = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert not skipped.run_requests
        assert skipped.skip_message.startswith(f"no refresh started: run config {path}: not valid YAML"), (
            skipped.skip_message)
        monkeypatch.delenv(RUN_CONFIG_ENV)
        (request,) = schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
        assert not request.run_config  # the assets' defaults


def test_local_instance_config_queues_one_run_at_a_time():
    import yaml

    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    assert config["run_queue"]["max_concurrent_runs"] == 1


def test_deploy_dagster_yaml_stores_runs_in_postgres(pg_url, tmp_path, monkeypatch, dbt_manifest, demo_data):
    """deploy/dagster.yaml against the real server: a run and its materializations land in PostgreSQL."""
    from urllib.parse import urlparse

    import psycopg2

    from orchestration.definitions import build_definitions

    parsed = urlparse(pg_url)
    for var, value in {
        "DAGSTER_PG_HOST": parsed.hostname, "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USER": parsed.username or "postgres", "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.path.lstrip("/"),
    }.items():
        monkeypatch.setenv(var, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_config(str(home))
    warehouse_url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    load_demo(warehouse_url, demo_data)
    try:
        job = build_definitions(warehouse_url).resolve_job_def(REFRESH_JOB_NAME)
        seed_key = AssetKey(["analytics", "stg_channels__aliases"])  # a small, cheap asset
        result = job.execute_in_process(instance=instance, asset_selection=[seed_key], raise_on_error=False)
        assert result.success
        assert instance.get_latest_materialization_event(seed_key) is not None
    finally:
        instance.dispose()
    con = psycopg2.connect(pg_url)
    with con, con.cursor() as cur:
        cur.execute("select status from runs where run_id = %s", (result.run_id,))
        assert cur.fetchone()[0] == "SUCCESS"
        cur.execute("select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
                    (result.run_id,))
        assert cur.fetchone()[0] >= 1
    con.close()


def test_workspace_loads_the_definitions_module():
    import yaml

    workspace = yaml.safe_load(Path(REPO_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "orchestration.definitions"
