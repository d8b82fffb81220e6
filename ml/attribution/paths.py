"""Journey path tables: validation, parsing and the flat integer encoding every model shares.

Input is ChannelAttribution's layout: one row per distinct path with conversion, value and null counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from os import PathLike
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PATH_COL = "path"
CONV_COL = "total_conversions"
VALUE_COL = "total_conversion_value"
NULL_COL = "total_null"
DEFAULT_SEP = ">"

_MAX_ROWS_IN_MESSAGE = 10


@dataclass(frozen=True)
class PathTable:
    """Parsed journey paths as flat integer codes (a CSR layout: row ``i`` owns
    ``codes[offsets[i]:offsets[i + 1]]``).

    ``channels`` is sorted, so channel code ``k`` is ``channels[k]`` and results come out in
    alphabetical channel order. ``conversions``, ``value`` and ``nulls`` are float64 per row.
    """

    channels: np.ndarray
    codes: np.ndarray
    offsets: np.ndarray
    conversions: np.ndarray
    value: np.ndarray
    nulls: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_channels(self) -> int:
        return int(self.channels.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def journeys(self) -> np.ndarray:
        return self.conversions + self.nulls

    @cached_property
    def token_rows(self) -> np.ndarray:
        """Row index of every token in ``codes``."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), self.lengths)

    def collapse_repeats(self) -> PathTable:
        """The same table with consecutive repeats of a channel merged (``a > a > b`` -> ``a > b``)."""
        if self.codes.size == 0:
            return self
        keep = np.zeros(self.codes.size, dtype=bool)
        # Parsing guarantees every row has at least one touch, which reduceat below relies on.
        keep[self.offsets[:-1]] = True
        keep[1:] |= self.codes[1:] != self.codes[:-1]
        kept_per_row = np.add.reduceat(keep, self.offsets[:-1], dtype=np.int64) if self.n_rows else keep[:0]
        offsets = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(np.int64)
        return PathTable(self.channels, self.codes[keep], offsets, self.conversions, self.value, self.nulls)

    def select_rows(self, mask: np.ndarray) -> PathTable:
        """The rows where ``mask`` is true, keeping the full channel list."""
        rows = np.flatnonzero(mask)
        token_mask = np.repeat(np.asarray(mask, dtype=bool), self.lengths)
        offsets = np.concatenate([[0], np.cumsum(self.lengths[rows])]).astype(np.int64)
        return PathTable(
            self.channels,
            self.codes[token_mask],
            offsets,
            self.conversions[rows],
            self.value[rows],
            self.nulls[rows],
        )


def _row_list(positions: np.ndarray) -> str:
    shown = ", ".join(str(int(p)) for p in positions[:_MAX_ROWS_IN_MESSAGE])
    more = f" and {positions.size - _MAX_ROWS_IN_MESSAGE} more" if positions.size > _MAX_ROWS_IN_MESSAGE else ""
    return f"{positions.size} row(s) at 0-based positions [{shown}]{more}"


def _count_column(df: pd.DataFrame, column: str, role: str) -> np.ndarray:
    raw = df[column]
    if pd.api.types.is_bool_dtype(raw):
        raise ValueError(f"column {column!r} ({role}) must hold counts, got booleans (dtype {raw.dtype}).")
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"column {column!r} ({role}) has missing, non-numeric or infinite values in {_row_list(bad)}; "
            "fill them with counts >= 0 or drop those rows."
        )
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise ValueError(
            f"column {column!r} ({role}) must be >= 0 but is negative in {_row_list(negative)} "
            f"(minimum {values[negative].min():g}); counts and values cannot be negative."
        )
    return values


