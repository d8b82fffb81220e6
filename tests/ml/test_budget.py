"""Tests for ml.budget: optimality, constraints, fallbacks, error messages and the output table."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.budget import TABLE_COLUMNS, recommend_budget
from ml.mmm import ChannelResponse, ResponseModel, fit_media_mix_model


def make_model(
    curves: dict[str, tuple[float, float, float, float]], n_draws: int = 40, seed: int = 0
) -> ResponseModel:
    """A model with known Hill curves: {channel: (coefficient, half, shape, current daily spend)}.

    Draws scatter the coefficient by 10% so interval columns have something to show.
    """
    rng = np.random.default_rng(seed)
    responses = {
        name: ChannelResponse(
            channel=name,
            coefficient=beta,
            adstock_decay=0.0,
            saturation_half=half,
            saturation_shape=shape,
            current_daily_spend=spend,
            coefficient_draws=beta * rng.lognormal(0.0, 0.1, n_draws),
            half_draws=np.full(n_draws, half),
            shape_draws=np.full(n_draws, shape),
            decay_draws=np.zeros(n_draws),
        )
        for name, (beta, half, shape, spend) in curves.items()
    }
    return ResponseModel(responses=responses, baseline_daily=1000.0, ci=0.9)


def rows(rec) -> pd.DataFrame:
    return rec.table[rec.table["channel"] != "TOTAL"].set_index("channel")


def value(model: ResponseModel, spend: pd.Series) -> float:
    return sum(float(model.channel_response(c, spend[c])) for c in model.channel_names)


def test_two_concave_channels_match_the_closed_form_optimum():
    b1, k1, b2, k2 = 3000.0, 400.0, 1500.0, 150.0
    model = make_model({"a": (b1, k1, 1.0, 300.0), "b": (b2, k2, 1.0, 200.0)})
    budget = 500.0
    rec = recommend_budget(model, bounds={"a": (0, None), "b": (0, None)})
    # Equal marginal ROAS b*k/(x+k)^2 on both channels with x_a + x_b = budget.
    ra, rb = math.sqrt(b1 * k1), math.sqrt(b2 * k2)
    expected_a = (ra * (budget + k2) - rb * k1) / (ra + rb)
    got = rows(rec)["recommended_spend"]
    assert got["a"] == pytest.approx(expected_a, rel=1e-8)
    assert got["b"] == pytest.approx(budget - expected_a, rel=1e-8)
    assert not rec.used_fallback
    assert rec.portfolio_marginal_roas == pytest.approx(b1 * k1 / (expected_a + k1) ** 2, rel=1e-6)


CURVES = st.lists(
    st.tuples(st.floats(100, 5000), st.floats(50, 800), st.sampled_from([1.0, 1.5, 2.0]), st.floats(50, 600)),
    min_size=2, max_size=3,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=CURVES, max_change=st.floats(0.1, 0.9), budget_factor=st.floats(0.8, 1.2))
def test_optimum_is_feasible_and_balanced(params, max_change, budget_factor):
    model = make_model({f"c{i}": p for i, p in enumerate(params)})
    current = model.current_daily_spend
    budget = float(current.sum() * budget_factor)
    lo, hi = current * (1 - max_change), current * (1 + max_change)
    if not lo.sum() <= budget <= hi.sum():
        with pytest.raises(ValueError, match="sum of (lower|upper) bounds"):
            recommend_budget(model, total_budget=budget, max_change=max_change)
        return
    rec = recommend_budget(model, total_budget=budget, max_change=max_change)
    got = rows(rec)["recommended_spend"]
    assert got.sum() == pytest.approx(budget, rel=1e-9)
    assert (got >= lo - 1e-7).all() and (got <= hi + 1e-7).all()
    marginal = rows(rec)["marginal_roas_recommended"]
    free = (got > lo + 1e-6) & (got < hi - 1e-6)
    lam = rec.portfolio_marginal_roas
    tolerance = 1e-4 * max(1.0, lam)
    if not rec.used_fallback and free.any():
        # KKT: free channels share one marginal ROAS; capped ones earn at least it, floored at most.
        assert (marginal[free] - lam).abs().max() <= tolerance
        assert (marginal[(got >= hi - 1e-6) & ~free] >= lam - tolerance).all()
        assert (marginal[(got <= lo + 1e-6) & ~free] <= lam + tolerance).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=CURVES, max_change=st.floats(0.0, 0.9))
def test_never_predicts_less_than_the_current_allocation(params, max_change):
    model = make_model({f"c{i}": p for i, p in enumerate(params)})
    rec = recommend_budget(model, max_change=max_change)
    current = model.current_daily_spend
    assert value(model, rows(rec)["recommended_spend"]) >= value(model, current) - 1e-9
    assert rec.recommended_revenue >= rec.current_revenue - 1e-9
    assert rec.lift >= -1e-9
    if rec.used_fallback:
        np.testing.assert_allclose(rows(rec)["recommended_spend"], current)


def test_concave_optimum_is_global_on_a_dense_grid():
    model = make_model({
        "a": (2000.0, 300.0, 1.0, 250.0), "b": (900.0, 100.0, 1.0, 150.0), "c": (400.0, 80.0, 1.0, 100.0),
    })
    rec = recommend_budget(model, max_change=0.6)
    best = value(model, rows(rec)["recommended_spend"])
    current = model.current_daily_spend
    lo, hi = current * 0.4, current * 1.6
    grid_a = np.linspace(lo["a"], hi["a"], 301)
    grid_b = np.linspace(lo["b"], hi["b"], 301)
    xa, xb = np.meshgrid(grid_a, grid_b)
    xc = current.sum() - xa - xb
    ok = (xc >= lo["c"]) & (xc <= hi["c"])
    total = sum(model.channel_response(c, x) for c, x in (("a", xa), ("b", xb), ("c", np.clip(xc, 0, None))))
    assert best >= total[ok].max() - 1e-6


def test_locked_channels_keep_their_spend_and_bounds_override_the_default():
    model = make_model({
        "a": (3000.0, 200.0, 1.0, 300.0), "b": (500.0, 400.0, 1.0, 300.0), "c": (2000.0, 300.0, 1.0, 100.0),
    })
    rec = recommend_budget(model, locked=["b"], bounds={"c": (50.0, 400.0)})
    got = rows(rec)
    assert got.loc["b", "recommended_spend"] == 300.0
    assert got.loc["b", "reason"] == "locked at current spend"
    assert 50.0 <= got.loc["c", "recommended_spend"] <= 400.0
    assert got.loc["c", "recommended_spend"] > 130.0  # beyond the default +30% cap
    assert got.loc["a", "recommended_spend"] <= 390.0 + 1e-9
    assert got["recommended_spend"].sum() == pytest.approx(700.0)


def test_custom_total_budget_is_spent_exactly_and_earns_more_when_larger():
    model = make_model({"a": (3000.0, 200.0, 1.0, 300.0), "b": (1000.0, 300.0, 1.5, 200.0)})
    small = recommend_budget(model, total_budget=400.0, max_change=0.5)
    large = recommend_budget(model, total_budget=650.0, max_change=0.5)
    assert rows(small)["recommended_spend"].sum() == pytest.approx(400.0)
    assert rows(large)["recommended_spend"].sum() == pytest.approx(650.0)
    assert large.recommended_revenue > small.recommended_revenue
    assert small.total_budget == 400.0
    assert "current mix scaled to the budget" in small.reason


def test_falls_back_to_the_current_allocation_when_it_is_already_optimal():
    model = make_model({"a": (1000.0, 200.0, 1.0, 150.0), "b": (1000.0, 200.0, 1.0, 150.0)})
    rec = recommend_budget(model)
    got = rows(rec)
    assert rec.used_fallback
    np.testing.assert_allclose(got["recommended_spend"], [150.0, 150.0])
    assert rec.lift == 0.0
    assert "keep the current allocation" in rec.reason
    assert got["reason"].str.startswith("keep current spend").all()


def test_table_has_channel_rows_a_total_row_and_intervals_around_the_point():
    model = make_model({"a": (3000.0, 200.0, 1.0, 300.0), "b": (500.0, 400.0, 1.0, 300.0)})
    rec = recommend_budget(model)
    table = rec.table
    assert list(table.columns) == TABLE_COLUMNS
    assert table["channel"].tolist() == ["a", "b", "TOTAL"]
    channels, total = rows(rec), table.set_index("channel").loc["TOTAL"]
    for column in ("current_spend", "recommended_spend", "current_expected_revenue", "recommended_expected_revenue"):
        assert total[column] == pytest.approx(channels[column].sum())
    assert (table["recommended_expected_revenue_lower"] <= table["recommended_expected_revenue"]).all()
    assert (table["recommended_expected_revenue"] <= table["recommended_expected_revenue_upper"]).all()
    assert rec.lift_lower <= rec.lift <= rec.lift_upper
    assert rec.recommended_revenue == pytest.approx(1000.0 + total["recommended_expected_revenue"])
    # a earns more at the margin: it goes to the default cap, b to the floor.
    assert channels.loc["a", "change_pct"] == pytest.approx(30.0)
    assert channels.loc["b", "change_pct"] == pytest.approx(-30.0)
    assert "increase to the default cap (+30%)" in channels.loc["a", "reason"]
    assert "decrease to the default floor (-30%)" in channels.loc["b", "reason"]
    assert "above the portfolio's" in channels.loc["a", "reason"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_budget": 300.0, "locked": ["a", "b"]},
         r"sum of lower bounds 500\.00 > budget 300\.00: channels a >= 300\.00 \(locked\), b >= 200\.00 \(locked\)"),
        ({"total_budget": 900.0},
         r"sum of upper bounds 650\.00 < budget 900\.00: channels a <= 390\.00 \(default\), b <= 260\.00 \(default\)"),
        ({"bounds": {"a": (400.0, 100.0)}}, r"bounds\['a'\].*lower bound 400\.00 exceeds upper bound 100\.00"),
        ({"bounds": {"a": (-1.0, 100.0)}}, r"lower bound must be a number >= 0"),
        ({"bounds": {"tv": (0.0, 1.0)}}, r"unknown channel\(s\) \['tv'\]"),
        ({"locked": ["a"], "bounds": {"a": (0.0, 1.0)}}, r"\['a'\] are both locked and given bounds"),
        ({"total_budget": -5.0}, r"total_budget must be a finite number >= 0"),
        ({"max_change": -0.1}, r"max_change must be >= 0"),
    ],
)
def test_infeasible_or_invalid_constraints_name_what_conflicts(kwargs, message):
    model = make_model({"a": (3000.0, 200.0, 1.0, 300.0), "b": (500.0, 400.0, 1.0, 200.0)})
    with pytest.raises(ValueError, match=message):
        recommend_budget(model, **kwargs)


def test_s_shaped_channel_below_its_threshold_is_handled_without_losing_revenue():
    # "b" is strongly S-shaped and starts far below its half point, where extra spend barely pays
    # at first; the optimizer must not be fooled by its small current marginal ROAS either way.
    model = make_model({"a": (1000.0, 300.0, 1.0, 200.0), "b": (5000.0, 400.0, 3.0, 100.0)})
    rec = recommend_budget(model, bounds={"a": (0.0, None), "b": (0.0, None)})
    got = rows(rec)["recommended_spend"]
    budget = model.current_daily_spend.sum()
    grid = np.linspace(0.0, budget, 20001)
    best_on_grid = np.max(model.channel_response("a", budget - grid) + model.channel_response("b", grid))
    assert value(model, got) >= best_on_grid - 1e-6
    assert got.sum() == pytest.approx(budget)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(4)
    days = 200
    spend_a = 200 * np.exp(np.cumsum(rng.normal(0, 0.05, days)) * 0.5) * rng.lognormal(0, 0.2, days)
    spend_b = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, days)) * 0.5) * rng.lognormal(0, 0.2, days)
    revenue = 5000 + 3.0 * spend_a * 300 / (spend_a + 300) * 1.5 + 1.0 * spend_b + rng.normal(0, 30, days)
    daily = pd.DataFrame({
        "date": pd.date_range("2024-01-01", periods=days), "revenue": revenue, "a": spend_a, "b": spend_b,
    })
    return fit_media_mix_model(
        daily, n_bootstrap=20, decay_grid=(0.0, 0.3), half_grid=(0.5, 1.0, 2.0), shape_grid=(1.0, 2.0)
    )


def test_recommendation_from_a_fitted_model(fitted):
    rec = recommend_budget(fitted)
    got = rows(rec)
    assert got["recommended_spend"].sum() == pytest.approx(fitted.current_daily_spend.sum())
    assert rec.recommended_revenue >= rec.current_revenue - 1e-9
    assert rec.table["recommended_expected_revenue_lower"].le(rec.table["recommended_expected_revenue"]).all()


def assert_same_recommendation(got, expected) -> None:
    pd.testing.assert_frame_equal(got.table, expected.table, check_exact=True)
    for field in dataclasses.fields(expected):
        if field.name != "table":
            assert getattr(got, field.name) == getattr(expected, field.name), field.name


BUDGET_SETTINGS = [
    {},
    {"max_change": 0.5, "ci": 0.8},
    {"locked": ["b"], "max_change": 0.8},
    {"bounds": {"a": (0.0, None), "b": (0.0, None)}},
]


@pytest.mark.parametrize("settings", BUDGET_SETTINGS)
def test_published_response_parameters_give_the_same_recommendation_as_the_fit(fitted, settings):
    published = ResponseModel.from_parameters(fitted.response_parameters())
    assert_same_recommendation(recommend_budget(published, **settings), recommend_budget(fitted, **settings))
    # The bootstrap redrew the curves, so the intervals compared above rest on more than the coefficient.
    assert fitted.response_parameters().groupby("channel")["saturation_half"].nunique().max() > 1


def test_response_parameters_survive_a_duckdb_round_trip(fitted, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    path = str(tmp_path / "warehouse.duckdb")
    frame = fitted.response_parameters().assign(run_id="run-1", generated_at=pd.Timestamp("2025-01-01"))
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA predictions")
        con.register("frame", frame)
        con.execute("CREATE TABLE predictions.mmm_response_parameters AS SELECT * FROM frame")
    with duckdb.connect(path, read_only=True) as con:
        stored = con.execute("SELECT * FROM predictions.mmm_response_parameters").df()
    published = ResponseModel.from_parameters(stored)
    for settings in BUDGET_SETTINGS:
        assert_same_recommendation(recommend_budget(published, **settings), recommend_budget(fitted, **settings))
