"""The HTTP service's only door to Dagster: asset freshness and check results, refresh launches, and
the one query that says whether a refresh is queued or running (the schedule asks it too).

Every dagster import sits inside a function, so importing this module (and service.app) loads no dagster.
It never imports assets or orchestration: a refresh runs in a child process (`spendwise refresh`).
"""

from __future__ import annotations

import fcntl

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from core.processes import ProcessIdentity
from core.refresh_lock import RefreshLock, describe_holder
from core.settings import LOCAL_INSTANCE_TEMPLATE, REFRESH_JOB_NAME, SCHEDULE_INTERVAL, STALE_AFTER, WarehouseUrl
from service.refresh_launcher import RefreshLauncher, SubprocessRefreshLauncher

__all__ = [
    "SCHEDULE_INTERVAL", "STALE_AFTER", "DagsterBridge", "RefreshLauncher", "SubprocessRefreshLauncher",
    "last_refresh_run", "reap_if_process_gone", "refresh_in_progress", "refresh_run_since",
]
REAPED_TAG = "spendwise/reaped"


_IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def refresh_in_progress(instance, checked_by: str = "a liveness check") -> list[str]:
    """Run ids of refresh runs that are queued or running in this Dagster instance.

    The one query for "a refresh is running" (the schedule, POST /refresh and `spendwise status`
    ask it). A run whose process is gone is not running: runs started by Spendwise's own processes
    (the CLI, the HTTP child, a Dagster run worker through the refresh executor) carry their
    process's identity in tags, and a run whose process no longer exists on this host is marked
    failed here with the reason (`checked_by` names who noticed) and left out.
    """
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus[name] for name in _IN_PROGRESS]
    records = instance.get_run_records(RunsFilter(job_name=REFRESH_JOB_NAME, statuses=statuses), limit=20)
    running = []
    for record in records:
        run = record.dagster_run
        if reap_if_process_gone(instance, run, checked_by) is None:
            running.append(run.run_id)
    return running


def reap_if_process_gone(instance, run, checked_by: str = "a liveness check") -> str | None:
    """Mark `run` failed when the process that ran it is gone; returns the reason, else None."""
    identity = ProcessIdentity.from_tags(dict(run.tags))
    gone = identity.gone_reason() if identity is not None else None
    if gone is None:
        return None
    # The process has exited, so whatever it wrote is in the storage: a run that ended is final.
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status.value not in _IN_PROGRESS:
        return None
    reason = (
        f"The process running this refresh is gone: {gone} (killed, e.g. kill -9 or out of memory, or "
        f"crashed). Marked failed by {checked_by} so that the next refresh can start."
    )
    instance.add_run_tags(run.run_id, {REAPED_TAG: reason})
    instance.report_run_failed(current, message=reason)
    return reason


def last_refresh_run(instance) -> dict | None:
    """The latest refresh run (after reaping dead ones) as plain values, for `spendwise status`."""
    from dagster import DagsterEventType, RunsFilter

    records = instance.get_run_records(RunsFilter(job_name=REFRESH_JOB_NAME), limit=1)
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    reason = run.tags.get(REAPED_TAG)
    if reason is None and run.status.value == "FAILURE":
        failures = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        reason = failures[-1].message if failures else None
    started = record.start_time or record.create_timestamp.timestamp()
    return {
        "run_id": run.run_id, "status": run.status.value, "trigger": run.tags.get("spendwise/trigger", "ui"),
        "started_at": _utc(started), "ended_at": _utc(record.end_time), "reason": reason,
    }


def refresh_run_since(instance, run_id: str) -> str | None:
    """When a run started (or was created, if it has not started), ISO UTC, for `already running` lines."""
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return None
    started = record.start_time or record.create_timestamp.timestamp()
    return _utc(started).strftime("%Y-%m-%dT%H:%M:%SZ")


class DagsterUnavailable(RuntimeError):
    """The Dagster instance at DAGSTER_HOME could not be opened or read."""


class RefreshAlreadyRunning(RuntimeError):
    """A refresh is queued or running; the message is the one line `already running: run X since T`."""

    def __init__(self, run_ids: list[str], since: str | None = None, message: str | None = None):
        self.run_ids = run_ids
        super().__init__(message or describe_holder({"run_id": run_ids[0], "since": since}))


@dataclass(frozen=True)
class CheckState:
    name: str
    passed: bool | None
    status: str
    severity: str | None
    run_id: str
    evaluated_at: datetime | None


