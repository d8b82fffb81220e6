"""Speed and memory of the attribution models on synthetic path tables (Markov orders 1-3, Shapley, heuristics),
and with --demo their credit on the demo data against the generator's truth.

Run: .venv/bin/python benchmarks/bench_attribution.py [--paths 100000 --paths 10000] [--repeats 3] [--skip-slow]
     .venv/bin/python benchmarks/bench_attribution.py --demo [--scale 1 --seed 42]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.attribution import heuristics, markov, parse_paths, shapley

JOURNEY_WINDOW = pd.Timedelta(days=30)  # dbt var journey_lookback_days


def synthesize_paths(n_paths: int, n_channels: int = 12, max_length: int = 8, seed: int = 0) -> pd.DataFrame:
    """``n_paths`` distinct paths of 1..``max_length`` touches over ``n_channels`` channels.

    Channel reach is Zipf-like, journeys per path are 1 + negative binomial (mean ~6.7, long tail)
    and each journey converts with a logistic rate driven by its channels and length (~13% overall).
    """
    rng = np.random.default_rng(seed)
    names = np.array([f"channel_{i:02d}" for i in range(n_channels)], dtype=object)
    reach = 1.0 / np.arange(1, n_channels + 1) ** 0.7
    reach /= reach.sum()
    lift = rng.normal(0.0, 0.5, n_channels)
    seen: set[bytes] = set()
    kept: list[np.ndarray] = []
    while len(kept) < n_paths:
        batch = int((n_paths - len(kept)) * 1.3) + 10
        lengths = rng.integers(1, max_length + 1, batch)
        codes = rng.choice(n_channels, size=int(lengths.sum()), p=reach)
        for path in np.split(codes, np.cumsum(lengths)[:-1]):
            key = path.tobytes()
            if key not in seen:
                seen.add(key)
                kept.append(path)
                if len(kept) == n_paths:
                    break
    journeys = 1 + rng.negative_binomial(1, 0.15, n_paths)
    logit = np.array([-3.0 + 0.5 * lift[p].sum() + 0.15 * p.size for p in kept])
    conversions = rng.binomial(journeys, 1.0 / (1.0 + np.exp(-logit)))
    return pd.DataFrame(
        {
            "path": [" > ".join(names[p]) for p in kept],
            "total_conversions": conversions,
            "total_conversion_value": np.round(conversions * rng.lognormal(4.0, 0.5, n_paths), 2),
            "total_null": journeys - conversions,
        }
    )


@dataclass
class Case:
    name: str
    run: Callable[[], object]
    target_seconds: float | None = None
    slow: bool = False


def measure(case: Case, repeats: int) -> tuple[float, float, float]:
    """Best and median wall time over ``repeats`` runs (after one warm-up), and tracemalloc peak in MB."""
    case.run()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        case.run()
        times.append(time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    case.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return min(times), statistics.median(times), peak / 1e6


def cases(frame: pd.DataFrame) -> list[Case]:
    return [
        Case("parse_paths", lambda: parse_paths(frame)),
        Case("markov order 1", lambda: markov(frame, order=1), target_seconds=0.5),
        Case("markov order 1 + 200 bootstrap", lambda: markov(frame, order=1, n_bootstrap=200), target_seconds=10.0),
        Case("markov order 2", lambda: markov(frame, order=2)),
        Case("markov order 3", lambda: markov(frame, order=3)),
        Case("markov order 2 + 200 bootstrap", lambda: markov(frame, order=2, n_bootstrap=200), slow=True),
        Case("markov order 3 + 200 bootstrap", lambda: markov(frame, order=3, n_bootstrap=200), slow=True),
        Case("shapley (exact)", lambda: shapley(frame), target_seconds=2.0),
        Case("shapley + 200 bootstrap", lambda: shapley(frame, n_bootstrap=200)),
        Case("heuristics", lambda: heuristics(frame)),
        Case("heuristics + 200 bootstrap", lambda: heuristics(frame, n_bootstrap=200)),
    ]


def demo_path_table(touchpoints: pd.DataFrame, conversions: pd.DataFrame) -> pd.DataFrame:
    """Path table as int_journeys/conversion_paths build it: a conversion's journey is the user's touches in the
    30 days before it and after their previous conversion; a user's touches after their last conversion (or all,
    for users who never bought), within 30 days before their last touch, are a non-converting journey."""
    conv = conversions.sort_values(["user_id", "occurred_at", "conversion_id"])
    conv = conv.assign(previous=conv.groupby("user_id")["occurred_at"].shift())
    pairs = touchpoints.merge(conv, on="user_id", suffixes=("", "_conv"))
    lag = pairs["occurred_at_conv"] - pairs["occurred_at"]
    inside = (lag >= pd.Timedelta(0)) & (lag < JOURNEY_WINDOW)
    inside &= pairs["previous"].isna() | (pairs["occurred_at"] > pairs["previous"])
    converting = pairs[inside].sort_values(["conversion_id", "occurred_at", "touchpoint_id"])
    conv_paths = converting.groupby("conversion_id").agg(
        path=("channel", " > ".join), value=("revenue", "first")
    ).groupby("path").agg(total_conversions=("value", "size"), total_conversion_value=("value", "sum"))

    last_buy = conversions.groupby("user_id")["occurred_at"].max()
    open_touches = touchpoints[~(touchpoints["occurred_at"] <= touchpoints["user_id"].map(last_buy))]
    last_touch = open_touches.groupby("user_id")["occurred_at"].transform("max")
    open_touches = open_touches[last_touch - open_touches["occurred_at"] < JOURNEY_WINDOW]
    open_touches = open_touches.sort_values(["user_id", "occurred_at", "touchpoint_id"])
    null_paths = open_touches.groupby("user_id")["channel"].agg(" > ".join).value_counts().rename("total_null")
    table = conv_paths.join(null_paths, how="outer").fillna(0).rename_axis("path").reset_index()
    return table.astype({"total_conversions": "int64", "total_null": "int64"})


def demo_credit(scale: float, seed: int) -> None:
    """Every model's channel shares on the demo next to the truth, as a markdown table, and the journey figures."""
    from ml.synthetic import generate_demo_data

    data = generate_demo_data(scale=scale, seed=seed)
    started = time.perf_counter()
    table = demo_path_table(data.touchpoints, data.conversions)
    build = time.perf_counter() - started
    shares = heuristics(table).pivot(index="channel", columns="model", values="share")
    shares = shares[["first_touch", "last_touch", "linear"]]
    started = time.perf_counter()
    shares["markov"] = markov(table).set_index("channel")["share"]
    shares["shapley"] = shapley(table).set_index("channel")["share"]
    fit = time.perf_counter() - started
    truth = data.ground_truth_channels.set_index("channel")
    if "incremental_conversions" in truth:  # generators before issue 17 did not record it
        shares["true_incremental"] = truth["incremental_conversions"] / truth["incremental_conversions"].sum()
    shares["true_contribution"] = truth["total_contribution"] / truth["total_contribution"].sum()
    shares["first_minus_last"] = shares["first_touch"] - shares["last_touch"]
    out = (100 * shares).round(1)
    if "role" in truth:
        out.insert(0, "role", truth["role"])
    if "platform_overclaim" in truth:
        out["platform_overclaim"] = truth["platform_overclaim"].round(2)
    touched = data.touchpoints["user_id"].unique()
    buyers = np.isin(touched, data.conversions["user_id"]).sum()
    print(f"demo scale {scale:g}, seed {seed}: {len(data.touchpoints):,} touchpoints, {len(data.conversions):,} "
          f"conversions; {buyers:,} of {touched.size:,} touched users buy ({buyers / touched.size:.1%}); "
          f"{table['total_conversions'].sum():,} converting and {table['total_null'].sum():,} non-converting "
          f"journeys on {len(table):,} paths (built in {build:.1f} s, Markov + Shapley in {fit:.1f} s)")
    print("shares in % of conversions; true_incremental: share of the sales each channel caused; "
          "true_contribution: share of the media revenue\n")
    print(out.to_markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, action="append", help="distinct paths per table (repeatable)")
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true", help="skip bootstraps of order-2/3 chains")
    parser.add_argument("--demo", action="store_true", help="credit on the demo data against its truth instead")
    parser.add_argument("--scale", type=float, default=1.0, help="demo scale (with --demo)")
    parser.add_argument("--seed", type=int, default=42, help="demo seed (with --demo)")
    args = parser.parse_args()
    if args.demo:
        demo_credit(args.scale, args.seed)
        return
    sizes = args.paths or [100_000]

    header = f"{'paths':>8} {'case':<32} {'best s':>8} {'median s':>9} {'peak MB':>8} {'target':>8}  states"
    print(header)
    print("-" * len(header))
    for n_paths in sizes:
        frame = synthesize_paths(n_paths, n_channels=args.channels)
        for case in cases(frame):
            if case.slow and args.skip_slow:
                continue
            repeats = 1 if case.slow else args.repeats
            best, median, peak = measure(case, repeats)
            result = case.run() if case.name.startswith("markov") else None
            states = str(result.attrs["n_states"]) if result is not None else ""
            if case.target_seconds is None:
                target = ""
            else:
                target = f"<{case.target_seconds:g} " + ("ok" if best < case.target_seconds else "MISS")
            print(f"{n_paths:>8} {case.name:<32} {best:>8.3f} {median:>9.3f} {peak:>8.1f} {target:>8}  {states}")
    journeys = frame["total_conversions"].sum() + frame["total_null"].sum()
    print(
        f"\nlast table: {len(frame)} paths, {journeys} journeys, {frame['total_conversions'].sum()} conversions, "
        f"{args.channels} channels; process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )


if __name__ == "__main__":
    main()
