"""Skill of ml.forecasting against its naive baselines, before and after issue 13, on two data families.

Run: .venv/bin/python benchmarks/bench_forecast_skill.py [--seeds 42 43] [--n-jobs 2] [--out docs/forecast_skill.md]

Settings (trend prior, yearly-season threshold) were chosen on seeds 101 and 102 of both families; the
report seeds are 42 and 43.

"before" is the forecast as it was (Prophet, its default trend flexibility, country holidays only, no
fallback): ``retail_peaks=False, changepoint_prior_scale=0.05``, scored by its own model errors. "after"
is today's default, scored as published (after the fallback to the better naive baseline). Both are
backtested on the same folds and days as the naive baselines: 30-day horizon, 3 rolling origins.
Families: the demo (``ml.synthetic.generate_demo_data``, summed per channel like fct_channel_daily) and
``benchmarks.forecast_families`` (channels, seasons and noise of its own).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ml.forecasting import METRICS, forecast_channel_metrics
from ml.synthetic import generate_demo_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_families import generate_forecast_family  # noqa: E402

BEFORE = {"retail_peaks": False, "changepoint_prior_scale": 0.05}


def demo_daily(seed: int) -> pd.DataFrame:
    campaigns = generate_demo_data(scale=1.0, seed=seed, days=730).ad_performance_daily
    return campaigns.groupby(["date", "channel"], as_index=False)[list(METRICS)].sum()


FAMILIES = {"demo": demo_daily, "second family": lambda seed: generate_forecast_family(seed=seed, days=730)}


def score(daily: pd.DataFrame, n_jobs: int) -> tuple[pd.DataFrame, dict[str, float]]:
    timings = {}
    started = time.perf_counter()
    before = forecast_channel_metrics(daily, n_jobs=n_jobs, **BEFORE)
    timings["before"] = time.perf_counter() - started
    started = time.perf_counter()
    after = forecast_channel_metrics(daily, n_jobs=n_jobs)
    timings["after"] = time.perf_counter() - started
    timings["after_cpu"] = after.timings["series_cpu"]
    timings["before_cpu"] = before.timings["series_cpu"]
    old = before.skill.set_index(["channel", "metric"])
    new = after.skill.set_index(["channel", "metric"])
    table = pd.DataFrame({
        "naive": new["naive_method"].str.replace("naive_", ""),
        "naive err": new["naive_mape"],
        "before err": old["model_mape"],
        "before skill": old["skill"],
        "after err": new["published_mape"],
        "after skill": new["published_skill"],
        "method": new["method"],
        "naive total err": new["naive_total_error"],
        "before total skill": old["total_skill"],
        "after total skill": new["published_total_skill"],
        "model skill (no fallback)": new["skill"],
    })
    return table, timings


def target(table: pd.DataFrame) -> str:
    days, totals = table["after skill"].median(), table["after total skill"].median()
    verdict = {True: "met", False: "not met"}
    return f"days {verdict[bool(days >= 0.2)]}, 30-day totals {verdict[bool(totals >= 0.2)]}"


def medians(table: pd.DataFrame, where=None) -> str:
    rows = table if where is None else table[where]
    return (f"median skill on days {rows['before skill'].median():.3f} before, {rows['after skill'].median():.3f} "
            f"after; on 30-day totals {rows['before total skill'].median():.3f} before, "
            f"{rows['after total skill'].median():.3f} after; lowest after {rows['after skill'].min():.3f} (days), "
            f"{rows['after total skill'].min():.3f} (totals); {int((rows['method'] != 'prophet').sum())} of "
            f"{len(rows)} series on the naive fallback")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/forecast_skill.md")
    args = parser.parse_args()

    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "ml/forecasting.py"], capture_output=True, text=True).stdout
    command = "python benchmarks/bench_forecast_skill.py " + " ".join(sys.argv[1:])
    lines = [
        "# Forecast skill against naive baselines",
        "",
        "Written by `benchmarks/bench_forecast_skill.py`; do not edit by hand.",
        "",
        f"Command: `{command.strip()}`; code revision `{revision}`{' (ml/forecasting.py modified)' if dirty else ''}.",
        "",
        "Each (channel, metric) series is backtested on 3 rolling origins with a 30-day horizon, on the days",
        "with spend. Errors are WAPE (`sum |forecast - actual| / sum |actual|`) over every held-out day",
        "(`err`), or over the three 30-day totals (`total`). The naive error is the better of the mean of",
        "the last 28 live days (`28d_mean`) and the same-weekday mean of the last 4 weeks (`weekday`),",
        "on the same folds. Skill is `1 - error / naive error`: 0 is no better than naive.",
        "**before**: the Prophet models as they were (trend prior 0.05, country holidays, no fallback).",
        "**after**: as published now (trend prior, retail peak days, and the fallback: a series whose model",
        "does not beat naive on days, or is worse on totals, is published as the better baseline, named",
        "in `method`, and scores 0). `model skill (no fallback)` is the new model's own skill.",
        "Settings were chosen on seeds 101 and 102 of both families; these are other seeds.",
        "",
        "What limits skill on the demo: its spend is generated as a weekly re-planned budget level (log",
        "sd 0.6, little persistence) with 3-10 day pulses (pause, halve, double) every couple of weeks and",
        "campaign flights (`ml.synthetic._budget_level`, `_flights`), and every other metric follows",
        "spend. That movement is unforecastable by construction from the history alone: a model can only",
        "find the level and the weekday pacing, which the naive means also find. Revenue that follows",
        "planned spend is what the planned-spend scenarios (issue 13 item 3) answer. The second family has",
        "structure a model can use (growth, yearly seasons, retail peaks, trends) but 10-30% daily noise",
        "on every metric, which no model removes: skill shows on its 30-day totals rather than its days.",
        "The fallback asks a model to beat naive on days and not lose on totals, so a model that wins on",
        "totals but not on days is replaced too (compare `before total skill` with `after total skill`).",
        "",
    ]
    summary = []
    for family, make in FAMILIES.items():
        for seed in args.seeds:
            daily = make(seed)
            table, timings = score(daily, args.n_jobs)
            title = f"{family}, seed {seed}"
            revenue = table.index.get_level_values("metric") == "revenue"
            print(f"== {title}: {medians(table)}")
            print(f"   revenue only: {medians(table, revenue)}")
            print(table.round(3).to_string())
            print(f"   seconds: before {timings['before']:.1f} (CPU {timings['before_cpu']:.1f}), "
                  f"after {timings['after']:.1f} (CPU {timings['after_cpu']:.1f})\n", flush=True)
            summary.append(f"| {title} | {medians(table)} | {target(table)} |")
            lines += [
                f"## {title}",
                "",
                f"All series: {medians(table)}.",
                "",
                f"Revenue (the ROI table's `skill`): {medians(table, revenue)}.",
                "",
                table.round(3).reset_index().to_markdown(index=False),
                "",
                f"Time with n_jobs={args.n_jobs} ({daily['channel'].nunique()} channels x 6 metrics, 730 days, "
                f"on a shared 2-core machine): before {timings['before']:.1f} s wall / {timings['before_cpu']:.1f} s "
                f"CPU, after {timings['after']:.1f} s wall / {timings['after_cpu']:.1f} s CPU.",
                "",
            ]
    lines += ["## Summary", "", "Target (issue 13): median skill >= 0.2 after the fallback, never below 0.", "",
              "| data | result | target |", "|---|---|---|", *summary, ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
