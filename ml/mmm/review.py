"""Review gate of the media-mix model: per channel, whether the data can answer for it at all
(spend variation and floor, collinearity, effective sample, ROAS plausibility, the fit's out-of-sample error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.mmm.transforms import adstock

__all__ = [
    "PUBLISHED_REVIEW_COLUMNS", "REVIEW_COLUMNS", "ReviewThresholds", "review_channels", "review_diagnostics",
    "reviewed_channels",
]

REVIEW_COLUMNS = [
    "channel", "spend_share", "spend_variation", "spend_floor", "spend_days", "max_correlation", "correlated_with",
    "variance_inflation", "roas", "roas_relative_width", "out_of_sample_error", "identifiable", "review_reason",
]
# The verdict that travels with each channel's ROAS (the published channel table); the figures behind it
# go to the diagnostics (:func:`review_diagnostics`).
PUBLISHED_REVIEW_COLUMNS = ["identifiable", "review_reason"]
# Per-channel figures as diagnostics rows: metric stem and what it means.
_FIGURES = {
    "spend_share": "share of the window's spend",
    "spend_variation": "coefficient of variation of daily spend in the window",
    "spend_floor": "10th percentile of daily spend / its mean (high: never dark or low)",
    "spend_days": "days with spend in the window",
    "max_correlation": "largest correlation of its adstocked spend with another channel's",
    "variance_inflation": "variance inflation factor of its adstocked spend (inf: constant or collinear)",
    "roas_relative_width": "(roas_upper - roas_lower) / roas",
}


@dataclass(frozen=True)
class ReviewThresholds:
    """Where a channel stops being identifiable. Defaults follow common MMM review practice
    (Meridian's review checks, the rule-of-thumb VIF of 10); every one is a setting, not a fact."""

    min_spend_variation: float = 0.10    # coefficient of variation of daily spend in the window
    # 10th percentile of daily spend / mean. Above it the channel is never dark or low, so its ROAS
    # (a level) rests on extrapolating the curve from the observed spend down to zero; 0.3 was chosen
    # on benchmark seeds 100-109, see docs/mmm_accuracy.md.
    max_spend_floor: float = 0.30
    max_correlation: float = 0.80        # with another channel's adstocked spend
    max_variance_inflation: float = 10.0
    min_spend_days: int = 28             # days with spend in the window
    roas_ceiling: float = 20.0           # a ROAS above this is implausible for paid media
    max_relative_width: float = 2.0      # (roas_upper - roas_lower) / roas
    max_out_of_sample_error: float = 0.20  # the fit's CV RMSE / mean revenue
    min_spend_share: float = 0.0         # channels below this share are reviewed but never flagged for ROAS


def review_channels(result, daily: pd.DataFrame, thresholds: ReviewThresholds | None = None) -> pd.DataFrame:
    """One row per channel of ``result`` (a :class:`~ml.mmm.result.MediaMixResult`), columns :data:`REVIEW_COLUMNS`.

    ``daily`` is the wide frame the model was fitted on (``date, revenue, <channel>...``; the days
    before the window feed the adstock). Each channel's spend is adstocked with its own chosen kernel
    before correlations and variance inflation factors are taken over the window, because that is
    what the regression sees. ``identifiable`` is false when any check fails; ``review_reason``
    names every failed check with its figure (empty when the channel passes).
    """
    limits = thresholds or ReviewThresholds()
    diag = result.diagnostics
    names = list(result.channel_names)
    frame = daily.assign(date=pd.to_datetime(daily["date"])).sort_values("date")
    start, end = pd.Timestamp(diag["start_date"]), pd.Timestamp(diag["end_date"])
    in_window = ((frame["date"] >= start) & (frame["date"] <= end)).to_numpy()
    upto = (frame["date"] <= end).to_numpy()
    spend = frame.loc[upto, names].to_numpy(dtype=float).T
    window_spend = spend[:, in_window[upto]]
    hyper = diag.get("hyperparameters", {})
    adstocked = np.vstack([
        adstock(spend[i], float(hyper.get(c, {}).get("adstock_decay", 0.0)), int(hyper.get(c, {}).get("adstock_delay", 0)))
        for i, c in enumerate(names)
    ])[:, in_window[upto]]

    mean = window_spend.mean(axis=1)
    variation = np.where(mean > 0, window_spend.std(axis=1) / np.where(mean > 0, mean, 1.0), 0.0)
    spend_days = (window_spend > 0).sum(axis=1)
    floor = spend_floor(window_spend)
    share = window_spend.sum(axis=1) / max(window_spend.sum(), 1e-300)
    # Collinear on the spend itself or on the adstocked spend: two channels whose spend moves together
    # cannot be told apart even when the search gave them different carryover (which then decorrelates
    # their adstocked spend without any information in the data to separate them).
    corr_adstocked, vif_adstocked = _collinearity(adstocked)
    corr_spend, vif_spend = _collinearity(window_spend)
    corr, vif = np.fmax(corr_adstocked, corr_spend), np.fmax(vif_adstocked, vif_spend)
    revenue = result.decomposition["revenue"].to_numpy(dtype=float)
    oos = diag.get("cv_rmse", math.nan) / abs(revenue.mean()) if revenue.size and revenue.mean() else math.nan
    table = result.channels.set_index("channel")
    # A lift test measured these channels' ROAS: the checks on what the spend alone can identify (its
    # variation, floor and collinearity) are answered by the experiment; the others still apply.
    calibrated = set(diag.get("lift_test_channels", []))

    rows = []
    for i, c in enumerate(names):
        # A constant channel has no correlation (NaN); it must not hide the others' from argmax.
        others = np.where((np.arange(len(names)) == i) | np.isnan(corr[i]), -np.inf, corr[i])
        j = int(np.argmax(others)) if len(names) > 1 else i
        max_corr = float(others[j]) if len(names) > 1 and np.isfinite(others[j]) else math.nan
        roas, lower, upper = (float(table.loc[c, k]) for k in ("roas", "roas_lower", "roas_upper"))
        width = (upper - lower) / roas if roas > 0 else math.inf
        reasons = []
        if spend_days[i] == 0:
            reasons.append("no spend in the window")
        else:
            if variation[i] < limits.min_spend_variation and c not in calibrated:
                reasons.append(
                    f"spend hardly varies (coefficient of variation {variation[i]:.2f} < {limits.min_spend_variation:g})"
                )
            if floor[i] > limits.max_spend_floor and c not in calibrated:
                reasons.append(
                    f"spend is never low (10th percentile {floor[i]:.0%} of the mean > {limits.max_spend_floor:.0%}): "
                    "ROAS rests on extrapolating the curve to zero spend"
                )
            if spend_days[i] < limits.min_spend_days:
                reasons.append(f"only {spend_days[i]} days with spend (< {limits.min_spend_days})")
            if np.isfinite(max_corr) and max_corr >= limits.max_correlation and c not in calibrated:
                reasons.append(f"spend moves with {names[j]} (correlation {max_corr:.2f})")
            if vif[i] > limits.max_variance_inflation and c not in calibrated:
                reasons.append(f"variance inflation {vif[i]:.1f} > {limits.max_variance_inflation:g}")
            if share[i] >= limits.min_spend_share:
                if roas > limits.roas_ceiling:
                    reasons.append(f"ROAS {roas:.1f} above the plausible ceiling {limits.roas_ceiling:g}")
                if roas <= 0:
                    reasons.append("estimated ROAS is 0: the data do not separate the channel from the baseline")
                elif width > limits.max_relative_width:
                    reasons.append(
                        f"95% interval {lower:.2f}..{upper:.2f} is {width:.1f}x the estimate (> {limits.max_relative_width:g}x)"
                    )
        if np.isfinite(oos) and oos > limits.max_out_of_sample_error:
            reasons.append(f"the fit's out-of-sample error is {oos:.0%} of revenue (> {limits.max_out_of_sample_error:.0%})")
        rows.append({
            "channel": c, "spend_share": float(share[i]), "spend_variation": float(variation[i]),
            "spend_floor": float(floor[i]),
            "spend_days": int(spend_days[i]), "max_correlation": max_corr,
            "correlated_with": names[j] if np.isfinite(max_corr) else "", "variance_inflation": float(vif[i]),
            "roas": roas, "roas_relative_width": float(width), "out_of_sample_error": float(oos),
            "identifiable": not reasons, "review_reason": "; ".join(reasons),
        })
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS)


