"""The raw data contract: the three input tables, their columns and types, and the folder loader.

`read_raw_dir` validates every file first; `replace_raw_tables` then swaps all raw tables in, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import RAW_SCHEMA

if TYPE_CHECKING:  # pandas is imported lazily: Definitions load without it
    import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # date | timestamp | integer | number | text | id
    required: bool = True  # nulls are rejected at load time


@dataclass(frozen=True)
class RawTable:
    name: str
    description: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


RAW_TABLES: dict[str, RawTable] = {
    t.name: t
    for t in (
        RawTable(
            "ad_performance_daily",
            "Platform-reported delivery and results, one row per campaign and day.",
            (
                Column("date", "date"),
                Column("channel", "text"),
                Column("campaign_id", "text"),
                Column("campaign_name", "text", required=False),
                Column("impressions", "integer"),
                Column("reach", "integer"),
                Column("clicks", "integer"),
                Column("spend", "number"),
                Column("conversions", "number", required=False),
                Column("revenue", "number", required=False),
            ),
        ),
        RawTable(
            "touchpoints",
            "Tracked marketing touches of identified users (UTC timestamps).",
            (
                Column("touchpoint_id", "id"),
                Column("user_id", "id"),
                Column("occurred_at", "timestamp"),
                Column("channel", "text"),
                Column("campaign_id", "text", required=False),
                Column("interaction", "text"),
            ),
        ),
        RawTable(
            "conversions",
            "The business's own sales, organic ones included (UTC timestamps).",
            (
                Column("conversion_id", "id"),
                Column("user_id", "id"),
                Column("occurred_at", "timestamp"),
                Column("revenue", "number"),
            ),
        ),
    )
}


@dataclass
class RawDataError(ValueError):
    """Every problem found in a folder of raw files, each naming the file, column and bad row count."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "raw data rejected, nothing was loaded:\n" + "\n".join(f"  - {p}" for p in self.problems)


def _bad_rows_message(source: str, column: str, mask: pd.Series, values: pd.Series, what: str) -> str:
    bad = int(mask.sum())
    first = mask.to_numpy().nonzero()[0][:3]
    examples = ", ".join(f"row {i + 1}: {values.iloc[i]!r}" for i in first)
    return f"{source}: column {column!r}: {bad} row(s) {what} ({examples})"


def _coerce_column(series: pd.Series, col: Column, source: str, problems: list[str]) -> pd.Series:
    import pandas as pd

    missing = series.isna()
    if col.kind == "date":
        out = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        out = out.dt.tz_localize(None).dt.normalize()
        what = "are not dates (YYYY-MM-DD)"
    elif col.kind == "timestamp":
        out = pd.to_datetime(series, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        what = "are not timestamps (ISO 8601, UTC assumed without offset)"
    elif col.kind in ("integer", "number"):
        out = pd.to_numeric(series, errors="coerce")
        what = "are not numbers"
        if col.kind == "integer":
            fractional = out.notna() & (out != out.round())
            if fractional.any():
                problems.append(_bad_rows_message(source, col.name, fractional, series, "are not whole numbers"))
            if not out.isna().any():
                out = out.astype("int64")
        else:
            out = out.astype("float64")
    elif col.kind == "id":
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() == series.notna().sum() and (numeric.dropna() == numeric.dropna().round()).all():
            out = numeric.astype("int64") if not numeric.isna().any() else numeric
        else:
            out = series.astype("string")
        what = "are not identifiers"
    else:
        out = series.astype("string")
        what = "are not text"
    bad = out.isna() & ~missing
    if bad.any():
        problems.append(_bad_rows_message(source, col.name, bad, series, what))
    if col.required and missing.any():
        problems.append(_bad_rows_message(source, col.name, missing, series, "are empty (required column)"))
    return out


def validate_raw_frame(table: str, df: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check one raw table against the contract and return it typed, with only the contract columns.

    Raises `RawDataError` naming the file (`source`), column and number of bad rows.
    """
    import pandas as pd

    contract = RAW_TABLES[table]
    source = source or table
    problems: list[str] = []
    missing_cols = [c for c in contract.column_names if c not in df.columns]
    if missing_cols:
        raise RawDataError(
            [f"{source}: missing column(s) {missing_cols}; expected {contract.column_names}, found {list(df.columns)}"]
        )
    if df.empty:
        raise RawDataError([f"{source}: has no rows"])
    typed = pd.DataFrame(
        {c.name: _coerce_column(df[c.name].reset_index(drop=True), c, source, problems) for c in contract.columns}
    )
    if problems:
        raise RawDataError(problems)
    return typed


def _find_file(folder: Path, table: str) -> Path | None:
    for suffix in (".parquet", ".csv", ".csv.gz"):
        candidate = folder / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    return None


def read_raw_dir(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read and validate `<table>.csv|.csv.gz|.parquet` for every raw table in `folder`."""
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise RawDataError([f"{folder}: is not a folder"])
    frames: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for table in RAW_TABLES:
        path = _find_file(folder, table)
        if path is None:
            problems.append(f"{folder}: no {table}.csv or {table}.parquet")
            continue
        try:
            df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, low_memory=False)
            frames[table] = validate_raw_frame(table, df, source=path.name)
        except RawDataError as exc:
            problems.extend(exc.problems)
        except Exception as exc:  # unreadable file: report it with the others
            problems.append(f"{path.name}: cannot be read: {exc}")
    if problems:
        raise RawDataError(problems)
    return frames


def replace_raw_tables(
    warehouse,
    frames: Mapping[str, pd.DataFrame],
    extra: Mapping[str, pd.DataFrame] | None = None,
    drop_ground_truth: bool = False,
):
    """Validate and swap in all raw tables (plus `extra` ones, e.g. ground truth) in one transaction.

    `drop_ground_truth` removes demo `ground_truth_*` tables in the same transaction, so a user's
    own data is never reported against the demo's truth.
    """
    missing = [name for name in RAW_TABLES if name not in frames]
    if missing:
        raise RawDataError([f"raw tables {missing} are missing: all of {list(RAW_TABLES)} are replaced together"])
    typed = {name: validate_raw_frame(name, df) for name, df in frames.items()}
    typed.update(dict(extra or {}))
    drop = []
    if drop_ground_truth:
        existing = warehouse.row_counts(RAW_SCHEMA)
        drop = [name for name in existing if name.startswith("ground_truth_")]
    return warehouse.publish_tables(typed, schema=RAW_SCHEMA, stamp=False, drop=drop)
