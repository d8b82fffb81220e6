"""Speed of the media-mix model fit (hyperparameter search + bootstrap) and of the budget optimizer on demo data.

Run: .venv/bin/python benchmarks/bench_mmm.py [--lookback 90 180 365] [--bootstrap 100] [--repeats 3] [--seed 42]
     [--criteria cv in_sample] [--geometric-plain] [--window-coefficients] [--curve-history-days 540]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import holidays
import pandas as pd

from ml.budget import recommend_budget
from ml.mmm import daily_frame, fit_media_mix_model
from ml.synthetic import generate_demo_data, true_roas


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time over ``repeats`` runs and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookback", type=int, nargs="+", default=[90, 180, 365])
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 9, 30))
    parser.add_argument("--criteria", nargs="+", default=["cv", "in_sample"], choices=["cv", "in_sample"])
    parser.add_argument("--geometric-plain", action="store_true",
                        help="time the earlier default instead (robust=False, delay_grid=(0,): geometric carryover only)")
    parser.add_argument("--window-coefficients", action="store_true",
                        help="time the earlier default's coefficients instead (fitted on the window alone, "
                             "intervals not spanning the curve history's fit)")
    parser.add_argument("--curve-history-days", type=int,
                        help="time this curve history instead of the default (540: the earlier default)")
    args = parser.parse_args()
    extra = {"robust": False, "delay_grid": (0,)} if args.geometric_plain else {}
    if args.curve_history_days:
        extra["curve_history_days"] = args.curve_history_days
    if args.window_coefficients:
        extra.update(coefficients_on="window", coefficient_uncertainty=False)

    demo = generate_demo_data(seed=args.seed, end=args.end)
    truth = demo.ground_truth_daily
    daily = daily_frame(truth[["date", "channel", "spend"]], demo.ground_truth_revenue_daily[["date", "revenue"]])
    calendar = list(holidays.US(years=range(args.end.year - 2, args.end.year + 1)))
    n_channels = daily.shape[1] - 2

    rows = []
    for lookback in args.lookback:
        for criterion in args.criteria:
            fit_seconds, model = timed(
                lambda: fit_media_mix_model(
                    daily, lookback_days=lookback, n_bootstrap=args.bootstrap, holidays=calendar, criterion=criterion,
                    **extra,
                ),
                args.repeats,
            )
            budget_seconds, _ = timed(lambda: recommend_budget(model), args.repeats)
            shifted_seconds, _ = timed(
                lambda: recommend_budget(model, total_budget=model.current_daily_spend.sum() * 1.2, max_change=0.5),
                args.repeats,
            )
            diag = model.diagnostics
            table = model.channels.set_index("channel")
            expected = true_roas(truth, diag["start_date"], diag["end_date"]).set_index("channel").reindex(table.index)
            share = table["spend"] / table["spend"].sum()
            major = share >= 0.10
            error = (table["roas"] / expected["roas"] - 1).abs()
            inside = (table["roas_lower"] <= expected["roas"]) & (expected["roas"] <= table["roas_upper"])
            rows.append({
                "lookback_days": lookback,
                "criterion": criterion,
                "channels": n_channels,
                "bootstrap": args.bootstrap,
                "cv_folds": diag["cv_folds"],
                "fit_s": round(fit_seconds, 2),
                "budget_s": round(budget_seconds, 3),
                "budget_+20%_s": round(shifted_seconds, 3),
                "major_max_roas_err": round(float(error[major].max()), 3),
                "major_in_interval": f"{int(inside[major].sum())}/{int(major.sum())}",
                "r2": round(diag["r2"], 3),
            })

    pd.set_option("display.width", 200)
    print(f"demo seed {args.seed}, end {args.end}, {n_channels} channels, median of {args.repeats} runs, one process")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
