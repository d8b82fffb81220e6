"""Tests for ml.mmm's response model: the published parameter table and the model rebuilt from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.mmm import RESPONSE_PARAMETER_COLUMNS, MediaMixResult, ResponseModel, fit_media_mix_model
from tests.ml.test_mmm import simulate

N_BOOTSTRAP = 25


@pytest.fixture(scope="module")
def fitted() -> MediaMixResult:
    daily, _ = simulate(seed=2)
    return fit_media_mix_model(daily, n_bootstrap=N_BOOTSTRAP, seed=3, ci=0.9)


@pytest.fixture(scope="module")
def parameters(fitted) -> pd.DataFrame:
    return fitted.response_parameters()


def test_parameters_are_one_numeric_row_per_channel_and_draw(fitted, parameters):
    assert list(parameters.columns) == RESPONSE_PARAMETER_COLUMNS
    assert len(parameters) == len(fitted.channel_names) * (N_BOOTSTRAP + 1)
    assert parameters["channel"].unique().tolist() == list(fitted.channel_names)
    assert parameters["draw"].dtype == np.int64
    for _, draws in parameters.groupby("channel")["draw"]:
        assert draws.tolist() == list(range(N_BOOTSTRAP + 1))
    numeric = parameters.drop(columns=["channel", "saturation_family"])
    assert all(pd.api.types.is_numeric_dtype(numeric[c]) for c in numeric)
    assert set(parameters["saturation_family"]) <= {"hill", "exponential"}
    assert not parameters.isna().any().any()
    assert (parameters["baseline_daily"] == fitted.baseline_daily).all()
    assert (parameters["ci"] == 0.9).all() and fitted.diagnostics["ci"] == 0.9


def test_draw_zero_is_the_point_estimate_of_the_channel_table(fitted, parameters):
    point = parameters[parameters["draw"] == 0].set_index("channel")
    table = fitted.channels.set_index("channel")
    for column in ("adstock_decay", "saturation_half", "saturation_shape"):
        pd.testing.assert_series_equal(point[column], table[column], check_names=False)
    for channel, family in point["saturation_family"].items():
        assert fitted.diagnostics["hyperparameters"][channel]["saturation_family"] == family
    pd.testing.assert_series_equal(point["current_daily_spend"], fitted.current_daily_spend, check_names=False)


def test_model_rebuilt_from_parameters_answers_exactly_like_the_fit(fitted, parameters):
    rebuilt = ResponseModel.from_parameters(parameters)
    assert rebuilt.channel_names == fitted.channel_names
    assert rebuilt.baseline_daily == fitted.baseline_daily and rebuilt.ci == fitted.ci
    assert rebuilt.n_draws == N_BOOTSTRAP
    pd.testing.assert_series_equal(rebuilt.current_daily_spend, fitted.current_daily_spend)
    grid = np.linspace(0.0, 3.0 * fitted.current_daily_spend.max(), 17)
    for channel in fitted.channel_names:
        for draws in (False, True):
            np.testing.assert_array_equal(
                rebuilt.channel_response(channel, grid, draws=draws),
                fitted.channel_response(channel, grid, draws=draws),
            )
            np.testing.assert_array_equal(
                rebuilt.channel_marginal_roas(channel, grid, draws=draws),
                fitted.channel_marginal_roas(channel, grid, draws=draws),
            )
    assert rebuilt.predict(fitted.current_daily_spend * 1.1) == fitted.predict(fitted.current_daily_spend * 1.1)
    pd.testing.assert_frame_equal(rebuilt.response_parameters(), parameters)


def test_a_fitted_result_delegates_to_its_response_model(fitted):
    assert isinstance(fitted.response_model, ResponseModel)
    assert fitted.responses is fitted.response_model.responses
    spend = fitted.current_daily_spend
    assert fitted.predict(spend) == fitted.response_model.predict(spend)
    pd.testing.assert_frame_equal(fitted.response_parameters(), fitted.response_model.response_parameters())


def test_row_order_and_warehouse_stamp_columns_do_not_matter(parameters):
    shuffled = parameters.sample(frac=1.0, random_state=7)
    stamped = shuffled.assign(run_id="run-1", generated_at=pd.Timestamp("2025-01-01"))
    rebuilt = ResponseModel.from_parameters(stamped)
    pd.testing.assert_frame_equal(rebuilt.response_parameters(), parameters)


def test_channels_come_back_sorted_by_name():
    params = pd.DataFrame({
        "channel": ["b", "b", "a", "a"], "draw": [0, 1, 0, 1], "coefficient": [10.0, 11.0, 20.0, 21.0],
        "saturation_half": 5.0, "saturation_shape": 1.0, "adstock_decay": 0.2, "current_daily_spend": 3.0,
        "baseline_daily": 100.0, "ci": 0.95,
    })
    model = ResponseModel.from_parameters(params)
    assert model.channel_names == ("a", "b")
    assert model.responses["a"].coefficient == 20.0
    # A table published before saturation_family existed is all Hill.
    assert model.responses["a"].saturation_family == "hill"
    assert model.response_parameters()["saturation_family"].eq("hill").all()
    np.testing.assert_array_equal(model.responses["b"].coefficient_draws, [11.0])


def _broken(parameters: pd.DataFrame, how: str) -> pd.DataFrame:
    p = parameters.copy()
    first = p["channel"].iloc[0]
    if how == "missing column":
        return p.drop(columns="saturation_shape")
    if how == "nan":
        p.loc[(p["channel"] == first) & (p["draw"] == 4), "coefficient"] = np.nan
        return p
    if how == "no draw 0":
        return p[~((p["channel"] == first) & (p["draw"] == 0))]
    if how == "only draw 0":
        return p[(p["channel"] != first) | (p["draw"] == 0)]
    if how == "fewer draws":
        return p[(p["channel"] != first) | (p["draw"] < N_BOOTSTRAP)]
    if how == "gap":
        return p[(p["channel"] != first) | (p["draw"] != 3)]
    if how == "duplicate":
        return pd.concat([p, p[(p["channel"] == first) & (p["draw"] == 2)]])
    if how == "negative coefficient":
        p.loc[(p["channel"] == first) & (p["draw"] == 1), "coefficient"] = -1.0
        return p
    if how == "two runs":
        p.loc[p.index[-1], "baseline_daily"] += 1.0
        return p
    if how == "ci":
        return p.assign(ci=95.0)
    if how == "family":
        p.loc[(p["channel"] == first) & (p["draw"] == 5), "saturation_family"] = "logistic"
        return p
    if how == "text":
        return p.assign(coefficient="high")
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing column", r"missing column\(s\) \['saturation_shape'\]"),
        ("nan", r"'coefficient' has 1 missing or infinite value\(s\), channel\(s\) \['search'\] at draw\(s\) \[4\]"),
        ("no draw 0", r"channel 'search' has no draw 0 \(the point estimate\)"),
        ("only draw 0", r"channel 'search' has only draw 0 and no bootstrap draws"),
        ("fewer draws", r"channel 'social' has 25 bootstrap draws but 'search' has 24"),
        ("gap", r"channel 'search' lacks draw\(s\) \[3\]"),
        ("duplicate", r"channel 'search' has draw\(s\) \[2\] more than once"),
        ("negative coefficient",
         r"'coefficient' must be >= 0; 1 value\(s\) are not, channel\(s\) \['search'\] at draw\(s\) \[1\]"),
        ("two runs", r"column 'baseline_daily' must hold one value on every row"),
        ("ci", r"column 'ci' must be in \(0, 1\)"),
        ("text", r"column 'coefficient' must be numeric"),
        ("family", r"'saturation_family' must be one of \['hill', 'exponential'\]; 1 value\(s\) are not "
                   r"\(\['logistic'\]\), channel\(s\) \['search'\] at draw\(s\) \[5\]"),
    ],
)
def test_from_parameters_says_what_is_wrong_and_where(parameters, how, message):
    with pytest.raises(ValueError, match=message):
        ResponseModel.from_parameters(_broken(parameters, how))


def test_from_parameters_refuses_an_empty_table_or_something_else():
    with pytest.raises(ValueError, match="have no rows"):
        ResponseModel.from_parameters(pd.DataFrame(columns=RESPONSE_PARAMETER_COLUMNS))
    with pytest.raises(TypeError, match="needs a pandas DataFrame, got dict"):
        ResponseModel.from_parameters({"channel": ["a"]})
