"""The whole asset graph materialized in-process on DuckDB and PostgreSQL, plus a corrupted-input run."""

from __future__ import annotations

import shutil

import pandas as pd

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test

from core import registry
from core.raw_contract import RAW_TABLES
from orchestration.run_config import read_run_config
from orchestration.schedules import REFRESH_JOB_NAME
from assets.resources import Warehouse
from tests.conftest import LIGHT_RUN_CONFIG_FILE, load_demo

pytestmark = pytest.mark.slow


# Fewer bootstrap draws and backtest folds than the defaults: the same code paths, less CPU in CI. The
# suite's light run config (tests/light_run_config.yaml), which the commands a test starts read too.
LIGHT_CONFIG = read_run_config(LIGHT_RUN_CONFIG_FILE)
PREDICTION_TABLES = set(registry.TABLES)
CHARTS = set(registry.CHARTS)


def run_refresh_job(url: str, instance: DagsterInstance, charts_dir):
    from orchestration.definitions import build_definitions

    job = build_definitions(url, charts_dir=str(charts_dir)).resolve_job_def(REFRESH_JOB_NAME)
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=LIGHT_CONFIG)


# dbt's own record of each run (one marker row per run, even a failed one): not a table BI reads.
BOOKKEEPING = {"int_journeys_changed"}


