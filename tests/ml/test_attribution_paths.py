"""Path-table parsing and validation: whitespace, column overrides, and errors a user can act on."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from ml.attribution import heuristics, markov, parse_paths, read_paths, shapley


def frame(paths, conversions=None, values=None, nulls=None) -> pd.DataFrame:
    n = len(paths)
    conversions = [1] * n if conversions is None else conversions
    return pd.DataFrame(
        {
            "path": paths,
            "total_conversions": conversions,
            "total_conversion_value": [10.0 * c for c in conversions] if values is None else values,
            "total_null": [1] * n if nulls is None else nulls,
        }
    )


def decoded(table) -> list[list[str]]:
    return [list(table.channels[table.codes[a:b]]) for a, b in zip(table.offsets[:-1], table.offsets[1:], strict=True)]


def test_whitespace_around_channels_is_ignored():
    table = parse_paths(frame(["  search >display>  email ", "email", "display >\tsearch"]))
    assert list(table.channels) == ["display", "email", "search"]
    assert decoded(table) == [["search", "display", "email"], ["email"], ["display", "search"]]
    assert table.n_rows == 3 and list(table.lengths) == [3, 1, 2]


def test_categorical_path_column_is_accepted():
    plain = frame(["a > b", "b", "a > b"])
    categorical = plain.astype({"path": "category"})
    pd.testing.assert_frame_equal(markov(categorical), markov(plain))


def test_inner_whitespace_is_part_of_the_name():
    assert list(parse_paths(frame(["paid search > paid  search"])).channels) == ["paid  search", "paid search"]


def test_collapse_repeats_merges_only_consecutive_touches():
    table = parse_paths(frame(["a > a > b > a", "b > b", "c"])).collapse_repeats()
    assert decoded(table) == [["a", "b", "a"], ["b"], ["c"]]


def test_custom_separator_and_column_names():
    exported = pd.DataFrame(
        {"journey": ["a|b", "b"], "conv": [2, 1], "revenue": [20.0, 5.0], "lost": [3, 4]}
    )
    result = shapley(exported, path_col="journey", conv_col="conv", value_col="revenue", null_col="lost", sep="|")
    assert dict(zip(result["channel"], result["attributed_conversions"], strict=True)) == {"a": 1.0, "b": 2.0}
    assert result["attributed_value"].sum() == pytest.approx(25.0)


def test_value_column_is_optional_when_declared_absent():
    exported = frame(["a > b"]).drop(columns="total_conversion_value")
    result = markov(exported, value_col=None)
    assert (result["attributed_value"] == 0).all()


def test_duplicate_paths_add_up():
    split = frame(["a > b", "a > b", "b"], conversions=[1, 2, 1], nulls=[2, 1, 5])
    merged = frame(["a > b", "b"], conversions=[3, 1], nulls=[3, 5])
    for fit in (markov, shapley, heuristics):
        pd.testing.assert_frame_equal(fit(split), fit(merged))


def test_missing_columns_are_named_with_the_override_to_use():
    with pytest.raises(ValueError, match=r"missing column\(s\) 'total_null' \(null_col\).*null_col="):
        markov(frame(["a"]).drop(columns="total_null"))


def test_negative_counts_name_the_rows():
    with pytest.raises(ValueError, match=r"'total_null' .* negative in 2 row\(s\) at 0-based positions \[1, 3\]"):
        markov(frame(["a", "b", "c", "d"], nulls=[1, -1, 0, -4]))


def test_missing_counts_name_the_rows():
    with pytest.raises(ValueError, match=r"'total_conversions' .* missing, non-numeric .* positions \[2\]"):
        shapley(frame(["a", "b", "c"], conversions=[1, 1, np.nan]))
    with pytest.raises(ValueError, match=r"non-numeric .* positions \[0\]"):
        shapley(frame(["a", "b"], conversions=["many", 1], values=[0.0, 1.0]))


def test_boolean_counts_are_rejected():
    with pytest.raises(ValueError, match="booleans"):
        heuristics(frame(["a"], nulls=[True]))


def test_blank_paths_name_the_rows():
    with pytest.raises(ValueError, match=r"blank paths in 1 row\(s\) at 0-based positions \[1\]"):
        markov(frame(["a > b", "   ", "c"]))


def test_empty_channel_names_name_the_rows():
    with pytest.raises(ValueError, match=r"empty channel name .* positions \[0, 2\].*'a >  > b'"):
        markov(frame(["a >  > b", "c", "d >"]))


def test_non_string_paths_name_the_rows():
    with pytest.raises(ValueError, match=r"path strings .* positions \[1, 2\]"):
        markov(frame(["a", None, 3]))


def test_value_without_conversions_is_rejected():
    with pytest.raises(ValueError, match=r"'total_conversion_value' is positive where 'total_conversions' is 0"):
        markov(frame(["a", "b"], conversions=[1, 0], values=[5.0, 2.0]))


def test_empty_table_and_wrong_types():
    with pytest.raises(ValueError, match="no rows"):
        markov(frame([]))
    with pytest.raises(TypeError, match="DataFrame"):
        markov([("a", 1, 0)])
    with pytest.raises(ValueError, match="sep must be"):
        markov(frame(["a"]), sep=" > ")


def test_read_paths_renames_to_the_canonical_columns():
    csv = io.StringIO("journey;conv;revenue;lost;campaign\nsearch > email;3;30.5;7;x\nemail;0;0;4;y\n")
    result = read_paths(csv, path_col="journey", conv_col="conv", value_col="revenue", null_col="lost", delimiter=";")
    assert list(result.columns) == ["path", "total_conversions", "total_conversion_value", "total_null", "campaign"]
    assert markov(result)["attributed_conversions"].sum() == pytest.approx(3.0)


def test_read_paths_validates():
    with pytest.raises(ValueError, match="missing column"):
        read_paths(io.StringIO("path,total_conversions,total_conversion_value\na,1,2\n"))
    with pytest.raises(ValueError, match=r"path strings .* positions \[1\]"):
        read_paths(io.StringIO("path,total_conversions,total_conversion_value,total_null\na,1,2,0\n,1,2,0\n"))