def _tokenize(column: pd.Series, sep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split paths into sorted channel names, per-token channel codes and per-row token counts.

    Splitting and dictionary encoding run in Arrow's C++ kernels; only the distinct raw tokens (a
    few per channel, one per whitespace variant) are stripped in Python.
    """
    array = pa.Array.from_pandas(column)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    parts = pc.split_pattern(array, pattern=sep)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
    encoded = pc.dictionary_encode(pc.list_flatten(parts))
    raw_codes = encoded.indices.to_numpy(zero_copy_only=False)
    stripped = np.array([token.strip() for token in encoded.dictionary.to_pylist()], dtype=object)
    channels, unique_codes = np.unique(stripped, return_inverse=True)
    return channels.astype(object), unique_codes.astype(np.int32)[raw_codes], lengths


def parse_paths(
    paths: pd.DataFrame | PathTable,
    *,
    path_col: str = PATH_COL,
    conv_col: str = CONV_COL,
    value_col: str | None = VALUE_COL,
    null_col: str = NULL_COL,
    sep: str = DEFAULT_SEP,
) -> PathTable:
    """Validate a path table and encode it as a :class:`PathTable`.

    Parameters
    ----------
    paths
        One row per path: ``path`` (``'a > b > c'``; whitespace around channel names is ignored),
        ``total_conversions``, ``total_conversion_value`` and ``total_null`` (journeys with this
        path that did not convert), all ``>= 0``. Duplicate paths are allowed and simply add up.
        A :class:`PathTable` is returned unchanged, so callers can parse once and fit many models.
    path_col, conv_col, value_col, null_col
        Column names, for exports that name them differently. ``value_col=None`` means the table
        has no value column: values are taken as 0.
    sep
        Channel separator; channel names cannot contain it.

    Raises
    ------
    ValueError
        Missing columns, non-numeric / missing / negative counts, blank paths, empty channel
        names, or a positive value on a row without conversions; the message names the column
        and the row positions (0-based) to fix.
    """
    if isinstance(paths, PathTable):
        return paths
    if not isinstance(paths, pd.DataFrame):
        raise TypeError(f"paths must be a pandas DataFrame or a PathTable, got {type(paths).__name__}.")
    if not sep or sep.strip() != sep:
        raise ValueError(f"sep must be a non-empty string without surrounding whitespace, got {sep!r}.")
    required = {"path_col": path_col, "conv_col": conv_col, "null_col": null_col}
    if value_col is not None:
        required["value_col"] = value_col
    missing = [f"{col!r} ({arg})" for arg, col in required.items() if col not in paths.columns]
    if missing:
        raise ValueError(
            f"path table is missing column(s) {', '.join(missing)}; it has {list(map(str, paths.columns))}. "
            "Rename the columns or pass path_col=, conv_col=, value_col=, null_col= to match your export."
        )
    if len(paths) == 0:
        raise ValueError("path table has no rows; attribution needs at least one journey path.")

    conversions = _count_column(paths, conv_col, "conversions")
    nulls = _count_column(paths, null_col, "non-converting journeys")
    if value_col is None:
        value = np.zeros_like(conversions)
    else:
        value = _count_column(paths, value_col, "conversion value")
        orphan = np.flatnonzero((value > 0) & (conversions == 0))
        if orphan.size:
            raise ValueError(
                f"column {value_col!r} is positive where {conv_col!r} is 0 in {_row_list(orphan)}; "
                "conversion value must come with conversions. Fix the export or set the value to 0."
            )

    column = paths[path_col]
    # infer_dtype reports pandas' string dtype as "string" even with missing values, hence isna.
    if pd.api.types.infer_dtype(column, skipna=False) != "string" or column.isna().any():
        values = column.to_numpy(dtype=object, na_value=None)
        not_text = np.flatnonzero([not isinstance(p, str) for p in values])
        if not_text.size:
            raise ValueError(
                f"column {path_col!r} must hold path strings like 'a {sep} b'; "
                f"found missing or non-string values in {_row_list(not_text)}."
            )
        # Strings in another container (e.g. a categorical column).
        column = pd.Series(values, dtype=object)
    channels, codes, lengths = _tokenize(column, sep)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    if channels.size and channels[0] == "":
        raw = column.to_numpy(dtype=object)
        bad_rows = np.unique(np.repeat(np.arange(raw.size), lengths)[codes == 0])
        blank = np.array([raw[r].strip() == "" for r in bad_rows], dtype=bool)
        if blank.any():
            raise ValueError(
                f"column {path_col!r} has blank paths in {_row_list(bad_rows[blank])}; "
                "every journey needs at least one channel touch. Drop those rows."
            )
        raise ValueError(
            f"column {path_col!r} has an empty channel name (a doubled, leading or trailing {sep!r}) in "
            f"{_row_list(bad_rows)}, e.g. {raw[bad_rows[0]]!r}; clean the path strings."
        )

    return PathTable(
        channels=channels,
        codes=codes,
        offsets=offsets,
        conversions=conversions,
        value=value,
        nulls=nulls,
    )


def read_paths(
    path_or_buffer: str | PathLike[str] | IO[str],
    *,
    path_col: str = PATH_COL,
    conv_col: str = CONV_COL,
    value_col: str | None = VALUE_COL,
    null_col: str = NULL_COL,
    sep: str = DEFAULT_SEP,
    **read_csv_kwargs,
) -> pd.DataFrame:
    """Read a path CSV (ChannelAttribution layout) and return it validated, with canonical names.

    The returned frame has columns ``path, total_conversions, total_conversion_value, total_null``
    whatever the source names were (pass ``path_col=`` etc. to map them); other columns are kept.
    ``sep`` is the *channel* separator inside paths, as in the models; the CSV field delimiter is a
    :func:`pandas.read_csv` keyword like the other extra keywords (``delimiter=';'``).
    """
    frame = pd.read_csv(path_or_buffer, **read_csv_kwargs)
    parse_paths(frame, path_col=path_col, conv_col=conv_col, value_col=value_col, null_col=null_col, sep=sep)
    renames = {path_col: PATH_COL, conv_col: CONV_COL, null_col: NULL_COL}
    if value_col is not None:
        renames[value_col] = VALUE_COL
    frame = frame.rename(columns=renames)
    if value_col is None:
        frame[VALUE_COL] = 0.0
    return frame


def total_conversions_or_raise(table: PathTable) -> float:
    total = float(table.conversions.sum())
    if total <= 0:
        raise ValueError(
            "the path table has no conversions (total_conversions sums to 0); "
            "attribution needs at least one converting journey."
        )
    return total
