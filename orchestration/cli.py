"""`spendwise` command line: load or generate raw data, refresh the graph, serve charts."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date


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
    try:
        return replace_raw_tables(warehouse, frames, **options)
    except RawDataError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_RAW_DATA_REJECTED
    except (WarehouseBusy, OSError, duckdb.Error, psycopg2.Error) as exc:
        # WarehouseUnavailable's own text is written for readers; the driver's reason is the useful part.
        cause = exc.__cause__ if isinstance(exc, WarehouseUnavailable) and exc.__cause__ is not None else exc
        return _raw_write_failed(command, str(cause), warehouse)


def cmd_demo(args: argparse.Namespace) -> int:
    from ml.synthetic import generate_demo_data
    from core.raw_contract import RAW_TABLES

    started = time.perf_counter()
    data = generate_demo_data(scale=args.scale, seed=args.seed, end=args.end, days=args.days)
    tables = data.tables()
    core = {name: tables[name] for name in RAW_TABLES}
    truth = {name: df for name, df in tables.items() if name not in RAW_TABLES}
    published = _write_raw_tables("demo", core, extra=truth)
    if isinstance(published, int):
        return published
    for t in published:
        print(f"  {t.qualified_name:<40} {t.rows:>12,} rows")
    print(f"demo data (scale {args.scale}, seed {args.seed}) written in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from core.raw_contract import RawDataError, read_raw_dir

    try:
        frames = read_raw_dir(args.folder)
    except RawDataError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_RAW_DATA_REJECTED
    published = _write_raw_tables("load", frames, drop_ground_truth=True)
    if isinstance(published, int):
        return published
    for t in published:
        print(f"  {t.qualified_name:<40} {t.rows:>12,} rows")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from orchestration.refresh import format_summary, run_refresh

    outcome = run_refresh(
        tags={"spendwise/trigger": args.trigger}, run_id=args.run_id, log_level=args.log_level
    )
    print(format_summary(outcome, _warehouse()))
    return 0 if outcome.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    """demo + refresh + summary: what `make run` does."""
    from orchestration.refresh import format_summary, run_refresh

    started = time.perf_counter()
    cmd_demo(args)
    outcome = run_refresh()
    print()
    print(format_summary(outcome, _warehouse(), total_seconds=time.perf_counter() - started))
    return 0 if outcome.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from orchestration.refresh import format_summary

    print(format_summary(None, _warehouse()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The chart and data HTTP service (charts, tables as JSON/CSV, status, refresh) until Ctrl-C."""
    import uvicorn

    from service.app import create_app  # noqa: I001 (the service room sits below orchestration)

    print(f"Spendwise charts and data on http://{args.host}:{args.port}/ (API at /docs, Ctrl-C stops)")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spendwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scale", type=float, default=1.0, help="1.0 = ~200k touchpoints; 50 = ~10M")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--days", type=int, default=730, help="days of history (default two years)")
        p.add_argument("--end", type=date.fromisoformat, default=None, help="last day (default yesterday, UTC)")

    demo = sub.add_parser("demo", help="write the synthetic demo data set (with ground truth) to the raw schema")
    demo_args(demo)
    demo.set_defaults(func=cmd_demo)

    load = sub.add_parser(
        "load", help="validate and load <table>.csv|.parquet files from a folder into raw",
        epilog="exit codes: 0 loaded, 2 files rejected (nothing loaded; each problem with file, column, line "
               "and rule), 4 the warehouse cannot be reached or written (one line)",
    )
    load.add_argument("folder")
    load.set_defaults(func=cmd_load)

    refresh = sub.add_parser("refresh", help="materialize the whole graph once (what the schedule does)")
    refresh.add_argument("--run-id", default=None, help=argparse.SUPPRESS)  # POST /refresh names the run first
    refresh.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    refresh.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)  # a child logs INFO to a file
    refresh.set_defaults(func=cmd_refresh)

    run = sub.add_parser("run", help="demo + refresh + summary (make run)")
    demo_args(run)
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="tables and row counts in the warehouse")
    status.set_defaults(func=cmd_status)

    serve = sub.add_parser("serve", help="chart and data HTTP service: charts, tables as JSON/CSV, status, refresh")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
