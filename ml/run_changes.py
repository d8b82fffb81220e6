"""What changed since the last run: per channel and headline number, the previous and current value, whether
the move is beyond the number's own interval, and its likely cause in words. Pure: DataFrames in and out.

The causes are read off what each run saw (core.history keeps every run's tables): the last day of actuals,
the media-mix window, earlier days whose values changed (restated history), the media-mix model's chosen
transforms and its settings, the forecast horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Headline:
    number: str
    table: str
    keys: tuple[str, ...]
    value: str
    lower: str | None
    upper: str | None
    basis: str  # "data" (attribution), "mmm" (media-mix window and transforms) or "forecast"


HEADLINES: tuple[Headline, ...] = (
    Headline("attribution_share", "channel_attribution", ("model", "channel"), "share", "share_lower", "share_upper",
             "data"),
    Headline("mmm_roas", "mmm_channel_roas", ("channel",), "roas", "roas_lower", "roas_upper", "mmm"),
    Headline("forecast_roi", "ml_roi_forecast", ("channel",), "predicted_roi", "roi_lower", "roi_upper", "forecast"),
    Headline("recommended_spend", "ml_budget_recommendation", ("channel",), "recommended_spend", None, None, "mmm"),
)
# A number without an interval (recommended spend) matters when it moves by at least this share.
RELATIVE_MOVE = 0.10
# Media-mix settings a user chooses (the rest of mmm_diagnostics is fit output).
MMM_SETTINGS = ("n_days", "n_bootstrap", "ci", "block_days", "prior_strength", "criterion", "selection",
                "hyperparameter_uncertainty", "curve_history_days")
TRANSFORM = ("adstock_decay", "saturation_half", "saturation_shape")
COLUMNS = ["number", "model", "channel", "current_run_id", "previous_run_id", "value", "value_lower", "value_upper",
           "previous_value", "previous_value_lower", "previous_value_upper", "change", "change_pct",
           "beyond_interval", "matters", "likely_cause"]
FIRST_RUN = "first run: no earlier run of this table in the history to compare with"


@dataclass
class RunInputs:
    """What one run saw; any part is None/empty when that run did not publish the table it comes from."""

    run_id: str
    data_end: pd.Timestamp | None = None  # last day of actuals (ml_roi_timeseries history rows)
    actuals: pd.DataFrame | None = None  # date, channel, roi, conversions as that run saw them
    mmm_window: tuple[pd.Timestamp, pd.Timestamp] | None = None
    mmm_settings: dict = field(default_factory=dict)
    transforms: dict[str, tuple[float, ...]] = field(default_factory=dict)  # channel -> TRANSFORM values
    forecast_horizon: int | None = None


def run_inputs(run_id: str, timeseries: pd.DataFrame | None, diagnostics: pd.DataFrame | None,
               roas: pd.DataFrame | None, forecast: pd.DataFrame | None) -> RunInputs:
    """RunInputs from that run's rows of ml_roi_timeseries, mmm_diagnostics, mmm_channel_roas, ml_roi_forecast."""
    out = RunInputs(run_id)
    if timeseries is not None and len(timeseries):
        history = timeseries[~timeseries["is_forecast"].astype(bool)].copy()
        history["date"] = pd.to_datetime(history["date"])
        out.actuals = history[["date", "channel", "roi", "conversions"]]
        out.data_end = history["date"].max() if len(history) else None
    if diagnostics is not None and len(diagnostics):
        diag = diagnostics.set_index("metric")
        if {"start_date", "end_date"} <= set(diag.index):
            out.mmm_window = (pd.Timestamp(diag.loc["start_date", "detail"]), pd.Timestamp(diag.loc["end_date", "detail"]))
        for name in MMM_SETTINGS:
            if name in diag.index:
                value = diag.loc[name, "value"]
                out.mmm_settings[name] = diag.loc[name, "detail"] if pd.isna(value) else float(value)
    if roas is not None and len(roas):
        out.transforms = {str(r["channel"]): tuple(float(r[c]) for c in TRANSFORM) for _, r in roas.iterrows()}
    if forecast is not None and len(forecast):
        out.forecast_horizon = int(forecast["horizon_days"].iloc[0])
    return out


