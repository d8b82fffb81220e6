"""Exports from the live server on real DuckDB tables: an Excel workbook that openpyxl opens with the
table's header and typed rows, a large CSV streamed in chunks that matches the JSON pages, and an export
that stops rather than mix two runs when a refresh publishes the table half-way."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import httpx
import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from core.settings import WarehouseUrl
from core.warehouse import WarehouseClient
from service.app import create_app
from service.exports import EXPORT_CHUNK_ROWS, Export, ExportChanged
from service.reader import WarehouseReader
from tests.service.test_server import GENERATED_AT, RUN_ID, LiveServer, fixture_frames, settings_for

LARGE_ROWS = 2 * EXPORT_CHUNK_ROWS + 5_000


def large_timeseries() -> pd.DataFrame:
    days = pd.date_range("2000-01-01", periods=LARGE_ROWS // 5, freq="D")
    frame = pd.DataFrame([(d, c) for d in days for c in ("a", "b", "c", "d", "e")], columns=["date", "channel"])
    frame["roi"] = np.random.default_rng(7).normal(0.3, 0.1, len(frame)).round(6)
    return frame


@pytest.fixture(scope="module")
def exporting(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    frames = fixture_frames()
    # Text a spreadsheet would otherwise run as a formula.
    frames["mmm_diagnostics"].loc[1, "detail"] = "=HYPERLINK(\"http://evil.example\")"
    frames["ml_roi_forecast"] = large_timeseries()
    WarehouseClient(url).publish_tables(frames, run_id=RUN_ID, generated_at=GENERATED_AT)
    app = create_app(settings_for(url, root / "charts", root / "dh"))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield {"client": client, "url": url, "frames": frames}


def _json_rows(client, table: str, **params) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = client.get(f"/data/{table}", params={**params, "limit": 10_000, "offset": offset}).json()
        rows += page["rows"]
        offset += len(page["rows"])
        if not page["rows"] or offset >= page["total"]:
            return rows


def test_xlsx_opens_with_the_header_and_typed_rows(exporting):
    client = exporting["client"]
    response = client.get("/data/ml_roi_timeseries", params={"format": "xlsx", "channel": ["search", "display"]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == 'attachment; filename="ml_roi_timeseries.xlsx"'
    sheet = load_workbook(io.BytesIO(response.content), read_only=True)["ml_roi_timeseries"]
    header, *rows = list(sheet.iter_rows(values_only=True))
    expected = _json_rows(client, "ml_roi_timeseries", channel=["search", "display"])
    assert list(header) == list(expected[0]) == ["date", "channel", "roi", "conversions", "is_forecast", "run_id",
                                                 "generated_at"]
    assert len(rows) == len(expected) == int(response.headers["x-total-count"]) == 80
    for got, want in zip(rows, expected):
        got = dict(zip(header, got))
        assert got["date"] == datetime.fromisoformat(want["date"])  # a real Excel date, not text
        assert got["channel"] == want["channel"] and got["conversions"] == want["conversions"]
        assert got["roi"] == pytest.approx(want["roi"]) if want["roi"] is not None else got["roi"] is None
        assert got["is_forecast"] is want["is_forecast"]
        assert got["run_id"] == RUN_ID and got["generated_at"] == GENERATED_AT.replace(tzinfo=None)
    assert any(dict(zip(header, r))["roi"] is None for r in rows)  # NaN is an empty cell

    diagnostics = load_workbook(io.BytesIO(client.get("/data/mmm_diagnostics?format=xlsx").content))["mmm_diagnostics"]
    cells = {row[0].value: row for row in diagnostics.iter_rows(min_row=2)}
    assert cells["durbin_watson"][1].value is None  # infinity
    formula = cells["mape"][2]
    assert formula.value == "=HYPERLINK(\"http://evil.example\")" and formula.data_type == "s"

    paged = load_workbook(io.BytesIO(client.get("/data/ml_roi_timeseries?format=xlsx&offset=10&limit=7").content))
    assert paged.active.max_row == 1 + 7
    unknown = client.get("/data/ml_budget_recommendation?format=xlsx")
    assert unknown.status_code == 404 and unknown.json()["error"] == "table_not_published"


def test_a_large_csv_is_streamed_in_chunks_and_matches_the_json_pages(exporting):
    client = exporting["client"]
    with client.stream("GET", "/data/ml_roi_forecast", params={"format": "csv"}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers and response.headers["transfer-encoding"] == "chunked"
        assert int(response.headers["x-total-count"]) == LARGE_ROWS
        chunks = list(response.iter_raw())
    text = b"".join(chunks).decode()
    assert len(chunks) >= 3 and text.count("date,channel,roi") == 1
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = _json_rows(client, "ml_roi_forecast")
    assert len(rows) == len(expected) == LARGE_ROWS
    assert [(r["date"], r["channel"], float(r["roi"])) for r in rows] == [
        (e["date"], e["channel"], e["roi"]) for e in expected]

    window = list(csv.DictReader(io.StringIO(
        client.get("/data/ml_roi_forecast", params={"format": "csv", "offset": 5, "limit": 9_000}).text)))
    assert [r["date"] + r["channel"] for r in window] == [e["date"] + e["channel"] for e in expected[5:9_005]]
    filtered = list(csv.DictReader(io.StringIO(client.get("/data/ml_roi_forecast?format=csv&channel=b").text)))
    assert len(filtered) == LARGE_ROWS // 5 and {r["channel"] for r in filtered} == {"b"}


def test_an_export_stops_when_a_refresh_publishes_the_table_meanwhile(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    client = WarehouseClient(url)
    client.publish_tables({"ml_roi_forecast": large_timeseries()}, run_id="run-one", generated_at=GENERATED_AT)
    export = Export(WarehouseReader(WarehouseUrl.parse(url)), "ml_roi_forecast", {}, None, 0)
    pages = export.pages()
    assert len(next(pages).rows) == EXPORT_CHUNK_ROWS
    client.publish_tables({"ml_roi_forecast": large_timeseries()}, run_id="run-two", generated_at=GENERATED_AT)
    with pytest.raises(ExportChanged, match=f"after {EXPORT_CHUNK_ROWS} of {LARGE_ROWS} rows"):
        next(pages)
