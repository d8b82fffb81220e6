"""`spendwise` command line: load or generate raw data, refresh the graph, serve charts."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path


def _warehouse():
    from core.settings import get_settings
    from core.warehouse import WarehouseClient

    return WarehouseClient(get_settings().warehouse)


# `spendwise load` / `demo`: 2 = the files were rejected, 4 = the warehouse cannot be reached or written
# (the code `refresh` and `status` give for a warehouse they cannot reach).
EXIT_RAW_DATA_REJECTED = 2
EXIT_WAREHOUSE_NOT_WRITABLE = 4


def _raw_write_failed(command: str, detail: str, warehouse=None) -> int:
    """One line on stderr for a warehouse that cannot take the raw tables, and the exit code."""
    detail = " ".join(detail.split())  # driver messages span lines
    where = f"cannot write to the warehouse {warehouse.url.redacted()}: " if warehouse is not None else ""
    print(f"spendwise {command}: {where}{detail} (nothing was written)", file=sys.stderr)
    return EXIT_WAREHOUSE_NOT_WRITABLE


def _write_raw_tables(command: str, frames, **options):
    """replace_raw_tables on the configured warehouse; an invalid URL or an unreachable, unwritable or
    locked warehouse becomes one line and exit code 4 (returned instead of the published tables)."""
    import duckdb
    import psycopg2

    from core.raw_contract import RawDataError, replace_raw_tables
    from core.warehouse import WarehouseBusy, WarehouseUnavailable

    try:
        warehouse = _warehouse()
    except ValueError as exc:  # SPENDWISE_WAREHOUSE_URL cannot be parsed
        return _raw_write_failed(command, str(exc))
    if warehouse.kind == "spark":
        return _raw_write_failed(command, (
            f"`spendwise {command}` writes DuckDB and PostgreSQL warehouses only; write the raw tables of the Spark "
            f"warehouse {warehouse.url.redacted()} with core.spark.load_raw_tables (deploy/spark.md)"))
    try:
        return replace_raw_tables(warehouse, frames, **options)
    except RawDataError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_RAW_DATA_REJECTED
    except (WarehouseBusy, OSError, duckdb.Error, psycopg2.Error) as exc:
        # WarehouseUnavailable's own text is written for readers; the driver's reason is the useful part.
        cause = exc.__cause__ if isinstance(exc, WarehouseUnavailable) and exc.__cause__ is not None else exc
        return _raw_write_failed(command, str(cause), warehouse)


def _while_no_refresh_runs(command: str, action):
    """`action()` while holding this warehouse's refresh lock, so raw tables never change under a
    running refresh; a refresh in progress is one line and exit code 3 (nothing is written)."""
    import uuid

    from core.refresh_lock import RefreshInProgress, RefreshLock
    from core.settings import get_settings

    try:
        lock: RefreshLock | None = RefreshLock(get_settings().warehouse)
        lock.acquire(f"spendwise-{command}-{uuid.uuid4().hex[:8]}")
    except RefreshInProgress as exc:
        print(f"spendwise {command}: {exc}", file=sys.stderr)
        return EXIT_REFRESH_RUNNING
    except Exception:  # no warehouse folder yet, bad URL, server down: the write itself reports it
        lock = None
    try:
        return action()
    finally:
        if lock is not None:
            lock.release()


def cmd_demo(args: argparse.Namespace, compact: bool = False) -> int:
    """Write the demo data set; `compact` (what `run` shows) says it in one line instead of one per table."""
    from ml.synthetic import CHANNEL_METADATA, stream_demo_data
    from core.raw_contract import RAW_TABLES, channel_tables
    from core.warehouse import FrameChunks

    started = time.perf_counter()
    data = stream_demo_data(scale=args.scale, seed=args.seed, end=args.end, days=args.days)
    # Touchpoints are generated while they are written, a few million rows at a time, in the one
    # transaction that swaps in all raw tables: memory stays bounded whatever the scale.
    tables = {
        "ad_performance_daily": data.ad_performance_daily,
        "touchpoints": FrameChunks(data.touchpoints.chunks()),
        "conversions": data.conversions,
    }
    # The demo's channel metadata is written as a user's channels.csv would be.
    core = {**{name: tables[name] for name in RAW_TABLES}, **channel_tables(CHANNEL_METADATA)}
    truth = {
        "ground_truth_channels": data.ground_truth_channels,
        "ground_truth_daily": data.ground_truth_daily,
        "ground_truth_revenue_daily": data.ground_truth_revenue_daily,
    }
    published = _write_raw_tables("demo", core, extra=truth)
    if isinstance(published, int):
        return published
    seconds = time.perf_counter() - started
    if compact:
        main = [t for t in published if t.table in RAW_TABLES]
        print(f"Demo data (scale {args.scale}, seed {args.seed}) written in {seconds:.1f} s: "
              + ", ".join(f"{t.qualified_name} {t.rows:,} rows" for t in main)
              + f" and {len(published) - len(main)} more tables (channels, ground truth)")
        return 0
    for t in published:
        print(f"  {t.qualified_name:<40} {t.rows:>12,} rows")
    print(f"demo data (scale {args.scale}, seed {args.seed}) written in {seconds:.1f} s")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from core.raw_contract import RawDataError, read_raw_dir

    if args.check:
        return _check_load_folder(args.folder)
    try:
        frames = read_raw_dir(args.folder, channels=True)  # channels.csv too
    except RawDataError as exc:
        from core.preflight import fix_for

        # The problems as `load --check` words them, each followed by its fix where its words lack one.
        lines = str(exc).splitlines()
        for line in lines[:1] + [x for p in exc.problems for x in (f"  - {p}", *_fix_line(fix_for(p)))]:
            print(line, file=sys.stderr)
        return EXIT_RAW_DATA_REJECTED
    published = _while_no_refresh_runs(
        "load", lambda: _write_raw_tables("load", frames, drop_ground_truth=True)
    )
    if isinstance(published, int):
        return published
    for t in published:
        print(f"  {t.qualified_name:<40} {t.rows:>12,} rows")
    _audit("load", {"folder": Path(args.folder).name, "tables": {t.table: t.rows for t in published}})
    return 0


def _audit(action: str, detail: dict) -> None:
    """One row in ops.audit_log for what this command did; a failure to record is said on stderr
    (what was done stays done) rather than turned into a failed command."""
    from core import audit
    from core.settings import get_settings
    from core.warehouse import WarehouseClient

    try:  # the audit log lives with the prediction tables: the serving database when one is set
        audit.record(WarehouseClient(get_settings().serving), action, actor=audit.default_actor(), detail=detail)
    except Exception as exc:  # the command's own write succeeded; the operator must still learn of the gap
        print(f"spendwise: warning: {action} was done but not recorded in {audit.AUDIT_QUALIFIED}: "
              f"{' '.join(str(exc).split())}", file=sys.stderr)


def _fix_line(fix: str | None) -> tuple[str, ...]:
    return (f"      fix: {fix}",) if fix else ()


def _check_load_folder(folder: str) -> int:
    """`load --check`: the same validation as `load`, a summary per file, no write and no refresh lock; the
    warehouse, if reachable, is only read (to name new channels)."""
    from core.preflight import KnownChannels, check_folder, format_preflight, known_channels
    from core.settings import warehouse_url_from_env
    from core.warehouse import WarehouseClient

    try:
        known = known_channels(WarehouseClient(warehouse_url_from_env()))
    except ValueError as exc:  # SPENDWISE_WAREHOUSE_URL cannot be parsed
        known = KnownChannels(None, str(exc))
    check = check_folder(folder, known)
    print(format_preflight(check))
    return 0 if check.ok else EXIT_RAW_DATA_REJECTED


# `spendwise refresh` / `run` / `status`: 1 = the run or a blocking check failed, 2 = the settings are
# incomplete, 3 = a refresh of this warehouse is already running, 4 = no warehouse yet or the database
# cannot be reached.
EXIT_REFRESH_FAILED = 1
EXIT_SETTINGS_INCOMPLETE = 2
EXIT_REFRESH_RUNNING = 3
EXIT_NO_WAREHOUSE = 4
CONFIG_HELP = ("a YAML run-config file with the ops' settings, as in the Dagster UI's launchpad (e.g. ops: "
               "{media_mix_model: {config: {n_bootstrap: 200}}}); default: the file SPENDWISE_RUN_CONFIG names, "
               "else the assets' defaults. A bad file stops the command with exit code 2 before anything runs")
REFRESH_EXIT_CODES = """exit codes:
  0  everything was published; failed warnings (e.g. stale data) are listed as warnings
  1  a step failed or a blocking check with ERROR severity failed (the summary says which, in words)
  2  the settings are incomplete or invalid, e.g. a spark:// warehouse without SPENDWISE_SERVING_URL or
     a run-config file (--config, SPENDWISE_RUN_CONFIG) with an unknown setting: one line saying what to
     fix; nothing was started
  3  a refresh of this warehouse is already running (CLI, HTTP or schedule): one line on stderr,
     `already running: run <id> since <time>`; nothing was started
  4  no warehouse yet (run `spendwise demo` or `spendwise load DIR`) or PostgreSQL (the warehouse or the
     serving database) cannot be reached"""


def _refresh_guarded(command: str, action) -> int:
    """Run `action()` (which returns an exit code); incomplete settings, a refresh in progress or a
    missing/unreachable warehouse become one line on stderr and their exit code instead of a traceback."""
    from core.refresh_lock import RefreshInProgress
    from core.settings import get_settings, serving_for
    from core.warehouse import WarehouseMissing, WarehouseUnavailable
    from orchestration.refresh import warehouse_problem
    from orchestration.run_config import RunConfigError

    try:  # before anything runs: a spark:// warehouse needs the serving database of its prediction tables
        settings = get_settings()
        serving_for(settings.warehouse, settings.serving_url, f"`spendwise {command}`")
    except ValueError as exc:
        print(f"spendwise {command}: {exc}", file=sys.stderr)
        return EXIT_SETTINGS_INCOMPLETE
    try:
        return action()
    except RunConfigError as exc:  # raised before the action starts anything
        print(f"spendwise {command}: {exc}", file=sys.stderr)
        return EXIT_SETTINGS_INCOMPLETE
    except RefreshInProgress as exc:
        print(f"spendwise {command}: {exc}", file=sys.stderr)
        return EXIT_REFRESH_RUNNING
    except (WarehouseMissing, WarehouseUnavailable) as exc:
        print(f"spendwise {command}: {warehouse_problem(exc, get_settings().warehouse)}", file=sys.stderr)
        return EXIT_NO_WAREHOUSE


def _verbose(args: argparse.Namespace) -> bool:
    """dbt's per-node log on the terminal: asked for, or a caller that logs INFO to a file (POST /refresh)."""
    return args.verbose or getattr(args, "log_level", "WARNING").upper() in ("INFO", "DEBUG")


