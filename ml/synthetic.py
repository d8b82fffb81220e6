"""Synthetic demo data with a known ground truth: ad campaigns, user journeys and sales.
Sales = baseline + sum of per-channel Hill(adstock(spend)) + noise, so models can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator, NamedTuple

import holidays as holiday_calendars
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter

__all__ = [
    "CHANNELS", "CHANNEL_METADATA", "CHANNEL_ROLES", "DEFAULT_CHUNK_ROWS", "INTERACTIONS", "ROLES",
    "DemoDataset", "DemoStream", "generate_demo_data", "stream_demo_data", "true_roas",
]

CHANNELS: tuple[str, ...] = (
    "search", "social", "display", "video", "email", "affiliate", "shopping", "podcast",
)
# The demo's channels.csv: group, paid or not, and description per channel (no aliases).
CHANNEL_METADATA: tuple[dict, ...] = tuple(
    {"channel": c, "channel_group": g, "is_paid": paid, "description": d}
    for c, g, paid, d in (
        ("search", "performance", True, "Paid search ads (brand and generic keywords)"),
        ("shopping", "performance", True, "Product listing / shopping ads"),
        ("social", "awareness", True, "Paid social feeds and stories"),
        ("display", "awareness", True, "Programmatic display banners"),
        ("video", "awareness", True, "Online video pre-roll and connected TV"),
        ("podcast", "awareness", True, "Podcast host-read ads"),
        ("affiliate", "performance", True, "Affiliate and partner referrals (commission)"),
        ("email", "owned", False, "Owned email newsletters and lifecycle flows"),
    )
)
INTERACTIONS: tuple[str, ...] = (
    "impression", "click", "visit", "email_open", "email_click", "video_view",
)

# Where in a journey a channel's touches fall, by its funnel role: awareness early, consideration in
# the middle, capture last before the purchase, retargeting after a first visit. Relative weight of
# a touch at relative position 0 (first) .. 1 (last) of its journey, in five equal bins.
ROLES: tuple[str, ...] = ("awareness", "consideration", "capture", "retargeting")
_ROLE_POSITION_WEIGHTS = np.array([
    (3.0, 2.0, 1.0, 0.45, 0.2),    # awareness
    (0.5, 1.3, 2.0, 1.3, 0.6),     # consideration
    (0.2, 0.45, 1.0, 2.0, 3.5),    # capture
    (0.0, 0.8, 1.5, 2.0, 2.0),     # retargeting: never the first touch
])
_POSITION_BINS = _ROLE_POSITION_WEIGHTS.shape[1]

_SECONDS_PER_DAY = 86_400
_JOURNEY_WINDOW_DAYS = 30
# Scale 1 is a small online shop: about 6,000 a day in sales, 40 orders a day and ~550k tracked
# touches over two years. Everything that counts money, orders or touches grows linearly with scale.
_DAILY_REVENUE = 6_000.0
_AVERAGE_ORDER_VALUE = 150.0
_TOUCHED_CONVERSION_RATE = 0.06  # touched users who ever buy: a few percent, as in real traffic
_MIN_ORDER_CENTS = 500
_MEDIA_SHARE = 0.43           # media contribution / revenue over the whole period
_NOISE_SHARE = 0.04           # daily noise sd / expected revenue
_TOUCHED_BASELINE_SHARE = 0.4  # non-incremental sales whose buyer had seen ads anyway
_REPEAT_SHARE = 0.22          # conversions that are a later purchase of an earlier buyer
_MAX_JOURNEY_TOUCHES = 16
# Planned journey length 1 + negative binomial(2, 0.4): mean 4 touches, a long tail, rarely past 12.
_LENGTH_NB = (2, 0.4)
# Days between touches: lognormal, median one day (mean ~1.6); the last touch of a journey that was
# not ad-caused comes a median half day before the purchase.
_GAP_MEDIAN_DAYS, _GAP_SIGMA = 1.0, 1.0
_LAST_GAP_MEDIAN_DAYS = 0.5


@dataclass(frozen=True)
class _ChannelSpec:
    name: str
    spend_share: float        # of total spend over the whole period
    roas: float               # true contribution / spend over the whole period
    decay: float              # geometric adstock decay per day
    half_ratio: float         # Hill half point / mean adstocked spend on live days
    shape: float              # Hill exponent
    campaigns: tuple[str, ...]
    always_on: int            # the first `always_on` campaigns run continuously (rare pauses)
    flight_on: tuple[int, int]   # days live per flight for the others (inclusive range)
    flight_off: tuple[int, int]  # days dark between flights
    weekly: tuple[float, ...]    # Monday..Sunday budget pacing
    cpm: float
    ctr: float
    frequency: float          # impressions per reached person per day
    claim_factor: float       # platform-reported revenue / true contribution
    touches_per_spend: float  # relative tracked touches per unit of spend
    interaction: tuple[float, ...]         # INTERACTIONS mix of ordinary touches
    causal_interaction: tuple[float, ...]  # mix of the touch that caused a sale (more engaged)
    role: str                 # one of ROLES: where the channel's touches fall in a journey


# Spend shares sum to 1; email and podcast stay under 5 % of spend, search, social and video take
# 18-30 % each, so those three carry enough signal for a 180-day media-mix model. Platforms
# over-claim most where view-through credit is generous (display, video, social: an impression
# seen days before an organic purchase counts); click-based search, shopping and owned email claim
# modestly, affiliate coupons somewhat more; podcast has no pixel and is under-tracked. Campaigns
# whose theme is retargeting or remarketing reach only users who already visited (never a first touch).
_SPECS: tuple[_ChannelSpec, ...] = (
    _ChannelSpec(
        "search", 0.30, 2.4, 0.15, 2.2, 1.0,
        ("Brand", "Generic", "Competitor", "Category", "Long Tail", "Seasonal", "Remarketing Lists"),
        4, (14, 60), (7, 45), (1.06, 1.05, 1.03, 1.01, 0.96, 0.92, 0.97),
        55.0, 0.045, 1.3, 1.3, 1.0, (0, 0.7, 0.3, 0, 0, 0), (0, 0.8, 0.2, 0, 0, 0),
        role="capture",
    ),
    _ChannelSpec(
        "social", 0.25, 2.0, 0.35, 2.2, 1.2,
        ("Prospecting", "Lookalike", "Retargeting", "Creator Collab", "Catalog", "Seasonal Promo",
         "Engagement"),
        2, (14, 45), (7, 40), (0.94, 0.95, 0.97, 1.0, 1.05, 1.08, 1.01),
        9.0, 0.012, 2.2, 2.3, 1.3, (0.55, 0.3, 0.1, 0, 0, 0.05), (0.3, 0.55, 0.1, 0, 0, 0.05),
        role="awareness",
    ),
    _ChannelSpec(
        "display", 0.08, 1.0, 0.45, 1.5, 1.3,
        ("Prospecting", "Retargeting", "Contextual", "Open Exchange", "Private Marketplace",
         "Seasonal"),
        0, (10, 30), (10, 45), (1.02, 1.02, 1.01, 1.0, 0.99, 0.97, 0.99),
        2.5, 0.004, 3.0, 3.2, 1.6, (0.82, 0.15, 0.03, 0, 0, 0), (0.6, 0.35, 0.05, 0, 0, 0),
        role="awareness",
    ),
    _ChannelSpec(
        "video", 0.18, 1.8, 0.6, 2.0, 1.4,
        ("Brand Awareness", "Product Demo", "In-Stream", "Connected TV", "Bumper"),
        0, (14, 42), (14, 60), (0.95, 0.96, 0.98, 1.0, 1.04, 1.06, 1.01),
        14.0, 0.006, 1.8, 2.6, 1.1, (0.25, 0.1, 0, 0, 0, 0.65), (0.1, 0.25, 0, 0, 0, 0.65),
        role="awareness",
    ),
    _ChannelSpec(
        "email", 0.025, 5.0, 0.1, 2.5, 1.0,
        ("Newsletter", "Abandoned Cart", "Win-back", "Promotions"),
        2, (3, 10), (5, 25), (1.3, 0.8, 1.2, 0.8, 1.1, 0.7, 1.1),
        0.8, 0.03, 1.05, 1.15, 4.0, (0, 0, 0, 0.65, 0.35, 0), (0, 0, 0, 0.35, 0.65, 0),
        role="capture",
    ),
    _ChannelSpec(
        "affiliate", 0.05, 2.2, 0.25, 2.0, 1.0,
        ("Coupon Partners", "Content Publishers", "Loyalty Portals"),
        2, (30, 90), (7, 30), (1.0, 1.0, 1.0, 1.0, 1.02, 1.01, 0.98),
        5.0, 0.02, 1.4, 1.6, 0.8, (0, 0.55, 0.45, 0, 0, 0), (0, 0.7, 0.3, 0, 0, 0),
        role="capture",
    ),
    _ChannelSpec(
        "shopping", 0.08, 3.0, 0.2, 2.0, 1.0,
        ("Smart Shopping", "Best Sellers", "New Arrivals", "Clearance", "Performance Max"),
        2, (20, 60), (7, 40), (1.03, 1.02, 1.0, 0.99, 0.98, 0.97, 1.01),
        14.0, 0.02, 1.5, 1.4, 1.0, (0.3, 0.65, 0.05, 0, 0, 0), (0.1, 0.85, 0.05, 0, 0, 0),
        role="capture",
    ),
    _ChannelSpec(
        "podcast", 0.035, 0.8, 0.7, 1.4, 2.0,
        ("Host-read Network A", "Host-read Network B", "Programmatic Audio"),
        0, (21, 56), (14, 60), (1.2, 1.1, 1.0, 1.0, 0.95, 0.85, 0.9),
        22.0, 0.001, 1.1, 0.5, 0.35, (0.6, 0, 0.4, 0, 0, 0), (0.4, 0, 0.6, 0, 0, 0),
        role="awareness",
    ),
)
assert tuple(s.name for s in _SPECS) == CHANNELS
assert abs(sum(s.spend_share for s in _SPECS) - 1.0) < 1e-9
assert all(s.role in ROLES for s in _SPECS)
CHANNEL_ROLES: dict[str, str] = {s.name: s.role for s in _SPECS}

# Baseline sales by weekday (Monday..Sunday): weekend browsing converts on Sunday and Monday.
_BASELINE_WEEKLY = np.array([1.04, 1.0, 0.98, 0.97, 0.95, 0.99, 1.07])
# Relative order volume by hour of day (UTC), evening peak.
_HOURLY_ORDERS = np.array([
    1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.6, 2.8, 3.0,
    3.2, 3.0, 2.9, 2.9, 3.0, 3.3, 3.6, 4.0, 4.2, 3.8, 2.8, 1.8,
])


@dataclass(frozen=True)
class DemoDataset:
    """Raw demo tables plus the ground truth they were generated from.

    ``ad_performance_daily``, ``touchpoints`` and ``conversions`` are what a business would load
    from its ad platforms, tracking and shop; the ``ground_truth_*`` tables are what no real
    business knows: the incremental revenue each channel caused.
    """

    ad_performance_daily: pd.DataFrame
    touchpoints: pd.DataFrame
    conversions: pd.DataFrame
    ground_truth_channels: pd.DataFrame
    ground_truth_daily: pd.DataFrame
    ground_truth_revenue_daily: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """All six tables by name, in field order (raw tables first, then ground truth)."""
        return {
            "ad_performance_daily": self.ad_performance_daily,
            "touchpoints": self.touchpoints,
            "conversions": self.conversions,
            "ground_truth_channels": self.ground_truth_channels,
            "ground_truth_daily": self.ground_truth_daily,
            "ground_truth_revenue_daily": self.ground_truth_revenue_daily,
        }


@dataclass(frozen=True)
class DemoStream:
    """:class:`DemoDataset` with the touchpoints as a source of chunks (``touchpoints.chunks(rows)``),
    for scales whose touchpoints are too many to hold at once; the other tables are whole."""

    ad_performance_daily: pd.DataFrame
    touchpoints: "_TouchpointSource"
    conversions: pd.DataFrame
    ground_truth_channels: pd.DataFrame
    ground_truth_daily: pd.DataFrame
    ground_truth_revenue_daily: pd.DataFrame

    def dataset(self) -> DemoDataset:
        """Everything in memory: the touchpoint chunks joined into one frame."""
        chunks = list(self.touchpoints.chunks(rows=2**62))
        return DemoDataset(
            ad_performance_daily=self.ad_performance_daily,
            touchpoints=chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True),
            conversions=self.conversions,
            ground_truth_channels=self.ground_truth_channels,
            ground_truth_daily=self.ground_truth_daily,
            ground_truth_revenue_daily=self.ground_truth_revenue_daily,
        )


def generate_demo_data(
    scale: float = 1.0, seed: int = 42, end: date | None = None, days: int = 730
) -> DemoDataset:
    """Simulate ``days`` days of marketing data ending on ``end``, with the truth behind it.

    Parameters
    ----------
    scale:
        Size of the business, 0.01 to 1000. Spend, revenue, conversions and touchpoints grow
        linearly with it: scale 1 gives about 6,000 a day in sales, ~29k conversions and ~740k
        touchpoints over 730 days (6% of touched users buy, so most touches are of users who never
        do); scale 50 about 37M touchpoints. True ROAS does not depend on it.
    seed:
        Seed of the random generator; output is identical for identical
        ``(scale, seed, end, days)``.
    end:
        Last simulated day (inclusive). Defaults to yesterday in UTC, so freshness checks pass
        on a newly generated demo.
    days:
        Number of simulated days, 31 to 3660.

    Conventions
    -----------
    Money is in currency units rounded to cents. Timestamps are UTC, tz-naive, ``datetime64[us]``;
    ``date`` columns are midnight. Revenue is
    ``baseline + sum_c contribution_c + noise`` per day, where
    ``adstocked_spend_t = decay * adstocked_spend_{t-1} + (1 - decay) * spend_t`` (normalized
    geometric adstock in daily-spend units, zero before the first day) and
    ``contribution_t = max_daily_effect * a^shape / (a^shape + saturation_half^shape)``.
    The journeys never change that revenue: they only say which users and touches lie behind it.

    Journeys: every sale is organic (no touches), touched but not ad-caused, or caused by one
    channel in proportion to that day's contributions; an ad-caused sale has a touch of its channel
    on a day whose spend built the adstock behind it. Journeys have 1 + negative binomial touches
    (mean 4) with lognormal gaps (median one day) inside the 30-day window, and each channel's
    touches fall where its role (``CHANNEL_ROLES``) puts them: awareness early, capture last.
    Users who never buy have journeys planned the same way and cut off after a random number of
    touches; 6% of touched users buy (``_TOUCHED_CONVERSION_RATE``).

    Returns
    -------
    DemoDataset with
    ``ad_performance_daily``: date, channel, campaign_id, campaign_name, impressions, reach, clicks,
    spend, conversions, revenue. One row per campaign and live day; conversions and revenue are
    platform-reported and over-claim by channel (view-through heavy display, video and social the
    most, search and email modestly; podcast under-claims) relative to the truth.
    ``touchpoints``: touchpoint_id, user_id, occurred_at, channel, campaign_id, interaction; ids
    follow time order.
    ``conversions``: conversion_id, user_id, occurred_at, revenue; all sales, organic included.
    ``ground_truth_channels``: channel, adstock_decay, saturation_half, saturation_shape,
    max_daily_effect, total_spend, total_contribution, true_roas, role (funnel role),
    incremental_conversions (sales the channel caused), platform_revenue (what its platform
    reports in ``ad_performance_daily``) and platform_overclaim (platform_revenue /
    total_contribution: what a platform-versus-incrementality comparison should find).
    ``ground_truth_daily``: date, channel, spend, adstocked_spend, contribution.
    ``ground_truth_revenue_daily``: date, baseline, media_contribution, noise, revenue; revenue
    equals the day's conversions revenue to the cent.
    """
    return stream_demo_data(scale, seed, end, days).dataset()


def stream_demo_data(
    scale: float = 1.0, seed: int = 42, end: date | None = None, days: int = 730
) -> DemoStream:
    """:func:`generate_demo_data` with the touchpoints left as chunks, for scales too large to
    hold at once: ``DemoStream.touchpoints.chunks(rows)`` yields them in ``touchpoint_id`` order.

    Every table is the same as :func:`generate_demo_data` gives for the same arguments, whatever
    the chunk size. Memory: the touchpoints of about a month of journeys at a time, plus the
    conversions (about 4% as many rows as touchpoints) and the daily tables.
    """
    scale, seed, end, days = _check_arguments(scale, seed, end, days)
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days - 1)
    dates = pd.date_range(start, periods=days, freq="D", unit="us")
    thanksgivings = _thanksgivings(dates)

    spend, live = _simulate_campaign_spend(rng, dates, scale)
    campaign_channel = np.repeat(np.arange(len(CHANNELS)), [len(s.campaigns) for s in _SPECS])
    channel_spend = np.zeros((days, len(CHANNELS)))
    np.add.at(channel_spend.T, campaign_channel, spend.T)
    channel_spend = np.round(channel_spend, 2)

    decay = np.array([s.decay for s in _SPECS])
    shape = np.array([s.shape for s in _SPECS])
    adstocked = _adstock(channel_spend, decay)
    on_days = np.where(channel_spend > 0, adstocked, np.nan)
    half = np.array([s.half_ratio for s in _SPECS]) * np.nanmean(on_days, axis=0)
    unit_effect = _hill(adstocked, half, shape)
    roas = np.array([s.roas for s in _SPECS])
    max_effect = roas * channel_spend.sum(axis=0) / unit_effect.sum(axis=0)
    contribution = max_effect * unit_effect

    media = contribution.sum(axis=1)
    baseline = _baseline(rng, dates, thanksgivings)
    baseline *= media.sum() * (1.0 - _MEDIA_SHARE) / _MEDIA_SHARE / baseline.sum()
    expected = baseline + media
    noise_draw = np.clip(rng.normal(0.0, 1.0, days), -3.5, 3.5) * _NOISE_SHARE * expected
    revenue = np.round(expected + noise_draw, 2)
    noise = revenue - baseline - media

    conv = _simulate_conversions(rng, revenue)
    lag_weights = _lag_weights(channel_spend, decay)
    cause_weights = np.column_stack([
        baseline * (1.0 - _TOUCHED_BASELINE_SHARE),
        baseline * _TOUCHED_BASELINE_SHARE,
        np.where(lag_weights.sum(axis=2) > 0, contribution, 0.0),
    ])
    cause = _grouped_choice(cause_weights, conv.day, rng) - 2  # -2 organic, -1 touched baseline
    user_root = _repeat_buyers(rng, conv.day)

    touch_weight = channel_spend * np.array([s.touches_per_spend for s in _SPECS])
    campaign_table, campaign_weights = _campaign_choice_tables(spend, live, campaign_channel)
    journeys = _JourneyContext(days, touch_weight, campaign_table, campaign_weights)
    # Touched users who never buy, so that _TOUCHED_CONVERSION_RATE of all touched users convert;
    # their journeys end on days drawn in proportion to each day's ad reach.
    n_touched_buyers = np.unique(user_root[cause >= -1]).size
    n_never = int(round(n_touched_buyers * (1.0 - _TOUCHED_CONVERSION_RATE) / _TOUCHED_CONVERSION_RATE))
    never_per_day = np.random.default_rng([seed, 3]).multinomial(
        n_never, journeys.daily_reach / journeys.daily_reach.sum()
    )
    # User ids: one per repeat-buyer chain and one per non-converting journey, shuffled (a keyed
    # permutation, computed per id) so that ids carry no information about time or outcome.
    roots, conv_user = np.unique(user_root, return_inverse=True)
    users = _UserIds(roots.size + n_never, seed)

    # Its own stream, so that the platform report does not move when the journeys change.
    ad_performance, platform_revenue = _platform_report(
        np.random.default_rng([seed, 1]), dates, spend, live, campaign_channel, contribution,
        channel_spend,
    )
    touchpoints = _TouchpointSource(
        seed=seed, start=start, ctx=journeys, conv=conv, cause=cause, lag_weights=lag_weights,
        conv_user=conv_user, n_buyers=roots.size, never_per_day=never_per_day, users=users,
    )
    conversions = _conversion_frame(start, conv, users.of(conv_user))
    truth_daily = pd.DataFrame({
        "date": np.repeat(dates.to_numpy(), len(CHANNELS)),
        "channel": _strings(np.tile(np.arange(len(CHANNELS)), days), CHANNELS),
        "spend": channel_spend.ravel(),
        "adstocked_spend": adstocked.ravel(),
        "contribution": contribution.ravel(),
    })
    total_spend = channel_spend.sum(axis=0)
    total_contribution = contribution.sum(axis=0)
    truth_channels = pd.DataFrame({
        "channel": _strings(np.arange(len(CHANNELS)), CHANNELS),
        "adstock_decay": decay,
        "saturation_half": half,
        "saturation_shape": shape,
        "max_daily_effect": max_effect,
        "total_spend": total_spend,
        "total_contribution": total_contribution,
        "true_roas": total_contribution / total_spend,
        "role": _strings(np.array([ROLES.index(s.role) for s in _SPECS]), ROLES),
        "incremental_conversions": np.bincount(cause[cause >= 0], minlength=len(CHANNELS)),
        "platform_revenue": platform_revenue,
        "platform_overclaim": platform_revenue / total_contribution,
    })
    truth_revenue = pd.DataFrame({
        "date": dates,
        "baseline": baseline,
        "media_contribution": media,
        "noise": noise,
        "revenue": revenue,
    })
    return DemoStream(
        ad_performance_daily=ad_performance,
        touchpoints=touchpoints,
        conversions=conversions,
        ground_truth_channels=truth_channels,
        ground_truth_daily=truth_daily,
        ground_truth_revenue_daily=truth_revenue,
    )


def true_roas(ground_truth_daily: pd.DataFrame, start: Any = None, end: Any = None) -> pd.DataFrame:
    """True return on ad spend per channel over the dates ``start``..``end`` (both inclusive).

    ``ground_truth_daily`` needs columns date, channel, spend, contribution (as produced by
    :func:`generate_demo_data`). ``start``/``end`` accept anything ``pd.Timestamp`` parses; ``None``
    leaves that side open. Contribution on a day includes carry-over from earlier spend, so a
    window's ROAS is the contribution that landed in it over the spend made in it.

    Returns one row per channel (known channels in ``CHANNELS`` order, others after, sorted):
    channel, spend, contribution, roas (NaN where the channel spent nothing), contribution_share
    (of all channels' contribution in the window).
    """
    required = ["date", "channel", "spend", "contribution"]
    missing = [c for c in required if c not in ground_truth_daily.columns]
    if missing:
        raise ValueError(
            f"ground_truth_daily is missing column(s) {missing}; expected {required} as produced "
            f"by generate_demo_data(); got {list(ground_truth_daily.columns)}"
        )
    dates = pd.to_datetime(ground_truth_daily["date"])
    lo = None if start is None else pd.Timestamp(start)
    hi = None if end is None else pd.Timestamp(end)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"true_roas window is empty: start {lo.date()} is after end {hi.date()}")
    mask = np.ones(len(ground_truth_daily), dtype=bool)
    if lo is not None:
        mask &= (dates >= lo).to_numpy()
    if hi is not None:
        mask &= (dates <= hi).to_numpy()
    if not mask.any():
        span = f"{dates.min()} to {dates.max()}" if len(dates) else "no dates"
        raise ValueError(
            f"true_roas window {start}..{end} contains none of the {len(ground_truth_daily)} "
            f"ground_truth_daily rows (data covers {span}); pick dates inside that range"
        )
    sums = (
        ground_truth_daily.loc[mask, ["channel", "spend", "contribution"]]
        .groupby("channel", sort=False)[["spend", "contribution"]]
        .sum()
    )
    known = [c for c in CHANNELS if c in sums.index]
    others = sorted(c for c in sums.index if c not in CHANNELS)
    sums = sums.loc[known + others]
    spend = sums["spend"].to_numpy(dtype=float)
    contribution = sums["contribution"].to_numpy(dtype=float)
    total = contribution.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        roas = np.where(spend > 0, contribution / spend, np.nan)
    return pd.DataFrame({
        "channel": pd.array(sums.index.astype(str), dtype="str"),
        "spend": spend,
        "contribution": contribution,
        "roas": roas,
        "contribution_share": contribution / total if total > 0 else np.full(len(sums), np.nan),
    })


def _adstock(spend: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """Normalized geometric adstock of a (days, channels) spend matrix, zero before the first day."""
    out = np.empty_like(spend, dtype=float)
    for c, lam in enumerate(np.asarray(decay, dtype=float)):
        out[:, c] = lfilter([1.0 - lam], [1.0, -lam], spend[:, c])
    return out


def _hill(adstocked: np.ndarray, half: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Hill saturation ``a^s / (a^s + half^s)`` in [0, 1), applied per channel column."""
    ratio = np.power(np.asarray(adstocked, dtype=float) / half, shape)
    return ratio / (1.0 + ratio)


# --------------------------------------------------------------------------- arguments


def _check_arguments(scale: Any, seed: Any, end: Any, days: Any) -> tuple[float, int, date, int]:
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a number in (0.01, 1000], got {scale!r}") from None
    if not np.isfinite(scale) or not 0.01 <= scale <= 1000:
        raise ValueError(
            f"scale must be in [0.01, 1000] (1.0 is ~740k touchpoints, 50 is ~37M), got {scale}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or not 31 <= days <= 3660:
        raise ValueError(f"days must be an integer between 31 and 3660, got {days!r}")
    if end is None:
        end = datetime.now(timezone.utc).date() - timedelta(days=1)
    elif isinstance(end, datetime):
        end = end.date()
    elif not isinstance(end, date):
        raise ValueError(f"end must be a datetime.date (or None for yesterday), got {end!r}")
    return scale, int(seed), end, int(days)


# --------------------------------------------------------------------------- spend


def _thanksgivings(dates: pd.DatetimeIndex) -> list[date]:
    years = range(dates[0].year - 1, dates[-1].year + 2)
    calendar = holiday_calendars.US(years=years)
    return sorted(d for d, name in calendar.items() if name == "Thanksgiving Day")


def _simulate_campaign_spend(
    rng: np.random.Generator, dates: pd.DatetimeIndex, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Daily spend per campaign (days, campaigns), cents-rounded, and the live mask.

    Channels move independently: each has its own weekly budget level and pulses, its own
    weekday pacing and its own campaign flights, so channel spends are far from collinear.
    Budgets deliberately do not follow the retail calendar: a Black Friday push would coincide
    with the baseline spike and bias any model that does not flag those days.
    """
    days = len(dates)
    dow = dates.day_of_week.to_numpy()
    total_budget = (
        _MEDIA_SHARE * _DAILY_REVENUE * scale * days / sum(s.spend_share * s.roas for s in _SPECS)
    )
    columns, live_columns = [], []
    for spec in _SPECS:
        # Brand search keeps a floor when the channel is "paused"; other channels go fully dark.
        level = _budget_level(rng, days, pause=0.1 if spec.name == "search" else 0.0)
        weekly = np.asarray(spec.weekly)[dow]
        running = level > 0
        channel_columns = []
        for k in range(len(spec.campaigns)):
            if spec.name == "search" and k == 0:
                # Brand search never stops, so every day has at least one live campaign.
                live = np.ones(days, dtype=bool)
            elif k < spec.always_on:
                live = _flights(rng, days, (90, 300), (2, 7)) & running
            else:
                live = _flights(rng, days, spec.flight_on, spec.flight_off) & running
            budget = rng.lognormal(0.0, 0.4) * (1.6 if k == 0 else 1.0)
            noise = rng.lognormal(0.0, 0.25, days)
            channel_columns.append(live * budget * noise)
            live_columns.append(live)
        if not any(col.any() for col in channel_columns):
            # A short period can fall entirely between flights; run one flight so the channel
            # still has a spend history (and a defined saturation point).
            length = min(spec.flight_on[0], days)
            begin = rng.integers(0, days - length + 1)
            channel_columns[0][begin : begin + length] = rng.lognormal(0.0, 0.15, length)
            live_columns[-len(channel_columns)][begin : begin + length] = True
            level[begin : begin + length] = 1.0
        raw = np.column_stack(channel_columns) * (level * weekly)[:, None]
        columns.append(raw * (spec.spend_share * total_budget / raw.sum()))
    live = np.column_stack(live_columns)
    spend = np.round(np.column_stack(columns), 2)
    spend = np.where(live, np.maximum(spend, 0.01), 0.0)
    return spend, live


# The weekly budget re-plan: AR(1) coefficient and spread of the log level.
_BUDGET_AR, _BUDGET_LOG_SD = 0.3, 0.6


def _budget_level(rng: np.random.Generator, days: int, pause: float) -> np.ndarray:
    """Channel budget multiplier: weekly re-planning plus frequent short pulses and pauses.

    The log level is re-set every week (mildly persistent); on top of it, every couple of weeks
    a 3-10 day pulse pauses (multiplier ``pause``), halves or doubles the channel. Swings this fast and this
    independent across channels are what let a 180-day media-mix model tell channels apart;
    slower ones would be absorbed by trend and seasonality.
    """
    return _budget_plan(rng, days, pause).level


class BudgetPlan(NamedTuple):
    """The parts of a channel's budget multiplier (what the forecast oracle benchmark replays)."""

    log_level: np.ndarray   # per re-planning week
    week: np.ndarray        # the re-planning week of each day
    week_level: np.ndarray  # the weekly re-planned level alone, per day
    level: np.ndarray       # week_level with the pulses on top: the multiplier


def _budget_plan(rng: np.random.Generator, days: int, pause: float) -> BudgetPlan:
    """:func:`_budget_level` with its parts kept."""
    n_weeks = days // 7 + 2
    log_level = lfilter([1.0], [1.0, -_BUDGET_AR], rng.normal(0.0, _BUDGET_LOG_SD, n_weeks))
    day = np.arange(days)
    week = (day + rng.integers(0, 7)) // 7
    week_level = np.exp(log_level[week])

    n_pulses = rng.poisson(days / 15) + 1
    pulse_start = rng.integers(0, days, n_pulses)
    pulse_end = pulse_start + rng.integers(3, 11, n_pulses)
    pulse_factor = rng.choice(np.array([pause, 0.5, 2.0]), n_pulses, p=[0.35, 0.3, 0.35])
    inside = (day[:, None] >= pulse_start) & (day[:, None] < pulse_end)
    # Overlapping pulses: the later-starting one wins.
    latest = np.where(inside, pulse_start, -1).argmax(axis=1)
    return BudgetPlan(log_level, week, week_level, week_level * np.where(inside.any(axis=1), pulse_factor[latest], 1.0))


def _flights(
    rng: np.random.Generator, days: int, on: tuple[int, int], off: tuple[int, int]
) -> np.ndarray:
    """Live mask of alternating on/off flights starting at a random phase."""
    n_pairs = days // (on[0] + off[0]) + 2
    durations = np.column_stack([
        rng.integers(on[0], on[1] + 1, n_pairs), rng.integers(off[0], off[1] + 1, n_pairs),
    ]).ravel()
    phase = rng.integers(0, on[1] + off[1])
    segment = np.searchsorted(np.cumsum(durations) - phase, np.arange(days), side="right")
    return segment % 2 == 0


# --------------------------------------------------------------------------- revenue


def _baseline(rng: np.random.Generator, dates: pd.DatetimeIndex, thanksgivings: list[date]) -> np.ndarray:
    """Unscaled organic demand: trend with a slowdown, weekly and yearly cycles, holiday spikes."""
    days = len(dates)
    years = np.arange(days) / 365.25
    knot = years[-1] * rng.uniform(0.3, 0.6)
    growth = rng.uniform(0.12, 0.2) * years - rng.uniform(0.05, 0.1) * np.maximum(years - knot, 0.0)
    angle = 2 * np.pi * (dates.day_of_year.to_numpy() - 330) / 365.25
    yearly = 1.0 + 0.06 * np.cos(angle) + 0.025 * np.cos(2 * angle)
    weekly = _BASELINE_WEEKLY[dates.day_of_week.to_numpy()]
    return np.exp(growth) * yearly * weekly * _holiday_multiplier(dates, thanksgivings)


def _holiday_multiplier(dates: pd.DatetimeIndex, thanksgivings: list[date]) -> np.ndarray:
    """Retail calendar effects on organic demand (US holidays from the `holidays` package)."""
    effect = np.ones(len(dates))
    day_of = {d: i for i, d in enumerate(dates.date)}

    def bump(when: date, factor: float) -> None:
        if when in day_of:
            effect[day_of[when]] *= factor

    for tg in thanksgivings:
        for offset, factor in ((0, 1.25), (1, 2.1), (2, 1.5), (3, 1.35), (4, 1.8), (5, 1.15)):
            bump(tg + timedelta(days=offset), factor)
    for year in sorted({d.year for d in dates.date}):
        for dec in range(1, 21):  # gift shopping ramps up until shipping cut-off
            bump(date(year, 12, dec), 1.0 + 0.12 * (dec - 1) / 19)
        for dec, factor in ((21, 1.1), (22, 1.1), (23, 1.05), (24, 0.85), (25, 0.55), (26, 1.3)):
            bump(date(year, 12, dec), factor)
        for dec in range(27, 32):
            bump(date(year, 12, dec), 1.05)
        bump(date(year, 1, 1), 0.75)
        for feb in range(7, 14):
            bump(date(year, 2, feb), 1.08)
        calendar = holiday_calendars.US(years=year)
        for when, name in calendar.items():
            if name in ("Memorial Day", "Labor Day"):
                bump(when, 1.2)
            elif name == "Independence Day":
                bump(when, 0.85)
    return effect


@dataclass(frozen=True)
class _Conversions:
    day: np.ndarray       # day index, sorted ascending
    time: np.ndarray      # seconds since the first day's midnight
    cents: np.ndarray     # revenue in cents, int64


def _simulate_conversions(rng: np.random.Generator, revenue: np.ndarray) -> _Conversions:
    """Split each day's revenue into orders that add up to it exactly, in cents."""
    total_cents = np.round(revenue * 100).astype(np.int64)
    n_orders = np.maximum(rng.poisson(revenue / _AVERAGE_ORDER_VALUE), 1)
    n_orders = np.minimum(n_orders, np.maximum(total_cents, 1))
    day = np.repeat(np.arange(revenue.size), n_orders)
    first = np.concatenate([[0], np.cumsum(n_orders)[:-1]])
    last = first + n_orders - 1

    floor_cents = np.minimum(_MIN_ORDER_CENTS, total_cents // n_orders)
    extra = total_cents - floor_cents * n_orders
    cum = np.cumsum(rng.lognormal(0.0, 0.6, day.size))
    before = np.where(first > 0, cum[first - 1], 0.0)
    share = (cum - before[day]) / (cum[last] - before)[day]
    allocated = np.round(share * extra[day]).astype(np.int64)
    allocated[last] = extra  # exact despite rounding of the shares
    cents = np.diff(allocated, prepend=0)
    cents[first] = allocated[first]
    cents += floor_cents[day]

    hour = _grouped_choice(_HOURLY_ORDERS[None, :], np.zeros(day.size, dtype=np.int64), rng)
    time = day * float(_SECONDS_PER_DAY) + (hour + rng.random(day.size)) * 3600.0
    return _Conversions(day=day, time=time, cents=cents)


def _repeat_buyers(rng: np.random.Generator, conv_day: np.ndarray) -> np.ndarray:
    """Chain some conversions to an earlier buyer; returns the first conversion of each buyer.

    A repeat purchase comes at least a journey window after its predecessor, and each conversion
    has at most one successor, so one buyer's journeys never overlap.
    """
    n = conv_day.size
    cutoff = conv_day - (_JOURNEY_WINDOW_DAYS + 1)
    n_before = np.searchsorted(conv_day, cutoff, side="right")
    candidate = (rng.random(n) < _REPEAT_SHARE) & (n_before > 0)
    parent = np.arange(n)
    picked = np.floor(rng.random(n) * n_before).astype(np.int64)
    idx = np.flatnonzero(candidate)
    _, first = np.unique(picked[idx], return_index=True)
    keep = idx[first]
    parent[keep] = picked[keep]
    root = parent
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


# --------------------------------------------------------------------------- journeys


def _grouped_choice(weights: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category per entry of ``groups`` from row ``groups[i]`` of ``weights`` (G, K).

    All rows are laid out as ``row + cumulative share`` in one sorted array, so a single
    searchsorted serves every group at once.
    """
    return _Choice(weights).draw(groups, rng)


class _Choice:
    """:func:`_grouped_choice` with the layout of ``weights`` computed once, for repeated draws."""

    def __init__(self, weights: np.ndarray) -> None:
        n_groups, self.n_cat = weights.shape
        cum = np.cumsum(weights, axis=1)
        self.positive = cum[:, -1] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(self.positive[:, None], cum / cum[:, -1:], 1.0)
        share[:, -1] = 1.0
        self.keys = (share + np.arange(n_groups)[:, None]).ravel()

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if groups.size and not self.positive[groups].all():
            raise RuntimeError("internal error: sampling from a group with no positive weight")
        pos = np.searchsorted(self.keys, groups + rng.random(groups.size), side="right")
        return np.minimum(pos - groups * self.n_cat, self.n_cat - 1)


def _lag_weights(channel_spend: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """(days, channels, lags): how much of day t's adstock comes from spend k days earlier."""
    days, n_channels = channel_spend.shape
    out = np.zeros((days, n_channels, _JOURNEY_WINDOW_DAYS))
    for k in range(min(_JOURNEY_WINDOW_DAYS, days)):
        out[k:, :, k] = channel_spend[: days - k] * decay**k
    return out


def _campaign_choice_tables(
    spend: np.ndarray, live: np.ndarray, campaign_channel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per (day, channel, first touch or not) weights over that channel's campaigns.

    Padded to the largest channel. Retargeting campaigns reach only users who already visited, so
    they are left out of a journey's first touch, unless they are the channel's only live ones.
    """
    days = spend.shape[0]
    width = max(len(s.campaigns) for s in _SPECS)
    table = np.zeros((len(CHANNELS), width), dtype=np.int64)
    weights = np.zeros((days, len(CHANNELS), 2, width))
    for c, spec in enumerate(_SPECS):
        members = np.flatnonzero(campaign_channel == c)
        table[c, : members.size] = members
        later = np.where(live[:, members], spend[:, members], 0.0)
        retargeting = np.array([_is_retargeting(theme) for theme in spec.campaigns])
        first = np.where(retargeting, 0.0, later)
        first = np.where(first.sum(axis=1, keepdims=True) > 0, first, later)
        weights[:, c, 0, : members.size] = first
        weights[:, c, 1, : members.size] = later
    return table, weights.reshape(days * len(CHANNELS) * 2, width)


def _is_retargeting(theme: str) -> bool:
    return "retargeting" in theme.lower() or "remarketing" in theme.lower()


def _position_bin(position: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Bin of a touch's relative position in its journey: 0 first .. _POSITION_BINS - 1 last.

    A journey of one touch counts as its last touch: it is the one just before the purchase.
    """
    relative = np.where(length > 1, position / np.maximum(length - 1, 1), 1.0)
    return np.minimum((relative * _POSITION_BINS).astype(np.int64), _POSITION_BINS - 1)


class _JourneyContext:
    """What every touch draw needs: which channel and campaign reached users where and when."""

    def __init__(
        self,
        days: int,
        touch_weight: np.ndarray,
        campaign_table: np.ndarray,
        campaign_weights: np.ndarray,
    ) -> None:
        self.rng = np.random.default_rng(0)  # each block of journeys sets its own stream
        self.days = days
        self.daily_reach = touch_weight.sum(axis=1)
        role_weights = _ROLE_POSITION_WEIGHTS[[ROLES.index(s.role) for s in _SPECS]]  # (C, bins)
        # (days * bins, channels): the day's touch mix reweighted by each channel's role at a position.
        self.channel_weights = (touch_weight[:, None, :] * role_weights.T[None, :, :]).reshape(
            days * _POSITION_BINS, len(CHANNELS)
        )
        # (length * channels, positions): where in a journey of a given length a channel's touch
        # falls, for the touch that caused the sale.
        positions = np.arange(_MAX_JOURNEY_TOUCHES)
        self.causal_position_weights = np.zeros((_MAX_JOURNEY_TOUCHES, len(CHANNELS), _MAX_JOURNEY_TOUCHES))
        for length in range(1, _MAX_JOURNEY_TOUCHES + 1):
            bins = _position_bin(positions[:length], np.full(length, length))
            self.causal_position_weights[length - 1, :, :length] = role_weights[:, bins]
        self.causal_position_weights = self.causal_position_weights.reshape(-1, _MAX_JOURNEY_TOUCHES)
        self.campaign_table = campaign_table
        self.channel_choice = _Choice(self.channel_weights)
        self.causal_position_choice = _Choice(self.causal_position_weights)
        self.campaign_choice = _Choice(campaign_weights)
        self.interaction_choice = _Choice(np.array(
            [s.interaction for s in _SPECS] + [s.causal_interaction for s in _SPECS]
        ))

    def lengths(self, n: int) -> np.ndarray:
        """Planned journey lengths: 1 + negative binomial, capped at _MAX_JOURNEY_TOUCHES."""
        extra = self.rng.negative_binomial(*_LENGTH_NB, n)
        return 1 + np.minimum(extra, _MAX_JOURNEY_TOUCHES - 1)

    def gaps(self, n: int, median_days: float = _GAP_MEDIAN_DAYS) -> np.ndarray:
        """Seconds between consecutive touches."""
        return self.rng.lognormal(np.log(median_days * _SECONDS_PER_DAY), _GAP_SIGMA, n)

    def channels_at(self, day: np.ndarray, position_bin: np.ndarray) -> np.ndarray:
        return self.channel_choice.draw(day * _POSITION_BINS + position_bin, self.rng)

    def causal_positions(self, length: np.ndarray, channel: np.ndarray) -> np.ndarray:
        return self.causal_position_choice.draw((length - 1) * len(CHANNELS) + channel, self.rng)

    def campaigns(self, day: np.ndarray, channel: np.ndarray, first: np.ndarray) -> np.ndarray:
        group = (day * len(CHANNELS) + channel) * 2 + (~first).astype(np.int64)
        slot = self.campaign_choice.draw(group, self.rng)
        return self.campaign_table[channel, slot]

    def interactions(self, channel: np.ndarray, causal: np.ndarray) -> np.ndarray:
        return self.interaction_choice.draw(channel + len(CHANNELS) * causal.astype(np.int64), self.rng)


@dataclass(frozen=True)
class _Touches:
    journey: np.ndarray      # conversion index (converting) or journey index (non-converting)
    time: np.ndarray         # seconds since the first day's midnight
    channel: np.ndarray
    campaign: np.ndarray
    interaction: np.ndarray
    n_journeys: int


def _within_journey(owner: np.ndarray, values: np.ndarray, n_journeys: int) -> tuple[np.ndarray, np.ndarray]:
    """Running sum of ``values`` within each journey (rows grouped by ``owner``, ascending) and
    each journey's total."""
    running = np.cumsum(values)
    totals = np.bincount(owner, weights=values, minlength=n_journeys)
    before = np.cumsum(totals) - totals
    return running - before[owner], totals


def _converting_touches(
    ctx: _JourneyContext, conv: _Conversions, cause: np.ndarray, lag_choice: _Choice,
    journey: np.ndarray,
) -> _Touches:
    """Touches of the converting journeys ``journey`` (indices of touched conversions) within the
    window before each conversion.

    A sale caused by channel c has a c touch on a day whose spend built the adstock behind the
    sale, at a position in the journey that suits c's role (awareness early, capture last).
    The touches before it are spaced by lognormal gaps (squeezed into the window when they would
    leave it), the ones after it are spread between it and the purchase. Every other touch, and
    every touch of a non-incremental but touched sale, is drawn from its day's spend mix weighted
    by the channels' roles at that position.
    """
    rng = ctx.rng
    n = journey.size
    media = cause[journey] >= 0
    conv_time = conv.time[journey]
    conv_day = conv.day[journey]
    length = ctx.lengths(n)

    # Anchor touch: the causal touch of an ad-caused sale, or the last touch of another one.
    m_idx = np.flatnonzero(media)
    m_channel = cause[journey[m_idx]]
    m_day = conv_day[m_idx]
    lag = lag_choice.draw(m_day * len(CHANNELS) + m_channel, rng)
    time_of_conv = conv_time[m_idx] - m_day * float(_SECONDS_PER_DAY)
    span = np.where(lag == 0, time_of_conv, float(_SECONDS_PER_DAY))
    window_start = np.maximum(conv_time - _JOURNEY_WINDOW_DAYS * _SECONDS_PER_DAY, 0.0)
    anchor_time = conv_time - np.minimum(
        ctx.gaps(n, _LAST_GAP_MEDIAN_DAYS), 0.5 * (conv_time - window_start)
    )
    anchor_time[m_idx] = (m_day - lag) * float(_SECONDS_PER_DAY) + rng.random(m_idx.size) * span
    anchor_pos = length - 1
    anchor_pos[m_idx] = ctx.causal_positions(length[m_idx], m_channel)

    owner = np.repeat(np.arange(n), length)
    position = np.arange(owner.size) - (np.cumsum(length) - length)[owner]
    before = position < anchor_pos[owner]
    after = position > anchor_pos[owner]
    gap = ctx.gaps(owner.size)
    # Before the anchor: offsets back from it are the sums of the gaps between, squeezed into
    # the time left in the window where needed.
    running, total_before = _within_journey(owner, np.where(before, gap, 0.0), n)
    room = 0.98 * (anchor_time - window_start)
    squeeze = np.where(total_before > room, room / np.maximum(total_before, 1e-9), 1.0)
    back = (total_before[owner] - running + np.where(before, gap, 0.0)) * squeeze[owner]
    # After the anchor: forward gaps, rescaled so that the last touch still precedes the sale.
    forward, total_after = _within_journey(owner, np.where(after, gap, 0.0), n)
    closing = ctx.gaps(n, _LAST_GAP_MEDIAN_DAYS)
    share = forward / (total_after + closing)[owner]
    a = anchor_time[owner]
    time = np.where(before, a - back, np.where(after, a + (conv_time[owner] - a) * share, a))
    del running, back, forward, share, a, gap

    day = np.minimum((time // _SECONDS_PER_DAY).astype(np.int64), ctx.days - 1)
    channel = ctx.channels_at(day, _position_bin(position, length[owner]))
    causal = np.zeros(owner.size, dtype=bool)
    causal_rows = (np.cumsum(length) - length)[m_idx] + anchor_pos[m_idx]
    causal[causal_rows] = True
    channel[causal_rows] = m_channel
    return _Touches(
        journey=journey[owner],
        time=time,
        channel=channel,
        campaign=ctx.campaigns(day, channel, position == 0),
        interaction=ctx.interactions(channel, causal),
        n_journeys=n,
    )


def _nonconverting_touches(ctx: _JourneyContext, end_day: np.ndarray, first_journey: int) -> _Touches:
    """Journeys of users who never buy, ending on ``end_day`` (ascending): planned like converting
    ones, cut off at random. Journey numbers start at ``first_journey``.

    A journey has a planned length from the same distribution as converting journeys and keeps its
    first 1..length touches (uniformly). Positions and gaps follow the same rules, so only the
    missing end tells them apart.
    """
    rng = ctx.rng
    n_journeys = end_day.size
    length = ctx.lengths(n_journeys)
    kept = 1 + np.floor(rng.random(n_journeys) * length).astype(np.int64)
    end_time = (end_day + rng.random(n_journeys)) * float(_SECONDS_PER_DAY)
    owner = np.repeat(np.arange(n_journeys), kept)
    position = np.arange(owner.size) - (np.cumsum(kept) - kept)[owner]
    last = position == kept[owner] - 1
    gap = np.where(last, 0.0, ctx.gaps(owner.size))
    running, total = _within_journey(owner, gap, n_journeys)
    room = 0.98 * np.minimum(end_time, _JOURNEY_WINDOW_DAYS * float(_SECONDS_PER_DAY))
    squeeze = np.where(total > room, room / np.maximum(total, 1e-9), 1.0)
    time = end_time[owner] - (total[owner] - running + gap) * squeeze[owner]
    del running, gap
    day = np.minimum((time // _SECONDS_PER_DAY).astype(np.int64), ctx.days - 1)
    channel = ctx.channels_at(day, _position_bin(position, length[owner]))
    return _Touches(
        journey=first_journey + owner,
        time=time,
        channel=channel,
        campaign=ctx.campaigns(day, channel, position == 0),
        interaction=ctx.interactions(channel, np.zeros(owner.size, dtype=bool)),
        n_journeys=n_journeys,
    )


# --------------------------------------------------------------------------- frames


def _strings(codes: np.ndarray, labels: tuple[str, ...] | list[str]) -> pd.Series:
    """Label lookup straight into pandas' default ``str`` dtype (Arrow-backed, no Python objects)."""
    values = pa.array(list(labels), type=pa.large_string()).take(pa.array(codes))
    return pd.Series(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _timestamps(start: date, seconds: np.ndarray) -> np.ndarray:
    origin = np.datetime64(start, "us").astype(np.int64)
    return (origin + np.round(seconds * 1e6).astype(np.int64)).astype("datetime64[us]")


def _campaign_labels() -> tuple[list[str], list[str]]:
    ids, names = [], []
    for spec in _SPECS:
        for theme in spec.campaigns:
            ids.append(f"cmp_{len(ids) + 1:03d}")
            names.append(f"{spec.name.title()} | {theme}")
    return ids, names


def _platform_report(
    rng: np.random.Generator,
    dates: pd.DatetimeIndex,
    spend: np.ndarray,
    live: np.ndarray,
    campaign_channel: np.ndarray,
    contribution: np.ndarray,
    channel_spend: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """What each ad platform reports per campaign and live day, and its revenue claim per channel."""
    day, campaign = np.nonzero(live)
    channel = campaign_channel[campaign]
    n_campaigns = spend.shape[1]
    cpm = np.array([s.cpm for s in _SPECS])[channel] * rng.lognormal(0, 0.2, n_campaigns)[campaign]
    ctr = np.array([s.ctr for s in _SPECS])[channel] * rng.lognormal(0, 0.25, n_campaigns)[campaign]
    frequency = np.array([s.frequency for s in _SPECS])[channel]
    row_spend = spend[day, campaign]

    impressions = np.maximum(
        np.round(row_spend / cpm * 1000 * rng.lognormal(0, 0.12, day.size)), 1
    ).astype(np.int64)
    reach = np.clip(
        np.round(impressions / (frequency * rng.lognormal(0, 0.08, day.size))), 1, impressions
    ).astype(np.int64)
    clicks = rng.binomial(impressions, np.minimum(ctr, 0.5)).astype(np.int64)

    # Platforms credit themselves with a channel-specific multiple of the true contribution on
    # the days they run, shared among live campaigns by spend and a campaign-level bias.
    bias = rng.lognormal(0, 0.3, n_campaigns)
    weighted = np.zeros_like(spend)
    weighted[day, campaign] = row_spend * bias[campaign]
    per_channel = np.zeros_like(channel_spend)
    np.add.at(per_channel.T, campaign_channel, weighted.T)
    claim = np.array([s.claim_factor for s in _SPECS])[channel]
    claimed = (
        claim * contribution[day, channel] * weighted[day, campaign] / per_channel[day, channel]
        * rng.lognormal(0, 0.15, day.size)
    )
    conversions = rng.poisson(claimed / _AVERAGE_ORDER_VALUE).astype(np.int64)
    revenue = np.round(
        conversions * _AVERAGE_ORDER_VALUE * rng.lognormal(0, 0.1, day.size), 2
    )

    ids, names = _campaign_labels()
    claimed_per_channel = np.bincount(channel, weights=revenue, minlength=len(CHANNELS))
    return pd.DataFrame({
        "date": dates.to_numpy()[day],
        "channel": _strings(channel, CHANNELS),
        "campaign_id": _strings(campaign, ids),
        "campaign_name": _strings(campaign, names),
        "impressions": impressions,
        "reach": reach,
        "clicks": clicks,
        "spend": row_spend,
        "conversions": conversions,
        "revenue": revenue,
    }), claimed_per_channel


# Journeys are drawn per block of days on which they end, each block from its own random stream
# (seed, 2, block), so a block's touches do not depend on how many blocks are held at once.
_BLOCK_DAYS = 8
DEFAULT_CHUNK_ROWS = 1_000_000


class _UserIds:
    """User ids 1..n in a shuffled order: a keyed Feistel permutation of 0..n-1 (cycle-walking
    over the next power of four), so any id is computed on its own, without an n-sized table."""

    _ROUNDS = 4

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
        self.keys = np.random.default_rng([seed, 4]).integers(0, 2**63, self._ROUNDS, dtype=np.uint64)

    def _round_trip(self, x: np.ndarray) -> np.ndarray:
        mask = np.uint64((1 << self.half) - 1)
        shift = np.uint64(self.half)
        left, right = x >> shift, x & mask
        for key in self.keys:
            mixed = right ^ key
            mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            mixed ^= mixed >> np.uint64(31)
            left, right = right, left ^ (mixed & mask)
        return (left << shift) | right

    def of(self, index: np.ndarray) -> np.ndarray:
        """The user id (int64, 1..n) of each user number in ``index`` (0..n-1)."""
        out = np.asarray(index, dtype=np.uint64)
        pending = np.ones(out.size, dtype=bool)
        while pending.any():  # cycle-walking: values outside 0..n-1 are permuted again
            out[pending] = self._round_trip(out[pending])
            pending[pending] = out[pending] >= np.uint64(self.n)
        return out.astype(np.int64) + 1


class _TouchpointSource:
    """The demo's touchpoints, drawn block by block of journey end days and handed out in
    ``touchpoint_id`` (time) order. A touch lies at most a journey window before its journey's end,
    so once the journeys ending before day d are drawn, every touch earlier than d minus the window
    is final: only about a window's worth of touches is held at a time."""

    def __init__(
        self, *, seed: int, start: date, ctx: _JourneyContext, conv: _Conversions, cause: np.ndarray,
        lag_weights: np.ndarray, conv_user: np.ndarray, n_buyers: int, never_per_day: np.ndarray,
        users: _UserIds,
    ) -> None:
        self.seed, self.start, self.ctx, self.conv, self.cause = seed, start, ctx, conv, cause
        self.lag_choice = _Choice(lag_weights.reshape(-1, _JOURNEY_WINDOW_DAYS))
        self.conv_user, self.n_buyers = conv_user, n_buyers
        self.never_per_day, self.users = never_per_day, users

    def _block(self, first_day: int, last_day: int) -> tuple[np.ndarray, ...]:
        """Time, user, channel, campaign and interaction codes of the journeys ending on days
        first_day..last_day - 1, in the order drawn."""
        ctx, conv = self.ctx, self.conv
        ctx.rng = np.random.default_rng([self.seed, 2, first_day // _BLOCK_DAYS])
        lo, hi = np.searchsorted(conv.day, [first_day, last_day])
        journey = lo + np.flatnonzero(self.cause[lo:hi] >= -1)
        bought = _converting_touches(ctx, conv, self.cause, self.lag_choice, journey)
        counts = self.never_per_day[first_day:last_day]
        never = _nonconverting_touches(
            ctx, np.repeat(np.arange(first_day, last_day), counts),
            int(self.never_per_day[:first_day].sum()),
        )
        user = np.concatenate([
            self.users.of(self.conv_user[bought.journey]), self.users.of(self.n_buyers + never.journey),
        ])
        return tuple(
            np.concatenate([getattr(bought, f), getattr(never, f)])
            for f in ("time", "channel", "campaign", "interaction")
        ) + (user,)

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """Touchpoint frames of about ``rows`` rows each (at least one, the last may be smaller),
        in touchpoint_id order; the rows do not depend on ``rows``."""
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
            raise ValueError(f"rows per touchpoint chunk must be a positive integer, got {rows!r}")
        days = self.ctx.days
        held: list[np.ndarray] | None = None   # time, channel, campaign, interaction, user
        ready: list[list[np.ndarray]] = []
        n_ready, next_id = 0, 1
        for first_day in range(0, days, _BLOCK_DAYS):
            last_day = min(first_day + _BLOCK_DAYS, days)
            block = self._block(first_day, last_day)
            # Held touches come first, so a stable sort keeps ties in the order they were drawn.
            held = list(block) if held is None else [np.concatenate([h, b]) for h, b in zip(held, block)]
            order = np.argsort(held[0], kind="stable")
            held = [h[order] for h in held]
            final = days if last_day == days else (last_day - _JOURNEY_WINDOW_DAYS) * _SECONDS_PER_DAY
            cut = held[0].size if last_day == days else int(np.searchsorted(held[0], final, side="left"))
            if cut:  # copies: a view would keep the whole sorted block alive
                ready.append([h[:cut].copy() for h in held])
                held = [h[cut:].copy() for h in held]
                n_ready += cut
            while n_ready >= rows or (last_day == days and n_ready):
                parts = [np.concatenate(column) for column in zip(*ready)]
                take = min(rows, n_ready)
                yield self._frame(next_id, [p[:take] for p in parts])
                next_id += take
                rest = [p[take:].copy() for p in parts]
                ready, n_ready = ([rest] if rest[0].size else []), n_ready - take

    def _frame(self, first_id: int, columns: list[np.ndarray]) -> pd.DataFrame:
        time, channel, campaign, interaction, user = columns
        ids, _ = _campaign_labels()
        return pd.DataFrame({
            "touchpoint_id": np.arange(first_id, first_id + time.size, dtype=np.int64),
            "user_id": user,
            "occurred_at": _timestamps(self.start, time),
            "channel": _strings(channel, CHANNELS),
            "campaign_id": _strings(campaign, ids),
            "interaction": _strings(interaction, INTERACTIONS),
        })


def _conversion_frame(start: date, conv: _Conversions, user: np.ndarray) -> pd.DataFrame:
    order = np.argsort(conv.time, kind="stable")
    return pd.DataFrame({
        "conversion_id": np.arange(1, order.size + 1, dtype=np.int64),
        "user_id": user[order],
        "occurred_at": _timestamps(start, conv.time[order]),
        "revenue": conv.cents[order] / 100.0,
    })
