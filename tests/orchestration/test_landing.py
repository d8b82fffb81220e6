"""The landing-folder sensor, evaluated for real (a real Dagster instance) on DuckDB and PostgreSQL.

The data is foreign to the demo: its own channel names, a campaign id shared by two channels, no
`reach` column, days weeks before today.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import RunRequest, SensorResult, SkipReason, build_sensor_context, instance_for_test

from core.landing import READY_MARKER
from core.refresh_lock import RefreshLock
from core.settings import RAW_SCHEMA, REFRESH_JOB_NAME, WarehouseUrl
from core.warehouse import WarehouseClient
from orchestration.sensors import build_landing_sensor

KEYS = {"ad_performance_daily": ["date", "channel", "campaign_id"], "touchpoints": ["touchpoint_id"],
        "conversions": ["conversion_id"]}
AD = "date,channel,campaign_id,campaign_name,impressions,clicks,spend\n"
FIRST = {
    "ad_performance_daily.csv": AD + "2026-10-01,programmatic,pai-00,Autumn,1000,20,50.5\n"
                                     "2026-10-01,newsletter,pai-00,Autumn,400,30,0\n"
                                     "2026-10-02,programmatic,pai-00,Autumn,900,18,48\n",
    "touchpoints.csv": "touchpoint_id,user_id,occurred_at,channel\n"
                       "t-001,0123,2026-10-01T09:00:00Z,programmatic\nt-002,123,2026-10-01 10:00,newsletter\n",
    "conversions.csv": "conversion_id,user_id,occurred_at,revenue\nc-1,0123,2026-10-01T12:00:00+02:00,80\n",
}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> WarehouseUrl:
    if request.param == "duckdb":
        return WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    return WarehouseUrl.parse(request.getfixturevalue("pg_url"))


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def drop(landing: Path, name: str, files: dict[str, str], ready: bool = True) -> Path:
    folder = landing / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    if ready:
        (folder / READY_MARKER).write_text("")
    return folder


def evaluate(url: WarehouseUrl, landing: Path, instance, cursor: str | None = None):
    sensor_def = build_landing_sensor(url, landing)
    result = sensor_def(build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor_def.name))
    assert isinstance(result, (SensorResult, SkipReason))
    return result


def raw_tables(url: WarehouseUrl) -> dict:
    client = WarehouseClient(url)
    return {
        t: client.read_table(RAW_SCHEMA, t).sort_values(k).reset_index(drop=True)
        for t, k in KEYS.items() if client.table_exists(RAW_SCHEMA, t)
    }


def assert_same(before: dict, after: dict) -> None:
    import pandas as pd

    assert before.keys() == after.keys()
    for table in before:
        pd.testing.assert_frame_equal(before[table], after[table], check_dtype=False)


def test_a_drop_twice_changes_nothing_and_requests_a_refresh(url, landing):
    with instance_for_test() as instance:
        drop(landing, "sync-0900", FIRST)
        result = evaluate(url, landing, instance)
        assert isinstance(result, SensorResult) and len(result.run_requests) == 1
        request = result.run_requests[0]
        assert isinstance(request, RunRequest) and request.tags["spendwise/drops"] == "sync-0900"
        assert build_landing_sensor(url, landing).job_name == REFRESH_JOB_NAME
        once = raw_tables(url)
        assert {t: len(df) for t, df in once.items()} == {"ad_performance_daily": 3, "touchpoints": 2, "conversions": 1}
        assert sorted(once["touchpoints"]["user_id"]) == ["0123", "123"]  # ids stay text
        assert once["ad_performance_daily"]["reach"].isna().all()
        assert (landing / "processed" / "sync-0900" / READY_MARKER).exists()

        drop(landing, "sync-0900", FIRST)  # re-delivered under the same name
        result = evaluate(url, landing, instance, cursor=result.cursor)
        assert isinstance(result, SensorResult) and len(result.run_requests) == 1
        assert_same(once, raw_tables(url))
        assert len(list((landing / "processed").iterdir())) == 2


def test_an_overlapping_partial_drop_upserts_a_restated_day(url, landing):
    with instance_for_test() as instance:
        drop(landing, "a", FIRST)
        evaluate(url, landing, instance)
        drop(landing, "b", {
            "ad_performance_daily.csv": AD + "2026-10-02,programmatic,pai-00,Autumn,950,19,61.25\n"
                                             "2026-10-03,programmatic,pai-00,Autumn,800,10,40\n",
        })
        result = evaluate(url, landing, instance)
        assert isinstance(result, SensorResult) and result.run_requests
        after = raw_tables(url)
        ad = after["ad_performance_daily"]
        assert len(ad) == 4
        day2 = ad[(ad["date"].astype(str).str[:10] == "2026-10-02")]
        assert day2["spend"].tolist() == [61.25] and day2["impressions"].tolist() == [950]
        # the other channel with the same campaign id is its own row, untouched
        assert sorted(ad.loc[ad["campaign_id"] == "pai-00", "channel"].unique()) == ["newsletter", "programmatic"]
        assert len(after["touchpoints"]) == 2 and len(after["conversions"]) == 1


def test_an_invalid_drop_is_rejected_with_its_reason_and_nothing_written(url, landing):
    with instance_for_test() as instance:
        drop(landing, "a", FIRST)
        cursor = evaluate(url, landing, instance).cursor
        before = raw_tables(url)
        bad = dict(FIRST, **{"conversions.csv": "conversion_id,user_id,occurred_at,revenue\nc-9,u,2026-10-05,lots\n"})
        drop(landing, "broken", bad)
        result = evaluate(url, landing, instance, cursor=cursor)
        assert isinstance(result, SensorResult) and not result.run_requests and result.skip_reason
        reason = (landing / "rejected" / "broken" / "REASON.txt").read_text()
        assert "conversions.csv" in reason and "revenue" in reason and "not numbers" in reason
        assert not (landing / "broken").exists()
        assert_same(before, raw_tables(url))


def test_a_first_partial_drop_is_merged_but_no_refresh_is_requested_until_all_raw_tables_exist(url, landing):
    with instance_for_test() as instance:
        drop(landing, "only-sales", {"conversions.csv": FIRST["conversions.csv"]})
        result = evaluate(url, landing, instance)
        assert not result.run_requests and "ad_performance_daily, touchpoints do not exist yet" in result.skip_reason.skip_message
        assert list(raw_tables(url)) == ["conversions"]
        drop(landing, "rest", {k: v for k, v in FIRST.items() if k != "conversions.csv"})
        result = evaluate(url, landing, instance, cursor=result.cursor)
        assert result.run_requests and result.run_requests[0].tags["spendwise/drops"] == "only-sales,rest"


def test_an_incomplete_drop_is_left_alone(url, landing):
    with instance_for_test() as instance:
        drop(landing, "half", FIRST, ready=False)
        result = evaluate(url, landing, instance)
        assert isinstance(result, SensorResult) and not result.run_requests
        assert "no new complete drop" in result.skip_reason.skip_message
        assert sorted(p.name for p in (landing / "half").iterdir()) == sorted(FIRST)
        assert raw_tables(url) == {}


def test_a_running_refresh_leaves_the_drop_then_the_next_tick_merges_it(url, landing):
    with instance_for_test() as instance:
        drop(landing, "a", FIRST)
        lock = RefreshLock(url)
        lock.acquire("refresh-in-flight")
        try:
            result = evaluate(url, landing, instance)
            assert isinstance(result, SensorResult) and not result.run_requests
            assert "refresh-in-flight" in result.skip_reason.skip_message
            assert (landing / "a" / READY_MARKER).exists() and raw_tables(url) == {}
        finally:
            lock.release()
        result = evaluate(url, landing, instance, cursor=result.cursor)
        assert len(result.run_requests) == 1 and len(raw_tables(url)["ad_performance_daily"]) == 3


def test_a_merge_while_a_refresh_run_is_in_progress_skips_and_requests_later(url, landing):
    from dagster import DagsterRunStatus, job, op

    @op
    def noop():
        pass

    @job(name=REFRESH_JOB_NAME)
    def stand_in_refresh():  # a run of the refresh job's name, not yet holding the lock
        noop()

    with instance_for_test() as instance:
        run = instance.create_run_for_job(job_def=stand_in_refresh, status=DagsterRunStatus.STARTED)
        drop(landing, "a", FIRST)
        result = evaluate(url, landing, instance)
        assert not result.run_requests and run.run_id in result.skip_reason.skip_message
        assert "merged" in result.skip_reason.skip_message
        assert json.loads(result.cursor) == {"pending": ["a"]}
        assert len(raw_tables(url)["ad_performance_daily"]) == 3
        instance.report_run_failed(run)
        result = evaluate(url, landing, instance, cursor=result.cursor)
        assert len(result.run_requests) == 1 and json.loads(result.cursor) == {"pending": []}


def test_the_sensor_is_on_by_default_only_when_a_landing_folder_is_set(monkeypatch, tmp_path):
    from dagster import DefaultSensorStatus

    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    monkeypatch.delenv("SPENDWISE_LANDING_DIR", raising=False)
    assert build_landing_sensor(url).default_status == DefaultSensorStatus.STOPPED
    with instance_for_test() as instance:
        assert "SPENDWISE_LANDING_DIR is not set" in evaluate_unset(url, instance)
    monkeypatch.setenv("SPENDWISE_LANDING_DIR", str(tmp_path / "landing"))
    assert build_landing_sensor(url).default_status == DefaultSensorStatus.RUNNING


def evaluate_unset(url: WarehouseUrl, instance) -> str:
    sensor_def = build_landing_sensor(url)
    return sensor_def(build_sensor_context(instance=instance, sensor_name=sensor_def.name)).skip_message