def cmd_refresh(args: argparse.Namespace) -> int:
    from orchestration.progress import terminal_apart
    from orchestration.refresh import format_summary, refresh_run_config, run_refresh

    def refresh() -> int:
        started = time.perf_counter()
        verbose = _verbose(args)
        run_config = refresh_run_config(args.config)
        with terminal_apart(verbose) as terminal:
            outcome = run_refresh(
                tags={"spendwise/trigger": args.trigger}, run_id=args.run_id, log_level=args.log_level,
                progress=terminal, verbose=verbose, full_refresh=getattr(args, "full_refresh", False),
                run_config=run_config,
            )
        print(format_summary(outcome, _warehouse(), total_seconds=time.perf_counter() - started))
        return 0 if outcome.ok else EXIT_REFRESH_FAILED

    return _refresh_guarded("refresh", refresh)


def cmd_run(args: argparse.Namespace) -> int:
    """demo + refresh + summary: what `make run` does, holding the refresh lock from the demo data on."""
    from core.refresh_lock import RefreshLock
    from core.settings import get_settings
    from orchestration.progress import terminal_apart
    from orchestration.refresh import format_summary, new_run_id, refresh_run_config, run_refresh

    def run() -> int:
        started = time.perf_counter()
        run_config = refresh_run_config(args.config)  # a bad file stops before the demo data is written
        lock = RefreshLock(get_settings().warehouse)
        lock.acquire(new_run_id())  # no demo data is written under a running refresh
        try:
            code = cmd_demo(args, compact=not args.verbose)
            if code:
                return code
            with terminal_apart(args.verbose) as terminal:
                outcome = run_refresh(lock=lock, progress=terminal, verbose=args.verbose, run_config=run_config)
        finally:
            lock.release()
        print()
        print(format_summary(outcome, _warehouse(), total_seconds=time.perf_counter() - started))
        return 0 if outcome.ok else EXIT_REFRESH_FAILED

    return _refresh_guarded("run", run)


