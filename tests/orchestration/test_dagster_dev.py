"""`dagster dev` from the repo root: the UI's GraphQL shows the asset graph and a running schedule."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.settings import REPO_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_dagster_dev_serves_the_graph_and_the_schedule(tmp_path, dbt_manifest):
    port = _free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    # No venv activation: the command must find dbt by itself, as under `make dev`.
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
        "SPENDWISE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'w.duckdb'}",
    }
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        location = None
        while time.monotonic() < deadline:
            time.sleep(3)
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            try:
                data = _graphql(port, """{ workspaceOrError { ... on Workspace { locationEntries {
                    loadStatus locationOrLoadError { __typename ... on PythonError { message }
                    ... on RepositoryLocation { repositories { schedules { name scheduleState { status } } } } } } } } }""")
            except OSError:
                continue
            entry = data["workspaceOrError"]["locationEntries"][0]
            if entry["loadStatus"] == "LOADED":
                location = entry["locationOrLoadError"]
                break
        assert location is not None, "dagster dev did not load the code location in time"
        assert location["__typename"] == "RepositoryLocation", location.get("message")
        schedules = location["repositories"][0]["schedules"]
        assert [(s["name"], s["scheduleState"]["status"]) for s in schedules] == [
            ("refresh_every_30_minutes", "RUNNING")
        ]
        nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName kinds } }")["assetNodes"]
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert by_key["analytics/fct_channel_daily"]["groupName"] == "marts"
        assert "dbt" in by_key["analytics/fct_channel_daily"]["kinds"]
        assert "raw/touchpoints" in by_key
        python_assets = [k for k, n in by_key.items() if "dbt" not in n["kinds"] and not k.startswith("raw/")]
        assert python_assets or os.environ.get("SPENDWISE_ALLOW_DBT_ONLY"), "no Python assets in the graph"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
