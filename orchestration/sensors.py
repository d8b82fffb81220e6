"""The landing-folder sensor: merges complete drops into the raw tables and asks for a refresh
(skipped, with the reason, while a refresh is in progress). The file work lives in core.landing.
The run-status sensors send the webhooks (core.webhooks) of refresh runs the daemon launched."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from core.landing import (
    LANDING_DIR_ENV,
    complete_drops,
    holder_line,
    landing_dir_from_env,
    missing_raw_tables,
    process_drop,
)
from core.refresh_lock import describe_holder
from core.settings import WarehouseUrl, get_settings, serving_for
from core.warehouse import WarehouseClient, WarehouseUnavailable
from orchestration.run_config import RunConfigError, read_run_config, run_config_path
from orchestration.schedules import refresh_job
from service.dagster_bridge import refresh_in_progress, refresh_run_since

LANDING_SENSOR_NAME = "landing_folder"
WEBHOOK_SUCCESS_SENSOR_NAME = "refresh_webhooks_on_success"
WEBHOOK_FAILURE_SENSOR_NAME = "refresh_webhooks_on_failure"


def build_landing_sensor(warehouse: WarehouseUrl | None = None, landing_dir: str | Path | None = None):
    """The sensor watching `landing_dir` (default: SPENDWISE_LANDING_DIR), on by default when one is set.

    Each tick merges every complete drop (see core.landing.process_drop), then requests one refresh
    for them. While a refresh runs its lock leaves the drops in place; a refresh that could not be
    requested (one is queued or running) stays pending in the cursor and is requested at a later tick.
    """
    url = warehouse or get_settings().warehouse
    configured = Path(landing_dir) if landing_dir else landing_dir_from_env()

    @sensor(
        name=LANDING_SENSOR_NAME,
        job=refresh_job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING if configured else DefaultSensorStatus.STOPPED,
        description="Merges complete drops of the landing folder into the raw tables, then requests a refresh.",
    )
    def landing_folder(context: SensorEvaluationContext):
        landing = configured or landing_dir_from_env()
        if landing is None:
            return SkipReason(f"{LANDING_DIR_ENV} is not set: no landing folder to watch")
        pending = list(json.loads(context.cursor)["pending"]) if context.cursor else []
        left = []
        for drop in complete_drops(landing):
            outcome = process_drop(drop, landing, url)
            context.log.info(outcome.describe())
            if outcome.status == "merged":
                pending.append(outcome.drop)
            elif outcome.status == "left":
                left.append(outcome.describe())
        cursor = json.dumps({"pending": pending})
        if not pending:
            reason = "; ".join(left) or f"no new complete drop in {landing}"
            return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
        reason = _refresh_blocked(context.instance, url)
        if reason:
            return SensorResult(
                skip_reason=SkipReason(f"drops {', '.join(pending)} merged; refresh not requested yet: {reason}"),
                cursor=cursor,
            )
        try:  # the ops' settings of SPENDWISE_RUN_CONFIG, as for the schedule
            run_config = read_run_config(run_config_path())
        except RunConfigError as exc:
            return SensorResult(
                skip_reason=SkipReason(f"drops {', '.join(pending)} merged; refresh not requested: {exc}"),
                cursor=cursor,
            )
        request = RunRequest(
            run_key=None, run_config=run_config,
            tags={"spendwise/trigger": "landing", "spendwise/drops": ",".join(pending)[:1000]},
        )
        return SensorResult(run_requests=[request], cursor=json.dumps({"pending": []}))

    return landing_folder


def _refresh_blocked(instance, url: WarehouseUrl) -> str | None:
    """Why a refresh must not be requested now (the schedule's two questions), or None."""
    running = refresh_in_progress(instance, checked_by="the landing-folder sensor")
    if running:
        return describe_holder({"run_id": running[0], "since": refresh_run_since(instance, running[0])})
    try:
        if missing := missing_raw_tables(WarehouseClient(url)):
            # A first partial drop: a refresh would fail on the tables nobody delivered yet.
            return (f"raw tables {', '.join(missing)} do not exist yet: deliver them in a drop "
                    "or load them with `spendwise load DIR`")
        return holder_line(url)
    except WarehouseUnavailable as exc:
        return f"the warehouse cannot be reached: {exc}"


def build_webhook_sensors(warehouse: WarehouseUrl | None = None) -> list:
    """Two run-status sensors that send the refresh webhooks for runs of the refresh job launched by
    the daemon (the schedule, the UI, the landing sensor); on by default when webhooks are configured.

    Runs that `spendwise refresh` / POST /refresh executed are tagged (orchestration.refresh.WEBHOOK_TAG)
    and skipped: their own process already sent them. ops.webhook_deliveries stops a second delivery
    of one run's event to one URL in any case (a sensor evaluated again after a restart, for one).
    """
    configured = get_settings().webhooks.configured
    status = DefaultSensorStatus.RUNNING if configured else DefaultSensorStatus.STOPPED

    @run_status_sensor(
        name=WEBHOOK_SUCCESS_SENSOR_NAME,
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[refresh_job],
        default_status=status,
        minimum_interval_seconds=15,
        description="Sends `refresh.succeeded` to the webhooks (SPENDWISE_WEBHOOK_URLS / _CONFIG) when a refresh run succeeds.",
    )
    def refresh_webhooks_on_success(context: RunStatusSensorContext):
        return send_run_webhooks(context.instance, context.dagster_run, warehouse, context.log)

    @run_failure_sensor(
        name=WEBHOOK_FAILURE_SENSOR_NAME,
        monitored_jobs=[refresh_job],
        default_status=status,
        minimum_interval_seconds=15,
        description="Sends `refresh.failed` to the webhooks (SPENDWISE_WEBHOOK_URLS / _CONFIG) when a refresh run fails.",
    )
    def refresh_webhooks_on_failure(context: RunFailureSensorContext):
        reason = context.failure_event.message if context.failure_event is not None else None
        return send_run_webhooks(context.instance, context.dagster_run, warehouse, context.log, error=reason)

    return [refresh_webhooks_on_success, refresh_webhooks_on_failure]


def send_run_webhooks(instance, run, warehouse: WarehouseUrl | None = None, log=None, error: str | None = None):
    """The sensors' body: the run's summary read back from the instance, then the same hook as the CLI
    path (core.webhooks.notify_refresh). A SkipReason says what was sent, or why nothing was."""
    from datetime import datetime, timezone

    from core.webhooks import notify_refresh
    from orchestration.refresh import WEBHOOK_TAG, outcome_from_run, webhook_report

    if run.tags.get(WEBHOOK_TAG[0]) == WEBHOOK_TAG[1]:
        return SkipReason(f"run {run.run_id}: its webhooks were sent by the process that ran it")
    settings = get_settings()
    if not settings.webhooks.configured:
        return SkipReason("no webhook configured (SPENDWISE_WEBHOOK_URLS or SPENDWISE_WEBHOOK_CONFIG)")
    outcome = outcome_from_run(instance, run.run_id)
    record = instance.get_run_record_by_id(run.run_id)
    started = datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), timezone.utc)
    finished = datetime.fromtimestamp(record.end_time, timezone.utc) if record.end_time else datetime.now(timezone.utc)
    report = webhook_report(outcome, run.run_id, started, finished, run.tags.get("spendwise/trigger", "dagster"),
                            error=None if outcome.ok else error)
    # ops.webhook_deliveries lives with the prediction tables: the serving database when one is set
    served = serving_for(warehouse or settings.warehouse, settings.serving_url, "the webhook deliveries")
    deliveries = notify_refresh(report, WarehouseClient(served), settings.webhooks)
    if not deliveries:
        return SkipReason(f"run {run.run_id}: {report.event} had no webhook left to send (already sent, "
                          "or no URL wants it)")
    sent = sum(d.delivered for d in deliveries)
    summary = "; ".join(f"{d.url}: {'delivered' if d.delivered else 'FAILED ' + (d.error or '')}"
                        f" ({d.attempts} attempt(s))" for d in deliveries)
    if log is not None:
        (log.info if sent == len(deliveries) else log.warning)(f"run {run.run_id} {report.event}: {summary}")
    return SkipReason(f"run {run.run_id} {report.event}: {sent}/{len(deliveries)} delivered; {summary}")
