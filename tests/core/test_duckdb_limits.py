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

from core.settings import DBT_DIR, DuckDBLimits, WarehouseUrl, default_duckdb_memory_limit
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
    # nothing set: the bounded defaults, spelled out for dbt; Python connections SET them after opening
    plain = WarehouseUrl.parse(f"duckdb:///{tmp_path}/w.duckdb")
    assert plain.duckdb_limits.connect_config() == {}
    assert plain.dbt_env()["SPENDWISE_DUCKDB_MEMORY_LIMIT"] == default_duckdb_memory_limit()
    assert plain.duckdb_limits.default_settings() == {"memory_limit": default_duckdb_memory_limit()}
    assert url.duckdb_limits.default_settings() == {}  # what the URL sets wins
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


# ------------------------------------------------------------------ chunked raw writes (the demo's touchpoints)


def _raw_frames(data, touchpoints):
    from core.raw_contract import RAW_TABLES

    tables = data.tables()
    return {**{n: tables[n] for n in RAW_TABLES}, "touchpoints": touchpoints}


def _staging_leftovers(client) -> list[str]:
    names = client.read_sql("select table_name from information_schema.tables where table_schema = 'raw'")
    return [n for n in names["table_name"] if "__spendwise_staging" in n]


def test_chunked_touchpoints_load_like_one_frame_and_a_bad_chunk_keeps_the_previous_tables(engine_url):
    from core.raw_contract import RawDataError, replace_raw_tables
    from core.warehouse import FrameChunks
    from ml.synthetic import stream_demo_data

    client = WarehouseClient(engine_url)
    first = stream_demo_data(scale=0.03, seed=1, days=60)
    second = stream_demo_data(scale=0.05, seed=2, days=60)
    published = replace_raw_tables(client, _raw_frames(first.dataset(), FrameChunks(first.touchpoints.chunks(rows=1_000))))
    whole = first.dataset().touchpoints
    assert {t.table: t.rows for t in published}["touchpoints"] == len(whole)
    loaded = client.read_sql("select * from raw.touchpoints")  # ids are text in raw: sorted as numbers here
    loaded = loaded.iloc[loaded["touchpoint_id"].astype("int64").argsort()]
    assert loaded["user_id"].tolist() == whole["user_id"].astype(str).tolist()  # user ids are text in raw
    assert loaded["occurred_at"].tolist() == whole["occurred_at"].tolist()

    def broken():  # the third chunk breaks the contract (a touch without a user)
        for i, chunk in enumerate(second.touchpoints.chunks(rows=1_000)):
            yield chunk.assign(user_id=None) if i == 2 else chunk

    with pytest.raises(RawDataError, match=r"touchpoints \(the chunk from row 2,001\)"):
        replace_raw_tables(client, _raw_frames(second.dataset(), FrameChunks(broken())))
    # nothing of the second demo is visible, and no staging table is left behind
    kept = client.read_sql("select count(*) as n, max(cast(touchpoint_id as bigint)) as last from raw.touchpoints")
    assert (int(kept["n"].iloc[0]), int(kept["last"].iloc[0])) == (len(whole), len(whole))
    assert int(client.read_sql("select count(*) as n from raw.conversions")["n"].iloc[0]) == len(first.conversions)
    assert _staging_leftovers(client) == []


def test_a_failure_after_the_chunks_are_loaded_leaves_no_staging_table(tmp_path, monkeypatch):
    """DuckDB loads chunked tables before the swap transaction (its transactions hold appended rows in
    memory): a failure in that transaction must still drop what was loaded and keep the old tables."""
    from core.raw_contract import replace_raw_tables
    from core.warehouse import FrameChunks
    from ml.synthetic import stream_demo_data

    client = WarehouseClient(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=256MB&threads=1")
    data = stream_demo_data(scale=0.03, seed=1, days=60)
    replace_raw_tables(client, _raw_frames(data.dataset(), data.dataset().touchpoints))
    before = client.read_sql("select count(*) as n from raw.touchpoints")["n"].iloc[0]

    def fail(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(WarehouseClient, "swap_in", fail)  # the first whole-frame table fails in the swap
    other = stream_demo_data(scale=0.05, seed=9, days=60)
    with pytest.raises(RuntimeError, match="simulated"):
        replace_raw_tables(client, _raw_frames(other.dataset(), FrameChunks(other.touchpoints.chunks(rows=500))))
    assert client.read_sql("select count(*) as n from raw.touchpoints")["n"].iloc[0] == before
    assert _staging_leftovers(client) == []


def test_the_default_memory_limit_is_a_quarter_of_ram_capped_at_1gb(monkeypatch):
    import core.settings as settings

    real = os.sysconf

    def machine(gib: float):
        pages = int(gib * 1024**3 / 4096)
        return lambda name: 4096 if name == "SC_PAGE_SIZE" else pages if name == "SC_PHYS_PAGES" else real(name)

    monkeypatch.setattr(settings.os, "sysconf", machine(64))
    assert default_duckdb_memory_limit() == "1000MB"  # the cap
    monkeypatch.setattr(settings.os, "sysconf", machine(2))
    assert default_duckdb_memory_limit() == "536MB"  # a quarter of 2 GiB
    monkeypatch.setattr(settings.os, "sysconf", machine(0.25))
    assert default_duckdb_memory_limit() == "100MB"  # never below 100 MB


def test_python_connections_without_limits_run_with_the_bounded_default(tmp_path):
    client = WarehouseClient(f"duckdb:///{tmp_path}/w.duckdb")
    with client.connect() as con:
        memory, threads, _ = con.execute(SETTINGS_SQL).fetchone()
    megabytes = int(default_duckdb_memory_limit().removesuffix("MB"))
    reported = float(memory.split()[0]) * (1024 if "GiB" in memory else 1) * 1.048576  # MiB -> MB
    assert abs(reported - megabytes) <= 1, (memory, megabytes)
    assert threads == os.cpu_count()
    # SET, not connect config: a plain connection of the same file opens beside an open client one
    with client.connect() as con:
        duckdb.connect(str(tmp_path / "w.duckdb")).close()
        assert con.execute("select 1").fetchone() == (1,)