def cmd_status(args: argparse.Namespace) -> int:
    """Tables and row counts, then the last refresh run and the refresh lock; creates nothing."""
    from core.settings import get_settings
    from orchestration.refresh import format_refresh_state, format_summary

    def status() -> int:
        settings = get_settings()
        print(format_summary(None, _warehouse()))
        print(format_refresh_state(settings.warehouse, settings.dagster_home))
        return 0

    return _refresh_guarded("status", status)


def cmd_serve(args: argparse.Namespace) -> int:
    """The chart and data HTTP service (charts, tables as JSON/CSV, status, refresh) until Ctrl-C."""
    import ipaddress

    import uvicorn

    from core.settings import API_TOKEN_ENV, get_settings
    from service.app import create_app  # noqa: I001 (the service room sits below orchestration)

    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        loopback = False
    try:
        settings = get_settings()
        app = create_app(settings)
    except ValueError as exc:
        print(f"spendwise serve: {exc}", file=sys.stderr)
        return 2
    if not loopback and not settings.api_token:
        print(f"spendwise serve: refusing to listen on {args.host} without {API_TOKEN_ENV}: anyone who can reach "
              f"that address could start refreshes and export tables. Set {API_TOKEN_ENV} to a long random value "
              "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and send it as "
              "`Authorization: Bearer <token>`, or listen on 127.0.0.1", file=sys.stderr)
        return 2
    guarded = "bearer tokens required" if settings.api_token else "no token: loopback only"
    print(f"Spendwise charts and data on http://{args.host}:{args.port}/ (API at /docs, {guarded}, Ctrl-C stops)")
    # Open /events streams never end by themselves: give them 5 s to close on Ctrl-C, then stop.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)
    return 0


