"""`spendwise run` (what `make run` calls) in a subprocess: demo + refresh + summary, run recorded."""

import os
import re
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
    # a person can read it: progress lines while it runs, no dbt node log, a short summary
    assert len(out.splitlines()) < 40, out
    progress = re.findall(r"^ +\d+:\d\d  (.+) \(\d+\.\d s\) \[(\d+)/(\d+)\]$", out, flags=re.M)
    assert any(line.startswith("spendwise_dbt_models (dbt build:") for line, _, _ in progress), out
    assert any(line.startswith("media_mix_model") for line, _, _ in progress), out
    assert progress[-1][1] == progress[-1][2], out  # the last line: every step done
    assert not re.search(r"\d+ of \d+ (START|OK|PASS)", out), out
    for headline in (r"Top channel by media-mix ROAS: \w+ \d+\.\d\d revenue per unit of spend \(95% interval ",
                     r"Budget recommendation: [+-][\d,]+\.\d\d media revenue/day \([+-]\d+\.\d%\)",
                     r"ROI forecast, next 30 days: -?\d+\.\d\d on [\d,]+ forecast spend"):
        assert re.search(headline, out), (headline, out)
    assert "make dev" in out and "make serve" in out
    instance = DagsterInstance.from_config(str(home))
    try:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["refresh_all"]
        assert runs[0].status == DagsterRunStatus.SUCCESS
        run_id = runs[0].run_id
    finally:
        instance.dispose()
    assert (home / "dagster.yaml").exists()
    assert sorted(p.stem for p in (tmp_path / "charts").glob("*.png")) == sorted(registry.CHARTS)
    # dbt's node log is kept in the run's captured stdout (the run's logs in the Dagster UI)
    captured = "".join(p.read_text() for p in (home / "storage" / run_id / "compute_logs").glob("*.out"))
    assert re.search(r"\d+ of \d+ START", captured), captured[-2000:]



def test_refresh_exits_1_and_names_the_failed_check_on_bad_raw_data(tmp_path, dbt_manifest, demo_data):
    from core.raw_contract import RAW_TABLES
    from assets.resources import Warehouse
    from tests.conftest import load_demo

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, demo_data)
    wh = Warehouse(url=url)
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    # An unknown channel name is only a warning now (channel_names_consistent); a campaign day on two
    # rows still fails a blocking dbt contract test.
    import pandas as pd

    raw["ad_performance_daily"] = pd.concat([raw["ad_performance_daily"], raw["ad_performance_daily"].head(5)],
                                            ignore_index=True)
    from core.raw_contract import replace_raw_tables

    replace_raw_tables(wh, raw)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home"),
           "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts")}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh"], capture_output=True, text=True,
                          env=env, timeout=900)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-3000:]
    assert ("FAILED [blocking] raw/ad_performance_daily :: source_unique_combination_raw_ad_performance_daily_date"
            "__channel__campaign_id: ad_performance_daily has 5 (date, channel, campaign_id) combinations") in out, out
    # the progress says which step failed and what did not run; no headline number from an earlier run
    assert re.search(r"^ +\d+:\d\d  spendwise_dbt_models .* FAILED \(", out, flags=re.M), out
    assert re.search(r"not run, what they need failed \(\d+ steps\): .*media_mix_model", out), out
    assert "Headline numbers: none, this run did not publish the predictions they come from" in out
    assert len(out.splitlines()) < 40, out
    assert not (tmp_path / "charts").exists() or not list((tmp_path / "charts").glob("*.png"))
    assert wh.row_counts("predictions") == {}

    # --verbose (`run` shares this output) adds dbt's node log to the terminal; the summary still follows
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh", "--verbose"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"\d+ of \d+ START", proc.stdout), proc.stdout[-3000:]
    assert "FAILED [blocking] raw/ad_performance_daily :: source_unique_combination" in proc.stdout, proc.stdout[-3000:]
    assert "Total time:" in proc.stdout.split("FAILED [blocking]")[-1]
