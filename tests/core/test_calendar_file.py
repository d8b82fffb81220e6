"""events.csv, the user's promotions and events calendar: read with line-numbered problems, and loaded
by `spendwise load` into raw.calendar_events (empty without the file)."""

from __future__ import annotations

from datetime import date

import pytest

from core.calendar_file import event_days, read_calendar_csv
from core.raw_contract import RawDataError, scan_raw_dir


def test_events_with_and_without_an_end_day_cover_their_days(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("date,end_date,name,kind\n2026-03-06,2026-03-08,Spring sale,promotion\n"
                    "2026-04-01,,Checkout outage,outage\n2026-03-07,,Flash sale,\n")
    events = read_calendar_csv(path)["calendar_events"]
    assert len(events) == 3 and events["kind"].isna().sum() == 1
    assert event_days(events) == [date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 8), date(2026, 4, 1)]


def test_only_date_is_required(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("date\n2026-01-02\n")
    assert event_days(read_calendar_csv(path)["calendar_events"]) == [date(2026, 1, 2)]


def test_bad_rows_are_named_by_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("date,end_date,name\n2026-13-01,,x\n2026-03-08,2026-03-01,y\n2026-01-01,2026-03-31,z\n"
                    "2026-02-01,,w,extra\n")
    with pytest.raises(RawDataError) as info:
        read_calendar_csv(path)
    assert info.value.problems == [
        "events.csv: line 2: date '2026-13-01' is not a day (YYYY-MM-DD)",
        "events.csv: line 3: end_date 2026-03-01 is before date 2026-03-08",
        "events.csv: line 4: 2026-01-01 to 2026-03-31 is 90 days; an event may last at most 31 days (list a longer "
        "period as separate events, or leave it out: the model would lose those days)",
        "events.csv: line 5: 4 field(s), the header has 3",
    ]
    path.write_text("day,name\n2026-01-01,x\n")
    with pytest.raises(RawDataError, match=r"(?s)unknown column\(s\) \['day'\].*no 'date' column"):
        read_calendar_csv(path)


def test_the_load_folder_reads_the_calendar_or_gives_an_empty_one(tmp_path):
    from tests.core.test_ad_reporting import other_tables

    folder = tmp_path / "in"
    folder.mkdir()
    tables = other_tables()
    tables["ad_performance_daily"] = __import__("pandas").DataFrame({
        "date": ["2026-10-01"], "channel": ["ctv"], "campaign_id": ["c1"], "impressions": [10], "clicks": [1],
        "spend": [5.0]})
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    scanned = scan_raw_dir(folder, channels=True)
    assert scanned.problems == [] and scanned.frames["calendar_events"].empty
    (folder / "events.csv").write_text("date,name\n2026-10-01,Launch\n")
    scanned = scan_raw_dir(folder, channels=True)
    assert scanned.frames["calendar_events"]["name"].tolist() == ["Launch"]
    (folder / "events.csv").write_text("date\nsoon\n")
    assert scan_raw_dir(folder, channels=True).problems == ["events.csv: line 2: date 'soon' is not a day (YYYY-MM-DD)"]
