"""The user's calendar of promotions and events: an optional `events.csv` in the load folder.

One row per event: `date` (required), `end_date` (optional, inclusive, for events of several days),
`name` and `kind` (optional, free text such as promotion, sale, outage, launch). The media-mix model
leaves every listed day out of its regression, as it does public holidays and the retail peaks: a
promotion or an outage moves revenue for reasons the media spend does not explain, and a day the
model does not know about bends the curves it learns. It becomes `raw.calendar_events`, replaced
whole with each load (written empty without the file).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from core.raw_contract import RawDataError, small_csv_rows

if TYPE_CHECKING:
    import pandas as pd

CALENDAR_FILE = "events.csv"
CALENDAR_TABLE = "calendar_events"
CALENDAR_COLUMNS = ("date", "end_date", "name", "kind")
# An event longer than this is a period, not an event: leaving it out would leave out the data itself.
MAX_EVENT_DAYS = 31


def calendar_table(rows: list[tuple[date, date, str | None, str | None]] = ()) -> pd.DataFrame:
    """`raw.calendar_events` from (date, end_date, name, kind) rows; no rows gives the empty table."""
    import pandas as pd

    text = pd.StringDtype("pyarrow", na_value=float("nan"))
    frame = pd.DataFrame(list(rows), columns=list(CALENDAR_COLUMNS))
    return pd.DataFrame({
        "date": pd.to_datetime(frame["date"]).astype("datetime64[us]"),
        "end_date": pd.to_datetime(frame["end_date"]).astype("datetime64[us]"),
        "name": frame["name"].astype(text),
        "kind": frame["kind"].astype(text),
    })


def read_calendar_csv(path: str | Path) -> dict[str, pd.DataFrame]:
    """Validate events.csv and return `{"calendar_events": frame}`; every problem names its line."""
    path = Path(path)
    problems, rows = [], []
    for line, row in small_csv_rows(path, CALENDAR_COLUMNS, "date"):
        if isinstance(row, str):
            problems.append(row)
            continue
        start = _day(row.get("date"))
        end = _day(row.get("end_date")) if row.get("end_date") else start
        if start is None:
            problems.append(f"{path.name}: line {line}: date {row.get('date')!r} is not a day (YYYY-MM-DD)")
            continue
        if end is None:
            problems.append(f"{path.name}: line {line}: end_date {row.get('end_date')!r} is not a day (YYYY-MM-DD)")
            continue
        if end < start:
            problems.append(f"{path.name}: line {line}: end_date {end} is before date {start}")
            continue
        if (end - start).days + 1 > MAX_EVENT_DAYS:
            problems.append(
                f"{path.name}: line {line}: {start} to {end} is {(end - start).days + 1} days; an event may last "
                f"at most {MAX_EVENT_DAYS} days (list a longer period as separate events, or leave it out: the "
                "model would lose those days)"
            )
            continue
        rows.append((start, end, row.get("name"), row.get("kind")))
    if problems:
        raise RawDataError(problems)
    return {CALENDAR_TABLE: calendar_table(rows)}


def event_days(events: pd.DataFrame) -> list[date]:
    """Every day an event of `calendar_events` covers (date to end_date, inclusive), sorted, once each."""
    import pandas as pd

    days: set[date] = set()
    for start, end in zip(events["date"], events["end_date"]):
        if pd.isna(start):
            continue
        first = pd.Timestamp(start).date()
        last = pd.Timestamp(end).date() if not pd.isna(end) else first
        days.update(first + timedelta(days=k) for k in range((last - first).days + 1))
    return sorted(days)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None