@dataclass(frozen=True)
class AssetState:
    asset_key: str
    last_materialization: datetime | None
    run_id: str | None
    stale: bool
    external: bool = False
    checks: list[CheckState] = field(default_factory=list)


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime
    stale_after_minutes: int
    stale: bool
    refresh_running: bool
    running_run_ids: list[str]
    assets: list[AssetState]
    launch_error: str | None = None


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


def _enum_value(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


class DagsterBridge:
    """Reads asset status from, and launches refresh runs into, one Dagster instance.

    dagster_home: the instance's folder (DAGSTER_HOME); opened lazily, created from
        deploy/dagster.local.yaml when it has no dagster.yaml.
    instance: an already open DagsterInstance to use instead (tests: `instance_for_test()`).
    launcher: starts a refresh run and returns its id (default `SubprocessRefreshLauncher`).
    """

    def __init__(
        self,
        dagster_home: Path,
        *,
        instance=None,
        launcher: RefreshLauncher | None = None,
        child_env: dict[str, str] | None = None,
        stale_after: timedelta = STALE_AFTER,
    ):
        self.dagster_home = Path(dagster_home)
        self._instance = instance
        self._owns_instance = instance is None
        self.launcher = launcher or SubprocessRefreshLauncher(self.dagster_home, env=child_env)
        self.stale_after = stale_after
        self._lock = threading.Lock()

    def instance(self):
        if self._instance is None:
            with self._lock:
                if self._instance is None:
                    self._instance = self._open_instance()
        return self._instance

    def _open_instance(self):
        from dagster import DagsterInstance

        try:
            self.dagster_home.mkdir(parents=True, exist_ok=True)
            config = self.dagster_home / "dagster.yaml"
            if not config.exists():
                config.write_bytes(LOCAL_INSTANCE_TEMPLATE.read_bytes())
            # Several server workers open a new instance at once: on SQLite storage each would create
            # and stamp the schema (alembic then finds two heads), so they take turns.
            with open(self.dagster_home / ".spendwise-instance-open.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                return DagsterInstance.from_config(str(self.dagster_home))
        except Exception as exc:
            raise DagsterUnavailable(
                f"cannot open the Dagster instance in {self.dagster_home} ({exc.__class__.__name__}: {exc}); "
                "check DAGSTER_HOME and its dagster.yaml"
            ) from exc

    def close(self) -> None:
        if self._owns_instance and self._instance is not None:
            self._instance.dispose()
            self._instance = None

    def _in_progress(self, instance, checked_by: str = "the HTTP service (GET /status)") -> list[str]:
        starting = getattr(self.launcher, "starting", None)
        pending = starting(instance) if starting else []
        return sorted(set(refresh_in_progress(instance, checked_by)) | set(pending))

    def start_refresh(self, warehouse: WarehouseUrl | None = None) -> str:
        """Launch `refresh_all` unless one is queued or running; returns the new run id.

        `warehouse`: also refuse while another process (a CLI refresh, a schedule run, another
        Dagster instance) holds that warehouse's refresh lock. Raises RefreshAlreadyRunning (one-line
        message `already running: run X since T`) and DagsterUnavailable when the instance cannot be read.
        """
        instance = self.instance()
        # One launch at a time from this process: the check and the launch must not interleave.
        with self._lock:
            try:
                running = self._in_progress(instance, checked_by="POST /refresh")
            except Exception as exc:
                raise DagsterUnavailable(f"cannot read runs from the Dagster instance: {exc}") from exc
            if running:
                launched = getattr(self.launcher, "launched_at", {}).get(running[0])
                since = refresh_run_since(instance, running[0]) or (
                    launched.strftime("%Y-%m-%dT%H:%M:%SZ") if launched else None
                )
                raise RefreshAlreadyRunning(running, since=since)
            holder = RefreshLock(warehouse).holder() if warehouse is not None else None
            if holder is not None:
                raise RefreshAlreadyRunning([holder["run_id"]] if holder.get("run_id") else [],
                                            message=describe_holder(holder))
            return self.launcher(instance)

    def latest_refresh(self) -> dict | None:
        """The latest refresh run as plain values (run_id, status, trigger, started_at, ended_at, reason),
        None before the first; read from the instance's run storage, so every server process sees it."""
        instance = self.instance()
        try:
            return last_refresh_run(instance)
        except Exception as exc:
            raise DagsterUnavailable(
                f"cannot read runs from the Dagster instance in {self.dagster_home} ({exc.__class__.__name__}: {exc})"
            ) from exc

    def status(self, now: datetime | None = None) -> StatusReport:
        """Last materialization, latest check results and staleness of every asset the instance knows.

        An asset is stale when its last materialization is older than `stale_after` (two schedule
        intervals) or missing; the report is stale when any asset is, or when no asset was ever
        materialized. Assets appear once a run has planned, materialized or checked them; those no
        run plans to materialize (raw tables loaded outside Dagster) are `external` and never stale.
        """
        now = now or datetime.now(timezone.utc)
        instance = self.instance()
        try:
            assets = self._asset_states(instance, now)
            running = self._in_progress(instance)
        except DagsterUnavailable:
            raise
        except Exception as exc:
            raise DagsterUnavailable(
                f"cannot read the Dagster instance in {self.dagster_home} ({exc.__class__.__name__}: {exc})"
            ) from exc
        return StatusReport(
            generated_at=now,
            stale_after_minutes=int(self.stale_after.total_seconds() // 60),
            stale=not assets or any(a.stale for a in assets),
            refresh_running=bool(running),
            running_run_ids=running,
            assets=assets,
            launch_error=getattr(self.launcher, "last_error", None),
        )

    def _asset_states(self, instance, now: datetime) -> list[AssetState]:
        records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records()}
        materialized = {key: entry.last_materialization for key, entry in records.items()}
        planned, check_keys = _planned_assets_and_checks(instance, materialized)
        checks = _latest_checks(instance, check_keys)
        states = []
        for key in sorted(set(records) | set(checks), key=lambda k: k.to_user_string()):
            event = materialized.get(key)
            at = _utc(event.timestamp) if event is not None else None
            # Raw tables are loaded outside Dagster (spendwise demo / load): their checks run, but
            # no run ever plans to materialize them, so they cannot be stale.
            external = key not in planned
            states.append(
                AssetState(
                    asset_key=key.to_user_string(),
                    last_materialization=at,
                    run_id=event.run_id if event is not None else None,
                    stale=not external and (at is None or now - at > self.stale_after),
                    external=external,
                    checks=sorted(checks.get(key, []), key=lambda c: c.name),
                )
            )
        return states


def _planned_assets_and_checks(instance, materialized: dict[Any, Any]) -> tuple[set, set]:
    """Asset keys some run planned to materialize, and the check keys those runs planned or evaluated.

    The runs read are the ones that last materialized an asset and the latest refresh run (which
    may have failed before materializing anything).
    """
    from dagster import DagsterEventType, RunsFilter

    run_ids = {event.run_id for event in materialized.values() if event is not None}
    latest = instance.get_run_records(RunsFilter(job_name=REFRESH_JOB_NAME), limit=1)
    run_ids |= {r.dagster_run.run_id for r in latest}
    check_types = {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
    planned_type = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    check_keys, planned = set(), {key for key, event in materialized.items() if event is not None}
    for run_id in run_ids:
        for event in instance.all_logs(run_id, of_type={*check_types, planned_type}):
            if event.dagster_event is None:
                continue
            if event.dagster_event_type == planned_type:
                planned.add(event.dagster_event.asset_key)
                continue
            data = event.dagster_event.event_specific_data
            if data is not None and getattr(data, "asset_key", None) is not None:
                check_keys.add(_check_key(data.asset_key, data.check_name))
    return planned, check_keys


def _latest_checks(instance, check_keys: set) -> dict[Any, list[CheckState]]:
    """The latest execution of each check, whichever run it was in, per asset key."""
    from dagster import DagsterEventType

    executions = (
        instance.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys)) if check_keys else {}
    )
    checks: dict[Any, list[CheckState]] = {}
    for key, record in executions.items():
        event = record.event
        evaluated = event is not None and event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        evaluation = event.dagster_event.event_specific_data if evaluated and event.dagster_event else None
        checks.setdefault(key.asset_key, []).append(
            CheckState(
                name=key.name,
                passed=bool(evaluation.passed) if evaluation is not None else None,
                status=_enum_value(record.status) or "UNKNOWN",
                severity=_enum_value(getattr(evaluation, "severity", None)),
                run_id=record.run_id,
                evaluated_at=_utc(event.timestamp) if evaluated else None,
            )
        )
    return checks


def _check_key(asset_key, name: str):
    from dagster import AssetCheckKey

    return AssetCheckKey(asset_key=asset_key, name=name)
