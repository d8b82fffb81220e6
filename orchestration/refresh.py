"""Run the whole graph once in the project's Dagster instance and summarise what it wrote.

Used by `spendwise refresh` / `make run`; the run is recorded in DAGSTER_HOME so the UI shows it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import (
    ANALYTICS_SCHEMA,
    DEFAULT_DAGSTER_HOME,
    LOCAL_INSTANCE_TEMPLATE,
    PREDICTIONS_SCHEMA,
    RAW_SCHEMA,
    REFRESH_JOB_NAME,
    get_settings,
)


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the project-local `.dagster_home/` unless set, with its dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(LOCAL_INSTANCE_TEMPLATE, config)
    return home


@dataclass
class CheckEvaluation:
    """One asset check as a run reported it (the run summary's view, not core.checks.CheckOutcome)."""

    asset: str
    name: str
    passed: bool
    blocking: bool
    severity: str
    description: str = ""


@dataclass
class RefreshOutcome:
    run_id: str
    success: bool
    seconds: float
    materialized: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    checks: list[CheckEvaluation] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckEvaluation]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        """False when the run failed or a blocking / error-severity check failed."""
        return self.success and not any(c.blocking or c.severity == "ERROR" for c in self.failed_checks)


def run_refresh(
    instance=None, tags: dict[str, str] | None = None, log_level: str = "WARNING", run_id: str | None = None
) -> RefreshOutcome:
    """Materialize every asset once, in-process, recorded in `instance` (default: DAGSTER_HOME's).

    `run_id` lets a launcher (the HTTP service) know the run's id before it starts.
    """
    from dagster import DagsterInstance

    from orchestration.dbt import prepare_manifest

    ensure_dagster_home()
    prepare_manifest()
    from orchestration.definitions import defs

    instance = instance or DagsterInstance.get()
    job = defs.resolve_job_def(REFRESH_JOB_NAME)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        run_id=run_id,
        raise_on_error=False,
        tags={"spendwise/trigger": "cli", **(tags or {})},
        # dbt's own progress lines still print; Dagster's per-event DEBUG lines live in the UI.
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    seconds = time.perf_counter() - started
    checks = [
        CheckEvaluation(
            asset=ev.asset_key.to_user_string(),
            name=ev.check_name,
            passed=bool(ev.passed),
            blocking=bool(getattr(ev, "blocking", False)),
            severity=getattr(ev.severity, "value", str(ev.severity)),
            description=ev.description or "",
        )
        for ev in result.get_asset_check_evaluations()
    ]
    materialized = sorted(
        {ev.asset_key.to_user_string() for ev in result.get_asset_materialization_events() if ev.asset_key}
    )
    return RefreshOutcome(
        run_id=result.run_id,
        success=result.success,
        seconds=seconds,
        materialized=materialized,
        failed_steps=sorted(result.get_failed_step_keys()),
        checks=checks,
    )


def format_summary(outcome: RefreshOutcome | None, warehouse, total_seconds: float | None = None) -> str:
    """The short report `make run` ends with: tables and rows, checks, charts, timings."""
    settings = get_settings()
    lines = [f"Warehouse: {settings.warehouse.redacted()}"]
    for schema in (RAW_SCHEMA, ANALYTICS_SCHEMA, PREDICTIONS_SCHEMA):
        counts = warehouse.row_counts(schema)
        if counts:
            lines.append(f"  {schema}: {len(counts)} tables")
            lines.extend(f"    {name:<34} {rows:>12,} rows" for name, rows in counts.items())
    if outcome is not None:
        passed = sum(c.passed for c in outcome.checks)
        lines.append(
            f"Run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'} in {outcome.seconds:.1f} s, "
            f"{len(outcome.materialized)} assets materialized"
        )
        lines.append(f"Checks: {passed} passed, {len(outcome.failed_checks)} failed")
        for c in outcome.failed_checks:
            kind = "blocking" if c.blocking else c.severity.lower()
            lines.append(f"  FAILED [{kind}] {c.asset} :: {c.name} {c.description}".rstrip())
        for step in outcome.failed_steps:
            lines.append(f"  FAILED step {step}")
    charts = sorted(settings.charts_dir.glob("*.png")) if settings.charts_dir.exists() else []
    lines.append(f"Charts: {len(charts)} PNG in {settings.charts_dir}")
    lines.append(f"Dagster instance: {os.environ.get('DAGSTER_HOME', DEFAULT_DAGSTER_HOME)} (make dev opens the UI)")
    if total_seconds is not None:
        lines.append(f"Total time: {total_seconds:.1f} s")
    return "\n".join(lines)
