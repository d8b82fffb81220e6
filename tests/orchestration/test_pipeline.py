"""The whole asset graph materialized in-process on DuckDB and PostgreSQL, plus a corrupted-input run."""

from __future__ import annotations

import shutil

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test

from orchestration.raw_contract import RAW_TABLES
from orchestration.schedules import REFRESH_JOB_NAME
from orchestration.warehouse import Warehouse
from tests.conftest import load_demo

pytestmark = pytest.mark.slow


def run_refresh_job(url: str, instance: DagsterInstance):
    from orchestration.definitions import build_definitions

    job = build_definitions(url).resolve_job_def(REFRESH_JOB_NAME)
    return job.execute_in_process(instance=instance, raise_on_error=False)


def snapshot(warehouse: Warehouse) -> dict[str, tuple[int, str]]:
    """Row count and a content fingerprint of every analytics and predictions table."""
    out = {}
    for schema in ("analytics", "predictions"):
        for table, rows in warehouse.row_counts(schema).items():
            cols = warehouse.read_sql(f'select * from "{schema}"."{table}" limit 0').columns
            numeric = [c for c in cols if c in ("spend", "revenue", "conversions", "share", "roi", "journeys")]
            fingerprint = (
                warehouse.read_sql(f'select sum("{numeric[0]}") as s from "{schema}"."{table}"')["s"].iloc[0]
                if numeric
                else None
            )
            out[f"{schema}.{table}"] = (rows, None if fingerprint is None else round(float(fingerprint), 6))
    return out


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def refreshed(request, tmp_path_factory, demo_data, dbt_manifest):
    """A warehouse holding the demo data after one successful full refresh, and its run result."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('duck') / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    load_demo(url, demo_data)
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance)
        materialized = {
            key: instance.get_latest_materialization_event(key)
            for key in (AssetKey(["analytics", "fct_channel_daily"]), AssetKey(["analytics", "conversion_paths"]))
        }
    yield {"url": url, "kind": request.param, "result": result, "materialized": materialized}


def test_full_refresh_succeeds_and_every_check_passes(refreshed):
    result = refreshed["result"]
    failed = [f"{e.asset_key.to_user_string()}::{e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success, result.get_failed_step_keys()
    assert failed == []
    assert len(result.get_asset_check_evaluations()) >= 40
    assert all(event is not None for event in refreshed["materialized"].values())


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
    from orchestration.raw_contract import replace_raw_tables

    replace_raw_tables(wh, raw)
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance)
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert not result.success
    assert "source_non_negative_raw_ad_performance_daily_spend" in failed
    assert snapshot(wh) == before
