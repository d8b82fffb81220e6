"""Speed and memory of the attribution models on synthetic path tables (Markov orders 1-3, Shapley, heuristics).

Run: .venv/bin/python benchmarks/bench_attribution.py [--paths 100000 --paths 10000] [--repeats 3] [--skip-slow]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, action="append", help="distinct paths per table (repeatable)")
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true", help="skip bootstraps of order-2/3 chains")
    args = parser.parse_args()
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
