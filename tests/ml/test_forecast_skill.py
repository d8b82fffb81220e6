"""Forecast skill against the naive baselines, and the fallback to the better baseline where the model loses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ml.forecasting as forecasting
from ml.forecasting import (
    FUTURE_SPEND, METHOD, MODEL_METHODS, NAIVE_METHODS, REVERSION, REVERTING_RECENT_DAYS, SKILL_COLUMNS,
    SPEND_REGRESSION_METHOD,
    forecast_channel_metrics, level_forecast, naive_forecast, reverting_level_forecast, skill_score,
    spend_regression_forecast,
)

HORIZON = 14
WEEKLY = np.array([1.0, 1.5, 0.7, 1.2, 0.5, 1.3, 0.8])  # Monday .. Sunday


def series(channel: str, spend: np.ndarray, start: str = "2024-01-01") -> pd.DataFrame:
    """Every metric proportional to spend, so each behaves as spend does."""
    return pd.DataFrame({
        "date": pd.date_range(start, periods=len(spend), freq="D"), "channel": channel,
        "spend": spend, "revenue": 4.0 * spend, "conversions": spend / 40.0,
        "impressions": 50.0 * spend, "reach": 35.0 * spend, "clicks": 1.5 * spend,
    })


def test_naive_forecasts_on_known_values():
    values = np.arange(1.0, 36.0)  # 35 live days
    weekdays = np.arange(35) % 7
    np.testing.assert_allclose(naive_forecast(values, weekdays, np.array([0, 3]), "naive_28d_mean"),
                               [values[-28:].mean()] * 2)
    # Weekday 0 was seen on values 1, 8, 15, 22, 29: the last four are 8, 15, 22, 29.
    np.testing.assert_allclose(naive_forecast(values, weekdays, np.array([0, 6]), "naive_weekday"),
                               [np.mean([8, 15, 22, 29]), np.mean([14, 21, 28, 35])])
    # A weekday never seen gets the 28-day mean.
    sundays_missing = weekdays != 6
    assert naive_forecast(values[sundays_missing], weekdays[sundays_missing], np.array([6]), "naive_weekday")[0] == \
        pytest.approx(values[sundays_missing][-28:].mean())
    with pytest.raises(ValueError, match="naive_weekday"):
        naive_forecast(values, weekdays, np.array([0]), "seasonal")


def test_skill_score():
    assert skill_score(0.3, 0.6) == pytest.approx(0.5)
    assert skill_score(0.9, 0.6) == pytest.approx(-0.5)
    assert np.isnan(skill_score(0.1, 0.0)) and np.isnan(skill_score(np.nan, 0.5))


@pytest.fixture(scope="module")
def weekly_and_trend():
    days = 140
    dates = pd.date_range("2024-01-01", periods=days, freq="D")  # a Monday
    t = np.arange(days)
    rng = np.random.default_rng(0)
    daily = pd.concat([
        # A pure weekly pattern: the same-weekday mean of the last 4 weeks forecasts it exactly.
        series("weekly", 300.0 * WEEKLY[dates.day_of_week]),
        # Steady growth with a little noise: any mean of recent weeks lags behind, a trend does not.
        series("trend", 100.0 + 5.0 * t + rng.normal(0.0, 4.0, days)),
    ], ignore_index=True)
    return forecast_channel_metrics(daily, metrics=("spend", "revenue"), horizon_days=HORIZON, backtest_folds=2,
                                    n_jobs=1, seed=1)


def test_a_pure_weekly_pattern_falls_back_to_the_same_weekday_naive(weekly_and_trend):
    fc = weekly_and_trend
    assert list(fc.skill.columns) == list(SKILL_COLUMNS)
    scores = fc.skill.set_index(["channel", "metric"]).loc[("weekly", "revenue")]
    assert scores["naive_weekday_mape"] == pytest.approx(0.0, abs=1e-12)
    assert scores["naive_28d_mean_mape"] > 0.2
    assert scores["naive_method"] == "naive_weekday" and scores["method"] == "naive_weekday"
    assert scores["published_mape"] == pytest.approx(0.0, abs=1e-12) and scores["published_skill"] == 0.0
    assert fc.method("weekly", "spend") == fc.method("weekly", "revenue") == "naive_weekday"
    roi = fc.roi_forecast_table().set_index("channel")
    assert roi.loc["weekly", "method"] == "naive_weekday"
    assert roi.loc["weekly", "skill"] == 0.0 and roi.loc["weekly", "backtest_mape"] == pytest.approx(0.0, abs=1e-12)
    # The published forecast rows are the weekly pattern itself, inside their intervals.
    future = fc.frame[fc.frame["is_forecast"] & (fc.frame["channel"] == "weekly") & (fc.frame["metric"] == "revenue")]
    expected = 1_200.0 * WEEKLY[pd.DatetimeIndex(future["date"]).day_of_week]
    np.testing.assert_allclose(future["yhat"], expected)
    assert (future["yhat_lower"] <= future["yhat"]).all() and (future["yhat"] <= future["yhat_upper"]).all()
    assert roi.loc["weekly", "predicted_revenue"] == pytest.approx(expected.sum())
    assert roi.loc["weekly", "roi_lower"] <= roi.loc["weekly", "predicted_roi"] <= roi.loc["weekly", "roi_upper"]


def test_a_trend_beats_naive_and_keeps_the_model(weekly_and_trend):
    fc = weekly_and_trend
    scores = fc.skill.set_index(["channel", "metric"]).loc[("trend", "revenue")]
    assert scores["method"] == METHOD
    assert scores["skill"] > 0.3 and scores["total_skill"] > 0.3
    assert scores["published_skill"] == scores["skill"] and scores["published_mape"] == scores["model_mape"]
    roi = fc.roi_forecast_table().set_index("channel")
    assert roi.loc["trend", "method"] == METHOD and roi.loc["trend", "skill"] == pytest.approx(scores["skill"])
    assert set(fc.skill["method"]) <= {*MODEL_METHODS, *NAIVE_METHODS}
    assert (fc.skill["published_skill"] >= 0).all() and (fc.skill["published_total_skill"] >= 0).all()


def test_naive_errors_are_scored_on_the_model_folds_and_days(weekly_and_trend):
    """The 28-day naive error recomputed by hand on the two folds' held-out days."""
    fc = weekly_and_trend
    trend = fc.frame[(fc.frame["channel"] == "trend") & (fc.frame["metric"] == "spend") & ~fc.frame["is_forecast"]]
    values = trend["actual"].to_numpy()
    errors = actuals = 0.0
    for fold in (1, 2):
        cutoff = len(values) - fold * HORIZON
        predicted = values[cutoff - 28:cutoff].mean()
        held_out = values[cutoff:cutoff + HORIZON]
        errors += np.abs(predicted - held_out).sum()
        actuals += held_out.sum()
    scores = fc.skill.set_index(["channel", "metric"]).loc[("trend", "spend")]
    assert scores["naive_28d_mean_mape"] == pytest.approx(errors / actuals)
    assert scores["folds"] == 2


