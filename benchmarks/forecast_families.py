"""A second data family for scoring the channel forecasts, written independently of ml.synthetic.
Test data, not product code: channels of their own, each with a different structure (level shifts,
multiplicative growth, yearly season with retail peaks, heavy-tailed noise, weekday sends).

``generate_forecast_family(seed, days, end)`` returns one row per date and channel with the columns of
the ``fct_channel_daily`` mart that ``ml.forecasting.forecast_channel_metrics`` reads.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml.events import retail_peak_days

__all__ = ["CHANNELS", "generate_forecast_family"]

CHANNELS: tuple[str, ...] = ("tv_brand", "marketplace", "newsletter", "retail_media", "influencer", "ctv")


def generate_forecast_family(seed: int = 0, days: int = 730, end: date = date(2026, 10, 31)) -> pd.DataFrame:
    """``date, channel, spend, revenue, conversions, impressions, reach, clicks``, one row per date and channel.

    - tv_brand: spend in long plateaus that shift level at a few random dates; revenue follows the
      adstocked spend (slow carryover) with a 10% noise.
    - marketplace: spend and revenue grow multiplicatively (40-80% a year), yearly season, 25% noise.
    - newsletter: sends on Tuesdays and Thursdays (small spend other days), revenue tied to the send day.
    - retail_media: yearly season plus the retail peak days of ml.events (revenue x2.5 on them).
    - influencer: bursts of spend; revenue with heavy-tailed (Student t, 3 dof) multiplicative noise.
    - ctv: campaign flights (on 3-6 weeks, off 1-3 weeks), a steady linear trend, 15% noise.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end - timedelta(days=days - 1), periods=days, freq="D")
    t = np.arange(days)
    years = t / 365.25
    dow = dates.day_of_week.to_numpy()
    season = 1.0 + 0.25 * np.cos(2 * np.pi * (dates.day_of_year.to_numpy() - 340) / 365.25)
    peaks = dates.isin(retail_peak_days(dates[0], dates[-1])["ds"])

    def lognormal(sd: float) -> np.ndarray:
        return rng.lognormal(-sd * sd / 2, sd, days)

    frames = {}
    # tv_brand: level shifts
    shifts = np.sort(rng.choice(np.arange(60, days - 30), size=rng.integers(3, 6), replace=False))
    level = np.exp(np.cumsum(np.isin(t, shifts) * rng.normal(0.0, 0.5, days)))
    spend = 2_000.0 * level * lognormal(0.1)
    frames["tv_brand"] = (spend, 2.2 * _adstock(spend, 0.7) * lognormal(0.1))
    # marketplace: multiplicative growth, yearly season, heavier noise
    growth = np.exp(rng.uniform(0.35, 0.6) * years)
    spend = 800.0 * growth * season * lognormal(0.2)
    frames["marketplace"] = (spend, 4.0 * growth * season * 800.0 * lognormal(0.25))
    # newsletter: weekday sends
    send = np.isin(dow, (1, 3))
    spend = np.where(send, 300.0, 20.0) * lognormal(0.1)
    frames["newsletter"] = (spend, np.where(send, 3_000.0, 400.0) * (1 + 0.3 * years) * lognormal(0.3))
    # retail_media: yearly season and retail peaks
    spend = 1_200.0 * season * np.where(peaks, 1.8, 1.0) * lognormal(0.15)
    frames["retail_media"] = (spend, 3.0 * spend * np.where(peaks, 1.4, 1.0) * lognormal(0.2))
    # influencer: bursts, heavy tails
    burst = np.convolve(rng.random(days) < 0.05, np.ones(5), mode="same") > 0
    spend = 500.0 * np.where(burst, 3.0, 1.0) * lognormal(0.3)
    noise = np.exp(np.clip(0.3 * rng.standard_t(3, days), -2.0, 2.0))
    frames["influencer"] = (spend, 2.5 * _adstock(spend, 0.4) * noise / noise.mean())
    # ctv: flights with a linear trend
    on = _flights(rng, days)
    spend = np.where(on, 1_000.0 * (1 + 0.5 * years) * lognormal(0.15), 0.0)
    frames["ctv"] = (spend, np.where(on, 1.8 * spend * lognormal(0.15), 0.0))

    rows = []
    for channel in CHANNELS:
        spend, revenue = frames[channel]
        spend = np.round(spend, 2)
        revenue = np.round(np.where(spend > 0, revenue, 0.0), 2)
        impressions = np.round(spend / 8.0 * 1000 * lognormal(0.1))
        clicks = np.round(impressions * 0.012 * lognormal(0.15))
        rows.append(pd.DataFrame({
            "date": dates, "channel": channel, "spend": spend, "revenue": revenue,
            "conversions": np.round(revenue / 90.0), "impressions": impressions,
            "reach": np.round(impressions / 2.5), "clicks": clicks,
        }))
    return pd.concat(rows, ignore_index=True)


def _adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    out = np.empty_like(spend)
    carry = 0.0
    for i, value in enumerate(spend):
        carry = decay * carry + (1.0 - decay) * value
        out[i] = carry
    return out


def _flights(rng: np.random.Generator, days: int) -> np.ndarray:
    live = np.zeros(days, dtype=bool)
    day, running = 0, True
    while day < days:
        length = int(rng.integers(21, 43) if running else rng.integers(7, 22))
        live[day:day + length] = running
        day, running = day + length, not running
    live[-45:] = True  # the channel is live at the end, so every backtest fold has held-out days
    return live
