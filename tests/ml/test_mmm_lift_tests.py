"""Lift-test calibration of the media-mix model (ml.mmm.calibration): a measured ROAS pulls the estimate of a
channel the data cannot identify toward it and narrows its interval, in proportion to the test's precision;
bad lift-test files and tables get errors naming the file, the line or row, and the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ml.mmm import fit_media_mix_model
from ml.mmm.calibration import read_lift_tests_csv, validate_lift_tests

TRUE_ROAS = {"flighted": 2.0, "always_on": 1.5}


def _world(seed: int = 5, days: int = 540) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A flighted channel (dark weeks: its curve is seen down to zero) and an always-on channel whose spend
    never drops below ~60% of its mean and whose response is S-shaped, so the data fix its slope but not
    its level. Returns the model input and the true daily contributions."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    flighted = 4000.0 * np.exp(lfilter([1.0], [1.0, -0.9], rng.normal(0.0, 0.1, days))) * rng.lognormal(0, 0.2, days)
    for start in range(5, days, 40):
        flighted[start:start + 12] = 0.0
    steps = np.repeat(rng.normal(0.0, 0.15, days // 30 + 1), 30)[:days]
    always_on = 3000.0 * np.exp(steps) * rng.lognormal(0.0, 0.05, days)
    adstocked = lfilter([0.6], [1.0, -0.4], flighted)
    shape_f = adstocked / (adstocked + 4000.0)
    shape_a = always_on**3 / (always_on**3 + 3300.0**3)
    contribution = pd.DataFrame({
        "flighted": TRUE_ROAS["flighted"] * flighted.sum() * shape_f / shape_f.sum(),
        "always_on": TRUE_ROAS["always_on"] * always_on.sum() * shape_a / shape_a.sum(),
    })
    base = 40_000.0 * (1.0 + 0.03 * (dates.dayofweek >= 5)) * (1.0 + 0.1 * np.arange(days) / days)
    revenue = (base + contribution.sum(axis=1).to_numpy()) * rng.lognormal(0.0, 0.02, days)
    daily = pd.DataFrame({"date": dates, "revenue": revenue, "flighted": flighted, "always_on": always_on})
    return daily, contribution.assign(date=dates)


def _true_roas(daily: pd.DataFrame, contribution: pd.DataFrame, channel: str, start, end) -> float:
    days = (daily["date"] >= pd.Timestamp(start)) & (daily["date"] <= pd.Timestamp(end))
    return float(contribution.loc[days, channel].sum() / daily.loc[days, channel].sum())


@pytest.fixture(scope="module")
def world():
    daily, contribution = _world()
    end = daily["date"].iloc[-1]
    window = (end - pd.Timedelta(days=179), end)
    test_days = (end - pd.Timedelta(days=60), end - pd.Timedelta(days=33))
    truth = _true_roas(daily, contribution, "always_on", *window)
    measured = _true_roas(daily, contribution, "always_on", *test_days)
    return {"daily": daily, "truth": truth, "test_days": test_days, "measured": measured}


def _tests(world, roas: float, se: float) -> pd.DataFrame:
    start, end = world["test_days"]
    return pd.DataFrame([{"channel": "always_on", "start": start.date().isoformat(), "end": end.date().isoformat(),
                          "roas": roas, "roas_se": se}])


def _fit(world, tests: pd.DataFrame | None):
    return fit_media_mix_model(world["daily"], n_bootstrap=40, seed=2, lift_tests=tests)


@pytest.fixture(scope="module")
def uncalibrated(world):
    return _fit(world, None)


@pytest.fixture(scope="module")
def calibrated(world):
    return _fit(world, _tests(world, world["measured"], 0.05 * world["measured"]))


def _row(result, channel: str = "always_on") -> pd.Series:
    return result.channels.set_index("channel").loc[channel]


def test_a_lift_test_pulls_the_estimate_to_the_measured_roas_and_narrows_the_interval(world, uncalibrated, calibrated):
    truth = world["truth"]
    before, after = _row(uncalibrated), _row(calibrated)
    assert abs(after["roas"] / truth - 1) < 0.15
    assert abs(after["roas"] / truth - 1) < abs(before["roas"] / truth - 1)
    assert after["roas_lower"] <= truth <= after["roas_upper"]
    assert after["roas_upper"] - after["roas_lower"] < 0.5 * (before["roas_upper"] - before["roas_lower"])
    assert calibrated.diagnostics["lift_test_channels"] == ["always_on"]
    assert calibrated.diagnostics["n_lift_tests"] == 1 and uncalibrated.diagnostics["n_lift_tests"] == 0


def test_the_review_gate_takes_the_lift_test_as_the_answer_to_a_never_low_spend(uncalibrated, calibrated):
    before = uncalibrated.review.set_index("channel").loc["always_on"]
    after = calibrated.review.set_index("channel").loc["always_on"]
    assert "never low" in before["review_reason"] and not before["identifiable"]
    assert "never low" not in after["review_reason"]


def test_the_estimate_follows_the_measurement_and_a_vaguer_test_pulls_less(world, uncalibrated):
    measured = world["measured"]
    low = _row(_fit(world, _tests(world, 0.7 * measured, 0.05 * measured)))
    high = _row(_fit(world, _tests(world, 1.3 * measured, 0.05 * measured)))
    assert low["roas"] < high["roas"]
    assert abs(low["roas"] / (0.7 * measured) - 1) < 0.15 and abs(high["roas"] / (1.3 * measured) - 1) < 0.15
    # The same measurement with a ten times larger standard error: a wider interval.
    vague = _row(_fit(world, _tests(world, 1.3 * measured, 0.5 * measured)))
    assert vague["roas_upper"] - vague["roas_lower"] > high["roas_upper"] - high["roas_lower"]


def test_other_channels_keep_their_estimates(world, uncalibrated, calibrated):
    before, after = _row(uncalibrated, "flighted"), _row(calibrated, "flighted")
    assert abs(after["roas"] / before["roas"] - 1) < 0.25


def test_a_lift_test_file_is_read_and_typed(tmp_path):
    path = tmp_path / "lift_tests.csv"
    path.write_text("channel,start,end,roas,roas_se\nsearch, 2026-03-01 ,2026-03-28,2.4,0.3\n")
    tests = read_lift_tests_csv(path)
    assert tests.loc[0, "channel"] == "search" and tests.loc[0, "roas"] == 2.4 and tests.loc[0, "roas_se"] == 0.3
    assert tests.loc[0, "start"] == pd.Timestamp("2026-03-01") and tests.loc[0, "end"] == pd.Timestamp("2026-03-28")


@pytest.mark.parametrize("body, message", [
    ("channel,start,end,roas\nsearch,2026-03-01,2026-03-28,2.4\n",
     "lift_tests.csv: missing column(s) ['roas_se']"),
    ("channel,start,end,roas,roas_se\nsearch,2026-03-01,2026-03-28,2.4,0.3\nsearch,2026-13-01,2026-03-28,2,0.3\n",
     "lift_tests.csv: line 3: column 'start': '2026-13-01' is not a day (YYYY-MM-DD)"),
    ("channel,start,end,roas,roas_se\nsearch,2026-03-28,2026-03-01,2.4,0.3\n",
     "lift_tests.csv: line 2: column 'end': 2026-03-01 is before start 2026-03-28"),
    ("channel,start,end,roas,roas_se\nsearch,2026-03-01,2026-03-28,2.4,0\n",
     "lift_tests.csv: line 2: column 'roas_se': '0' is not a number > 0"),
    ("channel,start,end,roas,roas_se\nsearch,2026-03-01,2026-03-28,high,0.3\n",
     "lift_tests.csv: line 2: column 'roas': 'high' is not a number >= 0"),
    ("channel,start,end,roas,roas_se\n,2026-03-01,2026-03-28,2.4,0.3\n",
     "lift_tests.csv: line 2: column 'channel' is empty"),
])
def test_a_bad_lift_test_file_names_the_file_the_line_and_the_column(tmp_path, body, message):
    path = tmp_path / "lift_tests.csv"
    path.write_text(body)
    with pytest.raises(ValueError) as error:
        read_lift_tests_csv(path)
    assert str(error.value).startswith(message)


def test_the_fit_refuses_lift_tests_it_cannot_place(world):
    daily = world["daily"]
    start, end = world["test_days"]
    unknown = _tests(world, 1.5, 0.1).assign(channel="radio")
    with pytest.raises(ValueError, match=r"lift_tests: row 0: column 'channel': 'radio' is not one of the model's "):
        fit_media_mix_model(daily, n_bootstrap=5, lift_tests=unknown)
    outside = _tests(world, 1.5, 0.1).assign(start="2020-01-01", end="2020-01-28")
    with pytest.raises(ValueError, match=r"lift_tests: row 0: columns 'start'/'end': 2020-01-01..2020-01-28 is not "
                                         r"inside the model's data 2025-01-01..2026-06-24"):
        fit_media_mix_model(daily, n_bootstrap=5, lift_tests=outside)
    dark = daily.copy()
    dark.loc[(dark["date"] >= start) & (dark["date"] <= end), "always_on"] = 0.0
    with pytest.raises(ValueError, match=r"lift_tests: row 0: channel 'always_on' has no spend from "):
        fit_media_mix_model(dark, n_bootstrap=5, lift_tests=_tests(world, 1.5, 0.1))


def test_validate_lift_tests_names_the_row_of_a_table():
    table = pd.DataFrame({"channel": ["a", "b"], "start": ["2026-01-01", "2026-01-01"],
                          "end": ["2026-01-28", "2026-01-28"], "roas": [1.0, -2.0], "roas_se": [0.1, 0.1]})
    with pytest.raises(ValueError, match=r"^lift_tests: row 1: column 'roas': '?-2.0'? is not a number >= 0"):
        validate_lift_tests(table)


def test_the_level_prior_pulls_a_never_low_channel_toward_the_pooled_roas_and_keeps_its_interval_open(world):
    """Without a lift test, a channel whose spend is never low gets the shared-ROAS prior (level_prior_sd,
    default 0.5) centred on the pooled ROAS of the channels whose spend does go low; it stays flagged and
    its interval still reaches 0, because its level remains an extrapolation."""
    with_prior = fit_media_mix_model(world["daily"], n_bootstrap=40, seed=2)
    without = fit_media_mix_model(world["daily"], n_bootstrap=40, seed=2, level_prior_sd=None)
    tight = fit_media_mix_model(world["daily"], n_bootstrap=40, seed=2, level_prior_sd=0.05)
    pooled = _row(with_prior, "flighted")["roas"]
    distance = {name: abs(_row(r)["roas"] - pooled) for name, r in
                (("with", with_prior), ("without", without), ("tight", tight))}
    assert distance["tight"] < distance["with"] < distance["without"]
    assert distance["tight"] < 0.1 * pooled
    for result in (with_prior, without):
        assert _row(result)["roas_lower"] == 0.0
        assert not result.review.set_index("channel").loc["always_on", "identifiable"]
    # The flighted channel anchors the prior and is not pulled by it.
    assert abs(_row(with_prior, "flighted")["roas"] / _row(without, "flighted")["roas"] - 1) < 0.05



def test_the_level_prior_s_own_uncertainty_reaches_the_intervals(world):
    """The level prior is an assumption, so every interval also spans the fit without it
    (level_prior_uncertainty, default on): with the widening to 0 turned off and a tight prior that pulls the
    never-low channel away from the answer without it, that channel's ROAS, share and response intervals
    still contain the no-prior answer and interval, and so do the flighted channel's; with the prior's
    intervals alone they do not. The point estimates and the model's draws stay the prior's."""
    settings = {"n_bootstrap": 40, "seed": 2, "widen_unbounded_levels": False}
    without = fit_media_mix_model(world["daily"], level_prior_sd=None, **settings)
    spanning = fit_media_mix_model(world["daily"], level_prior_sd=0.05, **settings)
    prior_only = fit_media_mix_model(world["daily"], level_prior_sd=0.05, level_prior_uncertainty=False, **settings)
    assert spanning.diagnostics["level_prior_channels"] == ["always_on"]
    assert spanning.diagnostics["level_prior_uncertainty"] and not prior_only.diagnostics["level_prior_uncertainty"]
    assert not without.diagnostics["level_prior_uncertainty"]
    no_prior = _row(without)["roas"]
    # The tight prior moves the point estimate away from the no-prior answer; the point stays the prior's.
    assert abs(_row(spanning)["roas"] / no_prior - 1) > 0.1
    assert _row(spanning)["roas"] == pytest.approx(_row(prior_only)["roas"])
    np.testing.assert_array_equal(spanning.response_model.responses["always_on"].coefficient_draws,
                                  prior_only.response_model.responses["always_on"].coefficient_draws)
    for channel in ("always_on", "flighted"):
        for measure in ("roas", "contribution_share", "marginal_roas"):
            got, plain = _row(spanning, channel), _row(without, channel)
            assert got[f"{measure}_lower"] <= min(plain[measure], plain[f"{measure}_lower"]), (channel, measure)
            assert got[f"{measure}_upper"] >= max(plain[measure], plain[f"{measure}_upper"]), (channel, measure)
    assert not _row(prior_only)["roas_lower"] <= no_prior <= _row(prior_only)["roas_upper"]
    # The response curve at the current spend spans both answers too.
    curves = {name: r.response_curves.set_index(["channel", "is_current"]).loc[("always_on", True)]
              for name, r in (("without", without), ("spanning", spanning))}
    answer = curves["without"]["predicted_incremental_revenue"]
    current = curves["spanning"]
    assert current["predicted_incremental_revenue_lower"] <= answer <= current["predicted_incremental_revenue_upper"]
