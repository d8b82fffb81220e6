"""The refresh job and its 30-minute schedule, which skips a tick while a refresh is still running."""

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
from core.settings import REFRESH_JOB_NAME, REFRESH_TAG, SCHEDULE_CRON
from service.dagster_bridge import refresh_in_progress

__all__ = ["REFRESH_JOB_NAME", "refresh_every_30_minutes", "refresh_in_progress", "refresh_job"]
RAW_ASSET_KEYS = [spec.key for spec in raw_tables]

refresh_job = define_asset_job(
    REFRESH_JOB_NAME,
    # all() leaves out checks on external assets: the raw tables' dbt source tests and volume checks.
    selection=AssetSelection.all() | AssetSelection.checks_for_assets(*RAW_ASSET_KEYS),
    description="Materializes the whole graph once on whatever the raw tables hold.",
    tags=dict([REFRESH_TAG]),
)


@schedule(
    cron_schedule=SCHEDULE_CRON,
    job=refresh_job,
    default_status=DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
    description="Refreshes every asset every 30 minutes; skips the tick while a refresh is in progress.",
)
def refresh_every_30_minutes(context: ScheduleEvaluationContext):
    running = refresh_in_progress(context.instance)
    if running:
        return SkipReason(f"refresh run {running[0]} is still in progress; skipping this tick")
    return RunRequest(run_key=None, tags={"spendwise/trigger": "schedule"})
