"""Tests for the per-channel saturation family of ml.mmm (Hill or exponential) and its consumers: the
response parameters table, ResponseModel rebuilt from it, core.spend_scenarios.PublishedCurves and the
budget optimizer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from core.spend_scenarios import PublishedCurves, spend_scenario
from ml.budget import recommend_budget
from ml.mmm import (
    ResponseModel,
    exponential_saturation,
    fit_media_mix_model,
    hill_saturation,
    saturation,
)
from ml.mmm.transforms import exponential_saturation_derivative, saturation_derivative

# channel: (adstock decay, saturation family, half point / mean spend, Hill shape, ROAS)
WORLD = {
    "video": (0.3, "exponential", 0.5, 1.0, 2.5),
    "search": (0.1, "hill", 1.0, 1.0, 1.5),
    "social": (0.5, "hill", 1.2, 2.5, 2.0),
}


def simulate_families(seed: int = 0, days: int = 720, noise: float = 0.01) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A known-truth world with one exponential channel and two Hill ones (one S-shaped).

    Spend swings widely (log-normal sd 0.9 around slow budget levels, plus dark and doubled weeks)
    so the exponential's thin tail shows at high spend. Returns the model input and the daily truth.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    t = np.arange(days)
    daily = pd.DataFrame({"date": dates})
    media = np.zeros(days)
    truth = []
    for i, (name, (decay, family, half_ratio, shape, roas)) in enumerate(WORLD.items()):
        level = np.exp(lfilter([1.0], [1.0, -0.97], rng.normal(0.0, 0.1, days)))
        spend = 1000.0 * (i + 1) * level * rng.lognormal(0.0, 0.9, days)
        for start in rng.integers(0, days - 10, 8):
            spend[start:start + rng.integers(5, 12)] *= rng.choice([0.0, 0.3, 2.0])
        adstocked = lfilter([1.0 - decay], [1.0, -decay], spend)
        half = half_ratio * spend[spend > 0].mean()
        # Written out here rather than through ml.mmm.transforms, so the test does not check the model with itself.
        unit = 1.0 - 0.5 ** (adstocked / half) if family == "exponential" else adstocked**shape / (
            adstocked**shape + half**shape)
        effect = roas * spend.sum() / unit.sum() * unit
        media += effect
        daily[name] = spend
        truth.append(pd.DataFrame({"date": dates, "channel": name, "spend": spend, "contribution": effect}))
    baseline = 20_000 + 8.0 * t + 1500 * np.sin(2 * np.pi * t / 365.25) + 600 * (dates.day_of_week >= 5)
    revenue = baseline + media
    daily.insert(1, "revenue", revenue + rng.normal(0.0, noise * revenue.mean(), days))
    # Channels by name, as ml.mmm.daily_frame orders them (and the published table reads back).
    return daily[["date", "revenue", *sorted(WORLD)]], pd.concat(truth, ignore_index=True)


def test_exponential_saturation_has_its_half_point_and_derivative():
    x = np.linspace(0.0, 40.0, 81)
    half = 7.0
    assert exponential_saturation(half, half) == pytest.approx(0.5)
    assert exponential_saturation(2 * half, half) == pytest.approx(0.75)
    np.testing.assert_allclose(exponential_saturation(x, half), 1.0 - 0.5 ** (x / half))
    h = 1e-5
    inner = x[1:]
    numeric = (exponential_saturation(inner + h, half) - exponential_saturation(inner - h, half)) / (2 * h)
    np.testing.assert_allclose(exponential_saturation_derivative(inner, half), numeric, rtol=1e-4)
    assert exponential_saturation_derivative(0.0, half) == pytest.approx(np.log(2.0) / half)
    # saturation() dispatches on the family; the shape only matters for Hill.
    np.testing.assert_array_equal(saturation(x, half, 3.0, "exponential"), exponential_saturation(x, half))
    np.testing.assert_array_equal(saturation(x, half, 2.0, "hill"), hill_saturation(x, half, 2.0))
    np.testing.assert_array_equal(saturation_derivative(x, half, 1.0, "exponential"),
                                  exponential_saturation_derivative(x, half))
    with pytest.raises(ValueError, match=r"unknown saturation family 'logistic'; expected one of \['hill', 'exponential'\]"):
        saturation(x, half, 1.0, "logistic")


def test_fit_refuses_unknown_saturation_families():
    daily, _ = simulate_families(days=200)
    for families in (("hill", "logistic"), (), ("hill", "hill")):
        with pytest.raises(ValueError, match=r"saturation_families must be distinct names among \['hill', 'exponential'\]"):
            fit_media_mix_model(daily, saturation_families=families)


@pytest.mark.slow
def test_exponential_channel_is_fitted_exponential_and_every_consumer_evaluates_its_curve():
    daily, truth = simulate_families(seed=0)
    fitted = fit_media_mix_model(daily, n_bootstrap=40, seed=1)
    diag = fitted.diagnostics
    hyper = diag["hyperparameters"]
    assert hyper["video"]["saturation_family"] == "exponential"
    assert hyper["social"]["saturation_family"] == "hill" and hyper["social"]["saturation_shape"] > 1.0

    # ROAS recovered over the window: the exponential channel's within 10% and inside its interval.
    window = truth[(truth["date"] >= diag["start_date"]) & (truth["date"] <= diag["end_date"])]
    sums = window.groupby("channel")[["spend", "contribution"]].sum()
    true_roas = sums["contribution"] / sums["spend"]
    table = fitted.channels.set_index("channel")
    assert table.loc["video", "roas"] == pytest.approx(true_roas["video"], rel=0.10)
    assert table.loc["video", "roas_lower"] <= true_roas["video"] <= table.loc["video", "roas_upper"]
    for channel in WORLD:
        assert table.loc[channel, "roas"] == pytest.approx(true_roas[channel], rel=0.25), channel

    # The family is on every row of the parameters table, per draw; most of the video draws keep it.
    parameters = fitted.response_parameters()
    assert parameters.columns[-1] == "saturation_family"
    video = parameters[parameters["channel"] == "video"]
    assert video["saturation_family"].iloc[0] == "exponential"
    assert (video["saturation_family"].iloc[1:] == "exponential").mean() > 0.5
    assert parameters.loc[parameters["channel"] == "social", "saturation_family"].iloc[0] == "hill"
    # The video point curve is the exponential one, not a Hill curve with the same parameters.
    grid = np.linspace(0.0, 3.0 * fitted.current_daily_spend["video"], 13)
    point = video.iloc[0]
    expected = point["coefficient"] * (1.0 - 0.5 ** (grid / point["saturation_half"]))
    np.testing.assert_allclose(fitted.channel_response("video", grid), expected, rtol=1e-12)
    assert not np.allclose(
        fitted.channel_response("video", grid),
        point["coefficient"] * hill_saturation(grid, point["saturation_half"], point["saturation_shape"]))

    # Round trip through the table (shuffled, with warehouse stamps): the same model, draws included.
    stamped = parameters.sample(frac=1.0, random_state=3).assign(run_id="r1")
    rebuilt = ResponseModel.from_parameters(stamped)
    pd.testing.assert_frame_equal(rebuilt.response_parameters(), parameters)
    published = PublishedCurves.from_parameters(stamped)
    for channel in WORLD:
        spends = np.linspace(0.0, 3.0 * fitted.current_daily_spend[channel], 11)
        for draws in (False, True):
            expected = fitted.channel_response(channel, spends, draws=draws)
            np.testing.assert_array_equal(rebuilt.channel_response(channel, spends, draws=draws), expected)
            np.testing.assert_allclose(published.channel_response(channel, spends, draws=draws), expected, rtol=1e-12)
            np.testing.assert_array_equal(
                rebuilt.channel_marginal_roas(channel, spends, draws=draws),
                fitted.channel_marginal_roas(channel, spends, draws=draws))

    # The budget optimizer and the spend scenarios read the same curves from the table as from the fit.
    from_fit = recommend_budget(fitted.response_model).table
    from_table = recommend_budget(rebuilt).table
    pd.testing.assert_frame_equal(from_table, from_fit)
    plan = (fitted.current_daily_spend * 1.2).to_dict()
    pd.testing.assert_frame_equal(spend_scenario(published, plan), spend_scenario(fitted.response_model, plan),
                                  rtol=1e-12)

    # A table from before the family existed reads as Hill: the video curve then changes.
    old = ResponseModel.from_parameters(parameters.drop(columns="saturation_family"))
    assert old.responses["video"].saturation_family == "hill"
    assert not np.allclose(old.channel_response("video", grid), fitted.channel_response("video", grid))

    # Hill alone stays available and then publishes no exponential row.
    hill_only = fit_media_mix_model(daily, n_bootstrap=10, seed=1, saturation_families=("hill",))
    assert hill_only.response_parameters()["saturation_family"].eq("hill").all()
