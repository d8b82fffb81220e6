"""Bearer tokens on the live server: who may read, export, refresh and run scenarios; 401/403 bodies and
headers; the audit rows they leave (token name, never value); the cross-site form POST that used to start
a refresh; and `spendwise serve` refusing a public address without an API token."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time

import httpx
import pytest

from core.settings import REPO_ROOT
from service.app import create_app
from tests.service.test_fuzz import publish_response_parameters
from tests.service.test_server import LiveServer, publish_fixture_tables, settings_for, write_charts

API = "api-secret-7f3c9a1e5b"
READ = "read-secret-2d8e4b6f0a"
WRONG = "wrong-secret-9c1a7e3d"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _recording_launcher():
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    def launcher(instance) -> str:  # a run that never starts: the next POST /refresh gets 409
        return create_run_for_test(instance, job_name="refresh_all", status=dg.DagsterRunStatus.NOT_STARTED).run_id

    return launcher


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A live server with both tokens set, on a DuckDB warehouse with tables, charts and a model."""
    import dagster as dg

    root = tmp_path_factory.mktemp("auth")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    publish_fixture_tables(url)
    publish_response_parameters(url)
    write_charts(root / "charts")
    settings = dataclasses.replace(settings_for(url, root / "charts", root / "dh"), api_token=API, read_token=READ)
    with dg.instance_for_test() as instance:
        app = create_app(settings, dagster_instance=instance, refresh_launcher=_recording_launcher())
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            yield {"client": client, "url": url, "reader": app.state.reader}


def _audit_rows(reader, minimum: int, timeout: float = 20.0) -> list[dict]:
    """ops.audit_log once it has `minimum` rows (the server writes them after answering). Read through the
    server's reader: in this process a DuckDB read must not overlap the server's audit write."""
    deadline, rows, last_error = time.monotonic() + timeout, [], None
    client = reader.client
    while time.monotonic() < deadline:
        try:
            with reader.read_connection() as con:
                found = client.fetch(con, "SELECT action, actor, detail FROM ops.audit_log ORDER BY recorded_at")
            rows = [{"action": a, "actor": b, "detail": json.loads(c)} for a, b, c in found]
        except Exception as exc:  # not created yet, or the server is writing it this instant
            rows, last_error = [], exc
        if len(rows) >= minimum:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"audit log has {len(rows)} rows, expected at least {minimum}: {rows} ({last_error!r})")


def test_tokens_decide_who_reads_exports_refreshes_and_plans(guarded, caplog):
    caplog.set_level(logging.DEBUG)
    client = guarded["client"]
    reads = ["/", "/charts", "/charts/roi_forecast.png", "/data", "/data/channel_attribution", "/status", "/metrics"]

    for path in reads:
        missing = client.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == 'Bearer realm="spendwise"'
        assert missing.json()["error"] == "unauthorized" and "SPENDWISE_READ_TOKEN" in missing.json()["detail"]
        wrong = client.get(path, headers=bearer(WRONG))
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"], path
        assert WRONG not in wrong.text
        for token in (READ, API):
            assert client.get(path, headers=bearer(token)).status_code == 200, (path, token[:4])
    # Basic or a malformed scheme is no token at all.
    assert client.get("/data", headers={"Authorization": f"Basic {READ}"}).status_code == 401

    for fmt in ("csv", "xlsx"):
        export = f"/data/ml_roi_timeseries?format={fmt}&channel=search"
        assert client.get(export).status_code == 401
        refused = client.get(export, headers=bearer(READ))
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert "SPENDWISE_API_TOKEN" in refused.json()["detail"] and READ not in refused.text
        assert client.get(export, headers=bearer(API)).status_code == 200

    plan = {"search": 320}
    assert client.post("/scenarios", json=plan).status_code == 401
    assert client.post("/scenarios", json=plan, headers=bearer(READ)).status_code == 403
    assert client.post("/scenarios", json=plan, headers=bearer(API)).status_code == 200

    # The attack of issue 15: a page on another site posts a form to /refresh.
    form = client.post("/refresh", data={"x": "1"}, headers={"Origin": "http://evil.example"})
    assert form.status_code == 401
    assert client.post("/refresh", headers=bearer(READ)).status_code == 403
    assert client.post("/refresh", data={"x": "1"}, headers=bearer(API)).status_code == 415
    started = client.post("/refresh", headers=bearer(API))
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    rows = _audit_rows(guarded["reader"], 4)
    by_action = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert [r["detail"]["format"] for r in by_action["http_export"]] == ["csv", "xlsx"]
    assert by_action["http_export"][0]["detail"] == {
        "table": "ml_roi_timeseries", "format": "csv", "rows": 40, "filters": ["channel"]}
    assert by_action["http_scenario"][0]["detail"]["channels"] == 1
    assert by_action["http_refresh"] == [{"action": "http_refresh", "actor": "api-token", "detail": {"run": run_id}}]
    assert {r["actor"] for r in rows} == {"api-token"}  # refused calls leave no row
    everything = json.dumps(rows) + caplog.text
    for token in (API, READ, WRONG):
        assert token not in everything


