"""Tests for ml.events: public holidays and retail peak days."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ml.events import country_holidays, model_event_days, retail_peak_days


def test_retail_peaks_run_from_thanksgiving_to_cyber_tuesday_and_from_21_december_to_new_year():
    peaks = retail_peak_days("2025-11-01", "2026-12-31")
    by_event = peaks.groupby("event")["ds"].apply(lambda d: [x.date() for x in d])
    # Thanksgiving is the fourth Thursday of November: 27 Nov 2025, 26 Nov 2026.
    assert by_event["Thanksgiving to Cyber Tuesday"] == [
        *[date(2025, 11, 27 + k) for k in range(4)], date(2025, 12, 1), date(2025, 12, 2),
        *[date(2026, 11, 26 + k) for k in range(5)], date(2026, 12, 1),
    ]
    christmas = by_event["Christmas to New Year"]
    assert christmas[0] == date(2025, 12, 21) and date(2026, 1, 1) in christmas and date(2026, 1, 2) not in christmas
    assert christmas[-1] == date(2026, 12, 31)  # cut at the requested end
    assert len(christmas) == 12 + 11


def test_retail_peaks_include_the_new_year_days_of_a_season_that_started_before_the_range():
    peaks = retail_peak_days("2026-01-01", "2026-03-31")
    assert peaks["ds"].tolist() == [pd.Timestamp("2026-01-01")]


def test_model_event_days_merge_public_holidays_and_peaks_without_duplicates():
    days = model_event_days("US", "2026-11-01", "2026-12-31")
    assert days == sorted(set(days))
    assert date(2026, 11, 11) in days  # Veterans Day (public holiday only)
    assert date(2026, 11, 27) in days  # Black Friday (peak only)
    assert days.count(date(2026, 12, 25)) == 1  # both
    assert model_event_days(None, "2026-11-01", "2026-12-31", retail_peaks=False) == []
    assert date(2026, 11, 11) not in model_event_days(None, "2026-11-01", "2026-12-31")


def test_unknown_country_is_refused_naming_the_parameter():
    with pytest.raises(ValueError, match=r"holiday_country='XX' is not in the holidays calendar.*'US', 'GB'"):
        model_event_days("XX", "2026-01-01", "2026-12-31", parameter="holiday_country")
    frame = country_holidays("GB", "2026-01-01", "2026-12-31")
    assert list(frame.columns) == ["ds", "holiday"] and (frame["ds"].dt.year == 2026).all()
