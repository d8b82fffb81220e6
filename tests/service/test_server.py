"""The chart and data service run for real: uvicorn on a loopback port, real HTTP with httpx, a temp
DuckDB (and PostgreSQL) warehouse with published tables, temp PNGs and a real Dagster instance."""

from __future__ import annotations

import csv
import io
import json
import math
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from core import registry
from core.settings import Settings, WarehouseUrl
from core.warehouse import WarehouseClient
from service.app import create_app

RUN_ID = "run-0123456789abcdef"
GENERATED_AT = datetime(2024, 6, 30, 12, 15, tzinfo=timezone.utc)
CHANNELS = ["display", "email", "search", "social"]
MODELS = ["last_touch", "linear", "markov"]
RENDERED = ["roi_forecast", "attribution_comparison", "mmm_roas"]


# --------------------------------------------------------------------------------------------
# Helpers shared with test_fuzz.py and test_browser.py


class LiveServer:
    """uvicorn serving `app` in a thread on a free loopback port (the socket is bound before start)."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped during startup"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def png_bytes(label: str, color: str) -> bytes:
    """A small but real PNG (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.4), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar([0, 1, 2], [3, 1, 2], color=color)
    ax.set_title(label)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_charts(charts_dir: Path, names=RENDERED) -> dict[str, bytes]:
    charts_dir.mkdir(parents=True, exist_ok=True)
    colors = ["#1b7f3b", "#1a5fb4", "#c0392b", "#8e44ad", "#e67e22", "#16a085", "#2c3e50"]
    written = {}
    for i, name in enumerate(names):  # as many charts as the registry has, colours repeating
        color = colors[i % len(colors)]
        data = png_bytes(name, color)
        (charts_dir / f"{name}.png").write_bytes(data)
        written[name] = data
    return written


def fixture_frames() -> dict[str, pd.DataFrame]:
    """Three small prediction tables with NaNs, dates, booleans and integers."""
    rng = np.random.default_rng(3)
    attribution = pd.DataFrame(
        [(m, c) for m in MODELS for c in CHANNELS], columns=["model", "channel"]
    ).assign(
        attributed_conversions=rng.uniform(10, 100, 12).round(2),
        attributed_revenue=rng.uniform(1_000, 9_000, 12).round(2),
        spend=rng.uniform(500, 2_000, 12).round(2),
    )
    attribution["share"] = attribution.groupby("model")["attributed_conversions"].transform(lambda s: s / s.sum())
    attribution["share_lower"] = (attribution["share"] * 0.8).where(attribution["model"] != "last_touch")
    attribution["share_upper"] = (attribution["share"] * 1.2).where(attribution["model"] != "last_touch")
    attribution["attributed_roas"] = attribution["attributed_revenue"] / attribution["spend"]
    days = pd.date_range("2024-05-01", periods=40, freq="D")
    timeseries = pd.DataFrame([(d, c) for d in days for c in CHANNELS[:3]], columns=["date", "channel"])
    timeseries["roi"] = rng.normal(0.4, 0.2, len(timeseries))
    timeseries.loc[timeseries.index % 7 == 0, "roi"] = np.nan
    timeseries["conversions"] = rng.integers(0, 50, len(timeseries))
    timeseries["is_forecast"] = timeseries["date"] > pd.Timestamp("2024-06-01")
    diagnostics = pd.DataFrame({
        "metric": ["r2", "mape", "durbin_watson"], "value": [0.91, 0.083, float("inf")],
        "detail": ["in-sample", "holdout 8 weeks", 'quote " and <tag> & ampersand'],
    })
    return {"channel_attribution": attribution, "ml_roi_timeseries": timeseries, "mmm_diagnostics": diagnostics}


def publish_fixture_tables(url: str) -> dict[str, pd.DataFrame]:
    frames = fixture_frames()
    WarehouseClient(url).publish_tables(frames, run_id=RUN_ID, generated_at=GENERATED_AT)
    return frames


_ONE_VALUE = {
    "text": "x", "integer": 1, "number": 1.5, "boolean": True,
    "date": pd.Timestamp("2024-06-01"), "timestamp": pd.Timestamp("2024-06-01 08:30"),
}


def registry_frames() -> dict[str, pd.DataFrame]:
    """One row per registry table, its columns in registry order, a value of each column's type."""
    return {
        name: pd.DataFrame({c.name: [_ONE_VALUE[c.type]] for c in table.columns})
        for name, table in registry.TABLES.items()
    }


def settings_for(url: str, charts_dir: Path, dagster_home: Path) -> Settings:
    return Settings(warehouse=WarehouseUrl.parse(url), charts_dir=charts_dir, dagster_home=dagster_home)