def test_without_tokens_local_use_works_but_other_sites_cannot_act(tmp_path):
    import dagster as dg

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    publish_fixture_tables(url)
    settings = settings_for(url, tmp_path / "charts", tmp_path / "dh")
    assert API not in repr(dataclasses.replace(settings, api_token=API))
    with dg.instance_for_test() as instance:
        app = create_app(settings, dagster_instance=instance, refresh_launcher=_recording_launcher())
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/data/channel_attribution").status_code == 200
            # Nothing to check a token against: it is ignored, not refused.
            assert client.get("/data", headers=bearer(WRONG)).status_code == 200
            assert client.head("/data/channel_attribution?format=csv").status_code == 200  # not an export
            assert client.get("/data/channel_attribution?format=xlsx").status_code == 200

            form = client.post("/refresh", data={"x": "1"}, headers={"Origin": "http://evil.example"})
            assert form.status_code == 415 and form.json()["error"] == "unsupported_media_type"
            plain = client.post("/refresh", content=b"x", headers={"Content-Type": "text/plain"})
            assert plain.status_code == 415
            cross = client.post("/refresh", headers={"Origin": "http://evil.example"})
            assert cross.status_code == 403 and cross.json()["error"] == "cross_origin"
            assert client.post("/refresh", headers={"Origin": "null"}).status_code == 403
            same = client.post("/refresh", headers={"Origin": server.url})
            assert same.status_code == 202, same.text
            assert client.post("/refresh").status_code == 409  # no Origin (curl): allowed, and one is running
            rows = _audit_rows(app.state.reader, 2)
            assert {r["actor"] for r in rows} == {"anonymous"}
            assert [(r["action"], r["detail"].get("format")) for r in rows] == [
                ("http_export", "xlsx"), ("http_refresh", None)]


def test_a_read_token_alone_is_refused():
    settings = dataclasses.replace(settings_for("duckdb:///unused.duckdb", REPO_ROOT, REPO_ROOT), read_token=READ)
    with pytest.raises(ValueError, match="SPENDWISE_API_TOKEN"):
        create_app(settings)


@pytest.mark.slow
def test_serve_refuses_a_public_address_without_an_api_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SPENDWISE_API_TOKEN", "SPENDWISE_READ_TOKEN")}
    env.update(SPENDWISE_WAREHOUSE_URL=f"duckdb:///{tmp_path / 'w.duckdb'}", DAGSTER_HOME=str(tmp_path / "dh"))

    def serve(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orchestration.cli", "serve", "--port", "1", *args],
                              cwd=REPO_ROOT, env={**env, **extra}, capture_output=True, text=True, timeout=120)

    public = serve("--host", "0.0.0.0")
    assert public.returncode == 2, public.stderr
    assert "refusing to listen on 0.0.0.0 without SPENDWISE_API_TOKEN" in public.stderr
    named = serve("--host", "example.internal")
    assert named.returncode == 2 and "SPENDWISE_API_TOKEN" in named.stderr
    read_only = serve("--host", "127.0.0.1", SPENDWISE_READ_TOKEN=READ)
    assert read_only.returncode == 2
    assert "SPENDWISE_READ_TOKEN is set but SPENDWISE_API_TOKEN is not" in read_only.stderr
    assert READ not in read_only.stderr + read_only.stdout
