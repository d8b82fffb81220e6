"""The blocking dbt test `finite_and_plausible` on the marts, on DuckDB and PostgreSQL.

Raw tables are written directly (bypassing `spendwise load`, which would refuse these values), then
the real `dbt build` runs: an infinite, NaN or absurd number fails the named test and every model
downstream is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.raw_contract import PLAUSIBLE_LIMIT, RAW_TABLES
from core.settings import DBT_DIR, RAW_SCHEMA, WarehouseUrl
from assets.resources import Warehouse
from tests.conftest import load_demo

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))
SELECT = ["+fct_channel_daily", "+fct_revenue_daily"]
MACRO = DBT_DIR / "macros" / "tests" / "finite_and_plausible.sql"


def dbt_build(url: str, target: Path, *select: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """`dbt build --select ...` on the warehouse at `url`; the status of each node by name."""
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    proc = subprocess.run(
        [DBT, "build", "--select", *select, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(target), "--log-path", str(target)],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=900,
    )
    results = json.loads((target / "run_results.json").read_text())["results"]
    return proc, {r["unique_id"].split(".")[2]: r["status"] for r in results}


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path_factory):
    """A fresh warehouse with a small demo data set; each test rewrites the raw tables it needs."""
    from ml.synthetic import generate_demo_data

    url = (
        f"duckdb:///{tmp_path_factory.mktemp('finite') / 'warehouse.duckdb'}" if request.param == "duckdb"
        else request.getfixturevalue("pg_module_url")
    )
    data = generate_demo_data(scale=0.02, seed=5, days=90)
    load_demo(url, data)
    wh = Warehouse(url=url)
    return wh, {name: wh.read_table(RAW_SCHEMA, name) for name in RAW_TABLES}


def publish_raw(wh: Warehouse, clean: dict, **changed) -> None:
    """Write the raw tables as they are, past the loader's checks, as a hand-written ETL job could."""
    wh.publish_tables({**clean, **changed}, schema=RAW_SCHEMA, stamp=False)


def finite_checks(statuses: dict[str, str]) -> dict[str, str]:
    return {name: status for name, status in statuses.items() if name.startswith("finite_and_plausible_")}


def test_the_check_uses_the_loaders_limit():
    default = re.search(r"finite_and_plausible\(model, column_name, max_abs=([0-9.e+]+)\)", MACRO.read_text())
    assert default and float(default.group(1)) == PLAUSIBLE_LIMIT


def test_clean_marts_pass_every_finite_check(warehouse, tmp_path):
    wh, clean = warehouse
    publish_raw(wh, clean)
    proc, statuses = dbt_build(wh.url, tmp_path / "target", *SELECT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    checks = finite_checks(statuses)
    assert len(checks) == 21 and set(checks.values()) == {"pass"}, checks


def test_infinite_spend_and_nan_conversions_block_the_campaign_mart(warehouse, tmp_path):
    wh, clean = warehouse
    ads = clean["ad_performance_daily"].copy()
    ads.loc[0, "spend"] = np.inf
    publish_raw(wh, clean, ad_performance_daily=ads)
    # NaN cannot pass through a DataFrame (it becomes NULL), so it is written in SQL, as a client could.
    row = ads.iloc[1]
    client = wh.client
    with client.connect() as con:
        client.begin(con)
        client.execute(con, f"UPDATE raw.ad_performance_daily SET conversions = CAST('NaN' AS DOUBLE PRECISION) "
                            f"WHERE date = DATE '{row['date']:%Y-%m-%d}' AND campaign_id = '{row['campaign_id']}'")
        client.commit(con)
    proc, statuses = dbt_build(wh.url, tmp_path / "target", *SELECT)
    assert proc.returncode == 1
    failed = {n for n, s in finite_checks(statuses).items() if s == "fail"}
    assert {
        "finite_and_plausible_fct_campaign_daily_spend",  # inf
        "finite_and_plausible_fct_campaign_daily_conversions",  # NaN
    } <= failed
    assert failed <= {n for n in statuses if n.startswith("finite_and_plausible_fct_campaign_daily_")}
    # blocking: nothing built on fct_campaign_daily runs
    assert statuses["fct_channel_daily"] == "skipped" and statuses["fct_revenue_daily"] == "skipped"
    # the source contract tests did not catch it: only the new check did
    assert not [n for n, s in statuses.items() if s == "fail" and not n.startswith("finite_and_plausible_")]


def test_an_absurd_revenue_blocks_the_revenue_mart(warehouse, tmp_path):
    wh, clean = warehouse
    conversions = clean["conversions"].copy()
    conversions.loc[3, "revenue"] = 1e300
    publish_raw(wh, clean, conversions=conversions)
    proc, statuses = dbt_build(wh.url, tmp_path / "target", *SELECT)
    assert proc.returncode == 1
    assert statuses["finite_and_plausible_fct_revenue_daily_revenue"] == "fail"
    assert statuses["fct_campaign_daily"] == "success"
    assert [n for n, s in statuses.items() if s == "fail"] == ["finite_and_plausible_fct_revenue_daily_revenue"]


def test_each_finite_check_is_a_blocking_dagster_asset_check(dbt_manifest):
    from orchestration.dbt import spendwise_dbt_models

    specs = {s.name: s for s in spendwise_dbt_models.check_specs if s.name.startswith("finite_and_plausible_")}
    assert len(specs) == 21
    assert all(s.blocking for s in specs.values())
    marts = {s.asset_key.path[-1] for s in specs.values()}
    assert marts == {"fct_campaign_daily", "fct_channel_daily", "fct_revenue_daily"}
