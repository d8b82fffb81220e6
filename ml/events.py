"""Calendar events the models treat specially: public holidays and the retail peak season.

Public holidays come from the ``holidays`` package. Retail peaks are the same in most markets
that run paid media: the days from Thanksgiving (fourth Thursday of November) through the
Tuesday after Cyber Monday, and the last days before Christmas through New Year's Day. Sales
on those days move by tens of percent for reasons no media channel explains, so a model that
does not flag them credits the spike to whichever channel spent more that week.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

__all__ = ["country_holidays", "model_event_days", "retail_peak_days"]

# Thanksgiving Thursday .. Tuesday after Cyber Monday (Black Friday weekend included).
_THANKSGIVING_SPAN_DAYS = 6
# Last shipping days before Christmas through New Year's Day.
_YEAR_END_FIRST_DAY = 21


def country_holidays(country: str, first: Any, last: Any, parameter: str = "country") -> pd.DataFrame:
    """Public holidays of ``country`` between ``first`` and ``last`` (whole years): ``ds, holiday``.

    ``country`` is an ISO 3166 code known to the ``holidays`` package ("US", "GB", "DE", ...); a
    day with two holidays has two rows. Unknown codes raise ``ValueError`` naming the code and
    the caller's ``parameter``.
    """
    import holidays

    first, last = pd.Timestamp(first), pd.Timestamp(last)
    years = range(first.year, last.year + 1)
    try:
        calendar = holidays.country_holidays(country, years=years, language="en_US")
    except NotImplementedError as exc:
        raise ValueError(
            f"{parameter}={country!r} is not in the holidays calendar ({exc}); use an ISO 3166 code "
            "such as 'US', 'GB' or 'DE', or None for no holidays"
        ) from exc
    rows = [(day, name) for day in sorted(calendar) for name in calendar.get_list(day)]
    return pd.DataFrame({"ds": pd.to_datetime([d for d, _ in rows]), "holiday": [n for _, n in rows]})


def retail_peak_days(first: Any, last: Any) -> pd.DataFrame:
    """Retail peak days between ``first`` and ``last`` (inclusive): ``ds, event``.

    Events are "Thanksgiving to Cyber Tuesday" (six days from the fourth Thursday of November)
    and "Christmas to New Year" (21 December to 1 January).
    """
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    rows: list[tuple[date, str]] = []
    for year in range(first.year - 1, last.year + 1):
        november_first = date(year, 11, 1)
        thanksgiving = november_first + timedelta(days=(3 - november_first.weekday()) % 7 + 21)
        rows += [(thanksgiving + timedelta(days=k), "Thanksgiving to Cyber Tuesday")
                 for k in range(_THANKSGIVING_SPAN_DAYS)]
        season_start = date(year, 12, _YEAR_END_FIRST_DAY)
        rows += [(season_start + timedelta(days=k), "Christmas to New Year")
                 for k in range((date(year + 1, 1, 1) - season_start).days + 1)]
    frame = pd.DataFrame({"ds": pd.to_datetime([d for d, _ in rows]), "event": [e for _, e in rows]})
    return frame[frame["ds"].between(first, last)].reset_index(drop=True)


def model_event_days(
    country: str | None, first: Any, last: Any, retail_peaks: bool = True, parameter: str = "country"
) -> list[date]:
    """Sorted distinct days between ``first`` and ``last`` that are public holidays or retail peaks.

    ``country=None`` leaves public holidays out; ``retail_peaks=False`` leaves the peak season out.
    """
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    days: set[pd.Timestamp] = set()
    if country is not None:
        public = country_holidays(country, first, last, parameter)["ds"]
        days.update(public[public.between(first, last)])
    if retail_peaks:
        days.update(retail_peak_days(first, last)["ds"])
    return [d.date() for d in sorted(days)]