def refusing_launcher(instance) -> str:
    raise AssertionError("this test must not launch a refresh")


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A DuckDB warehouse with three published tables, three rendered charts, and a live server."""
    root = tmp_path_factory.mktemp("server")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    frames = publish_fixture_tables(url)
    pngs = write_charts(root / "charts")
    settings = settings_for(url, root / "charts", root / "dagster_home")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield {"client": client, "frames": frames, "pngs": pngs, "root": root, "url": url}


def _rows(client, table: str, **params) -> list[dict]:
    response = client.get(f"/data/{table}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


# --------------------------------------------------------------------------------------------
# Charts


def test_chart_list_reports_every_registry_chart_with_file_state(site):
    response = site["client"].get("/charts")
    assert response.status_code == 200
    listed = {c["name"]: c for c in response.json()}
    assert list(listed) == list(registry.CHARTS)
    assert {n: c["title"] for n, c in listed.items()} == {n: c.title for n, c in registry.CHARTS.items()}
    for name, chart in listed.items():
        assert chart["url"] == f"/charts/{name}.png"
        assert chart["exists"] is (name in RENDERED)
        if name in RENDERED:
            path = site["root"] / "charts" / f"{name}.png"
            assert chart["size_bytes"] == path.stat().st_size == len(site["pngs"][name])
            modified = datetime.fromisoformat(chart["last_modified"].replace("Z", "+00:00"))
            assert modified.utcoffset() == timedelta(0)
            assert abs(modified.timestamp() - path.stat().st_mtime) < 1e-3
        else:
            assert chart["size_bytes"] is None and chart["last_modified"] is None


def test_chart_png_with_etag_cache_control_and_304(site, tmp_path):
    client = site["client"]
    response = client.get("/charts/mmm_roas.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == site["pngs"]["mmm_roas"]
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert "GMT" in response.headers["last-modified"]

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get("/charts/mmm_roas.png", headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == etag
    assert client.get("/charts/mmm_roas.png", headers={"If-None-Match": '"stale"'}).status_code == 200

    # A re-rendered chart gets a new ETag: the old one no longer matches.
    path = site["root"] / "charts" / "mmm_roas.png"
    new_bytes = png_bytes("re-rendered", "#000000")
    path.write_bytes(new_bytes)
    try:
        fresh = client.get("/charts/mmm_roas.png", headers={"If-None-Match": etag})
        assert fresh.status_code == 200 and fresh.content == new_bytes
        assert fresh.headers["etag"] != etag
    finally:
        path.write_bytes(site["pngs"]["mmm_roas"])
    # Same bytes, same ETag: the tag is a hash of the content.
    assert client.get("/charts/mmm_roas.png").headers["etag"] == etag


def test_chart_404_tells_unknown_from_not_yet_rendered(site):
    client = site["client"]
    unknown = client.get("/charts/nope.png")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_chart"
    assert "roi_forecast" in unknown.json()["detail"]
    missing = client.get("/charts/reach_ctr.png")
    assert missing.status_code == 404
    assert missing.json()["error"] == "chart_not_rendered"
    assert "make run" in missing.json()["detail"]
    # Names never reach the file system: a path-like name is just an unknown chart.
    secret = site["root"] / "secret.png"
    secret.write_bytes(site["pngs"]["mmm_roas"])
    for raw in ("/charts/..%2Fsecret.png", "/charts/%2E%2E%2Fsecret.png"):
        traversal = client.get(raw)
        assert traversal.status_code == 404, raw
        assert traversal.content != secret.read_bytes()


# --------------------------------------------------------------------------------------------
# Data


def test_table_json_has_columns_rows_and_iso_values(site):
    body = site["client"].get("/data/channel_attribution").json()
    frame = site["frames"]["channel_attribution"]
    assert body["table"] == "channel_attribution"
    assert body["total"] == len(frame) == len(body["rows"])
    assert (body["limit"], body["offset"]) == (1000, 0)
    columns = {c["name"]: c["type"] for c in body["columns"]}
    assert list(columns) == [*frame.columns, "run_id", "generated_at"]
    assert columns["share"] == "number" and columns["model"] == "string" and columns["generated_at"] == "datetime"
    first = body["rows"][0]
    assert first["run_id"] == RUN_ID
    assert first["generated_at"] == "2024-06-30T12:15:00Z"
    # NaN intervals (last_touch) come back as null, not NaN (which is not JSON).
    last_touch = [r for r in body["rows"] if r["model"] == "last_touch"]
    assert len(last_touch) == 4 and all(r["share_lower"] is None for r in last_touch)
    # Ordered by the table's columns: model, then channel.
    assert [(r["model"], r["channel"]) for r in body["rows"]] == sorted((m, c) for m in MODELS for c in CHANNELS)
    expected = frame.set_index(["model", "channel"])
    for row in body["rows"]:
        assert row["share"] == pytest.approx(expected.loc[(row["model"], row["channel"]), "share"])


def test_dates_booleans_integers_and_infinity(site):
    rows = _rows(site["client"], "ml_roi_timeseries", limit=5)
    assert rows[0]["date"] == "2024-05-01"
    assert isinstance(rows[0]["is_forecast"], bool) and isinstance(rows[0]["conversions"], int)
    # Ordered by date first, then by the other columns.
    assert [(r["date"], r["channel"]) for r in rows] == [
        ("2024-05-01", "display"), ("2024-05-01", "email"), ("2024-05-01", "search"),
        ("2024-05-02", "display"), ("2024-05-02", "email"),
    ]
    diagnostics = {r["metric"]: r for r in _rows(site["client"], "mmm_diagnostics")}
    assert diagnostics["durbin_watson"]["value"] is None  # inf is not JSON either
    assert diagnostics["r2"]["value"] == 0.91


def test_channel_and_campaign_id_select_one_campaign(tmp_path):
    """Platforms number campaigns independently: campaign_id alone may match two campaigns."""
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    campaigns = pd.DataFrame({
        "model": "linear", "campaign_id": ["pai-00", "pai-00", "pai-01"], "campaign_name": ["A", "B", "C"],
        "channel": ["paid_search", "paid_social", "paid_search"], "attributed_conversions": [5.0, 3.0, 2.0],
        "attributed_revenue": [50.0, 30.0, 20.0], "share": [0.5, 0.3, 0.2], "share_lower": [0.4, 0.2, 0.1],
        "share_upper": [0.6, 0.4, 0.3], "spend": [100.0, 70.0, 10.0], "attributed_roas": [0.5, 30 / 70, 2.0],
    })
    WarehouseClient(url).publish_tables({"campaign_attribution": campaigns}, run_id=RUN_ID, generated_at=GENERATED_AT)
    settings = settings_for(url, tmp_path / "charts", tmp_path / "dagster_home")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert len(_rows(client, "campaign_attribution", campaign_id="pai-00")) == 2
            rows = _rows(client, "campaign_attribution", campaign_id="pai-00", channel="paid_social")
            assert [(r["channel"], r["campaign_id"], r["spend"]) for r in rows] == [("paid_social", "pai-00", 70.0)]


def test_filters_channel_model_and_inclusive_dates(site):
    client, frames = site["client"], site["frames"]
    rows = _rows(client, "channel_attribution", channel="search")
    assert {r["channel"] for r in rows} == {"search"} and len(rows) == 3
    rows = _rows(client, "channel_attribution", channel=["search", "email"], model="markov")
    assert sorted((r["model"], r["channel"]) for r in rows) == [("markov", "email"), ("markov", "search")]
    assert _rows(client, "channel_attribution", channel="tiktok") == []
    # Values are bound parameters: SQL in a value is just a string that matches nothing.
    assert _rows(client, "channel_attribution", channel="search' OR '1'='1") == []

    response = client.get("/data/ml_roi_timeseries",
                          params={"date_from": "2024-05-10", "date_to": "2024-05-12", "channel": "email"})
    rows = response.json()["rows"]
    assert [r["date"] for r in rows] == ["2024-05-10", "2024-05-11", "2024-05-12"]
    ts = frames["ml_roi_timeseries"]
    expected = ts[(ts["date"] >= "2024-05-10") & (ts["date"] <= "2024-05-12") & (ts["channel"] == "email")]
    assert len(expected) == 3
    for row, want in zip(rows, expected["roi"]):
        assert row["roi"] is None if math.isnan(want) else row["roi"] == pytest.approx(want)
    assert response.headers["x-total-count"] == "3"
    assert len(_rows(client, "ml_roi_timeseries", date_from="2024-06-09")) == 3 * 1  # last day only
    assert len(_rows(client, "ml_roi_timeseries", date_to="9999-12-31")) == len(ts)


def test_pagination_pages_add_up_to_the_whole_table(site):
    client = site["client"]
    whole = _rows(client, "ml_roi_timeseries", limit=10_000)
    assert len(whole) == 120
    pages, offset = [], 0
    while True:
        response = client.get("/data/ml_roi_timeseries", params={"limit": 35, "offset": offset})
        body = response.json()
        assert body["total"] == 120 and body["limit"] == 35 and body["offset"] == offset
        if not body["rows"]:
            break
        pages.extend(body["rows"])
        offset += 35
    assert pages == whole
    assert _rows(client, "ml_roi_timeseries", offset=10_000) == []


def test_csv_download_matches_json(site):
    client = site["client"]
    response = client.get("/data/channel_attribution", params={"format": "csv", "model": "linear"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="channel_attribution.csv"'
    assert response.headers["x-total-count"] == "4"
    table = list(csv.DictReader(io.StringIO(response.text)))
    json_rows = _rows(client, "channel_attribution", model="linear")
    assert [r["channel"] for r in table] == [r["channel"] for r in json_rows]
    for row, json_row in zip(table, json_rows):
        assert float(row["share"]) == pytest.approx(json_row["share"])
        assert row["generated_at"] == "2024-06-30T12:15:00Z"
    nan_csv = client.get("/data/channel_attribution", params={"format": "csv", "model": "last_touch"}).text
    assert list(csv.DictReader(io.StringIO(nan_csv)))[0]["share_lower"] == ""
    bools = list(csv.DictReader(io.StringIO(client.get("/data/ml_roi_timeseries?format=csv&limit=3").text)))
    assert {r["is_forecast"] for r in bools} == {"false"}


@pytest.mark.parametrize(
    ("path", "params", "error", "fragments"),
    [
        ("/data/ml_roi_timeseries", {"model": "markov"}, "filter_not_applicable", ["'model'", "'ml_roi_timeseries'"]),
        ("/data/channel_attribution", {"date_from": "2024-01-01"}, "filter_not_applicable",
         ["'date'", "'channel_attribution'"]),
        ("/data/mmm_diagnostics", {"channel": "search"}, "filter_not_applicable", ["'channel'", "metric, value"]),
        ("/data/ml_roi_timeseries", {"date_from": "2024-02-30"}, "invalid_date", ["YYYY-MM-DD"]),
        ("/data/ml_roi_timeseries", {"date_to": "yesterday"}, "invalid_date", ["date_to"]),
        ("/data/ml_roi_timeseries", {"date_from": "2024-06-02", "date_to": "2024-06-01"}, "empty_date_range",
         ["after"]),
        ("/data/channel_attribution", {"chanel": "search"}, "unknown_parameter", ["'chanel'", "channel"]),
        ("/data/channel_attribution", {"channel": "se\x00arch"}, "invalid_value", ["NUL"]),
    ],
)
def test_bad_filters_are_400_with_a_clear_message(site, path, params, error, fragments):
    response = site["client"].get(path, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    for fragment in fragments:
        assert fragment in body["detail"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"), ({"offset": -1}, "offset"),
     ({"limit": "ten"}, "limit"), ({"format": "xml"}, "format")],
)
def test_out_of_range_values_are_422_naming_the_parameter(site, params, parameter):
    response = site["client"].get("/data/channel_attribution", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert body["errors"][0]["parameter"] == parameter
    assert parameter in body["detail"]


def test_unknown_and_unpublished_tables_are_404(site):
    client = site["client"]
    unknown = client.get("/data/users")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_table"
    assert "channel_attribution" in unknown.json()["detail"]
    missing = client.get("/data/ml_budget_recommendation")
    assert missing.status_code == 404 and missing.json()["error"] == "table_not_published"
    assert "make run" in missing.json()["detail"] and "spendwise refresh" in missing.json()["detail"]
    assert client.get("/data/ml_budget_recommendation?format=csv").status_code == 404
    nowhere = client.get("/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "not_found"
    assert client.delete("/data/channel_attribution").status_code == 405


def test_table_index_lists_the_registry_with_published_state(site):
    tables = {t["name"]: t for t in site["client"].get("/data").json()}
    assert list(tables) == list(registry.served_tables())
    assert {n: t["description"] for n, t in tables.items()} == {
        n: t.grain for n, t in registry.served_tables().items()
    }
    assert tables["channel_attribution"]["published"] and tables["channel_attribution"]["rows"] == 12
    assert tables["ml_roi_timeseries"]["rows"] == 120
    assert tables["ml_roi_timeseries"]["run_id"] == RUN_ID
    assert tables["ml_roi_timeseries"]["generated_at"].startswith("2024-06-30T12:15:00")
    assert [c["name"] for c in tables["mmm_diagnostics"]["columns"]] == ["metric", "value", "detail", "run_id",
                                                                          "generated_at"]
    assert not tables["mmm_channel_roas"]["published"] and tables["mmm_channel_roas"]["columns"] is None
    # Published columns carry the registry's description, the run stamp columns included.
    described = {c["name"]: c["description"] for c in tables["mmm_diagnostics"]["columns"]}
    assert described["metric"] == registry.table("mmm_diagnostics").columns[0].description
    assert described["run_id"] == registry.RUN_STAMP_COLUMNS[0].description
    assert "UTC" in described["generated_at"]


# --------------------------------------------------------------------------------------------
# The registry decides what is served

JSON_KIND = {"text": "string", "integer": "integer", "number": "number", "boolean": "boolean", "date": "date",
             "timestamp": "datetime"}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_site(request, tmp_path):
    """A live server on a warehouse where every registry table is published with one row."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_url")
    WarehouseClient(url).publish_tables(registry_frames(), run_id=RUN_ID, generated_at=GENERATED_AT)
    settings = settings_for(url, tmp_path / "charts", tmp_path / "dh")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client


