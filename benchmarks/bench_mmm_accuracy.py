"""Media-mix accuracy against the demo generator's truth, over many seeds and window ends.

For every (seed, window end) the demo is generated, the model fitted with each variant's settings,
and every channel's estimated ROAS compared with ``ml.synthetic.true_roas`` over the same window.
Prints, per variant, the share of major channels (>= 10% of window spend) within 25% of the truth,
the share of windows where every major channel is, the mean absolute error and the share of true
values inside the 95% interval, and writes the same table, with the date and the command, to
docs/mmm_accuracy.md (the figures ml.mmm's docstrings point to; --no-doc for a trial run).

Run: .venv/bin/python benchmarks/bench_mmm_accuracy.py [--seeds 20] [--ends 2026-04-30 2026-08-31 2026-11-21 2026-12-20]
     [--variants default window_curves cv] [--jobs 2] [--csv results.csv] [--doc docs/mmm_accuracy.md | --no-doc]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml import synthetic  # noqa: E402
from ml.mmm import daily_frame, fit_media_mix_model  # noqa: E402

VARIANTS: dict[str, dict] = {
    "default": {},
    "window_curves": {"curve_history_days": 180},
    "no_prior": {"prior_strength": 0.0},
    "no_retail_peaks": {"retail_peaks": False},
    "cv": {"criterion": "cv"},
}
# The code the figures depend on: a revision with local edits here is not the revision measured.
_MODEL_SOURCES = ("ml/mmm", "ml/events.py", "ml/synthetic.py", "benchmarks/bench_mmm_accuracy.py")
COLUMNS = {
    "major_channels": "(seed, window, channel) rows with at least 10% of the window's spend",
    "within_25pct": "share of those whose estimated ROAS is within 25% of the true ROAS",
    "mean_abs_error": "mean of |estimated / true ROAS - 1| over them",
    "inside_95pct": "share of them whose true ROAS lies inside the 95% interval",
    "seconds_per_fit": "mean wall time of one fit (with --jobs fits running side by side)",
    "windows_all_within": "share of (seed, window) pairs where every major channel is within 25%",
    "inside_all_channels": "interval coverage over every channel, minor ones included",
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
    parser.add_argument("--variants", nargs="+", default=["default", "window_curves", "cv"], choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="also write every channel's row here")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "mmm_accuracy.md",
                        help="markdown file the figures are written to")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the markdown file as it is")
    args = parser.parse_args()

    started, revision, load_before = time.perf_counter(), _revision(), os.getloadavg()[0]
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
    summary = summary.reindex(args.variants).round(3)
    scope = (f"{len(seeds)} seeds x {len(args.ends)} window ends ({', '.join(map(str, args.ends))}), "
             "180-day windows, major = >= 10% of window spend")
    print(scope)
    print(summary.to_string())
    if not args.no_doc:
        run = {
            "minutes": (time.perf_counter() - started) / 60, "revision": revision,
            "load": f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        }
        args.doc.write_text(_markdown(summary, seeds, args, run), encoding="utf-8")
        print(f"wrote {args.doc}")


def _markdown(summary: pd.DataFrame, seeds: list[int], args: argparse.Namespace, run: dict) -> str:
    command = shlex.join([".venv/bin/python", "benchmarks/bench_mmm_accuracy.py", *sys.argv[1:]])
    machine = f"{os.cpu_count()} CPU(s), Python {platform.python_version()}"

    def settings(name: str) -> str:
        return ", ".join(f"`{k}={v!r}`" for k, v in VARIANTS[name].items()) or "the defaults of fit_media_mix_model"

    variants = "\n".join(f"- `{name}`: {settings(name)}" for name in args.variants)
    columns = "\n".join(f"- `{name}`: {text}" for name, text in COLUMNS.items())
    return f"""# Media-mix model accuracy on the demo data

Written by `benchmarks/bench_mmm_accuracy.py`: rerun it rather than editing this file. The
docstrings of `ml.mmm` point here for the figures behind their choices (curve history, the
in-sample criterion, interval coverage).

- Run on {date.today().isoformat()}, {run["minutes"]:.1f} minutes on {machine}; one-minute load average
  {run["load"]} (a load above the CPU count means other work competed with the fits and slowed
  `seconds_per_fit`).
- Code revision: {run["revision"]}.
- Command: `{command}`
- Seeds ({len(seeds)}): {', '.join(map(str, seeds))}.
- Window ends ({len(args.ends)}): {', '.join(map(str, args.ends))}.
- Each fit sees the 730 days of demo data up to the window end and estimates ROAS over its last
  180 days; the truth is `ml.synthetic.true_roas` over the same days. A major channel has at
  least 10% of the window's spend.

Variants:

{variants}

{summary.to_markdown()}

Columns:

{columns}
"""


def _revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *_MODEL_SOURCES],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    dirty = [line[3:] for line in status.splitlines()]
    return f"`{head}`" + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


if __name__ == "__main__":
    main()
