"""Speed of ml.forecasting on the demo data: 8 channels x 730 days x 6 metrics, 3 backtest folds.

Run: .venv/bin/python benchmarks/bench_forecasting.py [--days 730] [--n-jobs 2] [--serial]
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from ml.forecasting import METRICS, forecast_channel_metrics
from ml.synthetic import generate_demo_data


def channel_daily(days: int, seed: int) -> pd.DataFrame:
    """The demo campaigns summed to one row per date and channel, like the fct_channel_daily mart."""
    campaigns = generate_demo_data(scale=1.0, seed=seed, days=days).ad_performance_daily
    return campaigns.groupby(["date", "channel"], as_index=False)[list(METRICS)].sum()


def timed_forecast(daily: pd.DataFrame, n_jobs: int, label: str, rows: list[tuple[str, float]]):
    started = time.perf_counter()
    forecast = forecast_channel_metrics(daily, n_jobs=n_jobs)
    rows.append((f"{label}: total", time.perf_counter() - started))
    for phase in ("prepare", "fit_and_backtest", "assemble"):
        rows.append((f"{label}:   {phase}", forecast.timings[phase]))
    rows.append((f"{label}:     (of which the model choice: 6-origin scores, channel agreement)",
                 forecast.timings["choice"]))
    rows.append((f"{label}:   (series final fits + sampling, summed over workers)", forecast.timings["series_fit"]))
    rows.append((f"{label}:   (series backtest folds, summed over workers)", forecast.timings["series_backtest"]))
    rows.append((f"{label}:   (CPU of all series incl. Stan, summed)", forecast.timings["series_cpu"]))
    # On a shared machine wall time mostly measures the neighbours; CPU / workers is the floor
    # the fits can reach on idle cores (worker start-up, about one Prophet import, comes on top).
    rows.append((f"{label}:   (that CPU / {n_jobs} workers)", forecast.timings["series_cpu"] / n_jobs))
    return forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--serial", action="store_true", help="also time n_jobs=1")
    args = parser.parse_args()

    rows: list[tuple[str, float]] = []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    daily = channel_daily(args.days, seed=42)
    rows.append(("demo data + daily aggregation", time.perf_counter() - started))

    # Every call starts (and stops) its own worker pool, so the total includes worker start-up.
    forecast = timed_forecast(daily, args.n_jobs, f"n_jobs={args.n_jobs}", rows)
    if args.serial:
        timed_forecast(daily, 1, "n_jobs=1", rows)

    for name in ("roi_forecast_table", "roi_timeseries_table", "reach_ctr_timeseries_table"):
        started = time.perf_counter()
        table = getattr(forecast, name)()
        rows.append((f"{name} ({len(table)} rows)", time.perf_counter() - started))

    n_series = forecast.backtest.shape[0]
    print(f"{daily['channel'].nunique()} channels x {daily['date'].nunique()} days x {len(METRICS)} metrics = "
          f"{n_series} series, {int(forecast.backtest['folds'].sum())} backtest folds, {os.cpu_count()} cores, "
          f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    width = max(len(name) for name, _ in rows)
    print(f"{'phase':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print()
    print("backtest WAPE by channel and metric (fraction):")
    print(forecast.backtest.pivot(index="channel", columns="metric", values="mape").round(3).to_string())


if __name__ == "__main__":
    main()