def test_every_served_registry_table_is_listed_with_its_column_descriptions(registry_site):
    listed = {t["name"]: t for t in registry_site.get("/data").json()}
    assert list(listed) == list(registry.served_tables())
    for name, table in registry.served_tables().items():
        info = listed[name]
        assert info["published"] and info["rows"] == 1 and info["run_id"] == RUN_ID, name
        assert info["description"] == table.grain
        assert [(c["name"], c["type"], c["description"]) for c in info["columns"]] == [
            (c.name, JSON_KIND[c.type], c.description) for c in table.published_columns
        ], name


def test_every_served_registry_table_is_served_once_published(registry_site):
    for name, table in registry.served_tables().items():
        response = registry_site.get(f"/data/{name}")
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert body["total"] == 1 and [c["name"] for c in body["columns"]] == [*table.column_names, *registry.RUN_COLUMNS]
        assert body["rows"][0]["run_id"] == RUN_ID
        csv_rows = list(csv.DictReader(io.StringIO(registry_site.get(f"/data/{name}?format=csv").text)))
        assert len(csv_rows) == 1 and list(csv_rows[0]) == [*table.column_names, *registry.RUN_COLUMNS]
    # Answered 404 while the service kept its own list of tables, which had drifted from the registry.
    decomposition = registry_site.get("/data/mmm_revenue_decomposition", params={"date_from": "2024-06-01"}).json()
    assert decomposition["rows"][0] | {"generated_at": None} == {
        "date": "2024-06-01", "component": "x", "value": 1.5, "run_id": RUN_ID, "generated_at": None,
    }


