"""Speed and peak memory of ml.synthetic.generate_demo_data at several scales (1 = ~740k touchpoints).

Run: .venv/bin/python benchmarks/bench_synthetic.py [--max-scale 50] [--seed 42]
Each scale runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCALES = (1.0, 5.0)
LARGE_SCALES = (20.0, 50.0)
END = date(2026, 6, 30)  # fixed so every run generates the same data


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(scale: float, seed: int) -> dict:
    """Generate once in this process and report sizes, wall time and memory."""
    from ml.synthetic import generate_demo_data

    before = _peak_mb()  # interpreter + numpy/pandas/pyarrow imports
    started = time.perf_counter()
    data = generate_demo_data(scale=scale, seed=seed, end=END)
    seconds = time.perf_counter() - started
    frames_mb = sum(f.memory_usage(deep=True).sum() for f in data.tables().values()) / 2**20
    return {
        "scale": scale,
        "touchpoints": len(data.touchpoints),
        "conversions": len(data.conversions),
        "ad_rows": len(data.ad_performance_daily),
        "seconds": seconds,
        "imports_mb": before,
        "peak_mb": _peak_mb(),
        "frames_mb": frames_mb,
    }


def run_scale(scale: float, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(scale), "--seed", str(seed)],
        check=True, capture_output=True, text=True, env=env, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-scale", type=float, default=5.0,
                        help="largest scale to run; 50 adds 20 and 50 (~37M touchpoints, several GB)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.seed)))
        return

    scales = sorted({s for s in DEFAULT_SCALES + LARGE_SCALES if s <= args.max_scale} | {args.max_scale})
    print(f"generate_demo_data, 730 days, seed {args.seed}, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs")
    header = (f"{'scale':>6} {'touchpoints':>12} {'conversions':>12} {'ad rows':>8} {'seconds':>8} "
              f"{'touch/s':>10} {'peak MB':>8} {'imports MB':>10} {'frames MB':>9}")
    print(header)
    print("-" * len(header))
    for scale in scales:
        r = run_scale(scale, args.seed)
        print(f"{r['scale']:>6g} {r['touchpoints']:>12,} {r['conversions']:>12,} {r['ad_rows']:>8,} "
              f"{r['seconds']:>8.2f} {r['touchpoints'] / r['seconds']:>10,.0f} {r['peak_mb']:>8,.0f} "
              f"{r['imports_mb']:>10,.0f} {r['frames_mb']:>9,.0f}", flush=True)
    print("peak MB = max resident memory of the process (imports included); "
          "frames MB = deep size of the six returned tables")


if __name__ == "__main__":
    main()
