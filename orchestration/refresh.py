"""Run the whole graph once in the project's Dagster instance and summarise what it wrote.

Used by `spendwise refresh` / `make run` and the HTTP service's refresh child; the run is recorded in
DAGSTER_HOME so the UI shows it. The process holds the warehouse's refresh lock for the whole run
and tags the run with its identity, so a second refresh is refused and a killed one is recognised.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from core.processes import ProcessIdentity
from core.refresh_lock import RefreshLock, describe_holder
from core.settings import (
    ANALYTICS_SCHEMA,
    DEFAULT_DAGSTER_HOME,
    LOCAL_INSTANCE_TEMPLATE,
    PREDICTIONS_SCHEMA,
    RAW_SCHEMA,
    REFRESH_JOB_NAME,
    SERVING_URL_ENV,
    Settings,
    WarehouseUrl,
    get_settings,
    serving_for,
)
from core.warehouse import WarehouseBusy, WarehouseClient, WarehouseMissing, WarehouseUnavailable


def require_warehouse(url: WarehouseUrl) -> None:
    """Raise WarehouseMissing or WarehouseUnavailable unless the warehouse exists and answers.

    Never creates anything: a DuckDB file is only looked at, PostgreSQL gets one read-only session.
    """
    if url.kind == "duckdb":
        if not url.duckdb_path.is_file():
            raise WarehouseMissing(f"no DuckDB file at {url.duckdb_path}")
        return
    if url.kind == "spark":  # its files only: a Spark session would take the metastore a refresh needs
        from core.spark import require_raw_tables

        require_raw_tables(url.spark)
        return
    with WarehouseClient(url).connect(read_only=True):
        pass


def require_serving(settings: Settings) -> None:
    """When the prediction tables live in a serving database of their own (SPENDWISE_SERVING_URL), raise
    WarehouseUnavailable unless it answers; a spark:// warehouse without one is a ValueError saying what to set."""
    serving = settings.serving
    if serving == settings.warehouse:
        return
    try:
        require_warehouse(serving)
    except WarehouseUnavailable as exc:
        cause = " ".join(str(exc.__cause__ or exc).split())
        raise WarehouseUnavailable(
            f"cannot reach the serving database {SERVING_URL_ENV}={serving.redacted()}: {cause}") from None


def warehouse_problem(exc: Exception, url: WarehouseUrl) -> str:
    """One line for a missing or unreachable warehouse, saying what to do."""
    if isinstance(exc, WarehouseMissing) and url.kind != "spark":
        return f"no warehouse at {url.duckdb_path}: run `spendwise demo` or `spendwise load DIR`"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    detail = " ".join(str(cause).split())
    if exc.__cause__ is None:  # raised in words already: a Spark folder, the serving database
        return detail
    if url.kind == "postgres":
        return f"cannot reach PostgreSQL at {url.host}:{url.port}: {detail}"
    return f"cannot open the DuckDB warehouse {url.duckdb_path}: {detail}"


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
    failed_rows: int | None = None  # a dbt test's failing rows (or groups), from dagster-dbt's metadata
    explanation: str = ""  # a failed dbt test in words: what is wrong, the rule, the fix (check_words)

    @property
    def stops_the_run(self) -> bool:
        """A blocking check failing with ERROR severity: nothing downstream of it ran or was published."""
        return not self.passed and self.blocking and self.severity == "ERROR"

    def in_words(self) -> str:
        return self.explanation or self.description


@dataclass
class RefreshOutcome:
    run_id: str
    success: bool
    seconds: float
    materialized: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    checks: list[CheckEvaluation] = field(default_factory=list)
    webhooks: list = field(default_factory=list)  # core.webhooks.Delivery of this run's event, once sent

    @property
    def failed_checks(self) -> list[CheckEvaluation]:
        return [c for c in self.checks if not c.passed]

    @property
    def failures(self) -> list[CheckEvaluation]:
        """Failed checks that stopped what depends on them (blocking, ERROR severity)."""
        return [c for c in self.failed_checks if c.stops_the_run]

    @property
    def warnings(self) -> list[CheckEvaluation]:
        """Failed checks that stopped nothing (WARN severity, or not blocking): stale data, for one."""
        return [c for c in self.failed_checks if not c.stops_the_run]

    @property
    def ok(self) -> bool:
        """True when every step succeeded and no blocking ERROR check failed; warnings do not count."""
        return self.success and not self.failed_steps and not self.failures