def test_a_series_without_held_out_actuals_keeps_the_model():
    task = forecasting._SeriesTask(
        channel="c", metric="revenue", history_dates=pd.date_range("2024-01-01", periods=60).to_numpy(),
        horizon_dates=pd.date_range("2024-03-01", periods=7).to_numpy(), fit_mask=np.ones(60, bool),
        fit_values=np.r_[np.ones(46), np.zeros(14)], yearly=False, holidays=None,
        cutoffs=(np.datetime64("2024-02-15"),), horizon_days=14, interval_width=0.9, uncertainty_samples=20, seed=0,
    )
    result = forecasting._SeriesResult(
        yhat=np.ones(67), yhat_lower=np.ones(67), yhat_upper=np.ones(67), horizon_paths=np.ones((7, 20)), sigma=0.1,
        residuals=np.zeros(60), abs_error=3.0, abs_actual=0.0, folds=1, fold_totals=((3.0, 0.0),),
        fit_seconds=0.0, backtest_seconds=0.0, cpu_seconds=0.0,
    )
    published, row = forecasting._score_and_fall_back(task, result)
    assert published is result and row["method"] == METHOD
    assert np.isnan(row["naive_mape"]) and np.isnan(row["skill"]) and np.isnan(row["published_skill"])


def test_level_forecast_is_the_weekday_mean_of_its_window():
    values = np.arange(1.0, 71.0)  # 70 live days, the first a Monday (0)
    weekdays = np.arange(70) % 7
    # The last 28 values are 43..70; their Mondays are 43, 50, 57, 64 and their Sundays 49, 56, 63, 70.
    np.testing.assert_allclose(level_forecast(values, weekdays, np.array([0, 6]), window=28),
                               [np.mean([43, 50, 57, 64]), np.mean([49, 56, 63, 70])])
    # A weekday seen fewer than 4 times in the window gets the window's mean.
    assert level_forecast(values, weekdays, np.array([2]), window=10)[0] == pytest.approx(values[-10:].mean())