def restated_days(previous: pd.DataFrame | None, current: pd.DataFrame | None) -> pd.DataFrame:
    """(date, channel) of days both runs saw whose ROI or conversions changed: the history was restated."""
    if previous is None or current is None or not len(previous) or not len(current):
        return pd.DataFrame(columns=["date", "channel"])
    both = previous.merge(current, on=["date", "channel"], suffixes=("_previous", "_current"))
    changed = np.zeros(len(both), dtype=bool)
    for column in ("roi", "conversions"):
        a, b = (pd.to_numeric(both[f"{column}_{s}"], errors="coerce").to_numpy(dtype=float)
                for s in ("previous", "current"))
        same = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        changed |= ~same
    return both.loc[changed, ["date", "channel"]].reset_index(drop=True)


def _days(a: pd.Timestamp, b: pd.Timestamp) -> int:
    return int((b - a) / pd.Timedelta(days=1))


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def likely_causes(headline: Headline, channel: str, current: RunInputs, previous: RunInputs,
                  restated: pd.DataFrame) -> list[str]:
    """The input changes between the two runs that can move this number, in words."""
    causes = []
    if headline.basis == "mmm" and current.mmm_window and previous.mmm_window:
        (ps, pe), (cs, ce) = previous.mmm_window, current.mmm_window
        if ce > pe:
            causes.append(f"{_days(pe, ce)} new day(s) of data: the media-mix window moved to {cs:%Y-%m-%d} – {ce:%Y-%m-%d}")
        elif (cs, ce) != (ps, pe):
            causes.append(f"the media-mix window changed from {ps:%Y-%m-%d} – {pe:%Y-%m-%d} to {cs:%Y-%m-%d} – {ce:%Y-%m-%d}")
    elif current.data_end is not None and previous.data_end is not None:
        if current.data_end > previous.data_end:
            causes.append(f"{_days(previous.data_end, current.data_end)} new day(s) of data "
                          f"({previous.data_end + pd.Timedelta(days=1):%Y-%m-%d} to {current.data_end:%Y-%m-%d})")
        elif current.data_end < previous.data_end:
            causes.append(f"the data now ends {_days(current.data_end, previous.data_end)} day(s) earlier "
                          f"({current.data_end:%Y-%m-%d})")
    if len(restated):
        own = restated[restated["channel"] == channel]
        if len(own):
            causes.append(f"restated history: {len(own)} earlier day(s) of {channel} changed "
                          f"({own['date'].min():%Y-%m-%d} to {own['date'].max():%Y-%m-%d})")
        else:
            causes.append(f"restated history on other channels ({len(restated)} earlier day(s) changed)")
    if headline.basis == "mmm":
        moved = sorted(c for c in set(current.transforms) & set(previous.transforms)
                       if not np.allclose(current.transforms[c], previous.transforms[c], rtol=1e-6))
        if channel in moved:
            before, after = previous.transforms[channel], current.transforms[channel]
            causes.append("a different chosen transform for this channel (" + ", ".join(
                f"{name} {a:.3g} → {b:.3g}" for name, a, b in zip(TRANSFORM, before, after) if not math.isclose(a, b))
                + ")")
        elif moved and headline.number == "recommended_spend":
            causes.append(f"a different chosen transform for {', '.join(moved)} (the budget moves spend between channels)")
        changed = [f"{k} {_fmt(previous.mmm_settings[k])} → {_fmt(v)}" for k, v in current.mmm_settings.items()
                   if k in previous.mmm_settings and previous.mmm_settings[k] != v]
        if changed:
            causes.append("a changed setting of the media-mix model: " + ", ".join(changed))
    if headline.basis == "forecast" and None not in (current.forecast_horizon, previous.forecast_horizon) \
            and current.forecast_horizon != previous.forecast_horizon:
        causes.append(f"a changed setting: forecast horizon {previous.forecast_horizon} → {current.forecast_horizon} days")
    return causes


