"""HEAD on the live service: every GET endpoint answers it with the GET's status and headers and no body."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest

from service.app import create_app
from tests.service.test_server import (
    LiveServer, publish_fixture_tables, refusing_launcher, settings_for, write_charts,
)

SAME_BODY_PATHS = [
    "/", "/charts", "/charts/mmm_roas.png", "/data", "/data/channel_attribution",
    "/data/ml_roi_timeseries?format=csv&channel=search&limit=5", "/openapi.json",
]
ERROR_PATHS = ["/charts/reach_ctr.png", "/charts/nope.png", "/data/nope", "/nowhere"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("head")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    publish_fixture_tables(url)
    write_charts(root / "charts")
    settings = settings_for(url, root / "charts", root / "dagster_home")
    with dg.instance_for_test() as instance:
        app = create_app(settings, dagster_instance=instance, refresh_launcher=refusing_launcher)
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield http


def headers_without_date(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "date"}


@pytest.mark.parametrize("path", SAME_BODY_PATHS + ERROR_PATHS)
def test_head_gives_the_get_status_and_headers_without_a_body(client, path):
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code, path
    assert head.content == b""
    assert headers_without_date(head) == headers_without_date(got), path
    assert int(head.headers["content-length"]) == len(got.content) > 0
    if path in SAME_BODY_PATHS:
        assert got.status_code == 200, path


def test_head_on_status_and_conditional_chart_requests(client):
    status = client.head("/status")
    assert status.status_code == 200 and status.content == b""
    assert status.headers["content-type"] == "application/json" and int(status.headers["content-length"]) > 0
    etag = client.get("/charts/mmm_roas.png").headers["etag"]
    cached = client.head("/charts/mmm_roas.png", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag


def test_head_is_not_a_way_around_post_only_endpoints(client):
    refused = client.head("/refresh")
    assert refused.status_code == 405 and refused.content == b""
    assert refused.headers["allow"] == "POST"
    openapi = client.get("/openapi.json").json()
    assert all("head" not in operations for operations in openapi["paths"].values())