def test_the_reverting_level_follows_the_recent_ratio_first_and_the_long_run_level_later():
    weekly = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    weekdays = np.arange(140) % 7
    values = 100.0 * weekly[weekdays]
    values[-REVERTING_RECENT_DAYS:] *= 1.5  # the last two weeks ran at 150% of the level
    targets = np.arange(140, 170) % 7
    ahead = np.arange(30)
    long_run = level_forecast(values, weekdays, targets)
    ratio = values[-REVERTING_RECENT_DAYS:].sum() / level_forecast(
        values, weekdays, weekdays[-REVERTING_RECENT_DAYS:]).sum()
    assert ratio > 1.3
    forecast = reverting_level_forecast(values, weekdays, targets, ahead)
    np.testing.assert_allclose(forecast, long_run * (1 + REVERSION ** (1 + ahead / 7) * (ratio - 1)))
    # Day by day the forecast moves from the recent level towards the long-run one, keeping the weekday pattern.
    relative = forecast / long_run
    assert (np.diff(relative) < 0).all() and relative[0] == pytest.approx(1 + REVERSION ** 1 * (ratio - 1))
    assert relative[-1] < 1 + 0.25 * (ratio - 1)
    # On its level, it is the long-run level; never negative.
    flat = 100.0 * weekly[weekdays]
    np.testing.assert_allclose(reverting_level_forecast(flat, weekdays, targets, ahead),
                               level_forecast(flat, weekdays, targets))
    assert (reverting_level_forecast(np.zeros(140), weekdays, targets, ahead) == 0).all()


def test_the_spend_regression_forecasts_along_the_stated_future_spend():
    rng = np.random.default_rng(3)
    days, horizon = 200, 21
    spend = rng.uniform(50.0, 150.0, days)
    weekdays = np.arange(days) % 7
    intercepts = np.array([100.0, 80.0, 60.0, 90.0, 120.0, 40.0, 30.0])

    def adstock(path):  # a_t = 0.5 a_(t-1) + 0.5 s_t
        out, carry = np.empty(len(path)), 0.0
        for i, value in enumerate(path):
            carry = 0.5 * carry + 0.5 * value
            out[i] = carry
        return out

    revenue = intercepts[weekdays] + 3.0 * adstock(spend)
    future_weekdays = (days + np.arange(horizon)) % 7
    planned = np.full(horizon, 80.0)
    forecast, decay = spend_regression_forecast(revenue, np.ones(days, bool), spend, weekdays, planned, future_weekdays)
    assert decay == 0.5
    expected = intercepts[future_weekdays] + 3.0 * adstock(np.r_[spend, planned])[days:]
    np.testing.assert_allclose(forecast, expected, rtol=1e-9)
    # Planning twice the spend adds 3 x the adstock of the extra spend, carried over from its first day.
    doubled, _ = spend_regression_forecast(revenue, np.ones(days, bool), spend, weekdays, 2 * planned, future_weekdays)
    np.testing.assert_allclose(doubled - forecast, 3.0 * adstock(planned), rtol=1e-9)


