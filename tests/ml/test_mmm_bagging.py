"""Bagged point estimates of the media-mix model (ml.mmm.fitting, ``point_estimate="bootstrap_median"``): each
channel keeps its chosen curve, with the coefficient that gives it the median window contribution of the
bootstrap's draws."""

from __future__ import annotations

import numpy as np
import pytest

from ml.mmm import daily_frame, fit_media_mix_model
from ml.mmm.fitting import _bagged_coefficients
from ml.mmm.review import ReviewThresholds
from ml.synthetic import generate_demo_data


def test_bagged_coefficient_gives_the_chosen_curve_the_draws_median_contribution():
    """Draws at other curves count by their own window totals; a chosen curve with no window total keeps
    the fit's coefficient."""
    rng = np.random.default_rng(3)
    features = rng.uniform(0.0, 1.0, size=(2, 4, 30))
    features[1, 2] = 0.0  # channel 1's chosen candidate is all zero in the window
    choice = np.array([1, 2])
    beta = np.array([5.0, 7.0])
    draws = rng.lognormal(np.log(8.0), 0.3, size=(201, 2))  # centred well above channel 0's coefficient
    draw_choices = rng.integers(0, 4, size=(201, 2))
    sums = features.sum(axis=2)

    bagged = _bagged_coefficients(features, choice, beta, draws, draw_choices)

    median = np.median(draws[:, 0] * sums[0, draw_choices[:, 0]])
    assert bagged[0] * sums[0, 1] == pytest.approx(median)
    assert bagged[0] != pytest.approx(beta[0])
    assert bagged[1] == beta[1]


def _daily(seed: int = 42):
    demo = generate_demo_data(scale=0.1, seed=seed)  # seed 42: shopping's spend is never low in the window
    return daily_frame(demo.ground_truth_daily[["date", "channel", "spend"]],
                       demo.ground_truth_revenue_daily[["date", "revenue"]])


@pytest.fixture(scope="module")
def fits():
    daily = _daily()
    settings = {"n_bootstrap": 30, "seed": 2, "curve_history_days": 360}
    return tuple(fit_media_mix_model(daily, point_estimate=p, **settings)
                 for p in ("fit", "bootstrap_median", "bootstrap_median_never_low"))


def test_bagging_moves_the_level_not_the_curve(fits):
    """Same curves and spend as the single fit; at least one channel's ROAS moves, and the published response
    model and decomposition carry the bagged contributions."""
    single, bagged = (f.channels.set_index("channel") for f in fits[:2])
    for column in ("spend", "adstock_decay", "saturation_half", "saturation_shape"):
        assert np.allclose(single[column], bagged[column])
    assert not np.allclose(single["roas"], bagged["roas"])
    decomposition = fits[1].decomposition
    for channel, row in bagged.iterrows():
        assert decomposition[f"contribution_{channel}"].sum() == pytest.approx(row["contribution"], rel=1e-9)
        ratio = fits[1].response_model.responses[channel].coefficient / fits[0].response_model.responses[channel].coefficient
        if np.isfinite(ratio) and single.loc[channel, "contribution"] > 0:
            assert row["contribution"] == pytest.approx(ratio * single.loc[channel, "contribution"], rel=1e-9)


def test_never_low_bagging_leaves_the_other_channels_at_the_single_fit(fits):
    """Only the channels whose spend is never low (the review gate's spend floor) take the bagged estimate."""
    single, bagged, never_low = (f.channels.set_index("channel")["roas"] for f in fits)
    review = fits[2].review.set_index("channel")
    flat = review["spend_floor"] > ReviewThresholds().max_spend_floor
    assert flat.any() and not flat.all()
    assert np.allclose(never_low[flat.index[flat]], bagged[flat.index[flat]])
    assert np.allclose(never_low[flat.index[~flat]], single[flat.index[~flat]])


def test_unknown_point_estimate_is_refused():
    with pytest.raises(ValueError, match="point_estimate"):
        fit_media_mix_model(_daily(), point_estimate="mean")