def snapshot(warehouse: Warehouse) -> dict[str, tuple]:
    """Row count, a content fingerprint and the run ids of every analytics and predictions table."""
    out = {}
    for schema in ("analytics", "predictions"):
        for table, rows in warehouse.row_counts(schema).items():
            if table in BOOKKEEPING:
                continue
            cols = warehouse.read_sql(f'select * from "{schema}"."{table}" limit 0').columns
            numeric = [c for c in cols if c in ("spend", "revenue", "conversions", "share", "roi", "journeys")]
            fingerprint = (
                warehouse.read_sql(f'select sum("{numeric[0]}") as s from "{schema}"."{table}"')["s"].iloc[0]
                if numeric
                else None
            )
            runs = (
                tuple(sorted(warehouse.read_sql(f'select distinct run_id from "{schema}"."{table}"')["run_id"]))
                if "run_id" in cols else ()
            )
            out[f"{schema}.{table}"] = (rows, None if fingerprint is None else round(float(fingerprint), 6), runs)
    return out


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def refreshed(request, tmp_path_factory, demo_data, dbt_manifest):
    """A warehouse holding the demo data after one successful full refresh, and its run result."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('duck') / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    load_demo(url, demo_data)
    charts_dir = tmp_path_factory.mktemp(f"charts_{request.param}")
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, charts_dir)
        materialized = {
            key: instance.get_latest_materialization_event(key)
            for key in (AssetKey(["analytics", "fct_channel_daily"]), AssetKey(["analytics", "conversion_paths"]))
        }
    yield {"url": url, "kind": request.param, "result": result, "materialized": materialized, "charts": charts_dir}


# The one warning the demo may raise: the media-mix review gate flagging a minor channel whose interval
# is wide (a small channel's ROAS is often not identifiable on 200 days); every other check passes.
DEMO_MAY_WARN = {"mmm_channels_identifiable"}


def test_full_refresh_succeeds_and_every_check_passes(refreshed):
    result = refreshed["result"]
    failed = [f"{e.asset_key.to_user_string()}::{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed and e.check_name not in DEMO_MAY_WARN]
    assert result.success, result.get_failed_step_keys()
    assert failed == []
    assert len(result.get_asset_check_evaluations()) >= 40
    assert all(event is not None for event in refreshed["materialized"].values())
    checked = {e.asset_key.to_user_string() for e in result.get_asset_check_evaluations()}
    assert {"channel_attribution", "media_mix_model", "budget_recommendation", "roi_forecast"} <= checked


def test_every_prediction_table_is_published_with_run_stamps(refreshed, demo_data):
    wh = Warehouse(url=refreshed["url"])
    counts = wh.row_counts("predictions")
    assert PREDICTION_TABLES <= set(counts)
    run_id = refreshed["result"].run_id
    channels = sorted(demo_data.ad_performance_daily["channel"].unique())
    stamps_by_asset: dict[str, set] = {}
    for table in PREDICTION_TABLES:
        stamps = wh.read_sql(f"select distinct run_id, generated_at from predictions.{table}")
        assert stamps["run_id"].tolist() == [run_id], table
        stamps_by_asset.setdefault(registry.table(table).asset, set()).update(stamps["generated_at"])
        columns = wh.read_sql(f"select * from predictions.{table} limit 0").columns.tolist()
        assert columns == [*registry.table(table).column_names, *registry.RUN_COLUMNS], table
    # One publication per asset: every table an asset writes carries the same generated_at.
    assert all(len(stamps) == 1 for stamps in stamps_by_asset.values()), stamps_by_asset
    attribution = wh.read_table("predictions", "channel_attribution")
    assert len(attribution) == 9 * len(channels)
    forecast = wh.read_table("predictions", "ml_roi_forecast")
    assert sorted(forecast["channel"]) == channels and (forecast["horizon_days"] == 30).all()
    budget = wh.read_table("predictions", "ml_budget_recommendation").set_index("channel")
    assert budget.drop(index="TOTAL")["recommended_spend"].sum() == pytest.approx(budget.loc["TOTAL", "recommended_spend"])
    timeseries = wh.read_table("predictions", "ml_roi_timeseries")
    assert timeseries.loc[timeseries["is_forecast"].astype(bool)].groupby("channel").size().eq(30).all()


def test_seven_charts_are_written(refreshed):
    from PIL import Image

    written = {p.stem: p for p in refreshed["charts"].glob("*.png")}
    assert set(written) == CHARTS
    for path in written.values():
        assert Image.open(path).size == (1200, 700)
    assert not list(refreshed["charts"].glob("*.tmp*"))


def test_ratios_are_fractions_not_integer_division(refreshed):
    """clicks / impressions is a real ratio on both warehouses (PostgreSQL divides integers as integers)."""
    wh = Warehouse(url=refreshed["url"])
    for table in ("fct_campaign_daily", "fct_channel_daily"):
        ctr = wh.read_sql(f"select ctr from analytics.{table} where impressions > 0")["ctr"].astype(float)
        assert ctr.between(0, 1).all() and (ctr > 0).mean() > 0.5, table


def test_marts_agree_with_the_raw_tables(refreshed, demo_data):
    wh = Warehouse(url=refreshed["url"])
    ads = demo_data.ad_performance_daily
    channel_daily = wh.read_table("analytics", "fct_channel_daily")
    days = ads["date"].nunique()
    assert len(channel_daily) == days * ads["channel"].nunique()
    assert channel_daily["spend"].sum() == pytest.approx(ads["spend"].sum(), rel=1e-9)
    assert channel_daily["clicks"].sum() == ads["clicks"].sum()
    revenue_daily = wh.read_table("analytics", "fct_revenue_daily")
    assert len(revenue_daily) == days
    assert revenue_daily["revenue"].sum() == pytest.approx(demo_data.conversions["revenue"].sum(), rel=1e-9)
    assert set(wh.read_table("analytics", "dim_channel")["channel"]) >= set(ads["channel"])
    assert wh.read_table("analytics", "dim_campaign")["campaign_id"].nunique() == ads["campaign_id"].nunique()


def test_conversion_paths_count_each_journey_once(refreshed):
    wh = Warehouse(url=refreshed["url"])
    paths = wh.read_table("analytics", "conversion_paths")
    journeys = wh.read_sql(
        "select count(distinct case when is_converted then journey_id end) as converted, "
        "count(distinct case when not is_converted then journey_id end) as open_journeys, "
        "max(days_before_conversion) as oldest from analytics.int_journeys"
    )
    assert int(paths["conversions"].sum()) == int(journeys["converted"].iloc[0])
    assert int(paths["nulls"].sum()) == int(journeys["open_journeys"].iloc[0])
    assert float(journeys["oldest"].iloc[0]) <= 30.0  # journey_lookback_days
    assert paths["path"].str.match(r"^[a-z_]+( > [a-z_]+)*$").all()
    converted_value = wh.read_sql(
        "select sum(revenue) as v from (select distinct journey_id, revenue from analytics.int_journeys "
        "where is_converted) as j"
    )["v"].iloc[0]
    assert paths["conversion_value"].sum() == pytest.approx(float(converted_value), rel=1e-9)


def test_corrupted_raw_data_fails_the_named_check_and_keeps_published_tables(refreshed, tmp_path):
    if refreshed["kind"] == "duckdb":
        # Work on a copy so the module's other tests keep their clean warehouse.
        source = refreshed["url"].removeprefix("duckdb://")
        shutil.copyfile(source, tmp_path / "warehouse.duckdb")
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = refreshed["url"]  # the last test of the module on this database: corrupting it is fine
    wh = Warehouse(url=url)
    before = snapshot(wh)
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    ads = raw["ad_performance_daily"]
    ads.loc[ads.index[:3], "spend"] = -10.0
    from core.raw_contract import replace_raw_tables

    replace_raw_tables(wh, raw)
    charts_before = {p.name: p.stat().st_mtime_ns for p in refreshed["charts"].glob("*.png")}
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, refreshed["charts"])
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert not result.success
    assert "source_non_negative_raw_ad_performance_daily_spend" in failed
    assert snapshot(wh) == before
    assert {p.name: p.stat().st_mtime_ns for p in refreshed["charts"].glob("*.png")} == charts_before