def replanned_budgets(days: int, seed: int = 7) -> pd.DataFrame:
    """Four channels whose spend is re-planned every week around a stable budget (log sd 0.5), paced by weekday,
    with 20% daily noise; revenue is 3 x the adstocked spend (decay 0.5) with 15% noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    frames = []
    for k, channel in enumerate(("alpha", "beta", "gamma", "delta")):
        weekly_level = np.exp(rng.normal(0.0, 0.5, days // 7 + 1))[np.arange(days) // 7]
        spend = 200.0 * (k + 1) * weekly_level * WEEKLY[dates.day_of_week] * rng.lognormal(0.0, 0.2, days)
        carried = pd.Series(spend).ewm(alpha=0.5, adjust=False).mean().to_numpy()
        frames.append(pd.DataFrame({"date": dates, "channel": channel, "spend": spend,
                                    "revenue": 3.0 * carried * rng.lognormal(0.0, 0.15, days)}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_published_methods_beat_naive_or_are_naive_and_intervals_cover_held_out_days():
    """A family with known noise: refit without the last 28 days, then score what was published on them."""
    daily = replanned_budgets(days=392)
    held_out = daily["date"] > daily["date"].max() - pd.Timedelta(days=28)
    fc = forecast_channel_metrics(daily[~held_out], metrics=("spend", "revenue"), horizon_days=28, backtest_folds=3,
                                  n_jobs=1, seed=5)
    skill = fc.skill
    assert list(skill.columns) == list(SKILL_COLUMNS)
    assert set(skill["method"]) <= {*MODEL_METHODS, *NAIVE_METHODS}
    for _, row in skill.iterrows():
        if row["method"] in NAIVE_METHODS:
            assert row["published_skill"] == 0.0 and row["published_total_skill"] == 0.0
        else:  # a published model beats the naive error on days and does not lose on totals
            assert row["published_mape"] < row["naive_mape"] and row["published_skill"] > 0
            assert row["published_total_skill"] >= 0
        # The spend path behind a spend regression is stated; other methods have none.
        assert row["future_spend"] == (FUTURE_SPEND if row["method"] == SPEND_REGRESSION_METHOD else "")
        assert row["interval_factor"] >= 1.0 and row["calibrated_coverage"] >= 0.95
        assert row["calibrated_coverage"] >= row["backtest_coverage"]
    # Budgets return to a stable level: a model beats the naive means where it does so on every fold by more than
    # the folds' spread (here Prophet and the long-run levels both do on delta, Prophet by the wider margin); where
    # the folds disagree (beta, gamma) the naive baseline is published.
    published_models = skill[~skill["method"].isin(list(NAIVE_METHODS))]
    assert len(published_models) >= 2 and (published_models["choice_margin"] > 0).all()
    roi = fc.roi_forecast_table().set_index("channel")
    revenue = skill[skill["metric"] == "revenue"].set_index("channel")
    assert (roi["method"].str.split().str[0] == revenue["method"]).all()

    # Intervals: the share of held-out days inside the published 95% interval, before and after the calibration.
    truth = daily[held_out].set_index(["channel", "date"])
    future = fc.frame[fc.frame["is_forecast"]]
    inside_before = inside_after = total = 0
    published_error = naive_error = 0.0
    scores = skill.set_index(["channel", "metric"])
    for (channel, metric), rows in future.groupby(["channel", "metric"]):
        actual = truth.loc[channel].loc[rows["date"], metric].to_numpy()
        # What was published against the better naive baseline (chosen on the backtest) on the held-out days.
        history = daily[~held_out & (daily["channel"] == channel)]
        naive = naive_forecast(history[metric].to_numpy(), history["date"].dt.day_of_week.to_numpy(),
                               pd.DatetimeIndex(rows["date"]).day_of_week.to_numpy(),
                               scores.loc[(channel, metric), "naive_method"])
        published_error += float(np.abs(rows["yhat"].to_numpy() - actual).sum())
        naive_error += float(np.abs(naive - actual).sum())
        raw_lower, raw_upper = fc.uncalibrated_intervals[(channel, metric)]
        inside_before += int(((raw_lower <= actual) & (actual <= raw_upper)).sum())
        inside_after += int(((rows["yhat_lower"] <= actual) & (actual <= rows["yhat_upper"])).sum())
        total += len(actual)
        assert (rows["yhat_upper"].to_numpy() >= raw_upper).all() and (rows["yhat_lower"].to_numpy() <= raw_lower).all()
    assert total == 8 * 28
    assert published_error < naive_error  # pooled over the series, the published forecasts beat naive held out
    assert inside_after / total >= 0.88, (inside_before / total, inside_after / total)
    assert inside_after >= inside_before


def test_choice_margin_is_the_mean_fold_skill_less_its_standard_errors():
    # Fold skills 0.5, 0.0, 0.25: mean 0.25, sample sd 0.25, standard error 0.25 / sqrt(3).
    model, naive = [50.0, 100.0, 75.0], [100.0, 100.0, 100.0]
    assert forecasting.choice_margin(model, naive, margin=0.0) == pytest.approx(0.25)
    assert forecasting.choice_margin(model, naive, margin=1.0) == pytest.approx(0.25 - 0.25 / np.sqrt(3))
    assert forecasting.choice_margin(model, naive, margin=2.0) < 0
    # A fold without naive error is skipped; a single usable fold has no spread to judge by.
    assert np.isnan(forecasting.choice_margin([50.0, 10.0], [100.0, 0.0]))
    with pytest.raises(ValueError, match="one value per fold"):
        forecasting.choice_margin([1.0, 2.0], [1.0, 2.0, 3.0])


def growing_series_task(days: int = 240, horizon: int = 20, folds: int = 3) -> forecasting._SeriesTask:
    """A noisy linear trend: every long-run level model lags it, so only the constructed model below can win."""
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    rng = np.random.default_rng(3)
    values = 100.0 + 2.0 * np.arange(days) + rng.normal(0.0, 25.0, days)
    last = dates[-1].to_datetime64()
    return forecasting._SeriesTask(
        channel="c", metric="spend", history_dates=dates.to_numpy(),
        horizon_dates=pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=horizon).to_numpy(),
        fit_mask=np.ones(days, bool), fit_values=values, yearly=False, holidays=None,
        cutoffs=tuple(last - k * np.timedelta64(horizon, "D") for k in range(1, folds + 1)), horizon_days=horizon,
        interval_width=0.9, uncertainty_samples=20, seed=0,
    )


def model_with_fold_skills(task: forecasting._SeriesTask, fold_skills) -> forecasting._SeriesResult:
    """A 'Prophet' result whose forecast of fold j misses each held-out day by (1 - fold_skills[j]) times the better
    naive baseline's miss: its daily skill on fold j against that baseline is exactly fold_skills[j]."""
    candidates = forecasting._candidates(task, None)
    mapes = {m: candidates[m].abs_error / candidates[m].abs_actual for m in NAIVE_METHODS}
    best = min(NAIVE_METHODS, key=lambda m: mapes[m])
    fit_dates = task.history_dates[task.fit_mask]
    predictions, totals, abs_error, abs_actual = [], [], 0.0, 0.0
    for cutoff, naive, skill in zip(task.cutoffs, candidates[best].fold_predictions, fold_skills, strict=True):
        actual = task.fit_values[(fit_dates > cutoff) & (fit_dates <= cutoff + np.timedelta64(task.horizon_days, "D"))]
        predicted = actual + (1.0 - skill) * (naive - actual)
        predictions.append(predicted)
        totals.append((float(predicted.sum()), float(actual.sum())))
        abs_error += float(np.abs(predicted - actual).sum())
        abs_actual += float(actual.sum())
    n = len(task.history_dates) + len(task.horizon_dates)
    return forecasting._SeriesResult(
        yhat=np.full(n, 500.0), yhat_lower=np.full(n, 400.0), yhat_upper=np.full(n, 600.0),
        horizon_paths=np.ones((len(task.horizon_dates), 20)), sigma=1.0, residuals=np.zeros(len(fit_dates)),
        abs_error=abs_error, abs_actual=abs_actual, folds=len(task.cutoffs), fold_totals=tuple(totals),
        fit_seconds=0.0, backtest_seconds=0.0, cpu_seconds=0.0, fold_predictions=tuple(predictions),
    )


