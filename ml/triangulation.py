"""Triangulation: per channel, what the ad platforms claim, what Markov attribution credits and what the
media-mix model measures as incremental, over the model's window, with the ratios between them.

Also the demo's truth check: the media-mix model's ROAS and contributions against the generator's truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A channel is "major" with at least this share of the window's spend (as in docs/mmm_accuracy.md).
MAJOR_SPEND_SHARE = 0.10
# The truth check fails only on a confidently wrong major channel: ROAS off by more than this share of
# the truth AND the truth outside the model's 95% interval (the benchmark's `off50_outside`, 0.7% of
# major channels on the demo family; being off by 25% happens to about one in nine and is reported only).
TRUTH_TOLERANCE = 0.50
NEAR_TOLERANCE = 0.25

COLUMNS = [
    "channel", "window_start_date", "window_end_date", "spend",
    "platform_conversions", "platform_revenue",
    "attributed_revenue", "attributed_revenue_lower", "attributed_revenue_upper",
    "mmm_contribution", "mmm_contribution_lower", "mmm_contribution_upper",
    "platform_overclaim", "platform_overclaim_lower", "platform_overclaim_upper",
    "attribution_vs_incrementality", "attribution_vs_incrementality_lower", "attribution_vs_incrementality_upper",
    "identifiable", "reading",
]


def window_revenue_fraction(journey_revenue: pd.DataFrame, start, end) -> float:
    """Share of converted journeys' revenue whose conversion falls in ``start``..``end`` (inclusive).

    ``journey_revenue``: ``date, revenue`` (converted journeys' revenue per conversion day). Markov credit
    is estimated on every journey (the path table is not dated), so its revenue is brought to the
    model window with this fraction; 0 when there is no journey revenue at all.
    """
    dates = pd.to_datetime(journey_revenue["date"])
    revenue = pd.to_numeric(journey_revenue["revenue"], errors="coerce").fillna(0.0)
    total = float(revenue.sum())
    if total <= 0:
        return 0.0
    inside = (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    return float(revenue[inside.to_numpy()].sum()) / total


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = numerator / denominator
    return np.where(np.isfinite(out) & (denominator > 0), out, np.nan)


def _times(value: float) -> str:
    return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


def _reading(row: pd.Series) -> str:
    """The row in words, for a marketing lead: what the platform claims and Markov credits per unit of
    incremental revenue, and why a ratio is missing or not to be trusted."""
    parts = []
    if pd.isna(row["platform_revenue"]):
        parts.append("no platform revenue in the export")
    elif np.isfinite(row["platform_overclaim"]):
        parts.append(f"platform claims {_times(row['platform_overclaim'])} the incremental revenue")
    if np.isfinite(row["attribution_vs_incrementality"]):
        parts.append(f"Markov credits {_times(row['attribution_vs_incrementality'])}")
    if not (row["mmm_contribution"] > 0):
        parts.append("the media mix measures no incremental revenue: ratios are empty")
    if not row["identifiable"]:
        reason = str(row.get("review_reason") or "").split("; ")[0]
        parts.append("not identifiable, ratios not supported by the data" + (f" ({reason})" if reason else ""))
    return "; ".join(parts)


def triangulate(
    platform: pd.DataFrame,
    markov: pd.DataFrame,
    mmm: pd.DataFrame,
    *,
    window_start,
    window_end,
    window_fraction: float,
) -> pd.DataFrame:
    """One row per channel of the media-mix model (``COLUMNS``) over its window.

    platform: ``channel, conversions, revenue`` summed over the window from the ad export (the platforms'
        own claims; NaN where the export has none for the channel).
    markov: channel_attribution rows of the Markov model: ``channel, attributed_revenue, share,
        share_lower, share_upper`` over all journeys.
    mmm: mmm_channel_roas: ``channel, spend, contribution, contribution_lower, contribution_upper,
        identifiable`` and optionally ``review_reason``.
    window_fraction: `window_revenue_fraction` of the journeys: Markov revenue and its interval are
        scaled by it (the channel mix of credit is taken as the whole history's).

    Ratio intervals: the platform claim is a measured number, so ``platform_overclaim``'s interval is the
    contribution interval turned over; ``attribution_vs_incrementality`` joins the ends of both intervals
    (no joint draws are published), which is wider than a 95% interval. Ratios are empty where the
    contribution (or its lower end, for an upper bound) is not positive.
    """
    if not 0.0 <= window_fraction <= 1.0:
        raise ValueError(f"window_fraction must be in [0, 1], got {window_fraction}")
    missing = {"channel", "contribution", "contribution_lower", "contribution_upper", "spend"} - set(mmm.columns)
    if missing:
        raise ValueError(f"mmm_channel_roas lacks columns {sorted(missing)}")
    out = mmm[["channel", "spend", "contribution", "contribution_lower", "contribution_upper"]].copy()
    out["identifiable"] = (mmm["identifiable"].fillna(True).astype(bool) if "identifiable" in mmm
                           else True)
    out["review_reason"] = mmm["review_reason"].fillna("") if "review_reason" in mmm else ""
    out = out.rename(columns={c: f"mmm_{c}" for c in ("contribution", "contribution_lower", "contribution_upper")})

    claims = platform.set_index("channel")
    out["platform_conversions"] = out["channel"].map(claims["conversions"]).astype(float)
    out["platform_revenue"] = out["channel"].map(claims["revenue"]).astype(float)

    credit = markov.set_index("channel")
    # Markov's revenue is share x total value, so the share interval carries over to revenue.
    per_share = float(credit["attributed_revenue"].sum()) / max(float(credit["share"].sum()), 1e-12)
    scale = window_fraction * per_share
    out["attributed_revenue"] = out["channel"].map(credit["attributed_revenue"]).astype(float).fillna(0.0) * window_fraction
    out["attributed_revenue_lower"] = out["channel"].map(credit["share_lower"]).astype(float).fillna(0.0) * scale
    out["attributed_revenue_upper"] = out["channel"].map(credit["share_upper"]).astype(float).fillna(0.0) * scale
    # Rounding of share * total must not put the point a hair outside its own interval.
    out["attributed_revenue_lower"] = np.minimum(out["attributed_revenue_lower"], out["attributed_revenue"])
    out["attributed_revenue_upper"] = np.maximum(out["attributed_revenue_upper"], out["attributed_revenue"])

    c, c_lo, c_hi = (out[f"mmm_contribution{s}"].to_numpy(float) for s in ("", "_lower", "_upper"))
    claim = out["platform_revenue"].to_numpy(float)
    out["platform_overclaim"] = _ratio(claim, c)
    out["platform_overclaim_lower"] = _ratio(claim, c_hi)
    out["platform_overclaim_upper"] = _ratio(claim, c_lo)
    a, a_lo, a_hi = (out[f"attributed_revenue{s}"].to_numpy(float) for s in ("", "_lower", "_upper"))
    out["attribution_vs_incrementality"] = _ratio(a, c)
    out["attribution_vs_incrementality_lower"] = _ratio(a_lo, c_hi)
    out["attribution_vs_incrementality_upper"] = _ratio(a_hi, c_lo)
    for ratio in ("platform_overclaim", "attribution_vs_incrementality"):
        # A bound without its point (no positive contribution) says nothing: leave the row empty.
        empty = np.isnan(out[ratio].to_numpy(float))
        out.loc[empty, [f"{ratio}_lower", f"{ratio}_upper"]] = np.nan

    out["window_start_date"] = pd.Timestamp(window_start).date()
    out["window_end_date"] = pd.Timestamp(window_end).date()
    out["reading"] = out.apply(_reading, axis=1)
    return out[COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The demo's truth check


@dataclass(frozen=True)
class TruthComparison:
    table: pd.DataFrame  # one row per channel: estimate, truth, error, inside, major, verdict
    passed: bool
    description: str


def compare_with_truth(mmm: pd.DataFrame, truth: pd.DataFrame) -> TruthComparison:
    """The media-mix model's ROAS and contribution per channel against the truth over the same window.

    mmm: mmm_channel_roas (``channel, spend, roas, roas_lower, roas_upper, contribution`` and optionally
        ``identifiable``). truth: ``ml.synthetic.true_roas`` over the model window (``channel, roas,
        contribution``). Fails when a major channel (``MAJOR_SPEND_SHARE`` of the window's spend) is
        confidently wrong: ROAS off by more than ``TRUTH_TOLERANCE`` with the truth outside its interval.
    """
    est = mmm.set_index("channel")
    true = truth.set_index("channel")
    channels = [c for c in est.index if c in true.index]
    if not channels:
        return TruthComparison(pd.DataFrame(), True, "the ground truth shares no channel with the model: nothing to compare")
    e, t = est.loc[channels], true.loc[channels]
    spend = e["spend"].astype(float)
    table = pd.DataFrame({
        "spend_share": spend / spend.sum() if spend.sum() > 0 else 0.0,
        "true_roas": t["roas"].astype(float),
        "roas": e["roas"].astype(float),
        "roas_lower": e["roas_lower"].astype(float),
        "roas_upper": e["roas_upper"].astype(float),
        "true_contribution": t["contribution"].astype(float),
        "contribution": e["contribution"].astype(float),
        "identifiable": e["identifiable"].fillna(True).astype(bool) if "identifiable" in e else True,
    }, index=pd.Index(channels, name="channel"))
    with np.errstate(divide="ignore", invalid="ignore"):
        table["roas_error"] = table["roas"] / table["true_roas"] - 1
        table["contribution_error"] = table["contribution"] / table["true_contribution"] - 1
    table["true_inside"] = table["true_roas"].between(table["roas_lower"], table["roas_upper"])
    table["major"] = table["spend_share"] >= MAJOR_SPEND_SHARE
    off = table["roas_error"].abs() > TRUTH_TOLERANCE
    table["confidently_wrong"] = table["major"] & off & ~table["true_inside"]
    table["verdict"] = np.select(
        [table["roas_error"].isna(), table["confidently_wrong"], table["roas_error"].abs() <= NEAR_TOLERANCE,
         table["true_inside"]],
        ["no ROAS to compare", "confidently wrong", f"within {NEAR_TOLERANCE:.0%}", "off, truth inside interval"],
        default="off, truth outside interval",
    )
    wrong = table[table["confidently_wrong"]]
    major = table[table["major"]]
    near = int((major["roas_error"].abs() <= NEAR_TOLERANCE).sum())
    errors = ", ".join(
        f"{c} {r.roas:.2f} vs true {r.true_roas:.2f} ({r.roas_error:+.0%})" for c, r in table.iterrows()
        if np.isfinite(r.roas_error)
    )
    summary = (f"{near} of {len(major)} major channels within {NEAR_TOLERANCE:.0%} of the true ROAS; "
               f"{int(major['true_inside'].sum())} of {len(major)} with the truth inside the interval. ROAS: {errors}")
    if wrong.empty:
        description = f"no major channel confidently wrong. {summary}"
    else:
        description = (f"{len(wrong)} major channel(s) confidently wrong (off by more than {TRUTH_TOLERANCE:.0%} with "
                       f"the truth outside the interval): {', '.join(wrong.index)}. {summary}")
    return TruthComparison(table.reset_index(), wrong.empty, description)
