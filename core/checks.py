"""Invariant checks on model outputs, as plain functions: each returns a named CheckOutcome.

The assets turn these into Dagster asset checks; tests call them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    detail: dict = field(default_factory=dict)


def no_nan(name: str, df: pd.DataFrame, columns: Sequence[str] | None = None, where: pd.Series | None = None) -> CheckOutcome:
    """No missing value in `columns` (all numeric columns by default) on the rows selected by `where`."""
    rows = df if where is None else df[where]
    cols = list(columns) if columns is not None else list(rows.select_dtypes("number").columns)
    counts = {c: int(rows[c].isna().sum()) for c in cols if rows[c].isna().any()}
    return CheckOutcome(
        name, not counts,
        f"{sum(counts.values())} missing values in {len(counts)} column(s) over {len(rows)} rows"
        + (f": {counts}" if counts else ""),
        {"missing_by_column": counts, "rows_checked": len(rows)},
    )


def intervals_contain(
    name: str, df: pd.DataFrame, triples: Iterable[tuple[str, str, str]], where: pd.Series | None = None,
    tol: float = 1e-9,
) -> CheckOutcome:
    """lower <= estimate <= upper for every (estimate, lower, upper) column triple."""
    rows = df if where is None else df[where]
    bad: dict[str, int] = {}
    examples = []
    for est, lo, hi in triples:
        e, l, h = (rows[c].astype(float) for c in (est, lo, hi))
        mask = (l > e + tol * np.maximum(1, e.abs())) | (h < e - tol * np.maximum(1, e.abs())) | e.isna() | l.isna() | h.isna()
        if mask.any():
            bad[est] = int(mask.sum())
            examples += rows.loc[mask, [c for c in (rows.columns[0], est, lo, hi)]].head(3).to_dict("records")
    return CheckOutcome(
        name, not bad,
        f"{sum(bad.values())} estimates outside (or without) their interval" + (f": {bad}" if bad else ""),
        {"outside_by_column": bad, "examples": examples[:5]},
    )


def covers_horizon(name: str, df: pd.DataFrame, channels: Iterable[str], horizon_days: int,
                   date_col: str = "date", flag_col: str = "is_forecast") -> CheckOutcome:
    """Every channel has exactly `horizon_days` consecutive forecast days after its last actual."""
    problems = {}
    for channel in channels:
        rows = df[df["channel"] == channel]
        future = pd.to_datetime(rows.loc[rows[flag_col].astype(bool), date_col]).sort_values()
        history_end = pd.to_datetime(rows.loc[~rows[flag_col].astype(bool), date_col]).max()
        if pd.isna(history_end):
            problems[channel] = f"no history rows ({len(future)} forecast days)"
            continue
        expected = pd.date_range(history_end + pd.Timedelta(days=1), periods=horizon_days, freq="D")
        if len(future) != horizon_days or not (future.reset_index(drop=True) == pd.Series(expected)).all():
            problems[channel] = f"{len(future)} forecast days, expected {horizon_days} after {history_end:%Y-%m-%d}"
    return CheckOutcome(
        name, not problems,
        f"{len(problems)} channel(s) without a full {horizon_days}-day forecast" + (f": {problems}" if problems else ""),
        {"problems": problems},
    )


def equals(name: str, actual: float, expected: float, what: str, rel_tol: float = 1e-6) -> CheckOutcome:
    ok = bool(np.isfinite(actual)) and abs(actual - expected) <= rel_tol * max(1.0, abs(expected))
    return CheckOutcome(name, ok, f"{what}: {actual:,.4f} vs expected {expected:,.4f}",
                        {"actual": float(actual), "expected": float(expected)})


def combine(name: str, *parts: tuple[str, CheckOutcome]) -> CheckOutcome:
    """One check out of several labelled ones: passes when all pass."""
    return CheckOutcome(
        name, all(o.passed for _, o in parts), "; ".join(f"{label}: {o.description}" for label, o in parts),
        {label: o.detail for label, o in parts},
    )
