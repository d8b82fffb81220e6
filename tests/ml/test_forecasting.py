"""Prophet channel forecasts: horizon coverage, intervals, backtest error, determinism, parallel runs, logging."""

from __future__ import annotations

import logging
import multiprocessing
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.forecasting as forecasting
from ml.forecasting import (
    REACH_CTR_COLUMNS,
    ROI_FORECAST_COLUMNS,
    ROI_TIMESERIES_COLUMNS,
    forecast_channel_metrics,
)

HORIZON = 14
START = pd.Timestamp("2024-01-01")


def channel_frame(
    channel: str,
    days: int,
    base_spend: float,
    noise: float,
    seed: int,
    paused: slice | None = None,
    spends: bool = True,
) -> pd.DataFrame:
    """A channel with a linear trend, a weekly pattern and multiplicative log-normal noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekly = 1.0 + 0.25 * np.sin(2 * np.pi * t / 7)
    level = base_spend * (1.0 + t / 600.0) * weekly

    def noisy(values: np.ndarray) -> np.ndarray:
        return values * np.exp(rng.normal(0.0, noise, days))

    spend = noisy(level) if spends else np.zeros(days)
    impressions = noisy(level * 40.0 if spends else np.full(days, 20_000.0) * weekly)
    clicks = noisy(impressions * 0.03)
    conversions = noisy(clicks * 0.08)
    revenue = noisy(conversions * 60.0)
    frame = pd.DataFrame({
        "date": pd.date_range(START, periods=days, freq="D"),
        "channel": channel,
        "spend": spend,
        "impressions": impressions,
        "reach": impressions * 0.7,
        "clicks": clicks,
        "conversions": conversions,
        "revenue": revenue,
    })
    if paused is not None:
        columns = ["spend", "impressions", "reach", "clicks", "conversions", "revenue"]
        frame.loc[frame.index[paused], columns] = 0.0
    return frame


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return pd.concat([
        # Clean: low noise, the backtest must be accurate.
        channel_frame("search", 300, 1_000.0, 0.02, seed=1),
        # Noisier, with a ten-day pause and a gap of missing rows.
        channel_frame("social", 300, 300.0, 0.15, seed=2, paused=slice(150, 160)).drop(index=range(200, 205)),
        # Never spends: organic reach only, no ROI.
        channel_frame("organic", 300, 0.0, 0.05, seed=3, spends=False),
    ], ignore_index=True)


@pytest.fixture(scope="module")
def forecast(daily):
    return forecast_channel_metrics(daily, horizon_days=HORIZON, backtest_folds=2, n_jobs=1, seed=7)


def assert_no_chatter(output: str) -> None:
    """No per-fit INFO lines and no plotting-import error; real warnings may still be printed.

    (An L-BFGS failure that Prophet retries with Newton is logged at ERROR/WARNING on purpose.)
    """
    assert "start processing" not in output
    assert "done processing" not in output
    assert " - INFO - " not in output
    assert "plotly" not in output


def small_input() -> pd.DataFrame:
    return channel_frame("search", 120, 500.0, 0.05, seed=11)


# -- product tables --------------------------------------------------------------------------


def test_every_channel_and_metric_covers_the_full_horizon(forecast, daily):
    expected = pd.date_range(daily["date"].max() + pd.Timedelta(days=1), periods=HORIZON, freq="D")
    future = forecast.frame[forecast.frame["is_forecast"]]
    assert set(future["channel"]) == {"search", "social", "organic"}
    for (channel, metric), rows in future.groupby(["channel", "metric"]):
        assert list(rows["date"]) == list(expected), (channel, metric)
    assert len(forecast.frame.columns) == 8
    assert list(forecast.backtest.columns) == ["channel", "metric", "mape", "folds"]
    assert len(forecast.backtest) == 3 * 6


def test_forecast_rows_are_complete_non_negative_and_inside_their_intervals(forecast):
    future = forecast.frame[forecast.frame["is_forecast"]]
    values = future[["yhat", "yhat_lower", "yhat_upper"]]
    assert not values.isna().any().any()
    assert (values >= 0).all().all()
    assert (future["yhat_lower"] <= future["yhat"]).all()
    assert (future["yhat"] <= future["yhat_upper"]).all()
    assert (future["yhat_upper"] > future["yhat_lower"]).mean() > 0.9
    assert future["actual"].isna().all()


def test_roi_forecast_table(forecast):
    table = forecast.roi_forecast_table()
    assert tuple(table.columns) == ROI_FORECAST_COLUMNS
    assert sorted(table["channel"]) == ["search", "social"]  # organic never spends
    assert not table.isna().any().any()
    assert (table["horizon_days"] == HORIZON).all()
    # Each series is published as one of the models or, where none beats them, as the better naive baseline.
    methods = {*forecasting.MODEL_METHODS, *forecasting.NAIVE_METHODS}
    assert all(set(m.replace("(spend: ", "").rstrip(")").split()) <= methods for m in table["method"]), table["method"]
    assert (table["skill"] >= 0).all() and (table["total_skill"] >= 0).all()
    assert (table["roi_lower"] <= table["predicted_roi"]).all()
    assert (table["predicted_roi"] <= table["roi_upper"]).all()
    roi = (table["predicted_revenue"] - table["predicted_spend"]) / table["predicted_spend"]
    np.testing.assert_allclose(table["predicted_roi"], roi)
    future = forecast.frame[forecast.frame["is_forecast"] & (forecast.frame["metric"] == "spend")]
    sums = future.groupby("channel")["yhat"].sum()
    np.testing.assert_allclose(table.set_index("channel")["predicted_spend"], sums.loc[["search", "social"]])
    # Simulated revenue per unit of spend is 40 * 0.03 * 0.08 * 60 = 5.76 (medians), so ROI 4.76.
    search = table.set_index("channel").loc["search"]
    assert search["predicted_roi"] == pytest.approx(4.76, rel=0.08)
    assert search["roi_upper"] - search["roi_lower"] < 1.0
    # The point is the mean of the same predictive distribution the interval comes from, so
    # on clean data it sits strictly inside rather than on a widened edge.
    assert search["roi_lower"] < search["predicted_roi"] < search["roi_upper"]
    scores = forecast.skill.set_index(["channel", "metric"]).loc[("search", "revenue")]
    assert search["backtest_mape"] == pytest.approx(scores["published_mape"])
    assert search["naive_mape"] == pytest.approx(scores["naive_mape"])
    assert search["skill"] == pytest.approx(scores["published_skill"])
    revenue_error = forecast.backtest.set_index(["channel", "metric"]).loc[("search", "revenue"), "mape"]
    assert scores["prophet_mape"] == pytest.approx(revenue_error)


def test_roi_timeseries_table(forecast, daily):
    table = forecast.roi_timeseries_table()
    assert tuple(table.columns) == ROI_TIMESERIES_COLUMNS
    assert set(table["channel"]) == {"search", "social"}
    future = table[table["is_forecast"]]
    assert len(future) == 2 * HORIZON
    assert not future.isna().any().any()
    assert (future["roi_lower"] <= future["roi"]).all() and (future["roi"] <= future["roi_upper"]).all()
    assert (future["conversions_lower"] <= future["conversions"]).all()
    assert (future["conversions"] <= future["conversions_upper"]).all()

    history = table[~table["is_forecast"]].set_index(["channel", "date"])
    social = daily[daily["channel"] == "social"].set_index("date")
    paused_days = social.index[social["spend"] == 0]
    assert len(paused_days) == 10
    assert history.loc["social"].loc[paused_days, ["roi", "roi_lower", "roi_upper"]].isna().all().all()
    observed = history.loc["search"]
    search = daily[daily["channel"] == "search"].set_index("date")
    np.testing.assert_allclose(observed["roi"], (search["revenue"] - search["spend"]) / search["spend"])
    np.testing.assert_array_equal(observed["roi_lower"], observed["roi"])
    np.testing.assert_array_equal(observed["conversions_upper"], search["conversions"])


def test_reach_ctr_timeseries_table(forecast):
    table = forecast.reach_ctr_timeseries_table()
    assert tuple(table.columns) == REACH_CTR_COLUMNS
    assert set(table["channel"]) == {"search", "social", "organic"}
    future = table[table["is_forecast"]]
    assert len(future) == 3 * HORIZON
    assert not future.isna().any().any()
    for metric in ("reach", "impressions", "clicks", "ctr"):
        assert (future[f"{metric}_lower"] <= future[metric]).all(), metric
        assert (future[metric] <= future[f"{metric}_upper"]).all(), metric
    assert future[["ctr", "ctr_lower", "ctr_upper"]].stack().between(0.0, 1.0).all()
    # Simulated CTR is 3 %; clicks and impressions move together, so the clean channel's CTR
    # interval is narrow although each of the two has a wide one.
    assert future["ctr"].between(0.02, 0.04).all()
    search = future[future["channel"] == "search"]
    assert (search["ctr_upper"] - search["ctr_lower"]).max() < 0.01
    assert ((search["clicks_upper"] - search["clicks_lower"]) / search["clicks"]).min() > 0.05
    history = table[~table["is_forecast"]]
    assert history["ctr"].dropna().between(0.0, 1.0).all()
    assert history["ctr"].isna().sum() == 10  # the paused social days have no impressions


def test_country_holidays_carry_into_the_forecast():
    # 420 days ending on Christmas Eve 2024, spend 80 % higher on every US federal holiday.
    import holidays

    frame = channel_frame("search", 420, 500.0, 0.03, seed=13)
    frame["date"] = pd.date_range("2023-11-01", periods=420, freq="D")
    us = holidays.country_holidays("US", years=[2023, 2024])
    on_holiday = frame["date"].dt.date.isin(set(us))
    frame.loc[on_holiday, "spend"] *= 1.8

    def christmas_lift(country):
        # The model's own forecast: the backtest week holds no holiday, so the weekday naive would win it.
        result = forecast_channel_metrics(
            frame, metrics=("spend",), horizon_days=7, backtest_folds=1, n_jobs=1, holidays_country=country,
            fallback=False,
        )
        future = result.frame[result.frame["is_forecast"]].set_index("date")["yhat"]
        return future.loc["2024-12-25"] / future.drop(pd.Timestamp("2024-12-25")).median()

    assert christmas_lift("US") > 1.4
    assert christmas_lift(None) < 1.15  # a Wednesday like any other


def test_tables_refuse_when_their_metrics_were_not_forecast():
    result = forecast_channel_metrics(small_input(), metrics=("spend",), horizon_days=7, backtest_folds=1, n_jobs=1)
    with pytest.raises(ValueError, match=r"roi_forecast_table needs .*\['revenue'\]"):
        result.roi_forecast_table()
    with pytest.raises(ValueError, match="reach_ctr_timeseries_table"):
        result.reach_ctr_timeseries_table()


# -- backtest ----------------------------------------------------------------------------------


def test_backtest_error_is_small_on_a_clean_series_and_finite_everywhere(forecast):
    errors = forecast.backtest.set_index(["channel", "metric"])
    assert (errors["folds"] == 2).all()
    # Organic spend is zero on every held-out day: no scale to divide by, so NaN by design.
    assert np.isnan(errors.loc[("organic", "spend"), "mape"])
    others = errors.drop(index=("organic", "spend"))["mape"]
    assert np.isfinite(others).all() and (others >= 0).all()
    search = errors.loc["search", "mape"]
    assert (search < 0.15).all(), search.to_dict()
    # Noise of 15 % per day cannot be forecast away; the clean channel must do better.
    assert errors.loc["social", "mape"].mean() > search.mean()


def test_backtest_pools_absolute_errors_over_folds(monkeypatch):
    daily = small_input()
    result = forecast_channel_metrics(daily, metrics=("spend",), horizon_days=10, backtest_folds=2, n_jobs=1)
    # Refit the two folds by hand: WAPE = sum |error| / sum |actual| over both holdouts.
    prophet_class = forecasting._quiet_prophet()
    dates = daily["date"].to_numpy(dtype="datetime64[ns]")
    spend = daily["spend"].to_numpy()
    task = forecasting._SeriesTask(
        channel="search", metric="spend", history_dates=dates, horizon_dates=dates[:0],
        fit_mask=np.ones(len(dates), bool), fit_values=spend, yearly=False, holidays=None,
        cutoffs=(), horizon_days=10, interval_width=0.95, uncertainty_samples=50, seed=0,
    )
    errors = actuals = 0.0
    for fold in (1, 2):
        cutoff = dates[-1] - np.timedelta64(10 * fold, "D")
        train = dates <= cutoff
        holdout = (dates > cutoff) & (dates <= cutoff + np.timedelta64(10, "D"))
        model = forecasting._new_model(prophet_class, task, dates[train], 0)
        model.fit(pd.DataFrame({"ds": dates[train], "y": np.sqrt(spend[train])}))
        root = model.predict(pd.DataFrame({"ds": dates[holdout]}))["yhat"].to_numpy()
        sigma = model.params["sigma_obs"].item() * model.y_scale
        # The mean of max(root + noise, 0) ** 2, by simulation rather than the closed form.
        noise = np.random.default_rng(0).normal(0.0, sigma, (200_000, 1))
        predicted = (np.maximum(root + noise, 0.0) ** 2).mean(axis=0)
        errors += np.abs(predicted - spend[holdout]).sum()
        actuals += spend[holdout].sum()
    assert result.backtest["mape"].iloc[0] == pytest.approx(errors / actuals, rel=2e-3)
    assert result.backtest["folds"].iloc[0] == 2


# -- determinism and parallelism --------------------------------------------------------------


def test_same_seed_same_numbers_other_seed_other_intervals():
    kwargs = dict(metrics=("spend", "revenue"), horizon_days=7, backtest_folds=1, n_jobs=1)
    first = forecast_channel_metrics(small_input(), seed=3, **kwargs)
    again = forecast_channel_metrics(small_input(), seed=3, **kwargs)
    other = forecast_channel_metrics(small_input(), seed=4, **kwargs)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    pd.testing.assert_frame_equal(first.backtest, again.backtest)
    pd.testing.assert_frame_equal(first.roi_forecast_table(), again.roi_forecast_table())
    # The MAP fit does not depend on the seed, the sampled intervals do.
    np.testing.assert_array_equal(first.frame["yhat"], other.frame["yhat"])
    assert not np.array_equal(first.frame["yhat_upper"], other.frame["yhat_upper"])


def test_global_numpy_random_state_is_left_alone():
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    forecast_channel_metrics(small_input(), metrics=("clicks",), horizon_days=7, backtest_folds=1, n_jobs=1)
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.slow
def test_two_workers_give_the_same_numbers_as_one():
    daily = pd.concat([small_input(), channel_frame("social", 120, 200.0, 0.1, seed=12)], ignore_index=True)
    kwargs = dict(metrics=("spend", "revenue", "clicks"), horizon_days=7, backtest_folds=1, seed=5)
    serial = forecast_channel_metrics(daily, n_jobs=1, **kwargs)
    parallel = forecast_channel_metrics(daily, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(serial.frame, parallel.frame)
    pd.testing.assert_frame_equal(serial.backtest, parallel.backtest)
    pd.testing.assert_frame_equal(serial.roi_forecast_table(), parallel.roi_forecast_table())


CHILD_KWARGS = dict(metrics=("spend", "revenue"), horizon_days=7, backtest_folds=1, seed=9)


def _forecast_in_child(queue) -> None:
    result = forecast_channel_metrics(small_input(), n_jobs=2, **CHILD_KWARGS)
    queue.put(result.frame)


@pytest.mark.slow
def test_parallel_fit_inside_a_child_process_is_silent_and_matches(capfd):
    # Like a Dagster run worker: a fresh non-daemonic process that starts its own workers.
    # Its stderr and its workers' stderr are this test's captured file descriptor 2.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_forecast_in_child, args=(queue,))
    child.start()
    frame = queue.get(timeout=240)
    child.join(timeout=60)
    assert child.exitcode == 0
    expected = forecast_channel_metrics(small_input(), n_jobs=1, **CHILD_KWARGS)
    pd.testing.assert_frame_equal(frame, expected.frame)
    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert_no_chatter(output)


def test_a_daemonic_process_falls_back_to_serial(monkeypatch):
    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    with pytest.warns(RuntimeWarning, match="daemonic process"):
        result = forecast_channel_metrics(
            small_input(), metrics=("spend", "clicks"), horizon_days=7, backtest_folds=1, n_jobs=2
        )
    assert result.frame["is_forecast"].sum() == 2 * 7


def test_serial_run_prints_no_stan_logging(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    forecast_channel_metrics(small_input(), metrics=("reach",), horizon_days=7, backtest_folds=1, n_jobs=1)
    captured = capfd.readouterr()
    assert_no_chatter(captured.err + captured.out)
    noisy = [r for r in caplog.records if r.name.startswith(("cmdstanpy", "prophet")) and r.levelno < logging.WARNING]
    assert noisy == []


# -- input checks ----------------------------------------------------------------------------


class _Captured(Exception):
    pass


@pytest.mark.parametrize(
    ("days", "yearly", "holidays"), [(300, False, False), (460, False, True), (819, False, True), (820, True, True)]
)
def test_yearly_and_holidays_need_enough_history_in_every_fit(monkeypatch, days, yearly, holidays):
    # Three folds of 30 days: the earliest fold trains on the first days - 90 days.
    def capture(tasks, n_jobs):
        raise _Captured(tasks)

    monkeypatch.setattr(forecasting, "_run_tasks", capture)
    with pytest.raises(_Captured) as captured:
        forecast_channel_metrics(channel_frame("search", days, 100.0, 0.05, seed=8), metrics=("spend",))
    (task,) = captured.value.args[0]
    assert len(task.cutoffs) == 3
    assert task.yearly is yearly
    assert (task.holidays is not None) is holidays


def test_a_channel_too_short_to_forecast_is_left_out_and_named_while_the_others_are_forecast():
    daily = pd.concat([small_input(), channel_frame("podcast", 20, 50.0, 0.1, seed=4)], ignore_index=True)
    forecast = forecast_channel_metrics(daily, n_jobs=1, metrics=("spend", "revenue"))
    assert "podcast" not in forecast.channels and forecast.channels
    assert forecast.not_forecast == {"podcast": "not forecast: 20 days with spend, a forecast needs at least 28"}
    assert "podcast" not in set(forecast.roi_forecast_table()["channel"])
    # Alone, it is an error that names it.
    with pytest.raises(ValueError, match=r"at least 28 days.*'podcast': 20 days with spend"):
        forecast_channel_metrics(channel_frame("podcast", 20, 50.0, 0.1, seed=4), n_jobs=1)


def test_a_channel_that_stopped_spending_is_left_out_with_its_last_spend_day():
    stopped = channel_frame("meta", 200, 80.0, 0.1, seed=6, paused=slice(120, 200))
    daily = pd.concat([channel_frame("search", 200, 100.0, 0.05, seed=7), stopped], ignore_index=True)
    forecast = forecast_channel_metrics(daily, horizon_days=14, backtest_folds=2, n_jobs=1, metrics=("spend",))
    assert forecast.channels == ["search"]
    last = pd.Timestamp(stopped["date"].iloc[119]).date()
    assert forecast.not_forecast["meta"].startswith(f"not forecast: last spend on {last}, none in the 28 days")
    assert "channels.csv's aliases" in forecast.not_forecast["meta"]


def test_paused_days_do_not_count_towards_the_minimum_history():
    daily = channel_frame("video", 40, 100.0, 0.1, seed=5, paused=slice(0, 15))
    with pytest.raises(ValueError, match=r"'video': 25 days with spend out of 40 rows"):
        forecast_channel_metrics(daily, horizon_days=7, n_jobs=1)


def test_history_without_room_for_a_backtest_fold_says_what_to_do():
    daily = channel_frame("video", 40, 100.0, 0.1, seed=5)
    with pytest.raises(ValueError, match=r"horizon_days=30.*at least 58 days.*'video': 40 days"):
        forecast_channel_metrics(daily, horizon_days=30, n_jobs=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="clicks"), r"missing columns \['clicks'\]"),
        (lambda d: d.assign(spend=d["spend"].where(d.index != 3, -1.0)), r"daily\['spend'\] has 1 negative"),
        (lambda d: d.assign(revenue=d["revenue"].where(d.index != 3, np.nan)), r"daily\['revenue'\] has 1 missing"),
        (lambda d: pd.concat([d, d.iloc[[5]]]), r"1 duplicate \(date, channel\) rows"),
    ],
)
def test_bad_input_is_refused_with_the_column_named(change, message):
    with pytest.raises(ValueError, match=message):
        forecast_channel_metrics(change(small_input()), n_jobs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ("spend", "roas")}, r"unknown \['roas'\]"),
        ({"horizon_days": 0}, "horizon_days must be"),
        ({"interval_width": 1.0}, "interval_width must be"),
        ({"backtest_folds": 0}, "backtest_folds must be"),
        ({"n_jobs": 0}, "n_jobs must be"),
        ({"holidays_country": "XX"}, "holidays_country='XX'"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    daily = channel_frame("search", 400, 100.0, 0.05, seed=6)
    with pytest.raises(ValueError, match=message):
        forecast_channel_metrics(daily, **{"n_jobs": 1, **kwargs})


# -- interval arithmetic -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5),
    st.integers(1, 40),
    st.floats(0.05, 0.99),
    st.integers(0, 2**32 - 1),
)
def test_intervals_always_contain_their_point(points, draws, width, seed):
    rng = np.random.default_rng(seed)
    point = np.array(points)
    samples = rng.normal(0.0, 1e3, (len(point), draws)) + rng.normal(0.0, 1e5)
    samples[rng.random(samples.shape) < 0.2] = np.nan
    low_q, high_q = forecasting._quantile_levels(width)
    lower, upper = forecasting._interval_around(point, samples, low_q, high_q)
    assert np.all(lower <= point) and np.all(point <= upper)
    assert not np.isnan(lower).any() and not np.isnan(upper).any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_correlation_factor_reproduces_singular_correlations(n_metrics, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(50, n_metrics))
    residuals = np.column_stack([base, 3.0 * base[:, 0], np.zeros(50)])  # a duplicate and a constant column
    correlation = forecasting._noise_correlation(residuals)
    np.testing.assert_allclose(np.diag(correlation), 1.0)
    assert correlation[0, n_metrics] == pytest.approx(1.0)
    np.testing.assert_array_equal(correlation[-1, :-1], 0.0)
    factor = forecasting._correlation_factor(correlation)
    np.testing.assert_allclose(factor @ factor.T, correlation, atol=1e-10)


def test_joint_draws_keep_each_margin_and_share_the_residual_correlation():
    rng = np.random.default_rng(0)
    n_horizon, n_draws = 5, 4000
    correlation = np.array([[1.0, 0.9], [0.9, 1.0]])

    def result(level: float, path_sd: float, sigma: float):
        paths = level + rng.normal(0.0, path_sd, n_draws)[None, :] + np.zeros((n_horizon, 1))
        return forecasting._SeriesResult(
            yhat=np.zeros(1), yhat_lower=np.zeros(1), yhat_upper=np.zeros(1), horizon_paths=paths, sigma=sigma,
            residuals=np.zeros(1), abs_error=0.0, abs_actual=0.0, folds=1, fold_totals=(), fit_seconds=0.0,
            backtest_seconds=0.0,
            cpu_seconds=0.0,
        )

    # Trend paths only: each metric keeps exactly its own paths, reordered so that they co-move.
    first, second = result(30.0, 1.0, 1e-12), result(10.0, 0.5, 1e-12)
    roots = [np.sqrt(d) for d in forecasting._joint_draws([first, second], correlation, np.random.default_rng(1))]
    np.testing.assert_allclose(np.sort(roots[0][0]), np.sort(first.horizon_paths[0]))
    np.testing.assert_allclose(np.sort(roots[1][0]), np.sort(second.horizon_paths[0]))
    assert np.corrcoef(roots[0][0], roots[1][0])[0, 1] == pytest.approx(0.9, abs=0.03)

    # Daily noise only: each metric keeps its noise scale, and the days co-move.
    first, second = result(30.0, 0.0, 2.0), result(10.0, 0.0, 1.0)
    roots = [np.sqrt(d) for d in forecasting._joint_draws([first, second], correlation, np.random.default_rng(2))]
    assert roots[0].std() == pytest.approx(2.0, rel=0.05)
    assert roots[1].std() == pytest.approx(1.0, rel=0.05)
    assert np.corrcoef(roots[0].ravel(), roots[1].ravel())[0, 1] == pytest.approx(0.9, abs=0.03)


def test_safe_ratio_leaves_zero_denominators_undefined():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ratio = forecasting._safe_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, 0.5]))
    np.testing.assert_array_equal(np.isnan(ratio), [False, True, False])
    np.testing.assert_allclose(ratio[[0, 2]], [0.5, 6.0])


# -------------------------------------------------------------------------------- optional metrics


@pytest.fixture(scope="module")
def partly_reported():
    """`search` reports everything; `social` has no reach, no platform revenue and no conversions."""
    social = channel_frame("social", 120, 300.0, 0.1, seed=5)
    social[["reach", "revenue", "conversions"]] = np.nan
    daily = pd.concat([channel_frame("search", 120, 1_000.0, 0.05, seed=4), social], ignore_index=True)
    return forecast_channel_metrics(daily, horizon_days=HORIZON, backtest_folds=1, n_jobs=1, seed=3)


def test_metrics_a_channel_does_not_report_are_not_forecast_and_stay_null(partly_reported):
    fc = partly_reported
    assert fc.absent == {("social", "reach"), ("social", "revenue"), ("social", "conversions")}
    assert not fc.reports("social", "reach") and fc.reports("search", "reach")
    assert set(fc.frame.loc[fc.frame["channel"] == "social", "metric"]) == {"spend", "impressions", "clicks"}
    assert fc.metrics == list(forecasting.METRICS)

    roi = fc.roi_forecast_table().set_index("channel")
    assert roi.loc["search", "method"] != forecasting.NO_REVENUE_METHOD and np.isfinite(roi.loc["search", "predicted_roi"])
    assert social_scores_are_null(roi.loc["social"])
    social = roi.loc["social"]
    # Spend is still forecast; ROI is not claimed to be -1 when there is no revenue to speak of.
    assert social["predicted_spend"] > 0 and social["method"] == forecasting.NO_REVENUE_METHOD
    assert social[["predicted_revenue", "predicted_roi", "roi_lower", "roi_upper"]].isna().all()

    ts = fc.roi_timeseries_table()
    assert ts.loc[ts["channel"] == "social", ["roi", "roi_lower", "conversions", "conversions_upper"]].isna().all().all()
    search_future = ts[(ts["channel"] == "search") & ts["is_forecast"]]
    assert len(search_future) == HORIZON and search_future.notna().all().all()

    rc = fc.reach_ctr_timeseries_table()
    social_rc = rc[rc["channel"] == "social"]
    assert social_rc[["reach", "reach_lower", "reach_upper"]].isna().all().all()
    assert social_rc.loc[social_rc["is_forecast"], ["impressions", "clicks", "ctr", "ctr_upper"]].notna().all().all()
    assert rc.loc[rc["channel"] == "search", "reach"].notna().all()


def social_scores_are_null(row) -> bool:
    return bool(row[["backtest_mape", "naive_mape", "skill", "total_skill"]].isna().all())


def test_a_metric_no_channel_reports_still_gives_every_table():
    daily = channel_frame("search", 120, 1_000.0, 0.05, seed=4).assign(reach=np.nan)
    fc = forecast_channel_metrics(daily, horizon_days=HORIZON, backtest_folds=1, n_jobs=1, seed=3)
    rc = fc.reach_ctr_timeseries_table()
    assert list(rc.columns) == list(REACH_CTR_COLUMNS) and rc["reach"].isna().all()
    assert (rc["is_forecast"].sum(), rc["impressions"].isna().sum()) == (HORIZON, 0)


def test_a_partly_missing_optional_metric_is_still_refused():
    daily = channel_frame("search", 120, 1_000.0, 0.05, seed=4)
    daily.loc[5, "reach"] = np.nan
    with pytest.raises(ValueError, match=r"daily\['reach'\] has 1 missing"):
        forecast_channel_metrics(daily, horizon_days=HORIZON, backtest_folds=1, n_jobs=1)


def test_roi_draws_whose_spend_is_floating_point_dust_have_no_roi():
    """A 30-day spend draw of 1e-17 (what offsets laid around a near-zero forecast can leave) must not
    give an ROI of 1e19: such a draw has no ROI, and the interval comes from the others."""
    revenue = np.array([300.0, 310.0, 5.0, 290.0])
    spend = np.array([100.0, 105.0, 3e-17, 0.0])
    at_least = forecasting.MIN_SPEND_PER_DAY_FOR_ROI * 30
    ratio = forecasting._safe_ratio(revenue, spend, at_least=at_least)
    assert ratio[:2] == pytest.approx([3.0, 310.0 / 105.0])
    assert np.isnan(ratio[2:]).all()
    lower, upper = forecasting._interval_around(np.array([2.0]), (ratio - 1.0)[None, :], 0.025, 0.975)
    assert 1.9 < upper[0] < 2.1 and lower[0] == pytest.approx(1.95, abs=0.06)
