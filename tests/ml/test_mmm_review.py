"""Tests for ml.mmm.review: the review gate flags flat-spend and collinear channels and passes a clean one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ml.mmm import REVIEW_COLUMNS, ReviewThresholds, fit_media_mix_model, review_channels


def _world(seed: int = 3, days: int = 360) -> pd.DataFrame:
    """A clean channel with independent, strongly varying spend and dark weeks; two channels whose budgets are one
    budget split 55/45; one channel that spends the same every day."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")

    def varying(scale: float) -> np.ndarray:
        level = np.exp(lfilter([1.0], [1.0, -0.9], rng.normal(0.0, 0.15, days)))
        spend = scale * level * rng.lognormal(0.0, 0.2, days)
        for start in rng.integers(0, days - 10, 6):
            spend[start:start + 7] *= rng.choice([0.0, 2.0])
        return spend

    clean = varying(3000.0)
    for start in range(10, days, 45):  # dark weeks: the curve is seen down to zero spend
        clean[start:start + 10] = 0.0
    shared = varying(2000.0)
    pair_a = 0.55 * shared * rng.lognormal(0.0, 0.01, days)
    pair_b = 0.45 * shared * rng.lognormal(0.0, 0.01, days)
    flat = np.full(days, 800.0) * rng.lognormal(0.0, 0.01, days)
    effect = lambda x, roas, half: roas * x.mean() * (x / (x + half)) / (x / (x + half)).mean()  # noqa: E731
    revenue = (
        30_000.0 + 1000.0 * (dates.dayofweek >= 5)
        + effect(lfilter([0.7], [1.0, -0.3], clean), 2.5, 3000.0)
        + effect(pair_a, 2.0, 1500.0) + effect(pair_b, 2.0, 1200.0) + effect(flat, 1.5, 800.0)
    )
    revenue += rng.normal(0.0, 0.01 * revenue.mean(), days)
    return pd.DataFrame({"date": dates, "revenue": revenue, "clean": clean, "pair_a": pair_a, "pair_b": pair_b,
                         "flat": flat})


@pytest.fixture(scope="module")
def fitted():
    daily = _world()
    return daily, fit_media_mix_model(daily, n_bootstrap=30, seed=1)


def test_review_is_on_the_result_with_one_row_per_channel(fitted):
    _, result = fitted
    review = result.review
    assert list(review.columns) == REVIEW_COLUMNS
    assert list(review["channel"]) == list(result.channel_names)
    assert (review["identifiable"] == (review["review_reason"] == "")).all()


def test_review_flags_flat_spend(fitted):
    row = fitted[1].review.set_index("channel").loc["flat"]
    assert not row["identifiable"]
    assert "spend hardly varies" in row["review_reason"]
    assert row["spend_variation"] < 0.05


def test_review_flags_both_collinear_channels(fitted):
    review = fitted[1].review.set_index("channel")
    for channel, other in (("pair_a", "pair_b"), ("pair_b", "pair_a")):
        assert not review.loc[channel, "identifiable"]
        assert f"moves with {other}" in review.loc[channel, "review_reason"]
        assert review.loc[channel, "max_correlation"] > 0.9
        assert review.loc[channel, "variance_inflation"] > 5


def test_review_passes_the_clean_channel(fitted):
    row = fitted[1].review.set_index("channel").loc["clean"]
    assert row["identifiable"], row["review_reason"]
    assert row["review_reason"] == ""
    assert row["max_correlation"] < 0.5


def test_review_thresholds_are_settings(fitted):
    daily, result = fitted
    strict = review_channels(result, daily, ReviewThresholds(roas_ceiling=0.5))
    assert "above the plausible ceiling 0.5" in strict.set_index("channel").loc["clean", "review_reason"]
    lenient = review_channels(result, daily, ReviewThresholds(max_correlation=1.01, max_variance_inflation=np.inf))
    assert "moves with" not in " ".join(lenient["review_reason"])


def test_channels_whose_spend_is_never_low_get_intervals_down_to_zero(fitted):
    _, result = fitted
    table = result.channels.set_index("channel")
    assert "flat" in result.diagnostics["unbounded_level_channels"]
    assert "clean" not in result.diagnostics["unbounded_level_channels"]
    assert table.loc["flat", "roas_lower"] == 0.0
    assert table.loc["flat", "contribution_lower"] == 0.0
    assert (table["roas_lower"] <= table["roas"]).all() and (table["roas"] <= table["roas_upper"]).all()
