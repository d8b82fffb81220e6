"""First-touch, last-touch and linear attribution on hand-worked path tables."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.attribution import HEURISTIC_MODELS, heuristics

TOL = 1e-9


def paths_frame(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["path", "total_conversions", "total_conversion_value", "total_null"])


def credit(result: pd.DataFrame, model: str, column: str = "attributed_conversions") -> dict[str, float]:
    rows = result[result["model"] == model]
    return dict(zip(rows["channel"], rows[column], strict=True))


ROWS = [
    ("a > b > a > c", 4, 40.0, 1),
    ("b", 1, 5.0, 2),
    ("c > c", 0, 0.0, 3),
    ("b > b > a", 3, 60.0, 0),
]


def test_first_and_last_touch_by_hand():
    result = heuristics(paths_frame(ROWS))
    # First touches: a (4 conv, 40), b (1, 5), c (0), b (3, 60).
    assert credit(result, "first_touch") == pytest.approx({"a": 4.0, "b": 4.0, "c": 0.0}, abs=TOL)
    assert credit(result, "first_touch", "attributed_value") == pytest.approx({"a": 40.0, "b": 65.0, "c": 0.0})
    # Last touches: c (4, 40), b (1, 5), c (0), a (3, 60).
    assert credit(result, "last_touch") == pytest.approx({"a": 3.0, "b": 1.0, "c": 4.0}, abs=TOL)
    assert credit(result, "last_touch", "attributed_value") == pytest.approx({"a": 60.0, "b": 5.0, "c": 40.0})


def test_linear_counts_every_raw_touch():
    result = heuristics(paths_frame(ROWS))
    # "a > b > a > c": a 2/4, b 1/4, c 1/4 of 4 conv -> a 2, b 1, c 1 (value 20, 10, 10).
    # "b": b 1 (5). "b > b > a": b 2/3, a 1/3 of 3 conv -> b 2, a 1 (value 40, 20).
    assert credit(result, "linear") == pytest.approx({"a": 3.0, "b": 4.0, "c": 1.0}, abs=TOL)
    assert credit(result, "linear", "attributed_value") == pytest.approx({"a": 40.0, "b": 55.0, "c": 10.0})
    assert credit(result, "linear", "share") == pytest.approx({"a": 3 / 8, "b": 4 / 8, "c": 1 / 8}, abs=TOL)


def test_linear_with_collapsed_repeats():
    result = heuristics(paths_frame(ROWS), collapse_repeats=True)
    # "b > b > a" becomes "b > a": 1.5 each; "a > b > a > c" has no consecutive repeat.
    assert credit(result, "linear") == pytest.approx({"a": 3.5, "b": 3.5, "c": 1.0}, abs=TOL)
    # First and last touch do not change.
    assert credit(result, "first_touch") == pytest.approx({"a": 4.0, "b": 4.0, "c": 0.0}, abs=TOL)


def test_layout_lists_every_channel_for_every_model():
    result = heuristics(paths_frame(ROWS))
    assert list(result.columns) == ["model", "channel", "attributed_conversions", "attributed_value", "share"]
    assert list(result["model"].unique()) == list(HEURISTIC_MODELS)
    for model in HEURISTIC_MODELS:
        assert list(result.loc[result["model"] == model, "channel"]) == ["a", "b", "c"]


def test_rejects_tables_without_conversions():
    with pytest.raises(ValueError, match="no conversions"):
        heuristics(paths_frame([("a > b", 0, 0.0, 3)]))


path_rows = st.lists(
    st.tuples(
        st.lists(st.sampled_from("abcd"), min_size=1, max_size=6).map(" > ".join),
        st.integers(0, 9),
        st.floats(0, 500),
        st.integers(0, 9),
    ).map(lambda r: (r[0], r[1], r[2] if r[1] else 0.0, r[3])),
    min_size=1,
    max_size=10,
).filter(lambda rows: sum(r[1] for r in rows) > 0)


@settings(max_examples=60, deadline=None)
@given(rows=path_rows, collapse=st.booleans())
def test_every_model_hands_out_all_conversions_and_value(rows, collapse):
    result = heuristics(paths_frame(rows), collapse_repeats=collapse)
    total_conversions = sum(r[1] for r in rows)
    total_value = sum(r[2] for r in rows)
    for model in HEURISTIC_MODELS:
        part = result[result["model"] == model]
        assert part["attributed_conversions"].sum() == pytest.approx(total_conversions, abs=TOL)
        assert part["attributed_value"].sum() == pytest.approx(total_value, rel=1e-12, abs=1e-9)
        assert part["share"].sum() == pytest.approx(1.0, abs=TOL)
        assert (part["attributed_conversions"] >= 0).all()