def new_run_id() -> str:
    return str(uuid.uuid4())


def run_refresh(
    instance=None,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
    run_id: str | None = None,
    lock: RefreshLock | None = None,
    progress: TextIO | None = None,
    verbose: bool = False,
    full_refresh: bool = False,
    run_config: dict | None = None,
) -> RefreshOutcome:
    """Materialize every asset once, in-process, recorded in `instance` (default: DAGSTER_HOME's).

    `run_id` lets a launcher (the HTTP service) know the run's id before it starts. Before any
    run exists the warehouse must be there (WarehouseMissing / WarehouseUnavailable) and this
    process takes its refresh lock (RefreshInProgress names the holder), unless the caller passes
    a `lock` it already holds for `run_id`. The run carries this process's identity in its tags.
    With a `progress` stream, a line per step (or group of check or chart steps) is written there
    as the run goes (orchestration.progress); `verbose`: the steps' own output shares that stream.
    `full_refresh`: the incremental dbt models are rebuilt from all raw rows (DbtModelConfig.full_refresh).
    `run_config`: the ops' settings of a run-config file (`refresh_run_config`), already checked.
    """
    settings = get_settings()
    require_warehouse(settings.warehouse)
    require_serving(settings)
    run_id = run_id or (lock.info["run_id"] if lock is not None and lock.info else new_run_id())
    own_lock = lock is None
    if own_lock:
        lock = RefreshLock(settings.warehouse)
        lock.acquire(run_id)
    trigger = (tags or {}).get("spendwise/trigger", "cli")
    started_at = datetime.now(timezone.utc)
    try:
        try:
            outcome = _execute(instance, {**(tags or {}), WEBHOOK_TAG[0]: WEBHOOK_TAG[1]}, log_level, run_id,
                               progress, verbose, full_refresh, run_config)
        except Exception as exc:
            notify_refresh_webhooks(None, run_id=run_id, started_at=started_at, trigger=trigger,
                                    error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            raise
        # Still under the refresh lock: the event's row counts are this run's tables, not a next run's.
        outcome.webhooks = notify_refresh_webhooks(outcome, run_id=run_id, started_at=started_at, trigger=trigger)
        return outcome
    finally:
        if own_lock:
            lock.release()


def refresh_run_config(path=None) -> dict:
    """The ops' settings of the run-config file (`path`, else SPENDWISE_RUN_CONFIG; {} without one), checked
    against the refresh job before anything starts: RunConfigError names the file and the bad entry."""
    from orchestration.run_config import run_config_path, validated_run_config

    chosen = run_config_path(path)
    if chosen is None:
        return {}
    from orchestration.dbt import prepare_manifest

    prepare_manifest()  # the definitions load the dbt manifest
    from orchestration.definitions import defs

    return validated_run_config(defs.resolve_job_def(REFRESH_JOB_NAME), chosen)


# Runs tagged so are announced by the process that ran them (run_refresh), not by the run-status sensors.
WEBHOOK_TAG = ("spendwise/webhooks", "sent-by-launcher")


def webhook_report(outcome: RefreshOutcome | None, run_id: str, started_at: datetime, finished_at: datetime,
                   trigger: str, error: str | None = None):
    """The run as core.webhooks sends it: succeeded when `outcome.ok` (warnings allowed), failed checks in words."""
    from core.webhooks import FailedCheck, RunReport

    failed = outcome.failed_checks if outcome is not None else []
    return RunReport(
        run_id=run_id,
        succeeded=outcome is not None and outcome.ok and error is None,
        started_at=started_at,
        finished_at=finished_at,
        trigger=trigger,
        failed_checks=tuple(FailedCheck(asset=c.asset, name=c.name, severity=c.severity, blocking=c.blocking,
                                        stops_the_run=c.stops_the_run, words=c.in_words()) for c in failed),
        failed_steps=tuple(outcome.failed_steps if outcome is not None else ()),
        error=error,
    )


def notify_refresh_webhooks(outcome: RefreshOutcome | None, *, run_id: str, started_at: datetime,
                            finished_at: datetime | None = None, trigger: str = "cli", error: str | None = None,
                            sleep=time.sleep) -> list:
    """The hook every refresh path calls once its run is over: `refresh.succeeded` or `refresh.failed`
    to the configured webhooks (core.webhooks), deliveries recorded in ops.webhook_deliveries.

    Synchronous, bounded by SPENDWISE_WEBHOOK_DEADLINE_SECONDS, and it never raises: the URLs are
    tried in parallel threads and this waits for them, so the process (a CLI or HTTP child that exits
    right after) does not end mid-delivery, and the deliveries are recorded on the caller's thread
    (a DuckDB file takes one connection configuration per process, which a background writer racing
    the summary's read-only reads would break). Nothing is sent when no webhook is configured."""
    settings = get_settings()
    if not settings.webhooks.configured:
        return []
    from core.webhooks import notify_refresh

    report = webhook_report(outcome, run_id, started_at, finished_at or datetime.now(timezone.utc), trigger, error)
    # ops.webhook_deliveries lives with the prediction tables: the serving database when one is set
    return notify_refresh(report, WarehouseClient(settings.serving), settings.webhooks, sleep=sleep)


def outcome_from_run(instance, run_id: str) -> RefreshOutcome:
    """The summary of a finished run read back from the Dagster instance's event log: what the
    run-status sensors send for runs the daemon launched (the schedule, the UI, the landing sensor)."""
    from dagster import DagsterEventType, DagsterRunStatus

    record = instance.get_run_record_by_id(run_id)
    kinds = {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_MATERIALIZATION,
             DagsterEventType.STEP_FAILURE}
    checks, materialized, failed_steps = [], set(), set()
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            checks.append(_check_evaluation(event.event_specific_data))
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.asset_key:
            materialized.add(event.asset_key.to_user_string())
        elif event.step_key:
            failed_steps.add(event.step_key)
    start, end = record.start_time, record.end_time
    return RefreshOutcome(
        run_id=run_id,
        success=record.dagster_run.status == DagsterRunStatus.SUCCESS,
        seconds=(end - start) if start and end else 0.0,
        materialized=sorted(materialized),
        failed_steps=sorted(failed_steps),
        checks=checks,
    )


def _execute(instance, tags: dict[str, str] | None, log_level: str, run_id: str,
             progress: TextIO | None = None, verbose: bool = False, full_refresh: bool = False,
             run_config: dict | None = None) -> RefreshOutcome:
    from dagster import DagsterInstance

    from orchestration.dbt import prepare_manifest
    from orchestration.progress import RunProgress, describe_steps
    from orchestration.run_config import merged

    ensure_dagster_home()
    prepare_manifest()
    from orchestration.definitions import defs

    instance = instance or DagsterInstance.get()
    job = defs.resolve_job_def(REFRESH_JOB_NAME)
    steps = None
    if progress is not None:
        steps = RunProgress(progress, describe_steps(defs.resolve_asset_graph()), total=len(job.graph.nodes),
                            interleaved=verbose)
        shown = "shown here as well" if verbose else "--verbose shows it here"
        progress.write(f"Refresh: Dagster run {run_id}, {steps.total} steps (what the steps print, dbt's per-node "
                       f"log included, is in the run's logs in `make dev`; {shown})\n")
        progress.flush()
        instance.add_event_listener(run_id, steps.on_event)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        run_id=run_id,
        raise_on_error=False,
        tags={"spendwise/trigger": "cli", **(tags or {}), **ProcessIdentity.current().to_tags()},
        # Dagster's per-event lines live in the UI; dbt's per-node log goes to stdout (see progress.py).
        run_config=merged(run_config or {}, {
            "loggers": {"console": {"config": {"log_level": log_level}}},
            **({"ops": {"spendwise_dbt_models": {"config": {"full_refresh": True}}}} if full_refresh else {}),
        }),
    )
    seconds = time.perf_counter() - started
    if steps is not None:
        steps.finish()
    checks = [_check_evaluation(ev) for ev in result.get_asset_check_evaluations()]
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