def test_page_shows_charts_timestamps_and_data_links(site):
    response = site["client"].get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for name, chart in registry.CHARTS.items():
        assert chart.title in page
        assert (f'data-chart="{name}"' in page) is (name in RENDERED)
    assert page.count("Not rendered yet") == len(registry.CHARTS) - len(RENDERED)
    for table in registry.served_tables():
        assert f'href="/data/{table}"' in page
        assert f'href="/data/{table}?format=csv&amp;limit=10000"' in page
    assert "not published yet" in page and ">120<" in page
    assert "2024-06-30 12:15 UTC" in page
    # Nothing external to load: no stylesheet links, script sources or absolute URLs.
    assert "<script src" not in page and "<link" not in page
    assert 'src="http' not in page and 'href="http' not in page and "url(" not in page


# --------------------------------------------------------------------------------------------
# A refresh holding the DuckDB write lock


def test_locked_duckdb_answers_503_with_retry_after(site):
    path = site["url"].removeprefix("duckdb:///")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.readline()",
         path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    client = site["client"]
    try:
        assert holder.stdout.readline().strip() == "locked"
        for url in ("/data/channel_attribution", "/data/channel_attribution?format=csv", "/data"):
            response = client.get(url)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            body = response.json()
            assert body["error"] == "warehouse_busy" and body["retry_after"] == 5
            assert "locked" in body["detail"] and "refresh" in body["detail"]
        page = client.get("/")
        assert page.status_code == 200 and "Row counts are unavailable" in page.text
        assert client.get("/charts/mmm_roas.png").status_code == 200
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert client.get("/data/channel_attribution").status_code == 200


