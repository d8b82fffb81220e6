"""Triangulation (platform claims, Markov credit, media-mix incrementality) and the demo truth comparison."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.triangulation import COLUMNS, compare_with_truth, triangulate, window_revenue_fraction

CHANNELS = ["search", "social", "podcast"]


def _mmm(contribution=(9000.0, 3000.0, 500.0), lower=(6000.0, 2000.0, 0.0), upper=(12000.0, 4000.0, 1500.0),
         identifiable=(True, True, False)) -> pd.DataFrame:
    spend = np.array([5000.0, 3000.0, 400.0])
    contribution = np.asarray(contribution, dtype=float)
    return pd.DataFrame({
        "channel": CHANNELS, "spend": spend,
        "contribution": contribution, "contribution_lower": lower, "contribution_upper": upper,
        "roas": contribution / spend, "roas_lower": np.asarray(lower) / spend, "roas_upper": np.asarray(upper) / spend,
        "identifiable": list(identifiable), "review_reason": ["", "", "spend hardly varies (cv 0.02 < 0.1)"],
    })


def _markov() -> pd.DataFrame:
    share = np.array([0.5, 0.3, 0.2])
    return pd.DataFrame({"model": "markov", "channel": CHANNELS, "attributed_revenue": share * 10_000.0,
                         "share": share, "share_lower": share - 0.05, "share_upper": share + 0.05})


def _platform() -> pd.DataFrame:
    return pd.DataFrame({"channel": CHANNELS, "conversions": [300.0, 100.0, np.nan],
                         "revenue": [18_000.0, 4_500.0, np.nan]})


def _table(**mmm) -> pd.DataFrame:
    return triangulate(_platform(), _markov(), _mmm(**mmm), window_start="2025-01-01", window_end="2025-06-29",
                       window_fraction=0.5)


def test_one_row_per_channel_with_the_three_views_and_their_ratios():
    table = _table().set_index("channel")
    assert list(table.reset_index().columns) == COLUMNS
    search = table.loc["search"]
    assert search["platform_revenue"] == 18_000.0
    assert search["attributed_revenue"] == pytest.approx(2_500.0)  # 5,000 over all journeys, half in the window
    assert (search["attributed_revenue_lower"], search["attributed_revenue_upper"]) == pytest.approx((2_250.0, 2_750.0))
    assert search["platform_overclaim"] == pytest.approx(2.0)
    # The claim is a measured number: its ratio's interval is the contribution interval turned over.
    assert (search["platform_overclaim_lower"], search["platform_overclaim_upper"]) == pytest.approx((1.5, 3.0))
    assert search["attribution_vs_incrementality"] == pytest.approx(2_500 / 9_000)
    assert search["attribution_vs_incrementality_lower"] == pytest.approx(2_250 / 12_000)
    assert search["attribution_vs_incrementality_upper"] == pytest.approx(2_750 / 6_000)
    assert "platform claims 2.00× the incremental revenue" in search["reading"]
    assert str(search["window_start_date"]) == "2025-01-01" and str(search["window_end_date"]) == "2025-06-29"


def test_missing_claims_and_an_unbounded_ratio_are_empty_and_said_in_words():
    podcast = _table().set_index("channel").loc["podcast"]
    assert np.isnan(podcast["platform_revenue"]) and np.isnan(podcast["platform_overclaim"])
    assert np.isnan(podcast["platform_overclaim_lower"]) and np.isnan(podcast["platform_overclaim_upper"])
    # The contribution interval reaches 0: the ratio has a point and a lower end, no upper end.
    assert podcast["attribution_vs_incrementality"] == pytest.approx(1_000 / 500)
    assert np.isnan(podcast["attribution_vs_incrementality_upper"])
    assert not podcast["identifiable"]
    assert "no platform revenue in the export" in podcast["reading"]
    assert "not identifiable, ratios not supported by the data (spend hardly varies" in podcast["reading"]


def test_no_contribution_leaves_both_ratios_empty():
    row = _table(contribution=(9000.0, 0.0, 500.0), lower=(6000.0, 0.0, 0.0)).set_index("channel").loc["social"]
    for ratio in ("platform_overclaim", "attribution_vs_incrementality"):
        assert row[[ratio, f"{ratio}_lower", f"{ratio}_upper"]].isna().all()
    assert "measures no incremental revenue" in row["reading"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1e6), min_size=3, max_size=3), st.floats(0.0, 1.0),
       st.lists(st.floats(0.0, 0.9), min_size=3, max_size=3), st.lists(st.floats(0.0, 2.0), min_size=3, max_size=3))
def test_every_interval_contains_its_estimate(contribution, fraction, down, up):
    contribution = np.array(contribution)
    mmm = _mmm(contribution=contribution, lower=contribution * (1 - np.array(down)),
               upper=contribution * (1 + np.array(up)))
    table = triangulate(_platform(), _markov(), mmm, window_start="2025-01-01", window_end="2025-06-29",
                        window_fraction=fraction)
    for m in ("attributed_revenue", "mmm_contribution", "platform_overclaim", "attribution_vs_incrementality"):
        point, lo, hi = (table[f"{m}{s}"].to_numpy(float) for s in ("", "_lower", "_upper"))
        assert np.all(~np.isfinite(lo) | (lo <= point * (1 + 1e-12))), m
        assert np.all(~np.isfinite(hi) | (hi >= point * (1 - 1e-12))), m


def test_window_fraction_counts_journey_revenue_converting_in_the_window():
    journeys = pd.DataFrame({"date": pd.to_datetime(["2024-12-31", "2025-01-01", "2025-03-01", "2025-07-01"]),
                             "revenue": [100.0, 50.0, 150.0, 200.0]})
    assert window_revenue_fraction(journeys, "2025-01-01", "2025-06-30") == pytest.approx(200 / 500)
    assert window_revenue_fraction(journeys.iloc[:0], "2025-01-01", "2025-06-30") == 0.0
    with pytest.raises(ValueError, match="window_fraction"):
        triangulate(_platform(), _markov(), _mmm(), window_start="2025-01-01", window_end="2025-06-29",
                    window_fraction=1.5)


def _truth(roas=(1.8, 1.0, 1.25)) -> pd.DataFrame:
    spend = np.array([5000.0, 3000.0, 400.0])
    return pd.DataFrame({"channel": CHANNELS, "spend": spend, "contribution": spend * np.array(roas),
                         "roas": list(roas)})


def test_truth_comparison_passes_when_no_major_channel_is_confidently_wrong():
    result = compare_with_truth(_mmm(), _truth())
    assert result.passed
    table = result.table.set_index("channel")
    assert table.loc["search", "roas_error"] == pytest.approx(1.8 / 1.8 - 1)
    assert table.loc["social", "verdict"] == "within 25%"
    assert not table.loc["podcast", "major"]  # 4.7% of spend
    assert result.description.startswith("no major channel confidently wrong. 2 of 2 major channels within 25%")
    assert "search 1.80 vs true 1.80 (+0%)" in result.description


def test_truth_comparison_fails_on_a_major_channel_off_by_half_with_the_truth_outside_its_interval():
    result = compare_with_truth(_mmm(), _truth(roas=(4.0, 1.0, 1.25)))  # search: 1.8 estimated, 1.2-2.4 interval
    assert not result.passed
    assert "1 major channel(s) confidently wrong" in result.description and ": search." in result.description
    assert result.table.set_index("channel").loc["search", "verdict"] == "confidently wrong"
    # Off by more than half but with the truth inside the interval: reported, not failed.
    wide = compare_with_truth(_mmm(lower=(1000.0, 2000.0, 0.0), upper=(25000.0, 4000.0, 1500.0)),
                              _truth(roas=(4.0, 1.0, 1.25)))
    assert wide.passed
    assert wide.table.set_index("channel").loc["search", "verdict"] == "off, truth inside interval"
