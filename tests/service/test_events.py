"""GET /events with a real streaming client across a real Dagster run: a job named like the refresh
(`refresh_all`) runs in the Dagster instance the server reads, publishes prediction tables to a real
PostgreSQL warehouse and writes a chart, and the stream announces the run starting, the tables and the
chart changing, and the run finishing, from the instance's run storage and the warehouse."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from core.settings import REFRESH_JOB_NAME
from core.warehouse import WarehouseClient
from service.app import create_app
from tests.service.test_server import LiveServer, fixture_frames, png_bytes, settings_for

pytestmark = pytest.mark.slow

CHART = "roi_forecast"


def refresh_like_job(url: str, charts_dir: Path, hold_seconds: float = 1.0, check_passes: bool = False):
    """A Dagster job called `refresh_all` whose asset publishes the fixture tables under the run's id and
    writes one chart, with a warning check that fails unless `check_passes` (what /metrics reports)."""
    import dagster as dg

    @dg.asset(check_specs=[dg.AssetCheckSpec("rows_plausible", asset="published_predictions")])
    def published_predictions(context):
        time.sleep(hold_seconds)  # long enough for a poll to see the run STARTED
        WarehouseClient(url).publish_tables(fixture_frames(), run_id=context.run_id,
                                            generated_at=datetime.now(timezone.utc))
        charts_dir.mkdir(parents=True, exist_ok=True)
        (charts_dir / f"{CHART}.png").write_bytes(png_bytes(context.run_id, "#1a5fb4"))
        time.sleep(hold_seconds / 2)
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
            check_name="rows_plausible", passed=check_passes, severity=dg.AssetCheckSeverity.WARN)])

    defs = dg.Definitions(assets=[published_predictions],
                          jobs=[dg.define_asset_job(REFRESH_JOB_NAME, selection=[published_predictions])])
    return defs.resolve_job_def(REFRESH_JOB_NAME)


class EventListener:
    """Reads /events in a thread with httpx's streaming client, parsing the stream as a browser would."""

    def __init__(self, url: str, headers: dict[str, str] | None = None):
        self.url, self.headers, self.events, self.comments = url, headers or {}, [], []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.error: BaseException | None = None

    def _listen(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/events", headers=self.headers,
                              timeout=httpx.Timeout(10, read=30)) as response:
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
                name, data = None, []
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("event: "):
                        name = line[len("event: "):]
                    elif line.startswith("data: "):
                        data.append(line[len("data: "):])
                    elif line == "" and name:
                        self.events.append((name, json.loads("\n".join(data))))
                        name, data = None, []
                    if self.done.is_set():
                        return
        except BaseException as exc:  # reported by wait_for
            self.error = exc

    def wait_for(self, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s; got {[e[0] for e in self.events]}")


def test_the_stream_follows_a_real_dagster_run(pg_url, tmp_path):
    import dagster as dg

    charts = tmp_path / "charts"
    with dg.instance_for_test() as instance:
        app = create_app(settings_for(pg_url, charts, tmp_path / "dh"), dagster_instance=instance,
                         events_poll_seconds=0.2, events_keepalive_seconds=1.0)
        with LiveServer(app) as server:
            head = httpx.head(f"{server.url}/events", timeout=10)  # headers only, not an endless body
            assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")

            listener = EventListener(server.url)
            listener.thread.start()
            _, snapshot = listener.wait_for(lambda e: e[0] == "snapshot")
            assert snapshot == {"run": None, "tables": [], "charts": []}

            result = refresh_like_job(pg_url, charts).execute_in_process(instance=instance, raise_on_error=False)
            run_id = result.run_id
            listener.wait_for(lambda e: e[0] == "run_finished")
            deadline = time.monotonic() + 10
            while not listener.comments and time.monotonic() < deadline:
                time.sleep(0.1)
            listener.done.set()
        listener.thread.join(timeout=15)

    names = [name for name, _ in listener.events]
    assert names == ["snapshot", "run_started", "tables_changed", "charts_changed", "run_finished"], names
    data = dict(listener.events)
    assert data["run_started"]["run_id"] == run_id
    assert data["run_started"]["status"] in ("NOT_STARTED", "STARTING", "STARTED")
    finished = data["run_finished"]
    assert finished["run_id"] == run_id and finished["status"] == "SUCCESS" and finished["duration_seconds"] > 1.0
    tables = {t["name"]: t for t in data["tables_changed"]["tables"]}
    assert set(tables) == set(fixture_frames())
    assert {t["run_id"] for t in tables.values()} == {run_id}
    assert tables["ml_roi_timeseries"]["rows"] == 120
    assert tables["ml_roi_timeseries"]["url"] == "/data/ml_roi_timeseries"
    assert [c["name"] for c in data["charts_changed"]["charts"]] == [CHART]
    assert data["charts_changed"]["charts"][0]["url"] == f"/charts/{CHART}.png"
    assert listener.comments and listener.comments[0] == ": keep-alive"
