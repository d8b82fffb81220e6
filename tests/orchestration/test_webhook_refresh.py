"""The refresh paths fire the webhooks: `spendwise refresh` (the path POST /refresh's child runs) sends
the event once its run is over, a receiver that never answers leaves the refresh alone, and the
run-status sensors (runs the daemon launched) send the same event, never twice to one URL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from core import registry
from core.settings import WarehouseUrl, get_settings
from core.warehouse import WarehouseClient
from core.webhooks import EVENT_FAILED, EVENT_SUCCEEDED, DeliveryLog
from orchestration.refresh import CheckEvaluation, RefreshOutcome, _run_lines, notify_refresh_webhooks
from tests.conftest import LIGHT_RUN_CONFIG_FILE
from tests.core.test_webhooks import SECRET, Receiver


@pytest.fixture
def webhook_env(monkeypatch):
    """Point this process's settings at webhooks; `configure(*urls)` sets them and re-reads the settings."""
    def configure(*urls: str, **extra: str) -> None:
        monkeypatch.setenv("SPENDWISE_WEBHOOK_URLS", ",".join(urls))
        monkeypatch.setenv("SPENDWISE_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("SPENDWISE_WEBHOOK_BACKOFF_SECONDS", "0.05")
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()  # monkeypatch restores the environment after this


def test_the_refresh_hook_sends_a_failed_run_with_its_checks_in_words(tmp_path, monkeypatch, webhook_env):
    """notify_refresh_webhooks is what run_refresh calls (success, failure, or an exception)."""
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", url)
    blocking = CheckEvaluation(asset="raw/ad_performance_daily", name="source_unique_combination", passed=False,
                               blocking=True, severity="ERROR", explanation="ad_performance_daily has 3 duplicates")
    stale = CheckEvaluation(asset="raw/touchpoints", name="touchpoints_volume_and_freshness", passed=False,
                            blocking=True, severity="WARN", description="raw.touchpoints: 28 days old")
    fine = CheckEvaluation(asset="analytics/fct_channel_daily", name="gx_fct_channel_daily", passed=True,
                           blocking=True, severity="ERROR")
    outcome = RefreshOutcome(run_id="run-h1", success=False, seconds=12.0, failed_steps=["spendwise_dbt_models"],
                             checks=[fine, stale, blocking])
    started = datetime.now(timezone.utc) - timedelta(seconds=12)

    get_settings.cache_clear()
    assert notify_refresh_webhooks(outcome, run_id="run-h1", started_at=started) == []  # none configured
    assert not (tmp_path / "warehouse.duckdb").exists()  # and nothing created

    with Receiver() as receiver:
        webhook_env(receiver.url)
        [delivery] = notify_refresh_webhooks(outcome, run_id="run-h1", started_at=started, trigger="http")
        crashed = notify_refresh_webhooks(None, run_id="run-h2", started_at=started,
                                          error="WarehouseUnavailable: the PostgreSQL warehouse failed")
    assert delivery.delivered and crashed[0].delivered
    outcome.webhooks = [delivery]  # what run_refresh keeps for the summary
    assert "Webhooks: 1 of 1 delivered (ops.webhook_deliveries)" in "\n".join(_run_lines(outcome))
    first, second = receiver.events()
    assert (first["event"], first["status"], first["trigger"], first["run_id"]) == (
        EVENT_FAILED, "failed", "http", "run-h1")
    assert first["failed_checks"] == [
        {"asset": "raw/touchpoints", "name": "touchpoints_volume_and_freshness", "severity": "WARN",
         "blocking": True, "stops_the_run": False, "words": "raw.touchpoints: 28 days old"},
        {"asset": "raw/ad_performance_daily", "name": "source_unique_combination", "severity": "ERROR",
         "blocking": True, "stops_the_run": True, "words": "ad_performance_daily has 3 duplicates"},
    ]
    assert first["failed_steps"] == ["spendwise_dbt_models"] and first["error"] is None
    assert (second["event"], second["error"]) == (EVENT_FAILED, "WarehouseUnavailable: the PostgreSQL warehouse failed")
    assert first["links"]["data"] == "http://127.0.0.1:8000/data"  # SPENDWISE_PUBLIC_URL's default
    assert [r["run_id"] for r in DeliveryLog(WarehouseClient(url)).rows()] == ["run-h1", "run-h2"]


@pytest.mark.slow
def test_a_real_refresh_fires_its_webhook_once_and_the_sensor_path_sends_the_same_event(
        tmp_path, dbt_manifest, monkeypatch, webhook_env):
    from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

    from ml.synthetic import generate_demo_data
    from orchestration.refresh import WEBHOOK_TAG
    from orchestration.sensors import WEBHOOK_SUCCESS_SENSOR_NAME, build_webhook_sensors
    from tests.conftest import load_demo

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, generate_demo_data(scale=0.05, days=200, seed=5))
    home = tmp_path / "dagster_home"
    with Receiver() as receiver, Receiver(script=("hang",), hang_s=3.0) as silent:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
               "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts"),
               "SPENDWISE_RUN_CONFIG": str(LIGHT_RUN_CONFIG_FILE),
               "SPENDWISE_WEBHOOK_URLS": f"{receiver.url},{silent.url}", "SPENDWISE_WEBHOOK_SECRET": SECRET,
               "SPENDWISE_WEBHOOK_ATTEMPTS": "2", "SPENDWISE_WEBHOOK_TIMEOUT_SECONDS": "0.5",
               "SPENDWISE_WEBHOOK_BACKOFF_SECONDS": "0.05", "SPENDWISE_PUBLIC_URL": "https://sw.example.com"}
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh"], capture_output=True, text=True,
                              env=env, timeout=1500)
        # the receiver that never answered did not change the refresh: published, exit code 0
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Result: published; exit code 0" in proc.stdout
        assert (f"Webhooks: 1 of 2 delivered; {silent.url} FAILED after 2 attempt(s): no answer within 0.5 s"
                in proc.stdout), proc.stdout
        assert f"webhook {silent.url} refresh.succeeded" in proc.stderr and "FAILED (no answer within 0.5 s)" in proc.stderr
        assert SECRET not in proc.stdout + proc.stderr
        assert len(receiver.requests) == 1 and receiver.requests[0]["verified"]
        assert len(silent.requests) == 2

        instance = DagsterInstance.from_config(str(home))
        try:
            [run] = instance.get_runs()
            event = receiver.events()[0]
            assert (event["event"], event["run_id"], event["trigger"]) == (EVENT_SUCCEEDED, run.run_id, "cli")
            assert run.tags[WEBHOOK_TAG[0]] == WEBHOOK_TAG[1]
            counts = WarehouseClient(url).row_counts("predictions")
            assert {t["name"]: t["rows"] for t in event["tables"]} == {n: counts[n] for n in registry.TABLES}
            assert all(t["refreshed_by_this_run"] for t in event["tables"])
            assert event["tables"][0]["url"] == f"https://sw.example.com/data/{next(iter(registry.TABLES))}"
            assert len(event["charts"]) == len(registry.CHARTS)
            assert all(not c["stops_the_run"] for c in event["failed_checks"])  # warnings at most
            rows = {r["url"]: r for r in DeliveryLog(WarehouseClient(url)).rows(run.run_id)}
            assert (rows[receiver.url]["delivered"], rows[receiver.url]["attempts"]) == (True, 1)
            assert (rows[silent.url]["delivered"], rows[silent.url]["attempts"], rows[silent.url]["state"]) == (
                False, 2, "failed")

            # The daemon's path: the success sensor, evaluated on this run's RUN_SUCCESS event.
            with Receiver() as late:
                monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", url)
                webhook_env(receiver.url, late.url, SPENDWISE_PUBLIC_URL="https://sw.example.com")
                success_sensor = build_webhook_sensors(WarehouseUrl.parse(url))[0]
                assert success_sensor.name == WEBHOOK_SUCCESS_SENSOR_NAME
                [success] = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_SUCCESS)

                def evaluate():
                    current = instance.get_run_by_id(run.run_id)
                    return success_sensor(build_run_status_sensor_context(
                        sensor_name=success_sensor.name, dagster_event=success.dagster_event,
                        dagster_instance=instance, dagster_run=current))

                skipped = evaluate()  # the CLI's process announced it
                assert "sent by the process that ran it" in skipped.skip_message
                instance.add_run_tags(run.run_id, {WEBHOOK_TAG[0]: "daemon"})  # as if the daemon had run it
                sent = evaluate()
                assert "1/1 delivered" in sent.skip_message, sent.skip_message
                assert evaluate().skip_message.endswith("had no webhook left to send (already sent, or no URL wants it)")
            assert len(receiver.requests) == 1  # never twice to one URL for one run
            [from_sensor] = late.events()
            assert late.requests[0]["verified"]
            # the same event, read back from the instance's event log instead of the in-process result
            for key in ("event", "event_id", "run_id", "status", "tables", "charts", "failed_steps"):
                assert from_sensor[key] == event[key], key
            key = lambda c: (c["asset"], c["name"])  # noqa: E731
            assert sorted(from_sensor["failed_checks"], key=key) == sorted(event["failed_checks"], key=key)
        finally:
            instance.dispose()
    assert len(DeliveryLog(WarehouseClient(url)).rows(run.run_id)) == 3
    json.dumps(event)  # plain JSON throughout


