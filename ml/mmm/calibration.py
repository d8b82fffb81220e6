"""Lift-test calibration of the media-mix model: results of experiments (geo holdouts, go-dark tests,
conversion-lift studies) that measured a channel's incremental ROAS over some days, used as a prior.

A lift test answers what observational data often cannot: the level of a channel whose spend never
goes low (its ROAS rests on extrapolating the curve down to zero spend) or the split between two
channels whose budgets move together. Meridian (ROI priors from experiments) and PyMC-Marketing
(lift-test measurements added to the likelihood) calibrate their models the same way in spirit; here
each test is a Gaussian pseudo-observation of the channel's ROAS over the test's days
(:class:`ml.mmm.regression._Calibration`), so it pulls the coefficient toward the measured value in
proportion to its precision, counts in the choice of the channel's curve, and its standard error is
redrawn in every bootstrap draw, so the interval carries it.

Table (``lift_tests=`` of :func:`~ml.mmm.fitting.fit_media_mix_model`, or a CSV file read with
:func:`read_lift_tests_csv`), one row per test, columns :data:`LIFT_TEST_COLUMNS`:

- ``channel``: a spend column of the model's input;
- ``start``, ``end``: first and last day of the test (inclusive), inside the input's days, with spend;
- ``roas``: measured incremental revenue per unit of the channel's spend over those days (>= 0);
- ``roas_se``: its standard error (> 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.mmm.regression import _Calibration

__all__ = ["LIFT_TEST_COLUMNS", "read_lift_tests_csv", "validate_lift_tests"]

LIFT_TEST_COLUMNS = ["channel", "start", "end", "roas", "roas_se"]


def read_lift_tests_csv(path: str | Path) -> pd.DataFrame:
    """The lift tests in the CSV file ``path`` (header :data:`LIFT_TEST_COLUMNS`), validated for form.

    Raises ``ValueError`` naming the file, the line and the column of the first problem. Whether the
    channels and days exist in the model's input is checked when the model is fitted.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path.name}: cannot be read as CSV ({error})") from error
    return validate_lift_tests(frame, source=path.name, first_line=2)


def validate_lift_tests(frame: pd.DataFrame, *, channels: Sequence[str] | None = None,
                        dates: pd.DatetimeIndex | None = None, source: str = "lift_tests",
                        first_line: int | None = None) -> pd.DataFrame:
    """``frame`` with typed columns (``start``/``end`` days, ``roas``/``roas_se`` floats), or a
    ``ValueError`` naming ``source``, the row (or, with ``first_line``, the file line) and the column.

    With ``channels`` every test's channel must be one of them; with ``dates`` (the model input's
    days) every test must lie inside them.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{source}: expected a table with columns {LIFT_TEST_COLUMNS}, got {type(frame).__name__}")
    missing = [c for c in LIFT_TEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {LIFT_TEST_COLUMNS}")
    out = frame[LIFT_TEST_COLUMNS].reset_index(drop=True).copy()
    starts, ends, roas, se = [], [], [], []
    for i, row in out.iterrows():
        where = f"{source}: line {first_line + i}" if first_line is not None else f"{source}: row {i}"
        channel = str(row["channel"]).strip()
        if not channel:
            raise ValueError(f"{where}: column 'channel' is empty")
        if channels is not None and channel not in channels:
            raise ValueError(
                f"{where}: column 'channel': {channel!r} is not one of the model's channels {list(channels)}")
        day = {}
        for column in ("start", "end"):
            try:
                day[column] = pd.Timestamp(row[column]).normalize()
            except (ValueError, TypeError):
                day[column] = pd.NaT
            if pd.isna(day[column]):
                raise ValueError(f"{where}: column {column!r}: {row[column]!r} is not a day (YYYY-MM-DD)")
        if day["end"] < day["start"]:
            raise ValueError(f"{where}: column 'end': {day['end'].date()} is before start {day['start'].date()}")
        if dates is not None and len(dates) and (day["start"] < dates[0] or day["end"] > dates[-1]):
            raise ValueError(
                f"{where}: columns 'start'/'end': {day['start'].date()}..{day['end'].date()} is not inside the "
                f"model's data {dates[0].date()}..{dates[-1].date()}"
            )
        values = {}
        for column in ("roas", "roas_se"):
            try:
                values[column] = float(row[column])
            except (ValueError, TypeError):
                values[column] = math.nan
            if not math.isfinite(values[column]) or values[column] < 0 or (column == "roas_se" and values[column] == 0):
                bound = "> 0" if column == "roas_se" else ">= 0"
                raise ValueError(f"{where}: column {column!r}: {row[column]!r} is not a number {bound}")
        out.loc[i, "channel"] = channel
        starts.append(day["start"])
        ends.append(day["end"])
        roas.append(values["roas"])
        se.append(values["roas_se"])
    out["start"] = pd.to_datetime(pd.Series(starts, dtype="datetime64[ns]"))
    out["end"] = pd.to_datetime(pd.Series(ends, dtype="datetime64[ns]"))
    out["roas"] = np.array(roas, dtype=float)
    out["roas_se"] = np.array(se, dtype=float)
    return out


def _calibration(tests: pd.DataFrame, names: Sequence[str], dates: pd.DatetimeIndex, spend: np.ndarray,
                 candidate_features, sigma: float) -> _Calibration:
    """The lift tests as regression rows: each test's ROAS per unit of coefficient for every curve candidate.

    ``spend`` is ``(channels, days)`` over ``dates`` (the whole input); ``candidate_features(i)`` gives
    channel ``i``'s candidate features over those days ``(candidates, days)``; ``sigma`` is the daily
    noise the rows are weighed against.
    """
    index = {name: i for i, name in enumerate(names)}
    rows, per_unit = [], []
    cache: dict[int, np.ndarray] = {}
    for j, test in tests.reset_index(drop=True).iterrows():
        i = index[test["channel"]]
        days = np.flatnonzero((dates >= test["start"]) & (dates <= test["end"]))
        spent = float(spend[i, days].sum())
        if spent <= 0:
            raise ValueError(
                f"lift_tests: row {j}: channel {test['channel']!r} has no spend from {test['start'].date()} to "
                f"{test['end'].date()}; a lift test measures the ROAS of spend made on its days"
            )
        if i not in cache:
            cache[i] = candidate_features(i)
        per_unit.append(cache[i][:, days].sum(axis=1) / spent)
        rows.append((i, float(test["roas"]), float(test["roas_se"])))
    channels = np.array([r[0] for r in rows], dtype=int)
    roas = np.array([r[1] for r in rows], dtype=float)
    se = np.array([r[2] for r in rows], dtype=float)
    return _Calibration(channels=channels, per_unit=np.array(per_unit), roas=roas, se=se, weight=sigma / se)
