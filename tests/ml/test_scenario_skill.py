"""The spend-scenario skill benchmark's scoring (benchmarks/bench_scenario_skill.py) on one short case: the plan moves
the prediction, nothing after the origin leaks into what is predicted, and the skill is computed as stated."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_scenario_skill import (
    HORIZON_DAYS, NAIVES, PLANS, RECENT_DAYS, origins, relative_error, score_origin, summarise,
)
from ml import synthetic
from ml.mmm import daily_frame

FIT = {"n_bootstrap": 20}


@pytest.fixture(scope="module")
def case() -> tuple[pd.DataFrame, pd.Timestamp, list[str]]:
    demo = synthetic.generate_demo_data(seed=7, end=date(2026, 6, 30), days=300)
    daily = daily_frame(demo.ground_truth_daily[["date", "channel", "spend"]],
                        demo.ground_truth_revenue_daily[["date", "revenue"]])
    # 30 days after the horizon, so the leakage test has days to change.
    origin = pd.Timestamp(daily["date"].max()) - pd.Timedelta(days=2 * HORIZON_DAYS)
    names = [c for c in daily.columns if c not in ("date", "revenue")]
    return daily, origin, names


@pytest.fixture(scope="module")
def base_row(case) -> dict:
    daily, origin, _ = case
    return score_origin(daily, origin, fit_options=FIT)


def _horizon(daily: pd.DataFrame, origin: pd.Timestamp) -> pd.Series:
    return (daily["date"] > origin) & (daily["date"] <= origin + pd.Timedelta(days=HORIZON_DAYS))


def _with_plan(daily: pd.DataFrame, origin: pd.Timestamp, names: list[str], factor: float) -> pd.DataFrame:
    """The horizon's spend set to ``factor`` times each channel's mean of the last 28 days before the origin."""
    changed = daily.copy()
    recent = daily.loc[daily["date"] <= origin, names].iloc[-RECENT_DAYS:].mean()
    changed.loc[_horizon(daily, origin), names] = (factor * recent).to_numpy()
    return changed


@pytest.mark.parametrize("factor", [1.5, 0.5])
def test_the_plan_moves_the_prediction_the_way_spend_moved(case, base_row, factor):
    daily, origin, names = case
    row = score_origin(_with_plan(daily, origin, names, factor), origin, fit_options=FIT)
    assert row["spend_change"] == pytest.approx(factor - 1)
    direction = np.sign(factor - 1)
    assert direction * (row["plan_media"] - row["last_28d_media"]) > 0
    assert direction * (row["plan"] - row["last_28d"]) > 0
    # The history is unchanged, so is everything predicted without the plan.
    for name in ("last_28d", "window", *NAIVES):
        assert row[name] == pytest.approx(base_row[name], rel=1e-12)


def test_nothing_after_the_origin_reaches_the_fit_or_the_naive_baselines(case, base_row):
    daily, origin, names = case
    after = daily["date"] > origin + pd.Timedelta(days=HORIZON_DAYS)
    changed = daily.copy()
    changed.loc[after, ["revenue", *names]] *= 3.0
    row = score_origin(changed, origin, fit_options=FIT)
    for key in ("actual", *PLANS, *NAIVES, "plan_lower", "plan_upper", "err_plan"):
        assert row[key] == pytest.approx(base_row[key], rel=1e-12), key
    # The horizon's revenue changes the actual and the errors, never a prediction.
    changed = daily.copy()
    changed.loc[_horizon(daily, origin), "revenue"] *= 1.2
    row = score_origin(changed, origin, fit_options=FIT)
    assert row["actual"] == pytest.approx(1.2 * base_row["actual"])
    for key in (*PLANS, *NAIVES, "naive_plus_change", "window_baseline"):
        assert row[key] == pytest.approx(base_row[key], rel=1e-12), key


def test_naive_baselines_and_skill_are_computed_as_stated(case, base_row):
    daily, origin, _ = case
    history = daily[daily["date"] <= origin]
    assert base_row["naive_28d_mean"] == pytest.approx(history["revenue"].iloc[-28:].mean() * HORIZON_DAYS)
    assert base_row["actual"] == pytest.approx(daily.loc[_horizon(daily, origin), "revenue"].sum())
    for name in PLANS:
        error = abs(base_row[name] - base_row["actual"]) / base_row["actual"]
        assert base_row[f"err_{name}"] == pytest.approx(error)
        for naive in NAIVES:
            assert base_row[f"skill_{name}_vs_{naive}"] == pytest.approx(1 - error / base_row[f"err_{naive}"])
        assert base_row[f"{name}_lower"] <= base_row[name] <= base_row[f"{name}_upper"]
        assert base_row[f"inside_{name}"] == (base_row[f"{name}_lower"] <= base_row["actual"] <= base_row[f"{name}_upper"])
    assert relative_error(110.0, 100.0) == pytest.approx(0.1)
    assert relative_error(90.0, 100.0) == pytest.approx(0.1)
    assert np.isnan(relative_error(1.0, 0.0))


def test_summary_pools_and_counts_rows_below_zero():
    rows = pd.DataFrame({"seed_set": "choose", "family": "demo", "err_naive_28d_mean": [0.10, 0.20],
                         "err_naive_weekday": [0.10, 0.10]})
    for name in (*PLANS, "window_baseline", "naive_plus_change"):
        rows[f"err_{name}"] = [0.05, 0.30]
        rows[f"bias_{name}"] = [0.05, -0.30]
        for naive in NAIVES:
            rows[f"skill_{name}_vs_{naive}"] = 1 - rows[f"err_{name}"] / rows[f"err_{naive}"]
    for name in PLANS:
        rows[f"inside_{name}"] = [True, False]
    plan = summarise(rows).loc[("choose", "demo", "plan")]
    assert plan["median_skill_vs_28d_mean"] == pytest.approx(np.median([0.5, -0.5]))
    assert plan["below_0_vs_28d_mean"] == pytest.approx(0.5)
    assert plan["pooled_skill_vs_28d_mean"] == pytest.approx(1 - 0.35 / 0.30)
    assert plan["pooled_skill_vs_weekday"] == pytest.approx(1 - 0.35 / 0.20)
    assert plan["inside_95pct"] == pytest.approx(0.5)


def test_origins_are_a_horizon_apart_and_end_a_horizon_before_the_data(case):
    daily, _, _ = case
    found = origins(daily, 3)
    last = pd.Timestamp(daily["date"].max())
    assert found[-1] == last - pd.Timedelta(days=HORIZON_DAYS)
    assert [b - a for a, b in zip(found, found[1:])] == [pd.Timedelta(days=30)] * 2
    with pytest.raises(ValueError, match="of the 30 days after origin"):
        score_origin(daily, last - pd.Timedelta(days=10), fit_options=FIT)