def test_a_model_that_beats_naive_on_the_backtest_only_by_luck_is_not_published():
    """One big fold win and two small losses: pooled over the folds the model beats naive (the choice before the
    margin published it), but its edge is within the fold-to-fold spread, so the better naive baseline is published.
    The same model winning every fold by a steady margin is published. Real baselines, candidates and choice."""
    task = growing_series_task()
    lucky = model_with_fold_skills(task, (0.45, -0.08, -0.08))
    published, row = forecasting._score_and_fall_back(task, lucky)
    assert row["prophet_mape"] < row["naive_mape"] and row["skill"] > 0  # it does beat naive on the backtest...
    assert skill_score(row["model_total_error"], row["naive_total_error"]) >= 0  # ...and is no worse on totals
    assert row["method"] == row["naive_method"] and row["method"] in NAIVE_METHODS  # but only by luck
    assert row["published_skill"] == 0.0 and np.isnan(row["choice_margin"])
    assert published is not lucky

    steady = model_with_fold_skills(task, (0.15, 0.12, 0.18))
    published, row = forecasting._score_and_fall_back(task, steady)
    assert row["method"] == METHOD and published is steady
    assert row["choice_margin"] == pytest.approx(0.15 - forecasting.SELECTION_MARGIN * 0.03 / np.sqrt(3))
    assert row["published_skill"] == pytest.approx(row["skill"]) and row["published_skill"] > 0.1