def test_missing_duckdb_file_means_nothing_published(tmp_path):
    settings = settings_for(f"duckdb:///{tmp_path / 'absent.duckdb'}", tmp_path / "charts", tmp_path / "dh")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.get("/data/channel_attribution")
            assert response.status_code == 404 and response.json()["error"] == "table_not_published"
            assert not any(t["published"] for t in client.get("/data").json())
            assert "No table has been published yet" in client.get("/").text
            assert not any(c["exists"] for c in client.get("/charts").json())
    assert not (tmp_path / "absent.duckdb").exists()  # reading never creates the warehouse


# --------------------------------------------------------------------------------------------
# PostgreSQL: the warehouse URL decides, the answers are the same


@pytest.mark.postgres
def test_postgres_warehouse_serves_the_same_answers(pg_url, tmp_path):
    frames = publish_fixture_tables(pg_url)
    write_charts(tmp_path / "charts")
    settings = settings_for(pg_url, tmp_path / "charts", tmp_path / "dh")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = client.get("/data/channel_attribution", params={"model": "last_touch"}).json()
            assert body["total"] == 4 and all(r["share_lower"] is None for r in body["rows"])
            assert body["rows"][0]["generated_at"] == "2024-06-30T12:15:00Z"
            assert {c["name"]: c["type"] for c in body["columns"]}["spend"] == "number"
            rows = _rows(client, "ml_roi_timeseries", date_from="2024-05-10", date_to="2024-05-12",
                         channel=["email", "search"])
            assert [(r["date"], r["channel"]) for r in rows] == [
                (d, c) for d in ("2024-05-10", "2024-05-11", "2024-05-12") for c in ("email", "search")
            ]
            assert isinstance(rows[0]["conversions"], int) and isinstance(rows[0]["is_forecast"], bool)
            values = {r["metric"]: r["value"] for r in _rows(client, "mmm_diagnostics")}
            assert values["durbin_watson"] is None and values["r2"] == 0.91
            whole = _rows(client, "ml_roi_timeseries", limit=10_000)
            paged = [r for off in range(0, 120, 50) for r in _rows(client, "ml_roi_timeseries", limit=50, offset=off)]
            assert paged == whole and len(whole) == len(frames["ml_roi_timeseries"])
            csv_text = client.get("/data/channel_attribution?format=csv&channel=search").text
            assert len(list(csv.DictReader(io.StringIO(csv_text)))) == 3
            assert client.get("/data/ml_roi_timeseries", params={"model": "x"}).status_code == 400
            missing = client.get("/data/ml_budget_recommendation")
            assert missing.status_code == 404 and missing.json()["error"] == "table_not_published"
            assert client.get("/data/channel_attribution", params={"channel": "a\x00b"}).status_code == 400
            assert client.get("/data").json()[0]["rows"] == 12
            assert client.get("/").status_code == 200