def _check_evaluation(ev) -> CheckEvaluation:
    """One of Dagster's AssetCheckEvaluation as the run summary reads it."""
    return CheckEvaluation(
        asset=ev.asset_key.to_user_string(),
        name=ev.check_name,
        passed=bool(ev.passed),
        blocking=bool(getattr(ev, "blocking", False)),
        severity=getattr(ev.severity, "value", str(ev.severity)),
        description=ev.description or "",
        failed_rows=_metadata_value(ev.metadata, "dagster_dbt/failed_row_count"),
        explanation=_dbt_test_in_words(ev),
    )


def _metadata_value(metadata, key: str):
    entry = (metadata or {}).get(key)
    return getattr(entry, "value", entry)


def _dbt_test_in_words(evaluation) -> str:
    """A failed dbt test's rule and fix in words, from the words declared beside the test."""
    unique_id = _metadata_value(evaluation.metadata, "unique_id")
    if evaluation.passed or not isinstance(unique_id, str) or not unique_id.startswith("test."):
        return ""
    from orchestration.check_words import explain_test, load_manifest
    from orchestration.dbt import dbt_project

    return explain_test(load_manifest(dbt_project().manifest_path), unique_id,
                        _metadata_value(evaluation.metadata, "dagster_dbt/failed_row_count"))


