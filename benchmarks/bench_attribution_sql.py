"""Speed and peak memory of the dbt attribution models (touchpoint_credit, attribution_credit_buckets) on DuckDB.

Run: .venv/bin/python benchmarks/bench_attribution_sql.py [--scales 5 50] [--workdir DIR] [--with-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ml.synthetic import generate_demo_data
from core.settings import DBT_DIR, WarehouseUrl
from assets.resources import Warehouse

DBT = str(Path(sys.executable).with_name("dbt"))
GNU_TIME = Path("/usr/bin/time")
ATTRIBUTION_MODELS = ["touchpoint_credit", "attribution_credit_buckets"]
RAW_TABLES = ("ad_performance_daily", "touchpoints", "conversions")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run `cmd` in the dbt project; return (wall seconds, CPU seconds, peak RSS in MiB, output).

    CPU time is reported beside wall time because the figures are often taken on a shared machine.
    """
    started, cpu_before = time.perf_counter(), children_cpu_seconds()
    if GNU_TIME.exists():
        proc = subprocess.run([str(GNU_TIME), "-v", *cmd], cwd=DBT_DIR, env=env, capture_output=True, text=True)
        returncode, output, errors = proc.returncode, proc.stdout, proc.stderr
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", errors)
        peak_kib = int(match.group(1)) if match else float("nan")
    else:
        child = subprocess.Popen(cmd, cwd=DBT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peaks = [0]

        def poll() -> None:
            # VmHWM is the kernel's own high-water mark, so sampling only has to catch the process alive.
            while child.poll() is None:
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                    peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
                except (OSError, AttributeError):
                    pass
                time.sleep(0.05)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        output, errors = child.communicate()
        watcher.join()
        returncode, peak_kib = child.returncode, max(peaks)
    wall, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    if returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {returncode}):\n{output[-4000:]}\n{errors[-2000:]}")
    return wall, cpu, peak_kib / 1024, output


def node_seconds(target: Path) -> dict[str, float]:
    """Execution time per node of the last dbt invocation, from run_results.json."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}


def bench_scale(scale: float, workdir: Path, with_tests: bool) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    started = time.perf_counter()
    tables = generate_demo_data(scale=scale, seed=42).tables()
    n_touch = len(tables["touchpoints"])
    rows.append(("demo data", f"{time.perf_counter() - started:.1f} s ({n_touch:,} touchpoints, "
                 f"{len(tables['conversions']):,} conversions)"))

    db = workdir / f"attribution_{scale:g}.duckdb"
    db.unlink(missing_ok=True)
    url = f"duckdb:///{db}"
    started = time.perf_counter()
    Warehouse(url=url).publish_tables({n: tables[n] for n in RAW_TABLES}, schema="raw", stamp=False)
    del tables
    rows.append(("load raw tables", f"{time.perf_counter() - started:.1f} s"))

    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    target = workdir / f"target_{scale:g}"
    dbt_args = ["--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR), "--target-path", str(target)]
    wall, _, _, _ = run_measured([DBT, "run", "--select", "+int_journeys", *dbt_args], env)
    rows.append(("dbt run +int_journeys", f"{wall:.1f} s wall, int_journeys {node_seconds(target)['int_journeys']:.1f} s"))

    wall, cpu, peak, _ = run_measured([DBT, "run", "--select", *ATTRIBUTION_MODELS, *dbt_args], env)
    seconds = node_seconds(target)
    model_total = sum(seconds[m] for m in ATTRIBUTION_MODELS)
    counts = Warehouse(url=url).read_sql(
        "select (select count(*) from analytics.int_journeys where is_converted) as converting,"
        " (select count(*) from analytics.touchpoint_credit) as credit_rows,"
        " (select count(*) from analytics.attribution_credit_buckets) as bucket_rows"
    ).iloc[0]
    converting, credit_rows, bucket_rows = (int(counts[c]) for c in ("converting", "credit_rows", "bucket_rows"))
    rows.append(("touches in converting journeys", f"{converting:,} -> touchpoint_credit {credit_rows:,} rows, "
                 f"buckets {bucket_rows:,} rows"))
    for model in ATTRIBUTION_MODELS:
        rows.append((f"  {model}", f"{seconds[model]:.2f} s"))
    rows.append(("attribution models (sum)", f"{model_total:.2f} s = {n_touch / model_total:,.0f} touchpoints/s, "
                 f"{converting / model_total:,.0f} converting touches/s"))
    rows.append(("dbt run attribution (process)", f"{wall:.1f} s wall, {cpu:.1f} s CPU incl. parse, "
                 f"peak RSS {peak:,.0f} MiB"))

    if with_tests:
        wall, cpu, peak, _ = run_measured(
            [DBT, "test", "--select", "attribution", "--exclude", "test_type:unit", *dbt_args], env
        )
        tests_total = sum(node_seconds(target).values())
        rows.append(("dbt test attribution (data tests)", f"{tests_total:.1f} s in tests, {wall:.1f} s wall, "
                     f"{cpu:.1f} s CPU, peak RSS {peak:,.0f} MiB"))
    rows.append(("warehouse file", f"{db.stat().st_size / 2**20:,.0f} MiB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=float, nargs="+", default=[5.0],
                        help="demo data scales (1 is ~740k touchpoints, 13.5 is ~10M)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the scratch warehouses go (default: a temp dir)")
    parser.add_argument("--with-tests", action="store_true", help="also time the attribution data tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch warehouses")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_attribution_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"DuckDB scratch warehouses in {workdir}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        for scale in args.scales:
            rows = bench_scale(scale, workdir, args.with_tests)
            print(f"\nscale {scale:g}")
            width = max(len(name) for name, _ in rows)
            for name, value in rows:
                print(f"  {name:<{width}}  {value}")
            print(f"  (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
