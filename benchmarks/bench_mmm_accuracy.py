"""Media-mix accuracy against the demo generator's truth, over many seeds and window ends.

For every (seed, window end) the demo is generated, the model fitted with each variant's settings,
and every channel's estimated ROAS compared with ``ml.synthetic.true_roas`` over the same window.
Prints, per variant, the share of major channels (>= 10% of window spend) within 25% of the truth,
the share of windows where every major channel is, the mean absolute error and the share of true
values inside the 95% interval.

Run: .venv/bin/python benchmarks/bench_mmm_accuracy.py [--seeds 20] [--ends 2026-04-30 2026-08-31 2026-11-21 2026-12-20]
     [--variants default window_curves cv] [--jobs 2] [--csv results.csv]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import synthetic  # noqa: E402
from ml.mmm import daily_frame, fit_media_mix_model  # noqa: E402

VARIANTS: dict[str, dict] = {
    "default": {},
    "window_curves": {"curve_history_days": 180},
    "no_prior": {"prior_strength": 0.0},
    "no_retail_peaks": {"retail_peaks": False},
    "cv": {"criterion": "cv"},
}
@lru_cache(maxsize=1)
def _demo(seed: int, end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    demo = synthetic.generate_demo_data(seed=seed, end=end)
    truth = demo.ground_truth_daily
    daily = daily_frame(truth[["date", "channel", "spend"]], demo.ground_truth_revenue_daily[["date", "revenue"]])
    return daily, truth


def _score(job: tuple[int, date, str]) -> list[dict]:
    seed, end, variant = job
    daily, truth = _demo(seed, end)
    started = time.perf_counter()
    result = fit_media_mix_model(daily, **VARIANTS[variant])
    seconds = time.perf_counter() - started
    diag = result.diagnostics
    expected = synthetic.true_roas(truth, diag["start_date"], diag["end_date"]).set_index("channel")
    table = result.channels.set_index("channel")
    share = table["spend"] / table["spend"].sum()
    return [
        {
            "variant": variant, "seed": seed, "end": end, "channel": channel, "spend_share": share[channel],
            "true_roas": expected.loc[channel, "roas"], "roas": table.loc[channel, "roas"],
            "roas_lower": table.loc[channel, "roas_lower"], "roas_upper": table.loc[channel, "roas_upper"],
            "seconds": seconds,
        }
        for channel in table.index
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 42, 0, 1, ... (this many)")
    parser.add_argument("--ends", type=date.fromisoformat, nargs="+",
                        default=[date(2026, 4, 30), date(2026, 8, 31), date(2026, 11, 21), date(2026, 12, 20)])
    parser.add_argument("--variants", nargs="+", default=["default", "window_curves"], choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="also write every channel's row here")
    args = parser.parse_args()

    seeds = [42, *range(args.seeds - 1)]
    # Consecutive jobs share a demo, so each worker generates it once per (seed, end).
    jobs = [(seed, end, variant) for seed in seeds for end in args.ends for variant in args.variants]
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for part in pool.map(_score, jobs, chunksize=len(args.variants)):
            rows += part
    report = pd.DataFrame(rows)
    if args.csv:
        report.to_csv(args.csv, index=False)
    report["error"] = report["roas"] / report["true_roas"] - 1
    report["within_25"] = report["error"].abs() <= 0.25
    report["inside"] = report["true_roas"].between(report["roas_lower"], report["roas_upper"])
    major = report[report["spend_share"] >= 0.10]
    summary = major.groupby("variant").agg(
        major_channels=("error", "size"),
        within_25pct=("within_25", "mean"),
        mean_abs_error=("error", lambda e: e.abs().mean()),
        inside_95pct=("inside", "mean"),
        seconds_per_fit=("seconds", "mean"),
    )
    summary["windows_all_within"] = major.groupby(["variant", "seed", "end"])["within_25"].all().groupby("variant").mean()
    summary["inside_all_channels"] = report.groupby("variant")["inside"].mean()
    print(f"{len(seeds)} seeds x {len(args.ends)} window ends ({', '.join(map(str, args.ends))}), "
          "180-day windows, major = >= 10% of window spend")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
