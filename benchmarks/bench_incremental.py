"""Full dbt build vs the incremental build after one new day of raw data (issue 16, item 2).

    .venv/bin/python benchmarks/bench_incremental.py --scale 1.35      # ~1M touchpoints
    .venv/bin/python benchmarks/bench_incremental.py --scale 13.5      # ~10M touchpoints

On a fresh DuckDB file: the demo data minus its last day is loaded as `spendwise load` would
(replace_raw_tables) and the whole dbt project is built (`dbt build`, a first build: everything);
then the last day arrives as a landing drop (merge_raw_tables, which logs the changed users) and
`dbt build` runs again. Prints dbt's own time per build, the heavy models' times (from
run_results.json), the peak memory (PSS) of dbt's process tree per build, and the ratio incremental /
full. The data tests still scan whole tables. `--docs` writes the figures into docs/scale_benchmarks.md.
`--reuse` takes the warehouse and full build already in `--dir` (an earlier run's) and delivers its last
day again as a restatement (the same rows: the same users are logged as changed and recomputed, the
work of one new day): at 100M touchpoints the full build alone takes an hour. The full column then
comes from that build's run_results.json (no wall time or memory).
`--duckdb-params` are the DuckDB URL's query parameters (default: none, the bounded defaults).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets.resources import Warehouse  # noqa: E402
from core.landing import merge_raw_tables  # noqa: E402
from core.raw_contract import replace_raw_tables, validate_raw_frame  # noqa: E402
from core.settings import DBT_DIR, WarehouseUrl  # noqa: E402
from core.warehouse import FrameChunks  # noqa: E402
from ml.synthetic import stream_demo_data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import (  # noqa: E402
    Sampler, gib, machine_line, revision, touchpoints_label, write_docs_section,
)

HEAVY = ("int_journeys_changed", "int_journeys", "touchpoint_credit", "journeys_with_paths", "attribution_credit_buckets",
         "conversion_paths")


def dbt_build(url: str, target: Path, *extra: str) -> dict:
    """`dbt build` of the whole project; wall seconds, dbt's elapsed time and per-model seconds."""
    # incremental journeys are opt-in: this benchmark measures them switched on
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env(), "SPENDWISE_INCREMENTAL_JOURNEYS": "true"}
    dbt = str(Path(sys.executable).with_name("dbt"))
    started = time.perf_counter()
    log = target.with_suffix(".log")
    target.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [dbt, "build", *extra, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
             "--target-path", str(target)],
            cwd=DBT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        sampler = Sampler(proc.pid)
        code = proc.wait()
    sampler.stop()
    wall = time.perf_counter() - started
    if code:
        raise SystemExit(f"dbt build failed (exit {code}):\n{log.read_text()[-4000:]}")
    results = json.loads((target / "run_results.json").read_text())
    models = {r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"] for r in results["results"]
              if r["unique_id"].startswith("model.")}
    return {"wall": wall, "dbt": results["elapsed_time"], "models": models,
            "models_total": sum(models.values()), "peak_pss_kb": sampler.peak()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.35, help="demo scale (1.35 ~ 1M touchpoints, 13.5 ~ 10M)")
    parser.add_argument("--days", type=int, default=730, help="days of demo history")
    parser.add_argument("--dir", type=Path, default=None, help="where the DuckDB file goes (default: a temp dir)")
    parser.add_argument("--duckdb-params", default="", help="query parameters of the DuckDB URL")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the warehouse and full build in --dir; restate its last day")
    parser.add_argument("--docs", action="store_true", help="write the figures into docs/scale_benchmarks.md")
    args = parser.parse_args(argv)
    started_at, load_before = dt.datetime.now(dt.timezone.utc), os.getloadavg()
    code_revision = revision()  # the code measured, not the one when the figures are written

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="bench_incremental_"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"duckdb:///{workdir / 'warehouse.duckdb'}" + (f"?{args.duckdb_params}" if args.duckdb_params else "")
    if args.reuse:
        if args.dir is None or not (workdir / "target_full" / "run_results.json").exists():
            raise SystemExit("--reuse needs --dir with an earlier run's warehouse.duckdb and target_full/")
        wh = Warehouse(url=url)
        last = wh.read_sql("select max(occurred_at) as t from raw.touchpoints")["t"].iloc[0]
        last_day = pd.Timestamp(last).normalize()
        day = f"timestamp '{last_day:%Y-%m-%d %H:%M:%S}'"
        new_tp = wh.read_sql(f"select * from raw.touchpoints where occurred_at >= {day}")
        new_cv = wh.read_sql(f"select * from raw.conversions where occurred_at >= {day}")
        results = json.loads((workdir / "target_full" / "run_results.json").read_text())
        models = {r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"] for r in results["results"]
                  if r["unique_id"].startswith("model.")}
        full = {"wall": float("nan"), "dbt": results["elapsed_time"], "models": models,
                "models_total": sum(models.values()), "peak_pss_kb": float("nan")}
        print(f"reusing {workdir}: restating {last_day:%Y-%m-%d}", flush=True)
    else:
        started = time.perf_counter()
        # The demo is streamed (`spendwise demo` does the same): touchpoints are generated while they
        # are written, so 100M rows never sit in memory. Only the last day's rows are held back.
        data = stream_demo_data(scale=args.scale, days=args.days)
        cv = data.conversions
        last_day = pd.Timestamp(data.ad_performance_daily["date"].max()).normalize()
        held_back: list[pd.DataFrame] = []
        counts = {"touchpoints": 0}

        def before_last_day():
            for chunk in data.touchpoints.chunks():
                counts["touchpoints"] += len(chunk)
                late = chunk["occurred_at"] >= last_day
                if late.any():
                    held_back.append(chunk[late])
                yield chunk[~late]

        wh = Warehouse(url=url)
        replace_raw_tables(wh, {"ad_performance_daily": data.ad_performance_daily,
                                "touchpoints": FrameChunks(before_last_day()),
                                "conversions": cv[cv["occurred_at"] < last_day]})
        print(f"scale {args.scale}: {counts['touchpoints']:,} touchpoints, {len(cv):,} conversions over {args.days} days "
              f"(generated and loaded in {time.perf_counter() - started:.0f} s, peak RSS of this process "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB); warehouse {workdir}", flush=True)
        full = dbt_build(url, workdir / "target_full")

        if not held_back:
            raise SystemExit(f"the demo has no touchpoints on its last day {last_day:%Y-%m-%d}: use a larger --scale")
        new_tp = pd.concat(held_back, ignore_index=True)
        new_cv = cv[cv["occurred_at"] >= last_day]
    drop = {"touchpoints": validate_raw_frame("touchpoints", new_tp), "conversions": validate_raw_frame("conversions", new_cv)}
    merge_raw_tables(wh.client, drop, source="bench-one-day")
    incremental = dbt_build(url, workdir / "target_incremental")
    changes = wh.read_sql("select count(*) as n from analytics.int_journeys_changed "
                          "where user_id is not null and batch_at = (select max(batch_at) from analytics.int_journeys_changed)")

    print(f"one new day: {len(new_tp):,} touchpoints, {len(new_cv):,} conversions; "
          f"users recomputed: {int(changes['n'].iloc[0]):,} (late_arrival_days window included)")
    rows = [("dbt build, wall (s)", full["wall"], incremental["wall"]),
            ("dbt build, peak PSS of its process tree (GiB)", float(gib(full["peak_pss_kb"])),
             float(gib(incremental["peak_pss_kb"]))),
            ("dbt elapsed (s)", full["dbt"], incremental["dbt"]),
            ("all models (s)", full["models_total"], incremental["models_total"])]
    rows += [(f"  {m} (s)", full["models"].get(m, float("nan")), incremental["models"].get(m, float("nan"))) for m in HEAVY]
    table = pd.DataFrame(rows, columns=["", "full", "one new day"]).set_index("")
    table["ratio"] = table["one new day"] / table["full"]
    print(table.to_string(float_format=lambda v: f"{v:,.2f}"))
    if args.docs:
        load_after = os.getloadavg()
        params = args.duckdb_params or "defaults"
        lines = [
            f"### Full dbt build vs one new day (incremental journeys on), {touchpoints_label(args.scale)} touchpoints "
            f"(scale {args.scale:g}), DuckDB, parameters: {params}",
            "",
            f"`{shlex.join(['.venv/bin/python', 'benchmarks/bench_incremental.py', *(argv or sys.argv[1:])])}`  ",
            f"{started_at:%Y-%m-%d %H:%M} UTC, revision {code_revision}, {machine_line()}, load average "
            f"{load_before[0]:.1f} before / {load_after[0]:.1f} after (1 min); one new day: {len(new_tp):,} touchpoints, "
            f"{len(new_cv):,} conversions, {int(changes['n'].iloc[0]):,} users recomputed"
            + (" (`--reuse`: the last day restated on an earlier run's warehouse; full column from that run's "
               "run_results.json, its wall time and memory not measured)" if args.reuse else ""),
            "",
            "| | full | one new day | ratio |",
            "|---|---:|---:|---:|",
            *(f"| {name.strip() if not name.startswith('  ') else '&nbsp;&nbsp;' + name.strip()} | {r['full']:,.2f} | "
              f"{r['one new day']:,.2f} | {r['ratio']:.2f} |" for name, r in table.iterrows()),
        ]
        write_docs_section(f"bench_incremental scale={args.scale:g} params={params}", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