# `spendwise grant-bi` / `export` / `purge-user`: 2 = the request cannot be done as asked (the message says
# why and what to do), 3 = a refresh is running (purge-user waits for none), 4 = the warehouse cannot be reached.
EXIT_BAD_REQUEST = 2


def _operation(command: str, action) -> int:
    """Run `action()` (which returns an exit code); a warehouse that cannot be reached or a request
    that cannot be done becomes one line on stderr and its exit code instead of a traceback."""
    import duckdb
    import psycopg2

    from core.bi_access import BiAccessError
    from core.warehouse import WarehouseBusy, WarehouseLockTimeout, WarehouseMissing

    try:
        return action()
    except (BiAccessError, ValueError, KeyError) as exc:
        print(f"spendwise {command}: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except (WarehouseMissing, WarehouseBusy, WarehouseLockTimeout, duckdb.Error, psycopg2.Error) as exc:
        print(f"spendwise {command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_NO_WAREHOUSE


def _existing_warehouse():
    """The configured warehouse, refusing (WarehouseMissing) a DuckDB file that does not exist yet, which
    a write connection would otherwise create empty."""
    from core.warehouse import WarehouseMissing

    warehouse = _warehouse()
    if warehouse.kind == "duckdb" and not warehouse.url.duckdb_path.exists():
        raise WarehouseMissing(f"no warehouse at {warehouse.url.duckdb_path}: run `spendwise demo` or `spendwise load DIR`")
    return warehouse


def cmd_grant_bi(args: argparse.Namespace) -> int:
    """Read access for a BI role to predictions and the marts (PostgreSQL), never to user-level tables."""
    from core.bi_access import grant_bi

    def grant() -> int:
        done = grant_bi(_warehouse(), args.role, login=args.login)
        print(f"BI role {done.role}: {'created' if done.created else 'already existed'}, "
              f"{'LOGIN' if done.login else 'NOLOGIN'}")
        print(f"  SELECT on {len(done.prediction_tables)} tables in predictions, and on tables published there "
              f"later by {', '.join(done.default_privileges_for)}")
        print(f"  SELECT on {len(done.mart_tables)} marts in analytics ({', '.join(done.mart_tables) or 'none built yet'}); "
              "marts built later are granted by dbt (macros/bi_roles.sql)")
        print("  no access to raw or to user-level tables (user_id columns)")
        if done.login:
            print(f"  set its password outside Spendwise, e.g. in psql: \\password {done.role}")
        return 0

    return _operation("grant-bi", grant)


EXPORT_FORMATS = ("csv", "xlsx")


def cmd_export(args: argparse.Namespace) -> int:
    """Write one published table to a CSV or Excel file (atomically: a failed export leaves no file)."""
    import os

    from core.registry import TABLES, table
    from core.settings import PREDICTIONS_SCHEMA

    def export() -> int:
        spec = table(args.table)  # KeyError lists the registered tables
        warehouse = _existing_warehouse()
        if not warehouse.table_exists(PREDICTIONS_SCHEMA, spec.name):
            raise ValueError(f"{spec.qualified_name} has not been published yet: run `spendwise refresh` first "
                             f"(registered tables: {', '.join(TABLES)})")
        df = warehouse.read_table(PREDICTIONS_SCHEMA, spec.name)
        out = Path(args.out)
        if not out.parent.is_dir():
            raise ValueError(f"--out {out}: folder {out.parent} does not exist")
        partial = out.with_name(f".{out.name}.partial")
        try:
            if args.format == "csv":
                df.to_csv(partial, index=False, date_format="%Y-%m-%dT%H:%M:%S")
            else:
                _write_xlsx(df, partial, spec)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        print(f"{spec.qualified_name}: {len(df):,} rows written to {out} ({args.format})")
        _audit("export", {"table": spec.name, "format": args.format, "rows": len(df), "file": out.name})
        return 0

    return _operation("export", export)


def _write_xlsx(df, path: Path, spec) -> None:
    """The table as one Excel sheet, written by the same code as the HTTP export (core.xlsx)."""
    from core.xlsx import XLSX_MAX_ROWS, write_xlsx

    if len(df) > XLSX_MAX_ROWS:
        raise ValueError(f"{len(df):,} rows do not fit one Excel sheet ({XLSX_MAX_ROWS:,} at most): use --format csv")
    kinds = {c.name: c.type for c in spec.columns}
    write_xlsx(path, spec.name, list(df.columns), df.itertuples(index=False, name=None),
               kinds=[kinds.get(name) for name in df.columns])


def cmd_purge_user(args: argparse.Namespace) -> int:
    """Delete people's rows from every user-level table (one transaction), or apply the raw retention."""
    from core import audit
    from core.purge import enforce_retention, purge_users, read_ids
    from core.settings import raw_retention_days

    def purge() -> int:
        warehouse = _existing_warehouse()
        if args.retention is not None:
            days = args.retention or raw_retention_days()
            if not days:
                raise ValueError("no retention configured: pass --retention DAYS or set SPENDWISE_RAW_RETENTION_DAYS")
            report = enforce_retention(warehouse, days, actor=audit.default_actor())
            what = f"raw user-level rows older than {days} days"
        else:
            ids = ([args.id] if args.id else []) + (read_ids(args.file) if args.file else [])
            report = purge_users(warehouse, ids, actor=audit.default_actor())
            what = f"rows of {report.ids} user id{'s' if report.ids != 1 else ''}"
        print(f"Deleted {what} in one transaction:")
        for name, rows in report.deleted.items():
            print(f"  {name:<40} {rows:>12,} rows")
        print(f"  {'total':<40} {report.total:>12,} rows")
        if report.total:
            print("Aggregates (marts, predictions) reflect it after the next `spendwise refresh`.")
        return 0

    if args.retention is None and not (args.id or args.file):
        print("spendwise purge-user: give a user id, --file with one id per line, or --retention [DAYS]", file=sys.stderr)
        return EXIT_BAD_REQUEST
    if args.retention is not None and (args.id or args.file):
        print("spendwise purge-user: --retention applies to everyone's old rows; give it without ids", file=sys.stderr)
        return EXIT_BAD_REQUEST
    return _while_no_refresh_runs("purge-user", lambda: _operation("purge-user", purge))


VERBOSE_HELP = ("also print what the steps print (dbt's per-node log, one table per demo line); it is always in "
                "the run's logs in the Dagster UI")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spendwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scale", type=float, default=1.0, help="1.0 = ~740k touchpoints; 13.5 = ~10M")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--days", type=int, default=730, help="days of history (default two years)")
        p.add_argument("--end", type=date.fromisoformat, default=None, help="last day (default yesterday, UTC)")

    demo = sub.add_parser("demo", help="write the synthetic demo data set (with ground truth) to the raw schema")
    demo_args(demo)
    demo.set_defaults(func=cmd_demo)

    load = sub.add_parser(
        "load", help="validate and load <table>.csv|.parquet files from a folder into raw",
        epilog="exit codes: 0 loaded (with --check: clean), 2 files rejected (nothing loaded; each problem with "
               "file, column, line and rule), 4 the warehouse cannot be reached or written (one line)",
    )
    load.add_argument("folder")
    load.add_argument(
        "--check", action="store_true",
        help="validate only and print per file rows, days, channels (new ones against the warehouse, read "
             "only), campaigns and every problem with its fix; writes nothing",
    )
    load.set_defaults(func=cmd_load)

    refresh = sub.add_parser(
        "refresh", help="materialize the whole graph once (what the schedule does)",
        description="Materialize the whole graph once on whatever the raw tables hold, recorded in DAGSTER_HOME. "
        "One refresh per warehouse at a time, whoever starts it.",
        epilog=REFRESH_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    refresh.add_argument("--run-id", default=None, help=argparse.SUPPRESS)  # POST /refresh names the run first
    refresh.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    refresh.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)  # a child logs INFO to a file
    refresh.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    refresh.add_argument(
        "--full-refresh", action="store_true",
        help="rebuild the incremental dbt models (journeys, touchpoint credit) from all raw rows instead of "
        "only the users whose rows changed; a wholesale load (load/demo) triggers this by itself",
    )
    refresh.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    refresh.set_defaults(func=cmd_refresh)

    run = sub.add_parser(
        "run", help="demo + refresh + summary (make run)",
        description="Write the demo data, refresh everything once with a progress line per step, then a summary: "
        "what was published, the checks, three headline numbers and where to look next.",
        epilog=REFRESH_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo_args(run)
    run.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    run.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    run.set_defaults(func=cmd_run)

    status = sub.add_parser(
        "status", help="tables and row counts, the last refresh run (state, trigger, age, reason) and the refresh lock",
        epilog="exit codes: 0 shown, 2 settings incomplete (e.g. spark:// without SPENDWISE_SERVING_URL), "
               "4 no warehouse yet or PostgreSQL cannot be reached",
    )
    status.set_defaults(func=cmd_status)

    serve = sub.add_parser("serve", help="chart and data HTTP service: charts, tables as JSON/CSV, status, refresh")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to listen on (default loopback only; any other needs SPENDWISE_API_TOKEN)")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    grant = sub.add_parser(
        "grant-bi", help="PostgreSQL: give a BI role read access to predictions and the marts (idempotent)",
        description="Create ROLE if absent (NOLOGIN unless --login) and let it read every table in predictions, "
        "tables published there later, and the marts in analytics; never raw or user-level tables.",
        epilog="exit codes: 0 granted, 2 not possible as asked (DuckDB warehouse, bad role name, missing privilege), "
               "4 the warehouse cannot be reached. No password is ever taken on the command line: for a LOGIN "
               "role set it in psql (\\password ROLE).",
    )
    grant.add_argument("role", help="role name: lower-case letters, digits, underscores (e.g. bi_reader)")
    grant.add_argument("--login", action="store_true", help="let the role log in (its password is set outside Spendwise)")
    grant.set_defaults(func=cmd_grant_bi)

    export = sub.add_parser(
        "export", help="write one published table to a CSV or Excel (xlsx) file",
        epilog="exit codes: 0 written, 2 unknown or unpublished table, bad --out or too many rows for xlsx, "
               "4 the warehouse cannot be reached",
    )
    export.add_argument("table", help="a table of schema predictions (core/registry.py), e.g. channel_attribution")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    export.add_argument("--out", required=True, help="file to write (replaced atomically)")
    export.set_defaults(func=cmd_export)

    purge = sub.add_parser(
        "purge-user", help="GDPR/CCPA: delete people's rows from raw and derived user-level tables, or apply retention",
        description="Delete every row of the given user ids from every table with a user_id column (raw.touchpoints, "
        "raw.conversions, analytics.int_journeys, analytics.touchpoint_credit) in one transaction, and print the "
        "rows deleted per table. Unknown ids delete nothing. The audit log gets the counts, never the ids.",
        epilog="exit codes: 0 done (zeros included), 2 no or unreadable ids, 3 a refresh is running, "
               "4 the warehouse cannot be reached",
    )
    purge.add_argument("id", nargs="?", help="one user id")
    purge.add_argument("--file", help="a text file with one user id per line (# comments and blank lines skipped)")
    purge.add_argument("--retention", nargs="?", type=int, const=0, default=None, metavar="DAYS",
                       help="instead: delete raw user-level rows older than DAYS days (default "
                            "SPENDWISE_RAW_RETENTION_DAYS); derived tables follow at the next refresh")
    purge.set_defaults(func=cmd_purge_user)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