def _collinearity(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation matrix of the rows of ``x`` and each row's variance inflation factor (inf when constant
    or an exact combination of the others)."""
    n_channels = x.shape[0]
    sd = x.std(axis=1)
    live = sd > 1e-12 * np.maximum(np.abs(x).mean(axis=1), 1e-300)
    corr = np.full((n_channels, n_channels), np.nan)
    vif = np.full(n_channels, np.inf)
    if live.any():
        z = (x[live] - x[live].mean(axis=1, keepdims=True)) / sd[live, None]
        c = z @ z.T / z.shape[1]
        corr[np.ix_(live, live)] = c
        try:
            inverse = np.linalg.inv(c)
            vif[live] = np.where(np.diag(inverse) > 0, np.diag(inverse), np.inf)
        except np.linalg.LinAlgError:
            pass
        if live.sum() == 1:
            vif[live] = 1.0
    return corr, vif


def reviewed_channels(channels: pd.DataFrame, review: pd.DataFrame | None) -> pd.DataFrame:
    """The channel table with the review's verdict appended (:data:`PUBLISHED_REVIEW_COLUMNS`), row for row."""
    if review is None:
        raise ValueError("the media-mix result has no review (built by hand?): fit it with fit_media_mix_model")
    verdict = review.set_index("channel")[PUBLISHED_REVIEW_COLUMNS]
    missing = sorted(set(channels["channel"]) - set(verdict.index))
    if missing:
        raise ValueError(f"the review has no row for channel(s) {missing}; it reviewed {sorted(verdict.index)}")
    joined = verdict.loc[channels["channel"]].reset_index(drop=True)
    return channels.reset_index(drop=True).assign(
        identifiable=joined["identifiable"].astype(bool).to_numpy(),
        review_reason=joined["review_reason"].fillna("").astype(str).to_numpy(),
    )


