"""The refresh job and its 30-minute schedule, which skips a tick while a refresh is still running
(in this Dagster instance or holding the warehouse's refresh lock)."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from assets.raw import raw_tables
from core.refresh_lock import RefreshLock, describe_holder
from core.settings import REFRESH_JOB_NAME, REFRESH_TAG, SCHEDULE_CRON, WarehouseUrl, get_settings
from core.warehouse import WarehouseUnavailable
from orchestration.run_config import RunConfigError, read_run_config, run_config_path
from service.dagster_bridge import refresh_in_progress, refresh_run_since

__all__ = ["REFRESH_JOB_NAME", "build_refresh_schedule", "refresh_in_progress", "refresh_job"]
RAW_ASSET_KEYS = [spec.key for spec in raw_tables]

refresh_job = define_asset_job(
    REFRESH_JOB_NAME,
    # all() leaves out checks on external assets: the raw tables' dbt source tests and volume checks.
    selection=AssetSelection.all() | AssetSelection.checks_for_assets(*RAW_ASSET_KEYS),
    description="Materializes the whole graph once on whatever the raw tables hold.",
    tags=dict([REFRESH_TAG]),
)


def build_refresh_schedule(warehouse: WarehouseUrl | None = None):
    """The 30-minute schedule for the refresh job on `warehouse` (default: the settings' warehouse).

    A tick is skipped, with the one-line reason, while a refresh run is queued or running in this
    Dagster instance (runs whose process died are marked failed first, see `refresh_in_progress`)
    or while any process holds the warehouse's refresh lock (a CLI refresh, another instance).
    """
    url = warehouse or get_settings().warehouse

    @schedule(
        name="refresh_every_30_minutes",
        cron_schedule=SCHEDULE_CRON,
        job=refresh_job,
        default_status=DefaultScheduleStatus.RUNNING,
        execution_timezone="UTC",
        description="Refreshes every asset every 30 minutes; skips the tick while a refresh is in progress.",
    )
    def refresh_every_30_minutes(context: ScheduleEvaluationContext):
        running = refresh_in_progress(context.instance, checked_by="the refresh schedule")
        if running:
            since = refresh_run_since(context.instance, running[0])
            return SkipReason(describe_holder({"run_id": running[0], "since": since}))
        try:
            holder = RefreshLock(url).holder()
        except WarehouseUnavailable as exc:
            return SkipReason(f"the warehouse cannot be reached, no refresh started: {exc}")
        if holder is not None:
            return SkipReason(describe_holder(holder))
        try:  # the ops' settings of SPENDWISE_RUN_CONFIG, read at each tick (Dagster checks the fields)
            run_config = read_run_config(run_config_path())
        except RunConfigError as exc:
            return SkipReason(f"no refresh started: {exc}")
        # The run worker executes on the host where this tick is evaluated (DefaultRunLauncher: the
        # code server's host); the refresh executor adds its own pid and start time when it begins.
        return RunRequest(run_key=None, run_config=run_config, tags={"spendwise/trigger": "schedule"})

    return refresh_every_30_minutes
