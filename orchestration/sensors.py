"""The landing-folder sensor: merges complete drops into the raw tables and asks for a refresh
(skipped, with the reason, while a refresh is in progress). The file work lives in core.landing."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from core.landing import (
    LANDING_DIR_ENV,
    complete_drops,
    holder_line,
    landing_dir_from_env,
    missing_raw_tables,
    process_drop,
)
from core.refresh_lock import describe_holder
from core.settings import WarehouseUrl, get_settings
from core.warehouse import WarehouseClient, WarehouseUnavailable
from orchestration.schedules import refresh_job
from service.dagster_bridge import refresh_in_progress, refresh_run_since

LANDING_SENSOR_NAME = "landing_folder"


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
        request = RunRequest(
            run_key=None,
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