def _frame_of(headline: Headline, rows: pd.DataFrame | None) -> pd.DataFrame:
    columns = [*headline.keys, "run_id", "value", "value_lower", "value_upper"]
    if rows is None or not len(rows):
        return pd.DataFrame(columns=columns)
    out = rows[[*headline.keys, "run_id"]].copy()
    out["value"] = pd.to_numeric(rows[headline.value], errors="coerce")
    out["value_lower"] = pd.to_numeric(rows[headline.lower], errors="coerce") if headline.lower else np.nan
    out["value_upper"] = pd.to_numeric(rows[headline.upper], errors="coerce") if headline.upper else np.nan
    # One row per key: a publication written by other means than the pipeline (whose checks keep keys
    # unique) may repeat a key; its last row stands, so the comparison never multiplies rows.
    return out[columns].drop_duplicates(subset=list(headline.keys), keep="last")


def compare_headline(headline: Headline, current_rows: pd.DataFrame, previous_rows: pd.DataFrame | None,
                     inputs: dict[str, RunInputs]) -> pd.DataFrame:
    """One row per key of the headline in either run (COLUMNS)."""
    cur, prev = _frame_of(headline, current_rows), _frame_of(headline, previous_rows)
    merged = cur.merge(prev, on=list(headline.keys), how="outer", suffixes=("", "_prev"))
    current_run = str(cur["run_id"].iloc[0]) if len(cur) else None
    previous_run = str(prev["run_id"].iloc[0]) if len(prev) else None
    restated = (restated_days(inputs[previous_run].actuals, inputs[current_run].actuals)
                if current_run in inputs and previous_run in inputs else pd.DataFrame(columns=["date", "channel"]))
    rows = []
    for r in merged.to_dict("records"):
        value, before = r["value"], r["value_prev"]
        change = value - before if previous_run else math.nan
        change_pct = change / abs(before) * 100 if previous_run and before and not pd.isna(before) else math.nan
        beyond = None
        if previous_run and headline.lower and not any(pd.isna(x) for x in (before, r["value_lower"], r["value_upper"])):
            # The previous value lies outside the current run's interval: the data now says it was wrong.
            beyond = bool(before < r["value_lower"] or before > r["value_upper"])
        if beyond is not None:
            matters = beyond
        else:
            matters = bool(previous_run and not pd.isna(change_pct) and abs(change_pct) >= RELATIVE_MOVE * 100)
        channel = str(r["channel"])
        if previous_run is None:
            cause = FIRST_RUN
        elif pd.isna(before) and pd.isna(value):
            cause = "no value in either run"
        elif pd.isna(before):
            cause = "new in this run (no previous value)"
        elif pd.isna(value):
            cause = "no value in this run"
        elif change == 0:
            cause = "unchanged"
        else:
            found = likely_causes(headline, channel, inputs.get(current_run, RunInputs(current_run)),
                                  inputs.get(previous_run, RunInputs(previous_run)), restated)
            cause = "; ".join(found) if found else (
                "no input change found (same data window, no restated day, same transforms and settings): the "
                "model's own randomness (bootstrap draws, fitting)")
        rows.append({
            "number": headline.number, "model": r.get("model"), "channel": channel,
            "current_run_id": current_run, "previous_run_id": previous_run,
            "value": value, "value_lower": r["value_lower"], "value_upper": r["value_upper"],
            "previous_value": before, "previous_value_lower": r["value_lower_prev"],
            "previous_value_upper": r["value_upper_prev"], "change": change, "change_pct": change_pct,
            "beyond_interval": beyond, "matters": matters, "likely_cause": cause,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def run_changes(current: dict[str, pd.DataFrame], previous: dict[str, pd.DataFrame | None],
                inputs: dict[str, RunInputs]) -> pd.DataFrame:
    """The run_changes table: every headline whose table has a current run (keyed by table name)."""
    parts = [compare_headline(h, current[h.table], previous.get(h.table), inputs)
             for h in HEADLINES if h.table in current and len(current[h.table])]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    floats = ["value", "value_lower", "value_upper", "previous_value", "previous_value_lower",
              "previous_value_upper", "change", "change_pct"]
    table[floats] = table[floats].astype("float64")
    table["beyond_interval"] = pd.array(table["beyond_interval"].tolist(), dtype="boolean")
    table["matters"] = table["matters"].astype(bool)
    table["model"] = table["model"].where(table["model"].notna(), None)
    return table