def test_the_failure_sensor_sends_a_failed_run_read_back_from_the_event_log(tmp_path, monkeypatch, webhook_env):
    """A real failed Dagster run (a warning check failing, then a step raising) in a real instance: the
    run-failure sensor sends refresh.failed with the check in words, the failed step and the reason."""
    from dagster import (
        AssetCheckResult,
        AssetCheckSeverity,
        AssetCheckSpec,
        DagsterEventType,
        DagsterInstance,
        MaterializeResult,
        asset,
        build_run_status_sensor_context,
        materialize,
    )

    from orchestration.refresh import outcome_from_run
    from orchestration.sensors import WEBHOOK_FAILURE_SENSOR_NAME, build_webhook_sensors

    @asset(check_specs=[AssetCheckSpec("fresh_enough", asset="spend")])
    def spend():
        return MaterializeResult(check_results=[AssetCheckResult(
            check_name="fresh_enough", passed=False, severity=AssetCheckSeverity.WARN,
            description="raw.spend: newest day 9 days old")])

    @asset(deps=[spend])
    def forecast():
        raise RuntimeError("the forecast could not be fitted")

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", url)
    with DagsterInstance.ephemeral() as instance, Receiver() as receiver:
        result = materialize([spend, forecast], instance=instance, raise_on_error=False,
                             tags={"spendwise/trigger": "schedule"})
        assert not result.success
        outcome = outcome_from_run(instance, result.run_id)
        assert (outcome.success, outcome.materialized, outcome.failed_steps) == (False, ["spend"], ["forecast"])
        assert [(c.name, c.passed, c.severity) for c in outcome.checks] == [("fresh_enough", False, "WARN")]

        webhook_env(receiver.url)
        failure_sensor = build_webhook_sensors()[1]
        assert failure_sensor.name == WEBHOOK_FAILURE_SENSOR_NAME
        [failed] = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)
        context = build_run_status_sensor_context(
            sensor_name=failure_sensor.name, dagster_event=failed.dagster_event, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id)).for_run_failure()
        answer = failure_sensor(context)
        assert "refresh.failed: 1/1 delivered" in answer.skip_message, answer.skip_message
        assert "1/1" not in failure_sensor(context).skip_message  # evaluated again: nothing sent twice
    [event] = receiver.events()
    assert receiver.requests[0]["verified"]
    assert (event["event"], event["run_id"], event["trigger"]) == (EVENT_FAILED, result.run_id, "schedule")
    assert event["failed_steps"] == ["forecast"]
    assert event["failed_checks"] == [{"asset": "spend", "name": "fresh_enough", "severity": "WARN", "blocking": False,
                                       "stops_the_run": False, "words": "raw.spend: newest day 9 days old"}]
    assert event["error"] and "forecast" in event["error"], event["error"]
    assert event["started_at"] <= event["finished_at"]
    [row] = DeliveryLog(WarehouseClient(url)).rows(result.run_id)
    assert row["delivered"] and row["event"] == EVENT_FAILED
