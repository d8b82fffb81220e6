"""GET /events behind several uvicorn workers: `uvicorn service.app:app --workers 2` configured only by
environment variables (tokens included), streams held open on both workers, and a Dagster run executed
by another process (this test) in the shared on-disk instance, publishing to the shared DuckDB file.
Every stream announces the run and the tables: nothing is signalled in-process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from core.settings import LOCAL_INSTANCE_TEMPLATE, REPO_ROOT
from tests.service.test_events import EventListener, refresh_like_job

pytestmark = pytest.mark.slow

READ = "workers-read-token-51c0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_worker_announces_a_run_made_elsewhere(tmp_path):
    import dagster as dg

    home, charts = tmp_path / "dh", tmp_path / "charts"
    home.mkdir()
    shutil.copy(LOCAL_INSTANCE_TEMPLATE, home / "dagster.yaml")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    port = _free_port()
    env = {**os.environ, "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(charts),
           "DAGSTER_HOME": str(home), "SPENDWISE_API_TOKEN": "workers-api-token-93ab", "SPENDWISE_READ_TOKEN": READ}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:app", "--workers", "2", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    listeners = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "uvicorn did not answer within 60 s"
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/events", timeout=10).status_code == 401  # the token came from the environment

        # Several streams, spread over the workers by the kernel as it hands out the connections.
        listeners = [EventListener(base, {"Authorization": f"Bearer {READ}"}) for _ in range(6)]
        for listener in listeners:
            listener.thread.start()
        for listener in listeners:
            listener.wait_for(lambda e: e[0] == "snapshot")

        with dg.DagsterInstance.from_config(str(home)) as instance:
            run_id = refresh_like_job(url, charts, hold_seconds=3.0).execute_in_process(instance=instance).run_id
        for listener in listeners:
            _, finished = listener.wait_for(lambda e: e[0] == "run_finished" and e[1]["run_id"] == run_id)
            assert finished["status"] == "SUCCESS"
            names = [name for name, _ in listener.events]
            assert "run_started" in names, names
            _, tables = listener.wait_for(lambda e: e[0] == "tables_changed")
            assert {t["run_id"] for t in tables["tables"]} == {run_id}
    finally:
        for listener in listeners:
            listener.done.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for listener in listeners:
        listener.thread.join(timeout=15)