def _row_counts(client: WarehouseClient, schema: str) -> dict[str, int]:
    """Rows per table in `schema` over one read-only connection that never waits for a writer."""
    if client.kind == "spark":  # from the table files: no JVM, and the metastore stays free for a refresh
        from core.spark import file_row_counts

        return file_row_counts(client.url.spark, schema)
    with client.connect(read_only=True, wait=False) as con:
        names = [
            row[0] for row in client.fetch(
                con,
                "SELECT table_name FROM information_schema.tables "
                f"WHERE table_schema = {client.placeholder} AND table_type = 'BASE TABLE' ORDER BY table_name",
                (schema,),
            )
            if "__spendwise_staging" not in row[0]
        ]
        if not names:
            return {}
        union = " UNION ALL ".join(
            f"SELECT {_literal(client, n)} AS table_name, count(*) AS n FROM {client.ident(schema)}.{client.ident(n)}"
            for n in names
        )
        return {str(name): int(n) for name, n in client.fetch(con, union)}


def _literal(client: WarehouseClient, text: str) -> str:
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted.replace("%", "%%") if client.kind == "postgres" else quoted


def format_summary(outcome: RefreshOutcome | None, warehouse, total_seconds: float | None = None) -> str:
    """The short report a refresh ends with: tables, checks, charts, headline numbers, what next, timings.

    Without an `outcome` (`spendwise status`) every table is listed with its rows; after a run each
    schema is one line. Reads the warehouse read-only and never creates it; raises WarehouseMissing
    when it is not there and WarehouseUnavailable when it cannot be reached. While a refresh writes
    to DuckDB the row counts are left out with a note instead of waiting.
    """
    settings = get_settings()
    client = warehouse if isinstance(warehouse, WarehouseClient) else getattr(warehouse, "client", warehouse)
    # the prediction tables: in the serving database when one is set (required with Spark)
    serving = WarehouseClient(serving_for(client.url, settings.serving_url, "the summary of the prediction tables"))
    lines = [f"Warehouse: {client.url.redacted()}"]
    if serving.url != client.url:
        lines.append(f"Serving database ({SERVING_URL_ENV}): {serving.url.redacted()}")
    try:
        for schema in (RAW_SCHEMA, ANALYTICS_SCHEMA, PREDICTIONS_SCHEMA):
            counts = _row_counts(serving if schema == PREDICTIONS_SCHEMA else client, schema)
            if counts and outcome is None:
                lines.append(f"  {schema}: {len(counts)} tables")
                lines.extend(f"    {name:<34} {rows:>12,} rows" for name, rows in counts.items())
            elif counts:
                lines.append(f"  {schema}: {len(counts)} tables, {sum(counts.values()):,} rows")
    except (WarehouseMissing, WarehouseUnavailable):
        raise
    except WarehouseBusy as exc:
        lines.append(f"  (row counts skipped: {exc.detail})")
    if outcome is not None:
        lines.extend(_run_lines(outcome))
    charts = sorted(settings.charts_dir.glob("*.png")) if settings.charts_dir.exists() else []
    lines.append(f"Charts: {len(charts)} PNG in {settings.charts_dir}")
    dagster_home = os.environ.get("DAGSTER_HOME", DEFAULT_DAGSTER_HOME)
    if outcome is None:
        lines.append(f"Dagster instance: {dagster_home} (make dev opens the UI)")
    else:
        lines.extend(headline_lines(serving, outcome.run_id))
        lines.append(f"Next: `make dev` shows this run, its logs and the asset graph on http://127.0.0.1:3000 "
                     f"(instance {dagster_home})")
        lines.append(f"      `make serve` serves the charts and tables on http://127.0.0.1:8000; "
                     f"the PNGs are in {settings.charts_dir}")
    if total_seconds is not None:
        lines.append(f"Total time: {total_seconds:.1f} s")
    return "\n".join(lines)


_GAIN_INTERVAL = re.compile(r"interval ([+-][\d,]+(?:\.\d+)?) to ([+-][\d,]+(?:\.\d+)?)")


