"""DuckDB's memory limit, threads and spill folder are set once, as query parameters of the warehouse
URL, and both readers of that URL apply them: the Python connections (core.warehouse) and dbt
(profiles.yml `settings`, through the environment orchestration.dbt hands dbt). Real DuckDB files,
a real `dbt show` against the same file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from core.settings import DBT_DIR, DuckDBLimits, WarehouseUrl
from core.warehouse import WarehouseClient

DBT = str(Path(sys.executable).with_name("dbt"))
SETTINGS_SQL = ("select current_setting('memory_limit') as memory_limit, current_setting('threads') as threads, "
                "current_setting('temp_directory') as temp_directory")


def test_limits_are_query_parameters_of_the_duckdb_url(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=512MB&threads=1&temp_directory={tmp_path}/spill")
    assert url.duckdb_path == tmp_path / "w.duckdb"
    assert url.duckdb_limits == DuckDBLimits("512MB", 1, tmp_path / "spill")
    assert url.redacted().endswith("w.duckdb?memory_limit=512MB&threads=1&temp_directory=" + f"{tmp_path}/spill")
    env = url.dbt_env()
    assert (env["SPENDWISE_DUCKDB_MEMORY_LIMIT"], env["SPENDWISE_DUCKDB_THREADS"], env["SPENDWISE_DUCKDB_TEMP_DIR"]) == (
        "512MB", "1", f"{tmp_path}/spill")
    # nothing set: DuckDB's own defaults, spelled out for dbt; nothing extra for Python connections
    plain = WarehouseUrl.parse(f"duckdb:///{tmp_path}/w.duckdb")
    assert plain.duckdb_limits.connect_config() == {}
    assert plain.dbt_env()["SPENDWISE_DUCKDB_MEMORY_LIMIT"] == "80%"
    assert plain.dbt_env()["SPENDWISE_DUCKDB_TEMP_DIR"] == f"{tmp_path}/w.duckdb.tmp"


@pytest.mark.parametrize("query, words", [
    ("memory=1GB", "unknown DuckDB parameter(s) memory"),
    ("memory_limit=lots", "memory_limit='lots' is not a size"),
    ("threads=0", "threads='0' is not a whole number"),
    ("threads=two", "threads='two' is not a whole number"),
    ("temp_directory=", "temp_directory is empty"),
])
def test_a_bad_limit_is_refused_with_what_is_wrong(tmp_path, query, words):
    with pytest.raises(ValueError) as error:
        WarehouseUrl.parse(f"duckdb:///{tmp_path}/w.duckdb?{query}")
    assert words in str(error.value)


def test_python_connections_run_with_the_urls_limits(tmp_path):
    spill = tmp_path / "spill"
    client = WarehouseClient(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=256MB&threads=1&temp_directory={spill}")
    with client.connect() as con:
        memory, threads, temp = con.execute(SETTINGS_SQL).fetchone()
    assert memory in ("244.1 MiB", "256.0 MiB", "256 MiB"), memory  # DuckDB reports 256MB in MiB
    assert (threads, temp) == (1, str(spill))
    # the limit is real: a sort far larger than 256 MB finishes by spilling into the named folder
    with client.connect() as con:
        con.execute("create table big as select i, md5(i::varchar) as h from range(3000000) t(i)")
        rows = con.execute("select count(*) from (select * from big order by h) s").fetchone()[0]
    assert rows == 3_000_000
    # a plain connection of the same file in this process still opens: only what was set is applied
    WarehouseClient(f"duckdb:///{tmp_path}/other.duckdb").read_sql("select 1")
    duckdb.connect(str(tmp_path / "other.duckdb")).close()


@pytest.mark.slow
def test_dbt_runs_with_the_urls_limits(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=300MB&threads=1&temp_directory={tmp_path}/spill")
    from orchestration.dbt import dbt_environment

    proc = subprocess.run(
        [DBT, "show", "--inline", SETTINGS_SQL, "--output", "json", "--profiles-dir", str(DBT_DIR),
         "--project-dir", str(DBT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)],
        cwd=DBT_DIR, env={**os.environ, **dbt_environment(url)}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '"threads": 1' in proc.stdout, proc.stdout[-2000:]
    assert "286.1 MiB" in proc.stdout or "300.0 MiB" in proc.stdout, proc.stdout[-2000:]
    assert f"{tmp_path}/spill" in proc.stdout, proc.stdout[-2000:]
