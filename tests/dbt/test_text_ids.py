"""Ids are text from the file to the marts: the attribution input built by the real `dbt build`
is the same with 21-digit, zero-padded and mixed text/numeric ids as with the generator's small ones.

Each engine loads a small demo set twice into one warehouse -- once as `spendwise demo` writes it,
once as CSV files with rewritten ids through `spendwise load` -- and compares `conversion_paths`
(the Markov and Shapley input) and the journeys. When ids were coerced to integers, every 21-digit
user collapsed into one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.raw_contract import RAW_TABLES
from core.settings import DBT_DIR, WarehouseUrl
from assets.resources import Warehouse
from tests.conftest import load_demo

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))
SELECT = ["+conversion_paths"]
WIDE = 10**20  # + n: 21 digits, the same width for every id so that text order is number order


def build_journeys(url: str, target: Path) -> dict[str, float]:
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    proc = subprocess.run(
        [DBT, "build", "--select", *SELECT, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(target), "--log-path", str(target)],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    wh = Warehouse(url=url)
    paths = wh.read_sql(
        "SELECT sum(conversions) AS conversions, sum(nulls) AS nulls, sum(journeys) AS journeys, "
        "sum(conversion_value) AS conversion_value FROM analytics.conversion_paths"
    )
    journeys = wh.read_sql(
        "SELECT count(DISTINCT user_id) AS users, count(DISTINCT conversion_id) AS converted "
        "FROM analytics.int_journeys"
    )
    return {**paths.iloc[0].astype(float).to_dict(), **journeys.iloc[0].astype(float).to_dict()}


def hostile_folder(folder: Path, tables: dict[str, pd.DataFrame]) -> tuple[Path, int]:
    """The same data as CSV with 21-digit user and touchpoint ids and zero-padded conversion ids, plus
    two touches of users that exist only as text: 'guest-7', and a converting user's id with a leading
    zero (which an integer coercion would merge into that user's journey). Returns the folder and the
    number of extra journeys."""
    tp, conv = tables["touchpoints"].copy(), tables["conversions"].copy()
    tp["user_id"] = [str(WIDE + int(u)) for u in tp["user_id"]]
    tp["touchpoint_id"] = [str(WIDE + int(t)) for t in tp["touchpoint_id"]]
    conv["user_id"] = [str(WIDE + int(u)) for u in conv["user_id"]]
    conv["conversion_id"] = [f"{int(c):08d}" for c in conv["conversion_id"]]
    converting = conv.iloc[len(conv) // 2]
    extra = tp.iloc[[0, 0]].copy()
    extra["user_id"] = ["guest-7", "0" + converting["user_id"]]
    extra["touchpoint_id"] = ["extra-1", "extra-2"]
    extra["occurred_at"] = [tp["occurred_at"].iloc[0], converting["occurred_at"] - pd.Timedelta(hours=1)]
    tp = pd.concat([tp, extra], ignore_index=True)
    folder.mkdir(parents=True)
    tp.to_csv(folder / "touchpoints.csv", index=False)
    conv.to_csv(folder / "conversions.csv", index=False)
    tables["ad_performance_daily"].to_csv(folder / "ad_performance_daily.csv", index=False)
    return folder, 2


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_long_padded_and_mixed_ids_give_the_same_attribution_input(engine, request, tmp_path):
    from ml.synthetic import generate_demo_data

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if engine == "duckdb" else request.getfixturevalue("pg_url")
    data = generate_demo_data(scale=0.05, seed=11, days=90)
    load_demo(url, data)
    reference = build_journeys(url, tmp_path / "reference")
    assert reference["conversions"] > 50 and reference["converted"] == reference["conversions"]

    tables = {name: Warehouse(url=url).read_table("raw", name) for name in RAW_TABLES}
    folder, extra = hostile_folder(tmp_path / "hostile", tables)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(folder)], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPENDWISE_WAREHOUSE_URL": url}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    hostile = build_journeys(url, tmp_path / "hostile_target")

    assert hostile["conversions"] == reference["conversions"]  # every conversion still joins its touches
    assert hostile["conversion_value"] == pytest.approx(reference["conversion_value"])
    assert hostile["converted"] == reference["converted"]
    assert hostile["users"] == reference["users"] + extra  # guest-7 and the zero-padded id are users of their own
    assert hostile["journeys"] == reference["journeys"] + extra
    assert hostile["nulls"] == reference["nulls"] + extra