def test_unreachable_postgres_is_503_not_500(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(f"postgresql://postgres@127.0.0.1:{port}/nothing", tmp_path / "c", tmp_path / "dh")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.get("/data/channel_attribution")
            assert response.status_code == 503
            assert response.json()["error"] == "warehouse_unavailable" and response.headers["retry-after"] == "30"
            assert f"127.0.0.1:{port}/nothing" in response.json()["detail"]
            assert client.get("/").status_code == 200


# --------------------------------------------------------------------------------------------
# Dagster: status and refresh against real instances


@pytest.fixture(scope="module")
def materialized_instance():
    """A test instance where a small graph ran once: two assets materialized, one failed, two checks."""
    import dagster as dg

    attribution_key = dg.AssetKey(["predictions", "channel_attribution"])

    @dg.asset(key=attribution_key, check_specs=[dg.AssetCheckSpec("shares_sum_to_one", asset=attribution_key)])
    def channel_attribution():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])

    @dg.asset(key=["predictions", "mmm_channel_roas"], deps=[channel_attribution])
    def mmm_channel_roas():
        return None

    @dg.asset_check(asset=mmm_channel_roas)
    def roas_positive():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="negative ROAS")

    @dg.asset(key=["predictions", "ml_roi_forecast"])
    def ml_roi_forecast():
        raise RuntimeError("forecast failed on purpose")

    # Like the raw tables: loaded outside Dagster, checked but never materialized by a run.
    raw_key = dg.AssetKey(["raw", "touchpoints"])

    @dg.asset_check(asset=raw_key)
    def touchpoints_not_empty():
        return dg.AssetCheckResult(passed=True)

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [dg.AssetSpec(raw_key), channel_attribution, mmm_channel_roas, roas_positive, ml_roi_forecast,
             touchpoints_not_empty],
            instance=instance, raise_on_error=False,
            selection=dg.AssetSelection.all() | dg.AssetSelection.checks(touchpoints_not_empty),
        )
        yield instance, result.run_id


def test_status_reports_materializations_checks_and_staleness(site, materialized_instance):
    instance, run_id = materialized_instance
    settings = settings_for(site["url"], site["root"] / "charts", site["root"] / "dh")
    with LiveServer(create_app(settings, dagster_instance=instance, refresh_launcher=refusing_launcher)) as server:
        body = httpx.get(f"{server.url}/status", timeout=60).json()
    assets = {a["asset_key"]: a for a in body["assets"]}
    assert set(assets) == {"predictions/channel_attribution", "predictions/mmm_channel_roas",
                           "predictions/ml_roi_forecast", "raw/touchpoints"}
    raw = assets["raw/touchpoints"]
    assert raw["external"] is True and raw["stale"] is False and raw["last_materialization"] is None
    assert [(c["name"], c["passed"]) for c in raw["checks"]] == [("touchpoints_not_empty", True)]
    attribution = assets["predictions/channel_attribution"]
    assert attribution["run_id"] == run_id and attribution["stale"] is False
    age = datetime.now(timezone.utc) - datetime.fromisoformat(attribution["last_materialization"])
    assert timedelta(0) <= age < timedelta(minutes=10)
    assert [(c["name"], c["passed"], c["status"]) for c in attribution["checks"]] == [
        ("shares_sum_to_one", True, "SUCCEEDED")
    ]
    roas_check = assets["predictions/mmm_channel_roas"]["checks"][0]
    assert (roas_check["name"], roas_check["passed"], roas_check["severity"]) == ("roas_positive", False, "WARN")
    failed = assets["predictions/ml_roi_forecast"]
    assert failed["last_materialization"] is None and failed["stale"] is True and failed["external"] is False
    assert body["stale"] is True and body["stale_after_minutes"] == 60
    assert body["refresh_running"] is False and body["running_run_ids"] == []


