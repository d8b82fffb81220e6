"""Schemathesis fuzzes every operation of the live server's OpenAPI document, once without tokens and once
with both tokens set (requests carry the API token): no request may get a 5xx, and every response must
match what the document promises (status codes, content types, schemas). GET /events is left out: its
stream never ends by design (tests/service/test_events.py reads it with a streaming client)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from tests.service.test_server import LiveServer, publish_fixture_tables, settings_for, write_charts

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    response_headers_conformance,
]
SENT: Counter = Counter()
STATUSES: Counter = Counter()
API_TOKEN, READ_TOKEN = "fuzz-api-token-4b1f", "fuzz-read-token-8e2c"
STREAMS = {"GET /events"}


def publish_response_parameters(url: str) -> None:
    """Two channels' curves (point and three draws), so POST /scenarios has a model to answer from."""
    import pandas as pd

    from core.warehouse import WarehouseClient
    from tests.service.test_server import GENERATED_AT, RUN_ID

    rows = [(channel, draw, 3000.0 * (1 + 0.1 * draw), 250.0, 1.0, 0.3, spend, 2500.0, 0.9)
            for channel, spend in (("search", 300.0), ("social", 200.0)) for draw in range(4)]
    parameters = pd.DataFrame(rows, columns=["channel", "draw", "coefficient", "saturation_half", "saturation_shape",
                                             "adstock_decay", "current_daily_spend", "baseline_daily", "ci"])
    WarehouseClient(url).publish_tables({"mmm_response_parameters": parameters}, run_id=RUN_ID,
                                        generated_at=GENERATED_AT)


@pytest.fixture(scope="module", params=["no tokens", "tokens"])
def live(request, tmp_path_factory):
    """A live server on a DuckDB warehouse with three published tables, three charts, a test instance;
    without tokens, or with both set (then `live.headers` carries the API token)."""
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    root = tmp_path_factory.mktemp("fuzz")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    publish_fixture_tables(url)
    publish_response_parameters(url)
    write_charts(root / "charts")

    def launcher(instance) -> str:
        # The first POST /refresh "launches" (records a run that never starts); later ones get 409.
        return create_run_for_test(instance, job_name="refresh_all", status=dg.DagsterRunStatus.NOT_STARTED).run_id

    settings = settings_for(url, root / "charts", root / "dh")
    if request.param == "tokens":
        settings = dataclasses.replace(settings, api_token=API_TOKEN, read_token=READ_TOKEN)
    with dg.instance_for_test() as instance:
        app = create_app(settings, dagster_instance=instance, refresh_launcher=launcher)
        with LiveServer(app) as server:
            server.mode = request.param
            server.headers = {"Authorization": f"Bearer {API_TOKEN}"} if request.param == "tokens" else {}
            yield server
    by_status = Counter()
    mine = {key: count for key, count in STATUSES.items() if key[0] == request.param}
    for (_, _, status), count in mine.items():
        by_status[status] += count
    sent = {key[1]: count for key, count in SENT.items() if key[0] == request.param}
    print(f"\nschemathesis ({request.param}): {sum(sent.values())} requests, {len(sent)} method/path pairs, "
          f"statuses {dict(sorted(by_status.items()))}")
    for operation in sorted(sent):
        if sent[operation] > 2:
            print(f"  {operation:<28} {sent[operation]:>4} requests")


# The document is the app's own (what /openapi.json serves, checked below); loading it at import keeps
# collection independent of the live server. (schemathesis.pytest.from_fixture fails on pytest 9:
# it sets Function._nodeid, which pytest 9 no longer has.)
SPEC = create_app(settings_for("duckdb:///unused.duckdb", Path("unused"), Path("unused"))).openapi()
schema = schemathesis.openapi.from_dict(SPEC).exclude(path="/events")


def test_the_live_server_serves_the_fuzzed_document(live):
    assert httpx.get(f"{live.url}/openapi.json").json() == SPEC


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_and_responses_match_the_schema(case, live):
    response = case.call_and_validate(base_url=live.url, headers=live.headers, checks=CHECKS, timeout=30)
    SENT[(live.mode, f"{case.method} {case.path}")] += 1
    STATUSES[(live.mode, f"{case.method} {case.path}", response.status_code)] += 1


def test_the_fuzzer_reached_every_operation_and_its_success_path(live):
    """Runs after the fuzzing above with the same server (file order within each fixture parameter): each
    documented operation but the endless stream got a 2xx, none a 5xx."""
    documented = {f"{method.upper()} {path}" for path, ops in SPEC["paths"].items() for method in ops} - STREAMS
    sent = {operation for (mode, operation) in SENT if mode == live.mode}
    assert documented <= sent, documented - sent
    succeeded = {operation for (mode, operation, status) in STATUSES if mode == live.mode and 200 <= status < 300}
    assert documented <= succeeded, documented - succeeded
    assert not [key for key in STATUSES if key[0] == live.mode and key[2] >= 500]
    if live.mode == "tokens":  # without the header, every operation refuses
        for operation in documented:
            method, path = operation.split(" ", 1)
            path = path.replace("{name}", "roi_forecast").replace("{table}", "channel_attribution")
            assert httpx.request(method, f"{live.url}{path}", json={} if method == "POST" else None).status_code == 401
