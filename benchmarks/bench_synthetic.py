"""Speed and peak memory of ml.synthetic.generate_demo_data at several scales (1 = ~740k touchpoints).

Run: .venv/bin/python benchmarks/bench_synthetic.py [--max-scale 50] [--seed 42] [--stream] [--docs]
Each scale runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own.
`--stream` measures ml.synthetic.stream_demo_data instead: touchpoints drawn chunk by chunk (what
`spendwise demo` writes) and dropped, so the peak is what generation itself holds; `--docs` writes the
table into docs/scale_benchmarks.md.
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


def child(scale: float, seed: int, stream: bool = False) -> dict:
    """Generate once in this process and report sizes, wall time and memory."""
    from ml.synthetic import generate_demo_data, stream_demo_data

    before = _peak_mb()  # interpreter + numpy/pandas/pyarrow imports
    started = time.perf_counter()
    if stream:
        source = stream_demo_data(scale=scale, seed=seed, end=END)
        rows = sum(len(chunk) for chunk in source.touchpoints.chunks())
        return {
            "scale": scale, "touchpoints": rows, "conversions": len(source.conversions),
            "ad_rows": len(source.ad_performance_daily), "seconds": time.perf_counter() - started,
            "imports_mb": before, "peak_mb": _peak_mb(), "frames_mb": float("nan"),
        }
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


def run_scale(scale: float, seed: int, stream: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(scale), "--seed", str(seed), *(["--stream"] if stream else [])],
        check=True, capture_output=True, text=True, env=env, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-scale", type=float, default=5.0,
                        help="largest scale to run; 50 adds 20 and 50 (~37M touchpoints, several GB)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stream", action="store_true", help="measure stream_demo_data (chunked touchpoints)")
    parser.add_argument("--docs", action="store_true", help="write the table into docs/scale_benchmarks.md")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.seed, args.stream)))
        return
    import datetime as dt
    import shlex

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_scale import revision

    started_at, load_before = dt.datetime.now(dt.timezone.utc), os.getloadavg()
    code_revision = revision()  # the code measured, not the one when the figures are written
    lines = ["| scale | touchpoints | conversions | seconds | touchpoints/s | peak MB (process) | imports MB |",
             "|---:|---:|---:|---:|---:|---:|---:|"]

    scales = sorted({s for s in DEFAULT_SCALES + LARGE_SCALES if s <= args.max_scale} | {args.max_scale})
    print(f"generate_demo_data, 730 days, seed {args.seed}, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs")
    header = (f"{'scale':>6} {'touchpoints':>12} {'conversions':>12} {'ad rows':>8} {'seconds':>8} "
              f"{'touch/s':>10} {'peak MB':>8} {'imports MB':>10} {'frames MB':>9}")
    print(header)
    print("-" * len(header))
    for scale in scales:
        r = run_scale(scale, args.seed, args.stream)
        lines.append(f"| {r['scale']:g} | {r['touchpoints']:,} | {r['conversions']:,} | {r['seconds']:.1f} | "
                     f"{r['touchpoints'] / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | {r['imports_mb']:,.0f} |")
        print(f"{r['scale']:>6g} {r['touchpoints']:>12,} {r['conversions']:>12,} {r['ad_rows']:>8,} "
              f"{r['seconds']:>8.2f} {r['touchpoints'] / r['seconds']:>10,.0f} {r['peak_mb']:>8,.0f} "
              f"{r['imports_mb']:>10,.0f} {r['frames_mb']:>9,.0f}", flush=True)
    print("peak MB = max resident memory of the process (imports included); "
          "frames MB = deep size of the six returned tables")
    if args.docs:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_scale import machine_line, write_docs_section

        what = "stream_demo_data (touchpoints in chunks, dropped)" if args.stream else "generate_demo_data (all in memory)"
        header = [
            f"### Demo generation alone: {what}",
            "",
            f"`{shlex.join(['.venv/bin/python', 'benchmarks/bench_synthetic.py', *sys.argv[1:]])}`  ",
            f"{started_at:%Y-%m-%d %H:%M} UTC, revision {code_revision}, {machine_line()}, load average "
            f"{load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after (1 min); 730 days, seed {args.seed}",
            "",
        ]
        write_docs_section(f"bench_synthetic stream={args.stream}", "\n".join(header + lines))


if __name__ == "__main__":
    main()