def test_assets_older_than_two_schedule_intervals_are_stale(materialized_instance):
    from service.dagster_bridge import STALE_AFTER, DagsterBridge

    instance, _ = materialized_instance
    bridge = DagsterBridge(Path("unused"), instance=instance, launcher=refusing_launcher)
    fresh = {a.asset_key: a.stale for a in bridge.status().assets}
    assert fresh["predictions/channel_attribution"] is False
    later = datetime.now(timezone.utc) + STALE_AFTER + timedelta(minutes=1)
    report = bridge.status(now=later)
    assert all(a.stale is not a.external for a in report.assets) and report.stale


def test_stale_threshold_is_two_schedule_intervals():
    from service.dagster_bridge import SCHEDULE_INTERVAL, STALE_AFTER
    from core.settings import SCHEDULE_CRON

    assert SCHEDULE_CRON == f"*/{int(SCHEDULE_INTERVAL.total_seconds() // 60)} * * * *"
    assert STALE_AFTER == timedelta(minutes=60)


def _create_run(instance, status, run_id=None):
    from dagster._core.test_utils import create_run_for_test

    return create_run_for_test(instance, job_name="refresh_all", status=status, run_id=run_id).run_id


def test_refresh_is_202_with_run_id_then_409_until_that_run_ends(site):
    import dagster as dg

    launched = []

    def queueing_launcher(instance):
        # Stands in for the real launch: records a refresh run that has not started yet.
        run_id = _create_run(instance, dg.DagsterRunStatus.NOT_STARTED)
        launched.append(run_id)
        return run_id

    settings = settings_for(site["url"], site["root"] / "charts", site["root"] / "dh")
    with dg.instance_for_test() as instance:
        with LiveServer(create_app(settings, dagster_instance=instance, refresh_launcher=queueing_launcher)) as server:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                first = client.post("/refresh")
                assert first.status_code == 202, first.text
                assert first.json() == {"run_id": launched[0], "status_url": "/status"}
                assert first.headers["location"] == "/status"
                assert instance.get_run_by_id(launched[0]).status == dg.DagsterRunStatus.NOT_STARTED
                second = client.post("/refresh")
                assert second.status_code == 409
                assert second.json()["error"] == "refresh_running" and second.json()["run_ids"] == launched
                status = client.get("/status").json()
                assert status["refresh_running"] is True and status["running_run_ids"] == launched
                instance.report_run_failed(instance.get_run_by_id(launched[0]))
                assert client.post("/refresh").status_code == 202
    assert len(launched) == 2


def test_refresh_is_409_while_a_started_run_exists(site):
    import dagster as dg

    settings = settings_for(site["url"], site["root"] / "charts", site["root"] / "dh")
    with dg.instance_for_test() as instance:
        running = _create_run(instance, dg.DagsterRunStatus.STARTED)
        with LiveServer(create_app(settings, dagster_instance=instance, refresh_launcher=refusing_launcher)) as server:
            response = httpx.post(f"{server.url}/refresh", timeout=60)
    assert response.status_code == 409
    assert response.json()["run_ids"] == [running]
    assert running in response.json()["detail"]


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test
    run_id, release = sys.argv[1], Path(sys.argv[2])
    time.sleep(1.0)  # the real child spends this loading the definitions
    with DagsterInstance.get() as instance:
        create_run_for_test(instance, job_name="refresh_all", run_id=run_id, status=DagsterRunStatus.STARTED)
        while not release.exists():
            time.sleep(0.1)
        instance.report_run_failed(instance.get_run_by_id(run_id))
