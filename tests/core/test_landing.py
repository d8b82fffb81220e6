"""core.landing on real files and a real DuckDB warehouse: complete drops, partial reads, the upsert."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.landing import READY_MARKER, complete_drops, merge_raw_tables, process_drop, read_drop
from core.raw_contract import RawDataError
from core.settings import RAW_SCHEMA, WarehouseUrl
from core.warehouse import WarehouseClient

AD_HEADER = "date,channel,campaign_id,impressions,clicks,spend\n"


def write(folder: Path, files: dict[str, str], ready: bool = True) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    if ready:
        (folder / READY_MARKER).write_text("")
    return folder


def test_only_folders_with_the_marker_are_complete_drops(tmp_path):
    write(tmp_path / "a", {"conversions.csv": "x"})
    write(tmp_path / "b", {"conversions.csv": "x"}, ready=False)
    write(tmp_path / "processed" / "c", {"conversions.csv": "x"})
    (tmp_path / "loose.csv").write_text("x")
    assert [p.name for p in complete_drops(tmp_path)] == ["a"]
    assert complete_drops(tmp_path / "missing") == []


def test_a_partial_drop_reads_only_its_tables_typed_by_the_contract(tmp_path):
    drop = write(tmp_path / "d", {"ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,12.5\n"})
    frames = read_drop(drop)
    assert list(frames) == ["ad_performance_daily"]
    ad = frames["ad_performance_daily"]
    assert ad["campaign_id"].tolist() == ["pai-00"] and ad["spend"].tolist() == [12.5]
    assert ad["reach"].isna().all()  # optional column absent from the file


@pytest.mark.parametrize("files, expected", [
    ({"ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,lots\n"}, "column 'spend'"),
    ({"ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,1\n2026-10-01,ctv,pai-00,9,1,2\n"},
     "2 rows share their (date, channel, campaign_id)"),
    ({"notes.txt": "hello"}, "holds none of the raw files"),
    ({"conversions.csv": "conversion_id,user_id,occurred_at,revenue\nc1,u1,2026-10-01,5\n",
      "conversions.parquet": "not parquet"}, "are both there for table conversions"),
])
def test_bad_drops_are_refused_with_a_message(tmp_path, files, expected):
    with pytest.raises(RawDataError) as info:
        read_drop(write(tmp_path / "d", files))
    assert expected in str(info.value)


def test_merge_upserts_by_key_in_one_transaction(tmp_path):
    import pandas as pd

    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    client = WarehouseClient(url)
    first = read_drop(write(tmp_path / "one", {
        "ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,10\n2026-10-01,paid_search,pai-00,50,2,3\n",
    }))
    merge_raw_tables(client, first)
    merge_raw_tables(client, first)
    restated = read_drop(write(tmp_path / "two", {
        "ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,99\n2026-10-02,ctv,pai-00,1,0,1\n",
    }))
    merge_raw_tables(client, restated)
    ad = client.read_table(RAW_SCHEMA, "ad_performance_daily").sort_values(["date", "channel"])
    assert list(zip(ad["channel"], ad["spend"])) == [("ctv", 99.0), ("paid_search", 3.0), ("ctv", 1.0)]
    # A failing table rolls the others back.
    broken = dict(restated, touchpoints=pd.DataFrame({"touchpoint_id": [object()]}))
    with pytest.raises(Exception):
        merge_raw_tables(client, broken)
    assert len(client.read_table(RAW_SCHEMA, "ad_performance_daily")) == 3
    assert not client.table_exists(RAW_SCHEMA, "touchpoints")



def test_channel_tables_exist_from_the_first_drop_and_a_channels_csv_replaces_them(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    client = WarehouseClient(url)
    merge_raw_tables(client, read_drop(write(tmp_path / "one", {
        "ad_performance_daily.csv": AD_HEADER + "2026-10-01,google_ads,pai-00,100,5,10\n"})))
    # A warehouse fed only by drops still has the (empty) channel tables the dbt sources read.
    assert client.read_table(RAW_SCHEMA, "channel_aliases").empty
    assert list(client.read_table(RAW_SCHEMA, "channel_metadata").columns) == [
        "channel", "channel_group", "is_paid", "description"]
    channels = "channel,is_paid,aliases\npaid_search,true,google_ads|cpc\nctv,yes,\n"
    frames = read_drop(write(tmp_path / "two", {"channels.csv": channels}))
    assert set(frames) == {"channel_metadata", "channel_aliases"}
    merge_raw_tables(client, frames)
    merge_raw_tables(client, frames)  # the whole list again: nothing doubles
    aliases = client.read_table(RAW_SCHEMA, "channel_aliases").sort_values("alias")
    assert list(zip(aliases["alias"], aliases["channel"])) == [("cpc", "paid_search"), ("google_ads", "paid_search")]
    assert sorted(client.read_table(RAW_SCHEMA, "channel_metadata")["channel"]) == ["ctv", "paid_search"]
    # A later drop without channels.csv keeps them; the ad rows are untouched by a channels-only drop.
    merge_raw_tables(client, read_drop(write(tmp_path / "three", {
        "ad_performance_daily.csv": AD_HEADER + "2026-10-02,google_ads,pai-00,100,5,11\n"})))
    assert len(client.read_table(RAW_SCHEMA, "channel_aliases")) == 2
    assert len(client.read_table(RAW_SCHEMA, "ad_performance_daily")) == 2
    with pytest.raises(RawDataError, match="is_paid 'maybe' is not true/false"):
        read_drop(write(tmp_path / "four", {"channels.csv": "channel,is_paid\nctv,maybe\n"}))

def test_process_drop_files_merged_and_rejected_drops(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    landing = tmp_path / "landing"
    good = write(landing / "good", {"ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,10\n"})
    bad = write(landing / "bad", {"ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,inf\n"})
    assert process_drop(good, landing, url).status == "merged"
    outcome = process_drop(bad, landing, url)
    assert outcome.status == "rejected"
    assert (landing / "processed" / "good" / "ad_performance_daily.csv").exists()
    assert "not finite" in (landing / "rejected" / "bad" / "REASON.txt").read_text()


def test_an_events_csv_drop_replaces_the_calendar_whole(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    client = WarehouseClient(url)
    frames = read_drop(write(tmp_path / "one", {"events.csv": "date,end_date,name\n2026-03-06,2026-03-08,Sale\n"}))
    assert set(frames) == {"calendar_events"}
    merge_raw_tables(client, frames)
    merge_raw_tables(client, read_drop(write(tmp_path / "two", {
        "events.csv": "date,name\n2026-04-01,Outage\n2026-05-01,Launch\n",
        "ad_performance_daily.csv": AD_HEADER + "2026-10-01,ctv,pai-00,100,5,10\n"})))
    events = client.read_table(RAW_SCHEMA, "calendar_events").sort_values("date")
    assert events["name"].tolist() == ["Outage", "Launch"]  # the later file is the whole calendar
    with pytest.raises(RawDataError, match="events.csv: line 2: date 'soon' is not a day"):
        read_drop(write(tmp_path / "three", {"events.csv": "date\nsoon\n"}))
