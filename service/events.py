"""Live updates as server-sent events: each open stream polls what every server process can see (the
Dagster run storage, the published tables' run_id/generated_at/rows, the chart files' mtimes) and
announces what changed, so several uvicorn workers or hosts behind one balancer all tell the same story.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.warehouse import WarehouseBusy
from service.chart_files import chart_files
from service.dagster_bridge import DagsterBridge, DagsterUnavailable
from service.reader import WarehouseReader

logger = logging.getLogger("spendwise.service")

IN_PROGRESS = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 3000


def _iso(moment: Any) -> str | None:
    if not isinstance(moment, datetime):
        return None
    return moment.isoformat().replace("+00:00", "Z") if moment.tzinfo else moment.isoformat() + "Z"


@dataclass(frozen=True)
class Snapshot:
    """What the stream compares between polls; None where the source could not be read this time
    (a DuckDB refresh holds the warehouse, Dagster is unreachable): nothing is announced for it then."""

    run: dict[str, Any] | None
    run_known: bool
    tables: dict[str, dict[str, Any]] | None
    charts: dict[str, dict[str, Any]]


def take_snapshot(reader: WarehouseReader, bridge: DagsterBridge, charts_dir: Path) -> Snapshot:
    try:
        latest = bridge.latest_refresh()
        run = None if latest is None else {
            "run_id": latest["run_id"], "status": latest["status"], "trigger": latest["trigger"],
            "started_at": _iso(latest["started_at"]), "ended_at": _iso(latest["ended_at"]),
            "duration_seconds": (latest["ended_at"] - latest["started_at"]).total_seconds()
            if latest["ended_at"] and latest["started_at"] else None,
            "reason": latest["reason"],
        }
        run_known = True
    except DagsterUnavailable:
        run, run_known = None, False
    except Exception as exc:  # a stream outlives one bad read: the next poll tries again
        logger.warning("events: cannot read the latest refresh run: %s: %s", exc.__class__.__name__, exc)
        run, run_known = None, False
    try:
        tables = {name: {"name": name, "run_id": stats.run_id, "generated_at": _iso(stats.generated_at),
                         "rows": stats.rows, "url": f"/data/{name}"}
                  for name, stats in reader.table_index().items()}
    except WarehouseBusy:
        tables = None
    except Exception as exc:
        logger.warning("events: cannot read the published tables: %s: %s", exc.__class__.__name__, exc)
        tables = None
    charts = {c.name: {"name": c.name, "url": f"/charts/{c.name}.png", "version": c.version,
                       "last_modified": _iso(c.last_modified)} for c in chart_files(charts_dir) if c.exists}
    return Snapshot(run, run_known, tables, charts)


def changes(before: Snapshot, after: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """The events between two snapshots, in the order a dashboard wants them: run started, tables and
    charts changed, run finished."""
    events: list[tuple[str, dict[str, Any]]] = []
    run, old = after.run, before.run
    finished = None
    if after.run_known and before.run_known and run is not None:
        same_run = old is not None and old["run_id"] == run["run_id"]
        was_running = same_run and old["status"] in IN_PROGRESS
        if run["status"] in IN_PROGRESS and not was_running:
            events.append(("run_started", run))
        elif run["status"] not in IN_PROGRESS and (was_running or not same_run):
            finished = run
    if after.tables is not None and before.tables is not None:
        changed = [t for name, t in sorted(after.tables.items()) if before.tables.get(name) != t]
        removed = sorted(set(before.tables) - set(after.tables))
        if changed or removed:
            events.append(("tables_changed", {"tables": changed, "removed": removed}))
    changed_charts = [c for name, c in sorted(after.charts.items())
                      if before.charts.get(name, {}).get("version") != c["version"]]
    removed_charts = sorted(set(before.charts) - set(after.charts))
    if changed_charts or removed_charts:
        events.append(("charts_changed", {"charts": changed_charts, "removed": removed_charts}))
    if finished is not None:
        events.append(("run_finished", finished))
    return events


def format_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def event_stream(
    snapshot: Callable[[], Any],
    is_disconnected: Callable[[], Any],
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
) -> AsyncIterator[bytes]:
    """`retry:` and a `snapshot` event (the current state), then change events as they are seen and a
    keep-alive comment whenever nothing was sent for `keepalive_seconds`. `snapshot` is a blocking
    callable (run in a worker thread); the loop ends when the client goes away."""
    loop = asyncio.get_running_loop()
    current: Snapshot = await asyncio.to_thread(snapshot)
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    yield format_event("snapshot", {
        "run": current.run, "tables": sorted(current.tables.values(), key=lambda t: t["name"])
        if current.tables is not None else None,
        "charts": sorted(current.charts.values(), key=lambda c: c["name"]),
    })
    quiet_since = loop.time()
    while not await is_disconnected():
        await asyncio.sleep(poll_seconds)
        latest = await asyncio.to_thread(snapshot)
        sent = False
        for name, data in changes(current, latest):
            yield format_event(name, data)
            sent = True
        # A source that could not be read keeps its last known state, so its change is announced later.
        current = Snapshot(
            latest.run if latest.run_known else current.run, latest.run_known or current.run_known,
            latest.tables if latest.tables is not None else current.tables, latest.charts,
        )
        if sent:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= keepalive_seconds:
            yield b": keep-alive\n\n"
            quiet_since = loop.time()