def channel_of(fold_skills_per_metric) -> tuple[list, list]:
    """One channel's series (the growing series under other metric names), each with a 'Prophet' of given fold
    skills against its better naive baseline."""
    import dataclasses

    base = growing_series_task()
    tasks = [dataclasses.replace(base, metric=f"metric_{i}") for i in range(len(fold_skills_per_metric))]
    return tasks, [model_with_fold_skills(task, skills) for task, skills in zip(tasks, fold_skills_per_metric)]


def test_a_choice_its_channel_does_not_back_falls_back_to_naive():
    """The first series' model wins every fold by a steady margin (published on its own), but on the channel's two
    other series the same model loses or ties: pooled over the channel its edge is luck, so naive is published.
    Where the channel's series all back it, it is published."""
    lonely = ((0.15, 0.12, 0.18), (-0.10, -0.05, -0.12), (0.02, -0.03, 0.0))
    tasks, results = channel_of(lonely)
    scores = [forecasting._series_scores(task, result, None) for task, result in zip(tasks, results)]
    agreement = forecasting._channel_agreement(tasks, scores)["c"]
    means = np.array([np.mean(skills) for skills in lonely])
    assert agreement[METHOD] == pytest.approx(means.mean() / (means.std(ddof=1) / np.sqrt(3)))
    assert agreement[METHOD] < forecasting.CHANNEL_AGREEMENT_T

    alone, row = forecasting._score_and_fall_back(tasks[0], results[0], scores=scores[0])
    assert row["method"] == METHOD and alone is results[0]  # the series' own margin publishes it...
    published, row = forecasting._score_and_fall_back(tasks[0], results[0], scores=scores[0], agreement=agreement)
    assert row["method"] == row["naive_method"] and row["method"] in NAIVE_METHODS  # ...its channel does not
    assert row["published_skill"] == 0.0 and row["channel_agreement"] == pytest.approx(agreement[METHOD])
    assert published is not results[0]

    backed = ((0.15, 0.12, 0.18), (0.10, 0.12, 0.11), (0.20, 0.18, 0.22))
    tasks, results = channel_of(backed)
    scores = [forecasting._series_scores(task, result, None) for task, result in zip(tasks, results)]
    agreement = forecasting._channel_agreement(tasks, scores)["c"]
    assert agreement[METHOD] > forecasting.CHANNEL_AGREEMENT_T
    published, row = forecasting._score_and_fall_back(tasks[0], results[0], scores=scores[0], agreement=agreement)
    assert row["method"] == METHOD and published is results[0]

    # Fewer than CHANNEL_AGREEMENT_MIN_SERIES series with the model: not judged, the series' own choice stands.
    tasks, results = channel_of(lonely[:2])
    scores = [forecasting._series_scores(task, result, None) for task, result in zip(tasks, results)]
    assert METHOD not in forecasting._channel_agreement(tasks, scores)["c"]
