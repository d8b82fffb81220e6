"""Shapley attribution: hand-computed games, agreement with textbook enumeration, large channel counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.attribution import shapley

TOL = 1e-9


def paths_frame(rows: list[tuple[str, float, float]], values: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [r[0] for r in rows],
            "total_conversions": [r[1] for r in rows],
            "total_conversion_value": values if values is not None else [10.0 * r[1] for r in rows],
            "total_null": [r[2] for r in rows],
        }
    )


def by_channel(result: pd.DataFrame, column: str) -> dict[str, float]:
    return dict(zip(result["channel"], result[column], strict=True))


def enumerated_shapley(rows: list[tuple[str, float, float]]) -> dict[str, float]:
    """Textbook Shapley values of the conversion game by enumerating every coalition."""
    sets = [(frozenset(t.strip() for t in path.split(">")), conversions) for path, conversions, _ in rows]
    players = sorted(set().union(*(s for s, _ in sets)))
    n = len(players)

    def v(coalition: frozenset) -> float:
        return sum(conversions for members, conversions in sets if members <= coalition)

    values = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                base = frozenset(coalition)
                total += weight * (v(base | {player}) - v(base))
        values[player] = total
    return values


def test_two_channels_by_hand():
    # v({a}) = 2, v({b}) = 0, v({a,b}) = 6.
    # phi_a = 1/2 * (2 - 0) + 1/2 * (6 - 0) = 4, phi_b = 1/2 * (0 - 0) + 1/2 * (6 - 2) = 2.
    result = shapley(paths_frame([("a > b", 4, 1), ("a", 2, 7)]))
    assert by_channel(result, "shapley_value") == pytest.approx({"a": 4.0, "b": 2.0}, abs=TOL)
    assert by_channel(result, "share") == pytest.approx({"a": 2 / 3, "b": 1 / 3}, abs=TOL)


def test_three_channels_by_hand():
    # Channel sets: {a}: 2, {a,b}: 2, {b,c}: 3 ("b > c > b" is the set {b,c}); "c" never converts.
    # v(a)=2, v(b)=v(c)=0, v(ab)=4, v(ac)=2, v(bc)=3, v(abc)=7.
    # phi_a = 1/3*(2-0) + 1/6*(4-0) + 1/6*(2-0) + 1/3*(7-3) = 3
    # phi_b = 1/3*(0-0) + 1/6*(4-2) + 1/6*(3-0) + 1/3*(7-2) = 2.5
    # phi_c = 1/3*(0-0) + 1/6*(2-2) + 1/6*(3-0) + 1/3*(7-4) = 1.5
    rows = [("a", 2, 0), ("a > b", 2, 1), ("b > c > b", 3, 4), ("c", 0, 5)]
    values = [20.0, 40.0, 30.0, 0.0]
    result = shapley(paths_frame(rows, values))
    assert by_channel(result, "shapley_value") == pytest.approx({"a": 3.0, "b": 2.5, "c": 1.5}, abs=TOL)
    assert by_channel(result, "attributed_conversions") == pytest.approx({"a": 3.0, "b": 2.5, "c": 1.5}, abs=TOL)
    # Value game: {a}: 20, {a,b}: 40, {b,c}: 30 -> a = 20 + 20, b = 20 + 15, c = 15.
    assert by_channel(result, "attributed_value") == pytest.approx({"a": 40.0, "b": 35.0, "c": 15.0}, abs=TOL)
    assert result["shapley_value"].sum() == pytest.approx(7.0, abs=TOL)


def test_matches_enumeration_on_a_mixed_table():
    rows = [("a > b > c", 5, 2), ("b > d", 3, 1), ("a > d > a", 4, 0), ("c", 1, 9), ("d > c > b > a", 2, 2)]
    assert by_channel(shapley(paths_frame(rows)), "shapley_value") == pytest.approx(
        enumerated_shapley(rows), abs=TOL
    )


def permutation_shapley(
    sets: list[frozenset], weights: np.ndarray, players: list[str], n_perm: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values as the mean marginal contribution over random orderings (an independent
    check that works at any size), with the standard error of each mean."""
    rng = np.random.default_rng(0)
    index = {p: i for i, p in enumerate(players)}
    ranks = np.argsort(rng.random((n_perm, len(players))), axis=1)
    contributions = np.zeros((n_perm, len(players)))
    for members, weight in zip(sets, weights, strict=True):
        member_index = np.array([index[p] for p in members])
        # A journey's conversions are added by whichever of its channels joins the coalition last.
        last = member_index[np.argmax(ranks[:, member_index], axis=1)]
        contributions[np.arange(n_perm), last] += weight
    return contributions.mean(axis=0), contributions.std(axis=0) / np.sqrt(n_perm)


def test_exact_beyond_sixteen_channels():
    # 40 channels: far beyond subset enumeration (2^40 coalitions), still exact.
    rng = np.random.default_rng(5)
    names = [f"c{i:02d}" for i in range(40)]
    rows = []
    for _ in range(60):
        members = rng.choice(names, size=rng.integers(1, 9), replace=False)
        rows.append((" > ".join(members), int(rng.integers(1, 20)), int(rng.integers(0, 5))))
    result = shapley(paths_frame(rows))
    assert len(result) == len({n for r in rows for n in r[0].split(" > ")})
    assert result["shapley_value"].sum() == pytest.approx(sum(r[1] for r in rows), abs=TOL)
    sets = [frozenset(r[0].split(" > ")) for r in rows]
    weights = np.array([r[1] for r in rows], dtype=float)
    sampled, standard_error = permutation_shapley(sets, weights, list(result["channel"]), n_perm=20_000)
    assert (np.abs(result["shapley_value"].to_numpy() - sampled) <= 5 * standard_error + TOL).all()
    # And a case with a closed form: one journey touching all 40 channels, 40 conversions.
    full = shapley(paths_frame([(" > ".join(names), 40, 0), ("c00", 5, 0)]))
    expected = {name: 1.0 for name in names} | {"c00": 6.0}
    assert by_channel(full, "shapley_value") == pytest.approx(expected, abs=TOL)


def test_symmetric_channels_get_equal_credit():
    rows = [("a > c", 3, 1), ("b > c", 3, 1), ("a > b", 5, 0), ("c", 2, 2)]
    values = by_channel(shapley(paths_frame(rows)), "shapley_value")
    assert values["a"] == pytest.approx(values["b"], abs=TOL)


def test_rejects_tables_without_conversions():
    with pytest.raises(ValueError, match="no conversions"):
        shapley(paths_frame([("a > b", 0, 3)]))


path_rows = st.lists(
    st.tuples(
        st.lists(st.sampled_from("abcde"), min_size=1, max_size=6).map(" > ".join),
        st.integers(0, 9),
        st.integers(0, 9),
    ),
    min_size=1,
    max_size=10,
).filter(lambda rows: sum(r[1] for r in rows) > 0)


@settings(max_examples=60, deadline=None)
@given(rows=path_rows)
def test_equals_enumerated_shapley_and_is_efficient(rows):
    result = shapley(paths_frame(rows))
    expected = enumerated_shapley(rows)
    assert by_channel(result, "shapley_value") == pytest.approx(expected, abs=TOL)
    total = sum(r[1] for r in rows)
    assert result["shapley_value"].sum() == pytest.approx(total, abs=TOL)
    assert result["share"].sum() == pytest.approx(1.0, abs=TOL)
    assert (result["shapley_value"] >= 0).all()
