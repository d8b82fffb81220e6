"""The channel warning in words: what looks like one channel under two names, and the alias that maps it."""

import pandas as pd

from assets.channel_checks import channel_name_findings


def _dim(rows):
    return pd.DataFrame(rows, columns=["channel", "first_date", "last_date", "campaigns", "touchpoints"])


def test_a_channel_stopping_as_another_starts_is_named_with_the_alias_to_add():
    findings = channel_name_findings(_dim([
        ("search", pd.Timestamp("2026-01-01"), pd.Timestamp("2026-04-30"), 2, 100),
        ("fb", pd.Timestamp("2026-01-01"), pd.Timestamp("2026-03-01"), 1, 50),
        ("meta", pd.Timestamp("2026-03-02"), pd.Timestamp("2026-04-30"), 1, 40),
    ]))
    assert findings == ["'fb' stops on 2026-03-01 and 'meta' starts on 2026-03-02: if they are one channel, "
                        "add fb to meta's aliases in channels.csv"]


def test_channels_in_one_input_only_are_named():
    findings = channel_name_findings(_dim([
        ("paid_search", pd.Timestamp("2026-01-01"), pd.Timestamp("2026-04-30"), 2, 0),
        ("google_ads", None, None, 0, 70),
    ]))
    assert len(findings) == 2
    assert findings[0].startswith("touchpoint channel 'google_ads' (70 touchpoints) never appears in the ad export")
    assert findings[1].startswith("ad export channel 'paid_search' never appears in the touchpoints")


def test_a_rename_across_a_pause_between_flights_is_found_but_not_channels_that_overlap_or_are_far_apart():
    findings = channel_name_findings(_dim([
        ("search", pd.Timestamp("2025-01-01"), pd.Timestamp("2026-04-30"), 2, 100),
        ("social", pd.Timestamp("2025-01-01"), pd.Timestamp("2025-11-29"), 7, 50),
        ("meta", pd.Timestamp("2025-12-11"), pd.Timestamp("2026-04-30"), 7, 40),  # 12 days later
        ("podcast", pd.Timestamp("2025-01-01"), pd.Timestamp("2025-06-30"), 1, 5),
        ("ctv", pd.Timestamp("2025-09-01"), pd.Timestamp("2026-04-30"), 1, 5),  # two months later
        ("video", pd.Timestamp("2025-01-01"), pd.Timestamp("2025-12-20"), 1, 5),  # overlaps meta
    ]))
    assert findings == ["'social' stops on 2025-11-29 and 'meta' starts on 2025-12-11: if they are one channel, "
                        "add social to meta's aliases in channels.csv"]


def test_consistent_channels_give_no_finding():
    assert channel_name_findings(_dim([
        ("search", pd.Timestamp("2026-01-01"), pd.Timestamp("2026-04-30"), 2, 100),
        ("email", pd.Timestamp("2026-01-20"), pd.Timestamp("2026-04-30"), 1, 10),
    ])) == []