def review_diagnostics(review: pd.DataFrame) -> pd.DataFrame:
    """The review's figures as diagnostics rows ``metric, value, detail``, named like the per-channel
    hyperparameters (``spend_variation[<channel>]``); the fit's out-of-sample error once, as
    ``review_out_of_sample_error``."""
    rows = []
    for r in review.itertuples(index=False):
        c = r.channel
        for name, meaning in _FIGURES.items():
            value = float(getattr(r, name))
            # Infinity is no number a BI tool or JSON reader takes; the detail says so instead.
            shown, note = (value, "") if math.isfinite(value) or math.isnan(value) else (math.nan, f" (value: {value})")
            rows.append({"metric": f"{name}[{c}]", "value": shown, "detail": f"channel {c}: {meaning}{note}"})
        rows.append({"metric": f"correlated_with[{c}]", "value": math.nan,
                     "detail": r.correlated_with or "no other channel with varying spend"})
        rows.append({"metric": f"identifiable[{c}]", "value": float(bool(r.identifiable)),
                     "detail": r.review_reason or f"channel {c}: every review check passed"})
    oos = float(review["out_of_sample_error"].iloc[0]) if len(review) else math.nan
    rows.append({"metric": "review_out_of_sample_error", "value": oos,
                 "detail": "the fit's out-of-sample RMSE / mean revenue, as the review gate reads it"})
    rows.append({"metric": "not_identifiable_channels", "value": float((~review["identifiable"].astype(bool)).sum()),
                 "detail": ", ".join(review.loc[~review["identifiable"].astype(bool), "channel"])})
    return pd.DataFrame(rows, columns=["metric", "value", "detail"])


def spend_floor(spend: np.ndarray) -> np.ndarray:
    """Per channel (rows of ``spend``, days in columns): the 10th percentile of its daily spend over its mean,
    0 for a channel that spends nothing. Above ``ReviewThresholds.max_spend_floor`` a channel's spend is never
    low (the gate's reason; the level prior's channels in ml.mmm.fitting)."""
    mean = spend.mean(axis=1)
    return np.where(mean > 0, np.quantile(spend, 0.1, axis=1) / np.where(mean > 0, mean, 1.0), 0.0)
