"""A second generator family for scoring the media-mix model, written independently of ml.synthetic.
Test data, not product code: delayed carryover, several saturation shapes, correlated budgets,
a permanent level shift, unflagged promotion and outage days, 5% noise, three years of history.

``generate_media_family(seed, end)`` returns a :class:`MediaFamily` whose ``daily`` is the wide
``date, revenue, <channel>...`` frame ``ml.mmm.fit_media_mix_model`` takes, and whose
:meth:`MediaFamily.true_roas` gives each channel's true ROAS over any window: contribution landing
in the window (from earlier spend too) over spend made in it, from the true response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CHANNELS", "MediaFamily", "generate_media_family"]

HISTORY_DAYS = 3 * 365
NOISE_SD = 0.05          # multiplicative daily noise on revenue
KERNEL_DAYS = 28         # carryover kernels are cut here and renormalized


@dataclass(frozen=True)
class _Channel:
    name: str
    spend_share: float               # centre of the share of total spend (jittered per seed)
    roas: tuple[float, float]        # whole-history ROAS drawn uniformly from this range
    kernel: str                      # "geometric", "weibull" (peak days later) or "delayed" (geometric from a lag)
    kernel_params: tuple[float, float]
    saturation: str                  # "hill" or "exponential"
    half_ratio: tuple[float, float]  # saturation point / mean live spend, drawn from this range
    shape: tuple[float, float]       # Hill exponent range (unused for exponential)
    pattern: str                     # "flighted", "always_on", "pulsed"


# Eight channels with names of their own. "tv" is the biggest (about 35-44% of spend) and peaks days
# after the spend; "search_generic" and "shopping" share a budget driver, so their spend moves together.
CHANNELS: tuple[_Channel, ...] = (
    _Channel("tv", 0.38, (1.4, 2.4), "weibull", (2.2, 6.0), "hill", (0.8, 1.4), (2.5, 3.5), "flighted"),
    _Channel("online_video", 0.13, (1.0, 2.0), "delayed", (0.6, 3.0), "exponential", (0.7, 1.5), (1.0, 1.0),
             "flighted"),
    _Channel("search_generic", 0.14, (2.0, 3.5), "geometric", (0.1, 0.0), "exponential", (1.0, 2.0), (1.0, 1.0),
             "always_on"),
    _Channel("shopping", 0.10, (2.5, 4.0), "geometric", (0.2, 0.0), "hill", (1.0, 2.0), (1.0, 1.5), "always_on"),
    _Channel("paid_social", 0.12, (1.2, 2.2), "geometric", (0.5, 0.0), "hill", (0.8, 1.6), (2.2, 3.0), "always_on"),
    _Channel("creators", 0.05, (0.8, 2.0), "weibull", (1.6, 4.0), "exponential", (0.8, 1.5), (1.0, 1.0), "pulsed"),
    _Channel("radio", 0.05, (0.5, 1.5), "delayed", (0.5, 2.0), "hill", (0.8, 1.5), (1.5, 2.5), "flighted"),
    _Channel("partners", 0.03, (1.5, 3.0), "geometric", (0.3, 0.0), "exponential", (1.0, 2.0), (1.0, 1.0),
             "always_on"),
)
_CORRELATED = ("search_generic", "shopping")


@dataclass(frozen=True)
class MediaFamily:
    """One generated data set: the model's input and the truth behind it."""

    daily: pd.DataFrame         # date, revenue, one spend column per channel
    contribution: pd.DataFrame  # date, one true contribution column per channel
    parameters: pd.DataFrame    # one row per channel: kernel, saturation, their parameters, whole-history ROAS
    level_shift_date: date
    level_shift: float          # baseline multiplier from level_shift_date on
    outlier_dates: tuple[date, ...]

    def true_roas(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """channel, spend, contribution, roas over ``start``..``end`` (inclusive; ``None`` leaves a side open)."""
        dates = pd.to_datetime(self.daily["date"])
        mask = np.ones(len(dates), dtype=bool)
        if start is not None:
            mask &= (dates >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            mask &= (dates <= pd.Timestamp(end)).to_numpy()
        if not mask.any():
            raise ValueError(f"window {start}..{end} holds none of the days {dates.min().date()}..{dates.max().date()}")
        names = [c.name for c in CHANNELS]
        spend = self.daily.loc[mask, names].sum().to_numpy(dtype=float)
        contribution = self.contribution.loc[mask, names].sum().to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            roas = np.where(spend > 0, contribution / spend, np.nan)
        return pd.DataFrame({"channel": names, "spend": spend, "contribution": contribution, "roas": roas})


def carryover_kernel(kind: str, params: tuple[float, float], days: int = KERNEL_DAYS) -> np.ndarray:
    """Weights of today's and the next ``days - 1`` days' effect of one unit of spend, summing to one."""
    lag = np.arange(days, dtype=float)
    if kind == "geometric":
        weights = params[0] ** lag
    elif kind == "weibull":  # Weibull density in the lag: shape > 1 peaks after the spend day
        shape, scale = params
        x = (lag + 0.5) / scale
        weights = shape / scale * x ** (shape - 1.0) * np.exp(-(x ** shape))
    elif kind == "delayed":  # delayed geometric (Jin et al. 2017): decay ** ((lag - delay) ** 2)
        decay, delay = params
        weights = decay ** ((lag - delay) ** 2)
    else:
        raise ValueError(f"unknown carryover kernel {kind!r}")
    return weights / weights.sum()


def saturate(kind: str, x: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Share of the maximum effect at adstocked spend ``x``: Hill, or exponential ``1 - exp(-x ln2 / half)``."""
    if kind == "hill":
        ratio = np.power(np.maximum(x, 0.0) / half, shape)
        return ratio / (1.0 + ratio)
    if kind == "exponential":  # half the maximum at x = half, like the Hill half point
        return 1.0 - np.exp(-np.log(2.0) * np.maximum(x, 0.0) / half)
    raise ValueError(f"unknown saturation {kind!r}")


def generate_media_family(seed: int = 0, end: date = date(2026, 12, 20), days: int = HISTORY_DAYS,
                          daily_spend: float = 20_000.0) -> MediaFamily:
    """Three years (``days``) of daily spend and revenue up to ``end``, deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 20_261_130])
    dates = pd.date_range(end - timedelta(days=days - 1), end, freq="D")
    n = len(dates)
    t = np.arange(n)

    shares = np.array([c.spend_share for c in CHANNELS]) * rng.uniform(0.8, 1.2, len(CHANNELS))
    shares /= shares.sum()
    common = _smooth(rng.normal(size=n), 21) * 0.35 + _step_path(rng, n, 28, 0.25)  # shared budget driver
    spend = np.column_stack([
        _spend_path(rng, c, n, dates, common if c.name in _CORRELATED else None) for c in CHANNELS
    ])
    spend *= daily_spend * shares / spend.mean(axis=0)

    contribution = np.empty_like(spend)
    rows = []
    media_total = 0.0
    for i, c in enumerate(CHANNELS):
        kernel = carryover_kernel(c.kernel, c.kernel_params if c.kernel == "geometric" else _jitter(rng, c))
        adstocked = np.convolve(spend[:, i], kernel)[:n]
        live = adstocked[spend[:, i] > 0]
        half = rng.uniform(*c.half_ratio) * live.mean()
        shape = rng.uniform(*c.shape) if c.saturation == "hill" else 1.0
        unit = saturate(c.saturation, adstocked, half, shape)
        roas = rng.uniform(*c.roas)
        contribution[:, i] = roas * spend[:, i].sum() * unit / unit.sum()
        media_total += contribution[:, i].sum()
        peak = int(np.argmax(kernel))
        rows.append({"channel": c.name, "kernel": c.kernel, "peak_lag_days": peak, "saturation": c.saturation,
                     "half": half, "shape": shape, "roas": roas})

    # Baseline: media is about 35% of revenue; trend, weekly and yearly cycles, one permanent level shift.
    level = media_total / n / 0.35 * 0.65
    weekly = np.array([0.97, 0.95, 0.97, 1.0, 1.04, 1.06, 1.01])[dates.dayofweek]
    yearly = 1.0 + 0.10 * np.sin(2 * np.pi * (dates.dayofyear.to_numpy() - 80) / 365.25)
    trend = 1.0 + rng.uniform(-0.1, 0.25) * t / n
    shift_day = int(rng.integers(int(0.45 * n), int(0.9 * n)))
    shift = float(rng.choice([-1, 1]) * rng.uniform(0.10, 0.20) + 1.0)
    baseline = level * trend * weekly * yearly * np.where(t >= shift_day, shift, 1.0)

    # Unflagged outliers: promotions of 1-3 days (+25..70% of baseline) and a few outages (-30..60%).
    bump = np.zeros(n)
    outliers: list[int] = []
    for _ in range(int(rng.integers(4, 7)) * days // 365):
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 4))
        bump[start:start + length] += rng.uniform(0.25, 0.70)
        outliers += range(start, min(n, start + length))
    for _ in range(days // 365):
        day = int(rng.integers(0, n))
        bump[day] -= rng.uniform(0.3, 0.6)
        outliers.append(day)
    revenue = (baseline * (1.0 + bump) + contribution.sum(axis=1)) * np.exp(rng.normal(0.0, NOISE_SD, n))

    names = [c.name for c in CHANNELS]
    daily = pd.DataFrame({"date": dates, "revenue": revenue, **{name: spend[:, i] for i, name in enumerate(names)}})
    contrib = pd.DataFrame({"date": dates, **{name: contribution[:, i] for i, name in enumerate(names)}})
    return MediaFamily(
        daily=daily, contribution=contrib, parameters=pd.DataFrame(rows),
        level_shift_date=dates[shift_day].date(), level_shift=shift,
        outlier_dates=tuple(sorted({dates[d].date() for d in outliers})),
    )


def _jitter(rng: np.random.Generator, c: _Channel) -> tuple[float, float]:
    a, b = c.kernel_params
    return (a * rng.uniform(0.85, 1.15), b * rng.uniform(0.8, 1.25))


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    out = np.convolve(x, np.ones(width) / width, mode="same")
    return out / (out.std() or 1.0)


def _step_path(rng: np.random.Generator, n: int, period: int, sd: float) -> np.ndarray:
    """Budget that changes every ``period`` days (log scale)."""
    steps = rng.normal(0.0, sd, n // period + 1)
    return np.repeat(steps, period)[:n]


def _spend_path(rng: np.random.Generator, c: _Channel, n: int, dates: pd.DatetimeIndex,
                common: np.ndarray | None) -> np.ndarray:
    """Positive daily spend of one channel (arbitrary scale), zero on dark days."""
    log_level = _step_path(rng, n, int(rng.integers(21, 43)), 0.3) + 0.1 * rng.normal(size=n)
    if common is not None:  # mostly the shared driver, a little of its own
        log_level = common + _step_path(rng, n, 35, 0.2) + 0.08 * rng.normal(size=n)
    weekly = rng.uniform(0.9, 1.1, 7)[dates.dayofweek]
    spend = np.exp(log_level) * weekly
    on = np.ones(n, dtype=bool)
    if c.pattern == "flighted":  # weeks on air, then dark
        day, live = 0, bool(rng.integers(0, 2))
        while day < n:
            length = int(rng.integers(14, 43) if live else rng.integers(7, 29))
            on[day:day + length] = live
            day, live = day + length, not live
    elif c.pattern == "pulsed":  # short bursts
        on[:] = False
        for start in rng.integers(0, n, n // 20):
            on[start:start + int(rng.integers(3, 8))] = True
    return np.where(on, spend, 0.0)
