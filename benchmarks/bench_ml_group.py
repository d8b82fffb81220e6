"""Time the ML assets (media mix, budget, forecasts) through Dagster on the demo data.

Builds a demo warehouse (dbt marts included) in a temp folder unless --warehouse points at one,
then materializes the ML group in-process and prints the seconds of each asset's step.
Usage: .venv/bin/python benchmarks/bench_ml_group.py [--warehouse duckdb:///path] [--scale 1.0]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagster import DagsterEventType, instance_for_test, materialize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def prepare_warehouse(scale: float, folder: Path) -> str:
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    env = {"SPENDWISE_WAREHOUSE_URL": url, "DAGSTER_HOME": str(folder / "home"), "PATH": "/usr/bin:/bin",
           "SPENDWISE_CHARTS_DIR": str(folder / "charts")}
    cli = [sys.executable, "-m", "orchestration.cli"]
    subprocess.run([*cli, "demo", "--scale", str(scale)], check=True, env=env, cwd=REPO, capture_output=True)
    from core.settings import WarehouseUrl

    dbt_env = {**env, **WarehouseUrl.parse(url).dbt_env()}
    subprocess.run([str(Path(sys.executable).with_name("dbt")), "build", "--profiles-dir", ".", "--quiet",
                    "--target-path", str(folder / "target")], check=True, env=dbt_env, cwd=REPO / "dbt_project")
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    from assets.forecasts import channel_forecasts
    from assets.media_mix import budget_recommendation, media_mix_model
    from assets.resources import Warehouse

    with tempfile.TemporaryDirectory() as tmp:
        url = args.warehouse or prepare_warehouse(args.scale, Path(tmp))
        with instance_for_test() as instance:
            started = time.perf_counter()
            result = materialize([media_mix_model, budget_recommendation, channel_forecasts],
                                 resources={"warehouse": Warehouse(url=url)}, instance=instance)
            total = time.perf_counter() - started
            starts, ends = {}, {}
            for record in instance.get_records_for_run(result.run_id).records:
                event = record.event_log_entry
                if event.dagster_event is None:
                    continue
                if event.dagster_event.event_type == DagsterEventType.STEP_START:
                    starts[event.step_key] = event.timestamp
                elif event.dagster_event.event_type == DagsterEventType.STEP_SUCCESS:
                    ends[event.step_key] = event.timestamp
        print(f"{'step':<28}{'seconds':>10}")
        for step in sorted(ends, key=starts.get):
            print(f"{step:<28}{ends[step] - starts[step]:>10.1f}")
        print(f"{'whole ML group (wall)':<28}{total:>10.1f}")


if __name__ == "__main__":
    main()