""")


@pytest.mark.slow
def test_subprocess_launcher_blocks_a_second_refresh_until_its_run_ends(site, tmp_path):
    from service.dagster_bridge import SubprocessRefreshLauncher

    home = tmp_path / "dagster_home"
    release = tmp_path / "release"
    launcher = SubprocessRefreshLauncher(home, command=[sys.executable, "-c", CHILD, "{run_id}", str(release)])
    settings = settings_for(site["url"], site["root"] / "charts", home)
    with LiveServer(create_app(settings, refresh_launcher=launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            first = client.post("/refresh")
            assert first.status_code == 202, first.text
            run_id = first.json()["run_id"]
            # Before the child has recorded its run, the launch itself counts as in progress.
            early = client.post("/refresh")
            assert early.status_code == 409 and early.json()["run_ids"] == [run_id]
            deadline = time.monotonic() + 60
            while client.get("/status").json()["running_run_ids"] != [run_id] or not (home / "history").exists():
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert client.post("/refresh").status_code == 409
            release.touch()
            while client.get("/status").json()["refresh_running"]:
                assert time.monotonic() < deadline, "the child never finished its run"
                time.sleep(0.2)
            assert (home / "dagster.yaml").exists()  # the instance was created from the template
            log = home / "spendwise_refresh_logs" / f"refresh-{run_id}.log"
            assert log.exists()
            launcher.command = [sys.executable, "-c", "import sys; print('manifest missing'); sys.exit(3)"]
            failed = client.post("/refresh")
            assert failed.status_code == 202
            while client.get("/status").json()["refresh_running"]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            error = client.get("/status").json()["launch_error"]
            assert f"run {failed.json()['run_id']} exited with code 3" in error and "manifest missing" in error


GRANDCHILD = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    helper = subprocess.Popen(["sleep", "300"])  # as Dagster's `tail -F` of a step's output
    Path(sys.argv[1]).write_text(str(helper.pid))
    time.sleep(300)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_killed_refresh_child_leaves_no_process_of_its_session_behind(tmp_path):
    """kill -9 of a POST /refresh child at the wrong moment orphaned Dagster's output-mirroring `tail -F` (its
    watcher had not started yet): the launcher ends the child's whole process group once the child is gone."""
    from service.dagster_bridge import SubprocessRefreshLauncher

    pid_file = tmp_path / "helper.pid"
    launcher = SubprocessRefreshLauncher(tmp_path / "home", command=[sys.executable, "-c", GRANDCHILD, str(pid_file)])
    run_id = launcher(None)  # the launch itself needs no instance: the child records its run
    child = launcher._children[run_id][0]
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and child.poll() is None, "the child never started its helper"
        time.sleep(0.1)
    helper = int(pid_file.read_text())
    assert _alive(helper)
    child.kill()
    while _alive(helper):
        assert time.monotonic() < deadline, f"the helper {helper} outlived the killed refresh child"
        time.sleep(0.1)
    assert child.wait(timeout=10) == -9


# --------------------------------------------------------------------------------------------
# The room stays dagster-free


@pytest.mark.slow
def test_service_and_charts_rooms_load_no_dagster_and_no_higher_room(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import service.app, service.dagster_bridge
        from fastapi.testclient import TestClient
        from core.settings import Settings, WarehouseUrl
        settings = Settings(WarehouseUrl.parse("duckdb:///{tmp_path}/w.duckdb"), Path("{tmp_path}"),
                            Path("{tmp_path}/dh"))
        client = TestClient(service.app.create_app(settings))
        for url in ("/", "/charts", "/data", "/data/channel_attribution", "/openapi.json"):
            assert client.get(url).status_code in (200, 404), url
        rooms = sorted({{m.split(".")[0] for m in sys.modules}} & {{"assets", "orchestration", "ml", "charts"}})
        import charts, charts.plots
        dagster = sorted(m for m in sys.modules if m == "dagster" or m.startswith(("dagster.", "dagster_")))
        print("rooms", rooms, "dagster", dagster[:5])
        sys.exit(1 if rooms or dagster else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_registry_matches_the_plotting_module():
    from charts.plots import CHARTS as PLOTTED

    assert list(registry.CHARTS) == list(PLOTTED)


def test_openapi_documents_every_endpoint_and_error(site):
    spec = site["client"].get("/openapi.json").json()
    operations = {(path, method): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(operations) == {
        ("/", "get"), ("/charts", "get"), ("/charts/{name}.png", "get"), ("/data", "get"),
        ("/data/{table}", "get"), ("/status", "get"), ("/refresh", "post"), ("/scenarios", "post"),
        ("/events", "get"), ("/metrics", "get"),
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    for key, op in operations.items():
        assert op.get("summary"), key
        assert op["security"] == [{"bearerAuth": []}], key
        assert "401" in op["responses"], key
    data = operations[("/data/{table}", "get")]["responses"]
    assert {"200", "400", "403", "404", "422", "503"} <= set(data)
    assert set(data["200"]["content"]) == {
        "application/json", "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    assert {"202", "403", "409", "415", "503"} <= set(operations[("/refresh", "post")]["responses"])
    assert {"200", "304", "404"} <= set(operations[("/charts/{name}.png", "get")]["responses"])
    assert "503" in operations[("/status", "get")]["responses"]
    assert json.dumps(spec)  # serialisable as served
