"""ml.budget holds a channel the media-mix model cannot identify within its smaller per-channel bound."""

from __future__ import annotations

import numpy as np
import pytest

from ml.budget import recommend_budget
from ml.mmm import ChannelResponse, ResponseModel

WHY = "spend hardly varies (coefficient of variation 0.02 < 0.1)"


def _model(curves: dict[str, tuple[float, float, float]], n_draws: int = 30) -> ResponseModel:
    """Concave Hill curves {channel: (coefficient, half, current daily spend)}, draws scattered by 10%."""
    rng = np.random.default_rng(0)
    return ResponseModel(
        responses={
            name: ChannelResponse(
                channel=name, coefficient=beta, adstock_decay=0.0, saturation_half=half, saturation_shape=1.0,
                current_daily_spend=spend, coefficient_draws=beta * rng.lognormal(0.0, 0.1, n_draws),
                half_draws=np.full(n_draws, half), shape_draws=np.ones(n_draws), decay_draws=np.zeros(n_draws),
            )
            for name, (beta, half, spend) in curves.items()
        },
        baseline_daily=1000.0,
        ci=0.9,
    )


# "hot" is far from saturation (the optimizer wants more of it), "cold" is saturated (it wants less).
MODEL = _model({"hot": (5000.0, 2000.0, 400.0), "cold": (600.0, 50.0, 400.0), "steady": (2000.0, 500.0, 400.0)})


def _rows(rec):
    return rec.table.set_index("channel")


def test_without_the_gate_the_optimizer_moves_both_channels_to_the_default_bound():
    free = _rows(recommend_budget(MODEL, max_change=0.3))
    assert free.loc["hot", "change_pct"] == pytest.approx(30.0)
    assert free.loc["cold", "change_pct"] == pytest.approx(-30.0)


@pytest.mark.parametrize("channel, sign", [("hot", 1), ("cold", -1)])
def test_a_channel_that_is_not_identifiable_moves_at_most_the_smaller_bound(channel, sign):
    rec = recommend_budget(MODEL, max_change=0.3, not_identifiable={channel: WHY})
    rows = _rows(rec)
    assert rows.loc[channel, "change_pct"] == pytest.approx(sign * 10.0)
    reason = rows.loc[channel, "reason"]
    assert reason.startswith("not identifiable, so held within ±10% of current spend: ")
    assert reason.endswith(f"[review: {WHY}]")
    assert ("cap (+10%)" if sign > 0 else "floor (-10%)") in reason
    other = "cold" if channel == "hot" else "hot"
    assert rows.loc[other, "change_pct"] == pytest.approx(-sign * 30.0)
    assert "not identifiable" not in rows.loc[other, "reason"]
    assert rec.not_identifiable == (channel,)
    assert "1 channel(s) the model cannot identify held within a smaller bound: " + channel in rec.reason
    assert rows.loc[["hot", "cold", "steady"], "recommended_spend"].sum() == pytest.approx(1200.0)
    assert rec.recommended_revenue >= rec.current_revenue


def test_the_smaller_bound_is_a_setting_and_never_wider_than_max_change():
    wide = _rows(recommend_budget(MODEL, max_change=0.3, not_identifiable={"hot": WHY}, not_identifiable_max_change=0.2))
    assert wide.loc["hot", "change_pct"] == pytest.approx(20.0)
    assert "held within ±20% of current spend" in wide.loc["hot", "reason"]
    narrow = _rows(recommend_budget(MODEL, max_change=0.05, not_identifiable={"hot": WHY}))
    assert narrow.loc["hot", "change_pct"] == pytest.approx(5.0)
    assert "held within ±5% of current spend" in narrow.loc["hot", "reason"]


def test_explicit_bounds_are_narrowed_to_the_band_and_a_lock_stays_a_lock():
    bounded = _rows(recommend_budget(MODEL, bounds={"hot": (0.0, 2000.0)}, not_identifiable={"hot": WHY}))
    assert bounded.loc["hot", "recommended_spend"] == pytest.approx(440.0)
    locked = _rows(recommend_budget(MODEL, locked=["hot"], not_identifiable={"hot": WHY}))
    assert locked.loc["hot", "change_pct"] == pytest.approx(0.0)
    assert locked.loc["hot", "reason"] == "locked at current spend"
    no_reason = _rows(recommend_budget(MODEL, not_identifiable={"hot": ""}))
    assert no_reason.loc["hot", "reason"].startswith("not identifiable, so held within ±10%")
    assert "[review:" not in no_reason.loc["hot", "reason"]


def test_bounds_outside_the_band_and_unknown_channels_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"bounds\['hot'\] = \(1,000.00, 2,000.00\) lie outside 360.00..440.00"):
        recommend_budget(MODEL, bounds={"hot": (1000.0, 2000.0)}, not_identifiable={"hot": WHY})
    with pytest.raises(ValueError, match=r"unknown channel\(s\) \['tv'\] in not_identifiable"):
        recommend_budget(MODEL, not_identifiable={"tv": WHY})
    with pytest.raises(ValueError, match="not_identifiable_max_change must be >= 0"):
        recommend_budget(MODEL, not_identifiable={"hot": WHY}, not_identifiable_max_change=-0.1)
