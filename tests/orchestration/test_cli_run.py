"""`spendwise run` (what `make run` calls) in a subprocess: demo + refresh + summary, run recorded."""

import os
import subprocess
import sys

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from core import registry

pytestmark = pytest.mark.slow


def test_spendwise_run_writes_everything_and_records_the_run(tmp_path, dbt_manifest):
    home = tmp_path / "dagster_home"
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
        "SPENDWISE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "run", "--scale", "0.05", "--days", "400", "--seed", "3"],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "raw.touchpoints" in out
    assert f"predictions: {len(registry.TABLES)} tables" in out
    assert ", 0 failed" in out and "Checks: " in out
    assert f"Charts: {len(registry.CHARTS)} PNG in {tmp_path / 'charts'}" in out
    assert "Total time:" in out
    assert "password" not in out.lower()
    instance = DagsterInstance.from_config(str(home))
    try:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["refresh_all"]
        assert runs[0].status == DagsterRunStatus.SUCCESS
    finally:
        instance.dispose()
    assert (home / "dagster.yaml").exists()
    assert sorted(p.stem for p in (tmp_path / "charts").glob("*.png")) == sorted(
        ["roi_forecast", "roi_timeseries", "reach_ctr", "budget_recommendation", "attribution_comparison",
         "mmm_roas", "revenue_contribution", "spend_scenarios", "channel_triangulation"]
    )


def test_refresh_exits_1_and_names_the_failed_check_on_bad_raw_data(tmp_path, dbt_manifest, demo_data):
    from core.raw_contract import RAW_TABLES
    from assets.resources import Warehouse
    from tests.conftest import load_demo

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, demo_data)
    wh = Warehouse(url=url)
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    raw["touchpoints"] = raw["touchpoints"].assign(channel=raw["touchpoints"]["channel"].replace({"social": "facebook"}))
    from core.raw_contract import replace_raw_tables

    replace_raw_tables(wh, raw)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home"),
           "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts")}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh"], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout
    assert "FAILED [blocking] analytics/stg_events__touchpoints :: relationships_stg_events__touchpoints_channel" in proc.stdout
    assert not (tmp_path / "charts").exists() or not list((tmp_path / "charts").glob("*.png"))
    assert wh.row_counts("predictions") == {}
