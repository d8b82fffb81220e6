"""POST /scenarios run for real: uvicorn on a loopback port, real HTTP with httpx, a temp DuckDB warehouse with
the media-mix response parameters published as the media_mix_model asset publishes them."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pytest

from core import registry
from core.warehouse import WarehouseClient
from ml.mmm import ChannelResponse, ResponseModel
from ml.scenarios import daily_baseline, revenue_per_conversion, spend_scenario
from service.app import create_app
from tests.service.test_server import GENERATED_AT, RUN_ID, LiveServer, refusing_launcher, settings_for

CURVES = {"display": (900.0, 150.0, 1.0, 120.0), "search": (6000.0, 400.0, 1.0, 300.0),
          "social": (3000.0, 250.0, 1.5, 200.0)}


def make_model(n_draws: int = 50) -> ResponseModel:
    rng = np.random.default_rng(4)
    return ResponseModel(
        responses={
            name: ChannelResponse(
                channel=name, coefficient=beta, adstock_decay=0.2, saturation_half=half, saturation_shape=shape,
                current_daily_spend=spend, coefficient_draws=beta * rng.lognormal(0.0, 0.1, n_draws),
                half_draws=half * rng.lognormal(0.0, 0.05, n_draws), shape_draws=np.full(n_draws, shape),
                decay_draws=np.full(n_draws, 0.2))
            for name, (beta, half, shape, spend) in CURVES.items()
        },
        baseline_daily=2500.0, ci=0.9,
    )


MODEL = make_model()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenarios")
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    WarehouseClient(url).publish_tables({"mmm_response_parameters": MODEL.response_parameters()}, run_id=RUN_ID,
                                        generated_at=GENERATED_AT)
    with LiveServer(create_app(settings_for(url, root / "charts", root / "dh"),
                               refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield {"client": client, "url": url}


def test_a_plan_answers_per_channel_and_total_rows_as_the_python_api_computes_them(site):
    response = site["client"].post("/scenarios", json={"search": 350, "social": 270})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scenario"], body["horizon_days"], body["ci"], body["model_run_id"]) == ("custom", 30, 0.9, RUN_ID)
    spec = registry.table("ml_spend_scenarios")
    assert [c["name"] for c in body["columns"]] == spec.column_names
    assert body["columns"][0]["description"] == spec.columns[0].description
    rows = {r["channel"]: r for r in body["rows"]}
    assert list(rows) == ["display", "search", "social", "TOTAL"]
    assert rows["search"]["daily_spend"] == 350 and rows["display"]["daily_spend"] == 120  # left out: current
    expected = spend_scenario(MODEL, {"search": 350, "social": 270}).set_index("channel")
    for channel, row in rows.items():
        for column in spec.column_names[2:]:
            want = expected.loc[channel, column]
            if np.isnan(want):
                assert row[column] is None, (channel, column)  # total revenue on channel rows: null, not NaN
            else:
                assert row[column] == pytest.approx(want, rel=1e-12), (channel, column)
    total = rows["TOTAL"]
    assert total["total_revenue_lower"] <= total["total_revenue"] <= total["total_revenue_upper"]
    assert total["baseline_revenue"] == pytest.approx(30 * 2500.0)


def test_an_empty_plan_is_current_spend_and_the_horizon_is_a_query_parameter(site):
    body = site["client"].post("/scenarios", params={"horizon_days": 7}, json={}).json()
    total = {r["channel"]: r for r in body["rows"]}["TOTAL"]
    assert body["horizon_days"] == 7 and total["horizon_days"] == 7
    assert total["planned_spend"] == pytest.approx(7 * sum(c[3] for c in CURVES.values()))
    assert total["total_revenue"] == pytest.approx(7 * MODEL.predict(MODEL.current_daily_spend))
    assert site["client"].post("/scenarios", params={"horizon_days": 0}, json={}).status_code == 422


@pytest.mark.parametrize("content, channel, rule, fragment", [
    ('{"tiktok": 100}', "tiktok", "unknown_channel", "unknown channel; the media-mix model has channels"),
    ('{"search": -5}', "search", "negative", "must be >= 0"),
    ('{"search": 1e9}', "search", "above_cap", "above the cap 30,000.00, 100 times its current daily spend"),
    ('{"search": NaN}', "search", "not_finite", "must be a finite number"),
    ('{"search": 1e999}', "search", "not_finite", "must be a finite number"),
    ('{"search": "350"}', "search", "not_a_number", "must be a number"),
])
def test_bad_plans_are_422_naming_the_channel_and_the_reason(site, content, channel, rule, fragment):
    response = site["client"].post("/scenarios", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_plan"
    assert fragment in body["detail"] and repr(channel) in body["detail"]
    assert [(e["parameter"], e["rule"]) for e in body["errors"]] == [(channel, rule)]


def test_a_body_that_is_not_an_object_is_422(site):
    for content in ('[["search", 350]]', '"search"', "not json"):
        response = site["client"].post("/scenarios", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["error"] == "invalid_parameter"


def test_without_published_parameters_the_answer_is_404_as_for_the_tables(tmp_path):
    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    WarehouseClient(empty).publish_tables({"mmm_diagnostics": pd.DataFrame(
        {"metric": ["r2"], "value": [0.9], "detail": ["x"]})}, run_id=RUN_ID, generated_at=GENERATED_AT)
    for url in (empty, f"duckdb:///{tmp_path / 'absent.duckdb'}"):
        app = create_app(settings_for(url, tmp_path / "charts", tmp_path / "dh"), refresh_launcher=refusing_launcher)
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/scenarios", json={"search": 350})
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "table_not_published"
            assert "predictions.mmm_response_parameters" in response.json()["detail"]
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_locked_warehouse_is_503_with_retry_after(site):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.readline()",
         site["url"].removeprefix("duckdb:///")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        response = site["client"].post("/scenarios", json={})
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "warehouse_busy" and response.headers["retry-after"] == "5"
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert site["client"].post("/scenarios", json={}).status_code == 200


def test_openapi_documents_the_route_with_its_errors(site):
    spec = site["client"].get("/openapi.json").json()
    operation = spec["paths"]["/scenarios"]["post"]
    assert operation["summary"] and {"200", "404", "422", "503"} <= set(operation["responses"])
    assert "requestBody" in operation


def test_with_the_baseline_and_revenue_per_conversion_published_the_answer_carries_both(tmp_path):
    """As a refresh leaves the warehouse: the decomposition beside the parameters, and ml_spend_scenarios with its
    revenue per conversion. The answer equals the Python API's with the same baseline and conversion value."""
    dates = pd.date_range("2026-01-01", periods=120)
    season = 2500.0 * (1 + 0.15 * np.sin(2 * np.pi * np.arange(120) / 120))
    decomposition = pd.concat([
        pd.DataFrame({"date": dates, "component": "baseline", "value": season}),
        pd.DataFrame({"date": dates, "component": "search", "value": 1500.0}),
    ], ignore_index=True)
    rng = np.random.default_rng(2)
    conversions = rng.poisson(60, 200).astype(float)
    value = revenue_per_conversion(conversions * 48.0 * rng.lognormal(0, 0.05, 200), conversions, ci=MODEL.ci)
    baseline = daily_baseline(decomposition)
    published = spend_scenario(MODEL, {}, scenario="current", baseline=baseline, conversion_value=value)
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    WarehouseClient(url).publish_tables(
        {"mmm_response_parameters": MODEL.response_parameters(), "mmm_revenue_decomposition": decomposition,
         "ml_spend_scenarios": published}, run_id=RUN_ID, generated_at=GENERATED_AT)
    app = create_app(settings_for(url, tmp_path / "charts", tmp_path / "dh"), refresh_launcher=refusing_launcher)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/scenarios", json={"search": 350, "social": 270}, params={"horizon_days": 14})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["baseline_draws"] is True and body["conversions_run_id"] == RUN_ID
    expected = spend_scenario(MODEL, {"search": 350, "social": 270}, horizon_days=14, baseline=baseline,
                              conversion_value=value).set_index("channel")
    rows = {r["channel"]: r for r in body["rows"]}
    for channel, row in rows.items():
        for column in registry.table("ml_spend_scenarios").column_names[2:]:
            want = expected.loc[channel, column]
            assert (row[column] is None) if np.isnan(want) else row[column] == pytest.approx(want, rel=1e-9), (
                channel, column)
    total = rows["TOTAL"]
    assert total["baseline_revenue_lower"] < total["baseline_revenue"] < total["baseline_revenue_upper"]
    assert total["total_conversions_lower"] < total["total_conversions"] < total["total_conversions_upper"]


def test_without_the_baseline_or_published_scenarios_conversions_are_null_and_the_baseline_a_point(site):
    body = site["client"].post("/scenarios", json={}).json()
    assert body["baseline_draws"] is False and body["conversions_run_id"] is None
    total = {r["channel"]: r for r in body["rows"]}["TOTAL"]
    assert total["total_conversions"] is None and total["baseline_revenue_lower"] is None
    assert total["total_revenue_lower"] < total["total_revenue"]