def headline_lines(client: WarehouseClient, run_id: str) -> list[str]:
    """Three numbers from what run `run_id` published, each with its interval: the media mix's top
    channel by ROAS (identifiable channels first), the budget recommendation's expected gain, and the
    forecast's ROI over its horizon. A table the run did not publish is said to be so."""
    def rows(table: str, columns: str, where: str = "") -> list[tuple]:
        """This run's rows of a predictions table; none when the table is not there."""
        # A connection per read: on PostgreSQL a failed statement would spoil the ones after it.
        with client.connect(read_only=True, wait=False) as con:
            if not client.fetch(con, "SELECT 1 FROM information_schema.tables WHERE table_schema = "
                                f"{client.placeholder} AND table_name = {client.placeholder}", (PREDICTIONS_SCHEMA, table)):
                return []
            return client.fetch(
                con, f"SELECT {columns} FROM {client.ident(PREDICTIONS_SCHEMA)}.{client.ident(table)} "
                     f"WHERE run_id = {client.placeholder}{where}", (run_id,))

    lines = []
    for read in (_top_roas_line, _budget_gain_line, _roi_forecast_line):
        try:
            lines.append("  " + read(rows))
        except (WarehouseBusy, WarehouseMissing, WarehouseUnavailable) as exc:
            return [f"Headline numbers: skipped ({' '.join(str(exc).split())[:160]})"]
        except Exception as exc:  # a column gone: say so, keep the rest
            lines.append(f"  {read.__doc__.split(':')[0]}: unavailable ({' '.join(str(exc).split())[:120]})")
    if all(NOT_PUBLISHED in line for line in lines):
        return ["Headline numbers: none, this run did not publish the predictions they come from"]
    return ["Headline numbers:", *lines]


NOT_PUBLISHED = "not published by this run"


def _top_roas_line(rows) -> str:
    """Top channel by media-mix ROAS: the highest ROAS among identifiable channels, with its interval."""
    found = rows("mmm_channel_roas", "channel, roas, roas_lower, roas_upper, identifiable", " AND roas IS NOT NULL")
    if not found:
        return f"Top channel by media-mix ROAS: {NOT_PUBLISHED}"
    level = _interval_level(rows)
    trusted = [r for r in found if r[4]] or found
    channel, roas, lower, upper, identifiable = max(trusted, key=lambda r: r[1])
    line = (f"Top channel by media-mix ROAS: {channel} {roas:.2f} revenue per unit of spend "
            f"({level}interval {lower:.2f} to {upper:.2f})")
    if not identifiable:
        line += "; no channel passed the model's review, so read it with care"
    higher = [r for r in found if not r[4] and r[1] > roas]
    if higher and identifiable:
        line += "; " + ", ".join(f"{r[0]} {r[1]:.2f}" for r in higher) + " higher but not identifiable"
    return line


def _interval_level(rows) -> str:
    try:
        found = rows("mmm_diagnostics", "value", " AND metric = 'ci'")
        return f"{float(found[0][0]):.0%} " if found and found[0][0] is not None else ""
    except Exception:
        return ""


def _budget_gain_line(rows) -> str:
    """Budget recommendation: the TOTAL row's expected daily revenue gain and its interval."""
    from core.registry import TOTAL_ROW

    found = rows("ml_budget_recommendation",
                 "current_spend, recommended_spend, current_expected_revenue, recommended_expected_revenue, reason",
                 f" AND channel = '{TOTAL_ROW}'")
    if not found:
        return f"Budget recommendation: {NOT_PUBLISHED}"
    current_spend, recommended_spend, current, recommended, reason = found[0]
    if (reason or "").startswith("keep"):
        return f"Budget recommendation: {reason.split(';')[0]}"
    gain = recommended - current
    same = abs(recommended_spend - current_spend) <= 0.005 * max(abs(current_spend), 1e-9)
    spend = (f"at the same daily spend ({current_spend:,.0f})" if same
             else f"at {recommended_spend:,.0f} daily spend instead of {current_spend:,.0f}")
    line = f"Budget recommendation: {gain:+,.2f} media revenue/day ({gain / max(abs(current), 1e-9):+.1%}) {spend}"
    match = _GAIN_INTERVAL.search(reason or "")
    return line + (f", interval {match.group(1)} to {match.group(2)}" if match else "")


