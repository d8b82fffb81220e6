"""Markov removal-effect attribution: hand-solved absorbing chains, invariants and solver agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.attribution.markov_model as markov_model
from ml.attribution import markov, parse_paths

TOL = 1e-9


def paths_frame(rows: list[tuple[str, float, float]], value_per_conversion: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [r[0] for r in rows],
            "total_conversions": [r[1] for r in rows],
            "total_conversion_value": [r[1] * value_per_conversion for r in rows],
            "total_null": [r[2] for r in rows],
        }
    )


def by_channel(result: pd.DataFrame, column: str) -> dict[str, float]:
    return dict(zip(result["channel"], result[column], strict=True))


def assert_close(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == set(expected)
    for channel, value in expected.items():
        assert actual[channel] == pytest.approx(value, abs=TOL), channel


def test_first_order_acyclic_chain_by_hand():
    # start->a 3 (2 + 1), start->b 3; a->b 2, a->null 1; b->conv 2, b->null 3.
    # x_b = 2/5, x_a = 2/3 * 2/5 = 4/15, P = 1/2 * 4/15 + 1/2 * 2/5 = 1/3 (= 2 conv / 6 journeys).
    # Without a: P = 1/2 * 2/5 = 1/5, RE_a = 1 - (1/5)/(1/3) = 2/5. Without b: nothing converts, RE_b = 1.
    # Shares 2/7 and 5/7 of 2 conversions.
    result = markov(paths_frame([("a > b", 1, 1), ("b", 1, 2), ("a", 0, 1)]))
    assert result.attrs["conversion_probability"] == pytest.approx(1 / 3, abs=TOL)
    assert_close(by_channel(result, "removal_effect"), {"a": 2 / 5, "b": 1.0})
    assert_close(by_channel(result, "share"), {"a": 2 / 7, "b": 5 / 7})
    assert_close(by_channel(result, "attributed_conversions"), {"a": 4 / 7, "b": 10 / 7})
    assert_close(by_channel(result, "attributed_value"), {"a": 40 / 7, "b": 100 / 7})


def test_first_order_cyclic_chain_by_hand():
    # "a > b > a" converts once, "b" fails once.
    # start->a 1/2, start->b 1/2; a->b 1/2, a->conv 1/2; b->a 1/2, b->null 1/2.
    # x_a = x_b / 2 + 1/2 and x_b = x_a / 2  =>  x_a = 2/3, x_b = 1/3, P = 1/2.
    # Without a: b can only reach conversion through a, P = 0, RE_a = 1.
    # Without b: x_a = 1/2, P = 1/4, RE_b = 1/2. Shares 2/3 and 1/3.
    result = markov(paths_frame([("a > b > a", 1, 0), ("b", 0, 1)]))
    assert result.attrs["conversion_probability"] == pytest.approx(0.5, abs=TOL)
    assert_close(by_channel(result, "removal_effect"), {"a": 1.0, "b": 0.5})
    assert_close(by_channel(result, "share"), {"a": 2 / 3, "b": 1 / 3})


def test_three_channel_chain_by_hand():
    # Collapsed paths: "a > c" conv 1, "a > b" null 1, "b > c" conv 1 + null 1.
    # start->a 1/2, start->b 1/2; a->c 1/2, a->b 1/2; b->null 1/3, b->c 2/3; c->conv 2/3, c->null 1/3.
    # x_c = 2/3, x_b = 4/9, x_a = 1/2 * 2/3 + 1/2 * 4/9 = 5/9, P = 1/2 (5/9 + 4/9) = 1/2.
    # Without a: P = 1/2 * 4/9 = 2/9, RE_a = 5/9. Without b: x_a = 1/3, P = 1/6, RE_b = 2/3.
    # Without c: RE_c = 1. Sum 20/9: shares 1/4, 3/10, 9/20.
    rows = [("a > a > c", 1, 0), ("a > b", 0, 1), ("b > c", 1, 1)]
    result = markov(paths_frame(rows))
    assert_close(by_channel(result, "removal_effect"), {"a": 5 / 9, "b": 2 / 3, "c": 1.0})
    assert_close(by_channel(result, "share"), {"a": 1 / 4, "b": 3 / 10, "c": 9 / 20})
    # In a first-order chain a self-loop only rescales the state's other exits, so keeping the
    # repeat (a->a) leaves every absorption probability, and so every removal effect, unchanged.
    kept = markov(paths_frame(rows), collapse_repeats=False)
    assert_close(by_channel(kept, "removal_effect"), by_channel(result, "removal_effect"))


def test_second_order_remembers_the_previous_channel():
    # "a > c" converts, "b > c" does not.
    # Order 1: c pools both, c->conv 1/2; RE_a = RE_b = 1/2, RE_c = 1: shares 1/4, 1/4, 1/2.
    # Order 2: states (a),(b),(a,c),(b,c); (a,c)->conv 1, (b,c)->null 1, P = 1/2.
    # Without a: only the failing branch is left, RE_a = 1. Without b: P stays 1/2, RE_b = 0.
    # Without c: RE_c = 1. Shares 1/2, 0, 1/2.
    rows = [("a > c", 1, 0), ("b > c", 0, 1)]
    first = markov(paths_frame(rows), order=1)
    assert_close(by_channel(first, "share"), {"a": 1 / 4, "b": 1 / 4, "c": 1 / 2})
    second = markov(paths_frame(rows), order=2)
    assert second.attrs["n_states"] == 4
    assert_close(by_channel(second, "removal_effect"), {"a": 1.0, "b": 0.0, "c": 1.0})
    assert_close(by_channel(second, "share"), {"a": 1 / 2, "b": 0.0, "c": 1 / 2})


def test_second_order_with_and_without_collapsing_repeats():
    # "c > a > a" converts, "d > a > a" does not.
    # Collapsed: "c > a" / "d > a"; order 2 keeps (c,a)->conv and (d,a)->null apart:
    # RE_c = 1, RE_d = 0, RE_a = 1, shares c 1/2, d 0, a 1/2.
    # Kept: both paths pass (c,a)->(a,a) / (d,a)->(a,a), and (a,a) pools conv 1 / null 1, so
    # x_(a,a) = 1/2 whichever channel came first: RE_c = RE_d = 1/2, RE_a = 1, shares 1/4, 1/4, 1/2.
    rows = [("c > a > a", 1, 0), ("d > a > a", 0, 1)]
    collapsed = markov(paths_frame(rows), order=2)
    assert_close(by_channel(collapsed, "removal_effect"), {"a": 1.0, "c": 1.0, "d": 0.0})
    assert_close(by_channel(collapsed, "share"), {"a": 1 / 2, "c": 1 / 2, "d": 0.0})
    kept = markov(paths_frame(rows), order=2, collapse_repeats=False)
    assert kept.attrs["n_states"] == 5  # (c), (d), (c,a), (d,a), (a,a)
    assert_close(by_channel(kept, "removal_effect"), {"a": 1.0, "c": 0.5, "d": 0.5})
    assert_close(by_channel(kept, "share"), {"a": 1 / 2, "c": 1 / 4, "d": 1 / 4})


def test_third_order_remembers_two_steps_back():
    # "c > a > b" converts, "d > a > b" does not. Order 2 merges them in (a,b) (conv 1/2):
    # RE_c = RE_d = 1/2, RE_a = RE_b = 1, shares 1/6, 1/6, 1/3, 1/3.
    # Order 3 keeps (c,a,b)->conv and (d,a,b)->null: RE_c = 1, RE_d = 0, shares c, a, b 1/3 each.
    rows = [("c > a > b", 1, 0), ("d > a > b", 0, 1)]
    second = markov(paths_frame(rows), order=2)
    assert_close(by_channel(second, "share"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 6, "d": 1 / 6})
    third = markov(paths_frame(rows), order=3)
    assert_close(by_channel(third, "removal_effect"), {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0})
    assert_close(by_channel(third, "share"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3, "d": 0.0})


@pytest.mark.parametrize("order", [1, 2, 3])
def test_channel_only_on_journeys_without_counts_gets_zero_credit(order):
    result = markov(paths_frame([("a > b", 2, 2), ("b > a", 1, 3), ("z", 0, 0)]), order=order)
    assert list(result["channel"]) == ["a", "b", "z"]
    assert by_channel(result, "removal_effect")["z"] == 0.0
    assert by_channel(result, "share")["z"] == 0.0


def test_interchangeable_channels_get_equal_credit():
    # Every path appears with a and b swapped and the same counts, so a and b are symmetric.
    rows = [
        ("a > c", 3, 5),
        ("b > c", 3, 5),
        ("a > b > c", 2, 1),
        ("b > a > c", 2, 1),
        ("c > a", 1, 4),
        ("c > b", 1, 4),
    ]
    for order in (1, 2, 3):
        shares = by_channel(markov(paths_frame(rows), order=order), "share")
        assert shares["a"] == pytest.approx(shares["b"], abs=TOL)


def test_parsed_table_and_frame_give_the_same_result():
    frame = paths_frame([("a > b > c", 3, 4), ("b > c", 1, 6), ("c > a", 2, 2)])
    pd.testing.assert_frame_equal(markov(frame, order=2), markov(parse_paths(frame), order=2))


def test_rejects_bad_order():
    frame = paths_frame([("a", 1, 0)])
    for order in (0, 4, 1.5, True):
        with pytest.raises(ValueError, match="order must be an integer from 1 to 3"):
            markov(frame, order=order)


def test_rejects_tables_without_conversions():
    with pytest.raises(ValueError, match="no conversions"):
        markov(paths_frame([("a > b", 0, 3)]))


def random_frame(seed: int, n_paths: int, n_channels: int, max_len: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array([f"ch{i}" for i in range(n_channels)])
    paths = [" > ".join(rng.choice(names, size=rng.integers(1, max_len + 1))) for _ in range(n_paths)]
    journeys = rng.integers(1, 30, n_paths)
    conversions = rng.binomial(journeys, 0.3)
    return pd.DataFrame(
        {
            "path": paths,
            "total_conversions": conversions,
            "total_conversion_value": conversions * 12.5,
            "total_null": journeys - conversions,
        }
    )


@pytest.mark.parametrize("order", [1, 2, 3])
def test_all_solvers_agree(monkeypatch, order):
    frame = random_frame(seed=order, n_paths=300, n_channels=5)
    dense = markov(frame, order=order)
    monkeypatch.setattr(markov_model, "_DENSE_FLOP_LIMIT", 0.0)
    sparse = markov(frame, order=order)
    monkeypatch.setattr(markov_model, "_SPARSE_LU_FLOP_LIMIT", 0.0)
    # Tiny batches exercise the batching of removals.
    monkeypatch.setattr(markov_model, "_BRACKET_BATCH_ELEMENTS", 1)
    bracketed = markov(frame, order=order)
    assert [r.attrs["solver"] for r in (dense, sparse, bracketed)] == ["dense", "sparse_lu", "bracketed"]
    np.testing.assert_allclose(sparse["removal_effect"], dense["removal_effect"], atol=1e-10)
    np.testing.assert_allclose(bracketed["removal_effect"], dense["removal_effect"], atol=1e-10)


def test_bracketing_falls_back_to_the_direct_solve(monkeypatch):
    frame = random_frame(seed=4, n_paths=100, n_channels=4)
    dense = markov(frame, order=2)
    monkeypatch.setattr(markov_model, "_DENSE_FLOP_LIMIT", 0.0)
    monkeypatch.setattr(markov_model, "_SPARSE_LU_FLOP_LIMIT", 0.0)
    monkeypatch.setattr(markov_model, "_BRACKET_MAX_ITER", 2)
    fallback = markov(frame, order=2)
    np.testing.assert_allclose(fallback["removal_effect"], dense["removal_effect"], atol=1e-12)


def test_bracketed_iteration_matches_the_direct_solve():
    table = parse_paths(random_frame(seed=7, n_paths=400, n_channels=6, max_len=7)).collapse_repeats()
    chain = markov_model._build_chain(table, 3)
    counts = (
        (chain.incidence_t @ table.journeys)[None, :],
        (chain.last_state_t @ table.conversions)[None, :],
        (chain.last_state_t @ table.nulls)[None, :],
    )
    edge_prob, conv_prob = markov_model._transition_parts(chain, *counts)
    direct = markov_model._conversion_probabilities_sparse(chain, edge_prob, conv_prob)
    bracketed = markov_model._conversion_probabilities_bracketed(chain, edge_prob, conv_prob)
    np.testing.assert_allclose(bracketed, direct, rtol=1e-11, atol=0)


def test_sparse_bootstrap_path_matches_dense(monkeypatch):
    frame = random_frame(seed=11, n_paths=200, n_channels=4)
    dense = markov(frame, order=2, n_bootstrap=20, seed=3)
    monkeypatch.setattr(markov_model, "_DENSE_FLOP_LIMIT", 0.0)
    sparse = markov(frame, order=2, n_bootstrap=20, seed=3)
    for column in ("share", "share_lower", "share_upper"):
        np.testing.assert_allclose(sparse[column], dense[column], atol=1e-10)


def test_sparse_bootstrap_handles_draws_without_conversions(monkeypatch):
    monkeypatch.setattr(markov_model, "_DENSE_FLOP_LIMIT", 0.0)
    # One conversion in 50 journeys: about a third of the draws resample no conversion at all.
    frame = paths_frame([("a > b > c", 1, 9), ("b > c", 0, 20), ("c > a", 0, 20)])
    result = markov(frame, order=3, n_bootstrap=60, seed=2)
    assert 5 < result.attrs["bootstrap_failed_draws"] < 45
    assert (result["share_lower"] <= result["share"]).all() and (result["share"] <= result["share_upper"]).all()


path_rows = st.lists(
    st.tuples(
        st.lists(st.sampled_from("abcd"), min_size=1, max_size=5).map(" > ".join),
        st.integers(0, 6),
        st.integers(0, 6),
    ),
    min_size=1,
    max_size=12,
).filter(lambda rows: sum(r[1] for r in rows) > 0)


@settings(max_examples=60, deadline=None)
@given(rows=path_rows, order=st.integers(1, 3), collapse=st.booleans())
def test_invariants(rows, order, collapse):
    frame = paths_frame(rows)
    result = markov(frame, order=order, collapse_repeats=collapse)
    total_conversions = frame["total_conversions"].sum()
    journeys = total_conversions + frame["total_null"].sum()
    assert result["share"].sum() == pytest.approx(1.0, abs=TOL)
    assert result["attributed_conversions"].sum() == pytest.approx(total_conversions, abs=TOL)
    assert result["attributed_value"].sum() == pytest.approx(frame["total_conversion_value"].sum(), abs=1e-7)
    assert ((result["removal_effect"] >= 0) & (result["removal_effect"] <= 1)).all()
    # The maximum-likelihood chain reproduces the observed conversion rate exactly, at every order.
    assert result.attrs["conversion_probability"] == pytest.approx(total_conversions / journeys, abs=TOL)


@settings(max_examples=40, deadline=None)
@given(rows=path_rows)
def test_first_order_ignores_repeats(rows):
    collapsed = markov(paths_frame(rows), order=1)
    kept = markov(paths_frame(rows), order=1, collapse_repeats=False)
    np.testing.assert_allclose(kept["removal_effect"], collapsed["removal_effect"], atol=TOL)


@settings(max_examples=40, deadline=None)
@given(rows=path_rows, order=st.integers(1, 3))
def test_relabelling_channels_permutes_credit(rows, order):
    renamed = {"a": "d", "b": "c", "c": "b", "d": "a"}
    swapped = [(" > ".join(renamed[t] for t in path.split(" > ")), c, n) for path, c, n in rows]
    original = by_channel(markov(paths_frame(rows), order=order), "share")
    relabelled = by_channel(markov(paths_frame(swapped), order=order), "share")
    for channel, share in original.items():
        assert relabelled[renamed[channel]] == pytest.approx(share, abs=TOL)
