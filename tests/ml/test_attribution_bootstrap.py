"""Journey bootstrap: exact multinomial resampling, interval containment, reproducibility, widths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ml.attribution.bootstrap as bootstrap
from ml.attribution import JourneyCells, heuristics, markov, parse_paths, percentile_interval, shapley


def realistic_frame(n_paths: int = 400, seed: int = 0, scale: int = 1) -> pd.DataFrame:
    """Journeys over six channels of unequal reach and lift, with skewed path counts."""
    rng = np.random.default_rng(seed)
    names = np.array(["display", "email", "paid_search", "seo", "social", "video"])
    reach = np.array([0.25, 0.1, 0.25, 0.2, 0.15, 0.05])
    lift = np.array([0.2, 0.8, 0.6, 0.4, -0.2, 0.1])
    paths, rates = [], []
    for _ in range(n_paths):
        codes = rng.choice(6, size=rng.integers(1, 6), p=reach)
        paths.append(" > ".join(names[codes]))
        rates.append(1 / (1 + np.exp(2.0 - lift[codes].sum())))
    journeys = (1 + rng.negative_binomial(1, 0.1, n_paths)) * scale
    conversions = rng.binomial(journeys, np.array(rates))
    return pd.DataFrame(
        {
            "path": paths,
            "total_conversions": conversions,
            "total_conversion_value": conversions * 30.0,
            "total_null": journeys - conversions,
        }
    )


@pytest.mark.parametrize("total", [5_000, 60_000])
def test_multinomial_draws_are_exact_multinomial(total):
    # 5,000 journeys use numpy's multinomial; 60,000 the Poisson-and-fill construction.
    rng = np.random.default_rng(1)
    weights = rng.integers(1, 40, 30).astype(float)
    counts = np.floor(weights / weights.sum() * total).astype(np.int64)
    counts[0] += total - counts.sum()
    draws = bootstrap.multinomial_draws(np.random.default_rng(2), total, counts, 6000)
    assert draws.shape == (30, 6000)
    assert (draws.sum(axis=0) == total).all()
    p = counts / total
    mean, var = draws.mean(axis=1), draws.var(axis=1)
    assert np.all(np.abs(mean - total * p) <= 5 * np.sqrt(total * p * (1 - p) / 6000))
    np.testing.assert_allclose(var, total * p * (1 - p), rtol=0.12)
    # Cells are negatively correlated, so half of them together vary like one binomial cell
    # (independent cells would give nearly twice this variance).
    half = p[:15].sum()
    assert draws[:15].sum(axis=0).var() == pytest.approx(total * half * (1 - half), rel=0.12)


def test_multinomial_redraws_keep_the_totals(monkeypatch):
    # With no shrinkage about half the Poisson totals overshoot and must be redrawn.
    monkeypatch.setattr(bootstrap, "_POISSON_SHRINK_SD", 0.0)
    counts = np.full(20, 1_000, dtype=np.int64)
    draws = bootstrap.multinomial_draws(np.random.default_rng(0), 20_000, counts, 2000)
    assert (draws.sum(axis=0) == 20_000).all()
    np.testing.assert_allclose(draws.var(axis=1), 20_000 * 0.05 * 0.95, rtol=0.15)


def test_cells_keep_each_paths_conversion_split():
    table = parse_paths(realistic_frame(50))
    cells = JourneyCells.from_table(table)
    block = next(cells.draws(n_draws=30, seed=4))
    identity = np.eye(table.n_rows)
    conversions = cells.operator(identity, "conversions") @ block
    nulls = cells.operator(identity, "nulls") @ block
    journeys = cells.operator(identity, "journeys") @ block
    value = cells.operator(identity, "value") @ block
    np.testing.assert_array_equal(journeys, conversions + nulls)
    # Paths that never converted cannot convert in a draw, and value follows conversions.
    assert (conversions[table.conversions == 0] == 0).all()
    assert (nulls[table.nulls == 0] == 0).all()
    per_conversion = np.divide(table.value, table.conversions, out=np.zeros(table.n_rows), where=table.conversions > 0)
    np.testing.assert_allclose(value, conversions * per_conversion[:, None])
    assert (journeys.sum(axis=0) == table.journeys.sum()).all()


def test_pooled_nulls_only_serve_conversion_statistics():
    table = parse_paths(realistic_frame(50))
    pooled = JourneyCells.from_table(table, pool_nulls=True)
    assert pooled.n_cells == int((table.conversions > 0).sum()) + 1
    assert pooled.counts.sum() == table.journeys.sum()
    with pytest.raises(ValueError, match="pool_nulls=False"):
        pooled.operator(np.eye(table.n_rows), "journeys")


def test_rejects_fractional_counts():
    frame = realistic_frame(20).astype({"total_null": float})
    frame.loc[3, "total_null"] = 2.5
    with pytest.raises(ValueError, match="fractional in 1 row"):
        markov(frame, n_bootstrap=10)
    assert markov(frame)["share"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "fit",
    [
        lambda f, **kw: markov(f, **kw),
        lambda f, **kw: markov(f, order=2, **kw),
        lambda f, **kw: shapley(f, **kw),
        lambda f, **kw: heuristics(f, **kw),
    ],
    ids=["markov1", "markov2", "shapley", "heuristics"],
)
def test_intervals_contain_the_estimate_and_are_reproducible(fit):
    frame = realistic_frame()
    result = fit(frame, n_bootstrap=200, seed=7)
    assert result.attrs["n_bootstrap"] == 200
    assert result.attrs["bootstrap_failed_draws"] == 0
    assert result.attrs["ci_clipped"] == 0  # no widening was needed
    assert (result["share_lower"] <= result["share"]).all()
    assert (result["share"] <= result["share_upper"]).all()
    assert (result["share_upper"] - result["share_lower"] > 0).all()
    again = fit(frame, n_bootstrap=200, seed=7)
    pd.testing.assert_frame_equal(result, again)
    other = fit(frame, n_bootstrap=200, seed=8)
    assert not np.allclose(other["share_lower"], result["share_lower"])


@pytest.mark.parametrize("fit", [markov, shapley, heuristics], ids=["markov", "shapley", "heuristics"])
def test_intervals_narrow_with_more_journeys(fit):
    small = fit(realistic_frame(scale=1), n_bootstrap=200, seed=1)
    large = fit(realistic_frame(scale=16), n_bootstrap=200, seed=1)
    width_small = (small["share_upper"] - small["share_lower"]).mean()
    width_large = (large["share_upper"] - large["share_lower"]).mean()
    # Sixteen times the journeys should roughly quarter the width.
    assert width_large < 0.4 * width_small


def test_draws_without_conversions_are_dropped_and_counted():
    frame = pd.DataFrame(
        {
            "path": ["a > b", "b", "a"],
            "total_conversions": [1, 0, 0],
            "total_conversion_value": [5.0, 0.0, 0.0],
            "total_null": [9, 20, 20],
        }
    )
    # One conversion in 50 journeys: a draw misses it with probability (49/50)^50 ~ 0.36.
    result = shapley(frame, n_bootstrap=200, seed=0)
    assert 30 < result.attrs["bootstrap_failed_draws"] < 120
    assert np.isfinite(result["share_lower"]).all()


def test_percentile_interval_widens_to_the_estimate_and_says_so():
    draws = np.column_stack([np.linspace(0.5, 0.6, 101), np.linspace(0.1, 0.3, 101)])
    interval = percentile_interval(np.array([0.4, 0.2]), draws, ci=0.9)
    assert interval.low[0] == 0.4 and interval.high[0] == pytest.approx(0.595)
    assert interval.low[1] == pytest.approx(0.11) and interval.high[1] == pytest.approx(0.29)
    assert interval.n_clipped == 1
    with_nan = np.vstack([draws, [np.nan, 0.2]])
    assert percentile_interval(np.array([0.55, 0.2]), with_nan).n_failed_draws == 1


@pytest.mark.parametrize("n_bootstrap, ci", [(-1, 0.95), (2.5, 0.95), (True, 0.95), (10, 0.0), (10, 1.0), (10, 95)])
def test_rejects_bad_bootstrap_arguments(n_bootstrap, ci):
    with pytest.raises(ValueError, match="n_bootstrap|ci must"):
        shapley(realistic_frame(10), n_bootstrap=n_bootstrap, ci=ci)
