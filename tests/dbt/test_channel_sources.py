"""The channel tables are optional for dbt: raw tables written by other means (an ELT sync straight into
the raw schema) build without `raw.channel_metadata` / `raw.channel_aliases`, and once the aliases exist
the same build maps the names through them. Real `dbt build` on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from assets.resources import Warehouse
from core.raw_contract import RAW_TABLES, channel_tables
from core.settings import DBT_DIR, RAW_SCHEMA, WarehouseUrl

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))


def build(url: str, target: Path) -> None:
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    proc = subprocess.run(
        [DBT, "build", "--select", "+dim_channel", "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(target), "--log-path", str(target)],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return request.getfixturevalue("pg_url")


def test_without_channel_tables_the_build_runs_and_with_aliases_it_maps_names(url, tmp_path):
    from ml.synthetic import generate_demo_data

    tables = generate_demo_data(scale=0.02, days=40, seed=3).tables()
    wh = Warehouse(url=url)
    # As an ELT sync would leave them: the three raw tables, no channel tables.
    wh.publish_tables({n: tables[n] for n in RAW_TABLES}, schema=RAW_SCHEMA, stamp=False)
    assert not wh.table_exists(RAW_SCHEMA, "channel_aliases")
    build(url, tmp_path / "target_1")
    dim = wh.read_table("analytics", "dim_channel").set_index("channel")
    assert "search" in dim.index and dim["channel_group"].isna().all()

    # channels.csv arrives later: search is called paid_search from now on, in both inputs.
    channels = channel_tables([{"channel": "paid_search", "channel_group": "performance", "is_paid": True,
                                "aliases": ["search", " Google_Ads "]}])
    wh.publish_tables(channels, schema=RAW_SCHEMA, stamp=False, allow_empty=True)
    build(url, tmp_path / "target_2")
    mapped = wh.read_table("analytics", "dim_channel").set_index("channel")
    assert "search" not in mapped.index
    assert mapped.loc["paid_search", "campaigns"] == dim.loc["search", "campaigns"]
    assert mapped.loc["paid_search", "touchpoints"] == dim.loc["search", "touchpoints"] > 0
    assert mapped.loc["paid_search", "channel_group"] == "performance"
    assert pd.Series(mapped.index).is_unique