def _roi_forecast_line(rows) -> str:
    """ROI forecast: the channels' summed forecast spend and revenue over the horizon, as one ROI."""
    found = [r for r in rows("ml_roi_forecast", "horizon_days, predicted_spend, predicted_revenue, roi_lower, roi_upper")
             if r[2] is not None and r[1]]
    if not found:
        return f"ROI forecast: {NOT_PUBLISHED} (or no platform revenue in the data)"
    spend = sum(r[1] for r in found)
    roi = sum(r[2] for r in found) / spend - 1
    line = (f"ROI forecast, next {max(r[0] for r in found)} days: {roi:.2f} on {spend:,.0f} forecast spend, "
            "platform-reported revenue")
    if all(r[3] is not None and r[4] is not None for r in found):
        lower = sum(r[1] * (1 + r[3]) for r in found) / spend - 1
        upper = sum(r[1] * (1 + r[4]) for r in found) / spend - 1
        line += f" ({lower:.2f} to {upper:.2f} if every channel lands at the same end of its 95% interval)"
    return line


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _run_lines(outcome: RefreshOutcome) -> list[str]:
    """The run, then its warnings and its failures as separate lists, each check in words."""
    passed = sum(c.passed for c in outcome.checks)
    lines = [
        f"Run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'} in {outcome.seconds:.1f} s, "
        f"{len(outcome.materialized)} assets materialized",
        f"Checks: {passed} passed, {_plural(len(outcome.warnings), 'warning')}, {len(outcome.failures)} failed",
    ]
    if outcome.warnings:
        lines.append(f"Warnings ({len(outcome.warnings)}; they stopped nothing):")
        for c in outcome.warnings:
            kind = "warning" if c.severity == "WARN" else "error, not blocking"
            lines.append(f"  WARNING [{kind}] {c.asset} :: {c.name}: {c.in_words()}".rstrip(": "))
    if outcome.failures or outcome.failed_steps:
        lines.append(
            f"Failures ({_plural(len(outcome.failures), 'check')}, {_plural(len(outcome.failed_steps), 'step')}; "
            "what depends on them was not refreshed and keeps its previous tables and charts):"
        )
        for c in outcome.failures:
            lines.append(f"  FAILED [blocking] {c.asset} :: {c.name}: {c.in_words()}".rstrip(": "))
        for step in outcome.failed_steps:
            lines.append(f"  FAILED step {step}")
    if outcome.webhooks:
        failed = [d for d in outcome.webhooks if not d.delivered]
        lines.append(f"Webhooks: {len(outcome.webhooks) - len(failed)} of {len(outcome.webhooks)} delivered"
                     + "".join(f"; {d.url} FAILED after {d.attempts} attempt(s): {d.error}" for d in failed)
                     + " (ops.webhook_deliveries)")
    lines.append(
        "Result: " + ("published; exit code 0" + (" (with warnings)" if outcome.warnings else "") if outcome.ok
                      else "not everything was published; exit code 1")
    )
    return lines


def _age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def format_refresh_state(url: WarehouseUrl, dagster_home: Path, now: datetime | None = None) -> str:
    """The last refresh run (id, state, trigger, start time and age, the reason of a failure) and who
    holds the refresh lock. Runs whose process is gone are marked failed first, as the schedule does.
    Opens the Dagster instance only where a dagster.yaml exists; creates nothing else."""
    now = now or datetime.now(timezone.utc)
    lines = []
    if not (dagster_home / "dagster.yaml").is_file():
        lines.append(f"Last refresh: none recorded (no Dagster instance in {dagster_home})")
    else:
        from dagster import DagsterInstance

        from service.dagster_bridge import last_refresh_run, refresh_in_progress

        with DagsterInstance.from_config(str(dagster_home)) as instance:
            refresh_in_progress(instance, checked_by="spendwise status")
            last = last_refresh_run(instance)
        if last is None:
            lines.append(f"Last refresh: none recorded in {dagster_home}")
        else:
            started = last["started_at"]
            lines.append(
                f"Last refresh: run {last['run_id']} {last['status']} (trigger {last['trigger']}), "
                f"started {started:%Y-%m-%d %H:%M:%S} UTC, {_age(started, now)}"
            )
            if last["reason"] and last["status"] != "SUCCESS":
                lines.append(f"  reason: {' '.join(last['reason'].split())}")
    holder = RefreshLock(url).holder()
    lines.append(f"Refresh lock: {describe_holder(holder) if holder else 'free'}")
    return "\n".join(lines)
