"""Hostile input folders through the real `spendwise load` (a subprocess) into real warehouses.

Ids keep every digit and leading zero, non-finite and absurd numbers are refused with file, column,
line and rule, two files for one table and oversized files are refused before they are read, and an
unwritable warehouse is one line with exit code 4.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.raw_contract import MAX_BYTES_ENV, MAX_ROWS_ENV, RAW_TABLES
from assets.resources import Warehouse

WIDE = 10**20  # + n: 21-digit ids, beyond int64 and float64's exact integers, same width so order is kept
ENGINES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def url(request, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("pg_url")


def spendwise_load(folder: Path, url: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(folder)],
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder.parent), "SPENDWISE_WAREHOUSE_URL": url, **env},
    )


def good_tables(users: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Four days of a valid folder; `users` are the user ids, written as given."""
    users = users or ["1", "2", "3", "4"]
    n = len(users)
    return {
        "ad_performance_daily": pd.DataFrame({
            "date": pd.date_range("2025-03-01", periods=4).strftime("%Y-%m-%d"), "channel": "search",
            "campaign_id": "c1", "campaign_name": "Brand", "impressions": [1000, 2000, 1500, 900],
            "reach": [800, 1500, 1000, 700], "clicks": [50, 40, 30, 20], "spend": [120.5, 80.0, 60.25, 40.0],
            "conversions": [3, 1, 2, 1], "revenue": [300.0, 90.0, 150.0, 40.0],
        }),
        "touchpoints": pd.DataFrame({
            "touchpoint_id": [str(WIDE + i) for i in range(n)], "user_id": users,
            "occurred_at": [f"2025-03-0{1 + i % 4} 10:00:00" for i in range(n)], "channel": "search",
            "campaign_id": "c1", "interaction": "click",
        }),
        "conversions": pd.DataFrame({
            "conversion_id": [f"{i:05d}" for i in range(n)], "user_id": users,
            "occurred_at": [f"2025-03-0{1 + i % 4} 12:00:00" for i in range(n)], "revenue": 50.0,
        }),
    }


def write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def raw(url: str, table: str) -> pd.DataFrame:
    return Warehouse(url=url).read_table("raw", table)


def raw_column_types(url: str) -> dict[tuple[str, str], str]:
    types = Warehouse(url=url).read_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw'"
    )
    return {(r.table_name, r.column_name): r.data_type.lower() for r in types.itertuples()}


# ------------------------------------------------------------------------------------------------ ids


def test_21_digit_ids_stay_distinct_and_exact(tmp_path, url):
    users = [str(WIDE + i) for i in range(50)]
    proc = spendwise_load(write(tmp_path / "in", good_tables(users)), url)
    assert proc.returncode == 0, proc.stderr
    tp, conv = raw(url, "touchpoints"), raw(url, "conversions")
    assert sorted(tp["user_id"]) == sorted(users) and tp["user_id"].nunique() == 50
    assert sorted(tp["touchpoint_id"]) == [str(WIDE + i) for i in range(50)]
    assert sorted(conv["user_id"]) == sorted(users)
    types = raw_column_types(url)
    for table, column in [("touchpoints", "user_id"), ("touchpoints", "touchpoint_id"), ("conversions", "user_id"),
                          ("conversions", "conversion_id"), ("ad_performance_daily", "campaign_id")]:
        assert types[(table, column)] in ("varchar", "text"), (table, column, types[(table, column)])


def test_zero_padded_ids_are_different_users(tmp_path, url):
    users = ["123", "0123", "00123", "123 "]  # the last one differs only by a space: the same user
    proc = spendwise_load(write(tmp_path / "in", good_tables(users)), url)
    assert proc.returncode == 0, proc.stderr
    assert sorted(raw(url, "touchpoints")["user_id"]) == ["00123", "0123", "123", "123"]
    assert sorted(raw(url, "conversions")["conversion_id"]) == ["00000", "00001", "00002", "00003"]


def test_one_text_id_leaves_the_other_ids_of_both_files_equal(tmp_path, url):
    tables = good_tables(["101", "102", "103", "104"])
    tables["touchpoints"].loc[3, "user_id"] = "guest-7"  # one text id among numeric ones, in one file only
    proc = spendwise_load(write(tmp_path / "in", tables), url)
    assert proc.returncode == 0, proc.stderr
    joined = Warehouse(url=url).read_sql(
        "SELECT count(*) AS n FROM raw.conversions c JOIN raw.touchpoints t ON t.user_id = c.user_id"
    )
    assert int(joined["n"].iloc[0]) == 3


def test_integer_typed_parquet_ids_load_as_text_without_decimals(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    tables = good_tables()
    for name in ("touchpoints", "conversions"):
        tables[name]["user_id"] = np.array([7, 8, 9, 10], dtype=np.int64)
    tables["conversions"]["conversion_id"] = [1.0, 2.0, 3.0, 4.0]  # float ids, as pandas writes them with a gap
    proc = spendwise_load(write(tmp_path / "in", tables, "parquet"), url)
    assert proc.returncode == 0, proc.stderr
    assert sorted(raw(url, "touchpoints")["user_id"]) == ["10", "7", "8", "9"]
    assert sorted(raw(url, "conversions")["conversion_id"]) == ["1", "2", "3", "4"]


# -------------------------------------------------------------------------------------------- numbers


def test_non_finite_and_absurd_numbers_are_refused_with_file_column_line_and_rule(tmp_path, url):
    first = spendwise_load(write(tmp_path / "good", good_tables()), url)
    assert first.returncode == 0, first.stderr
    before = Warehouse(url=url).row_counts("raw")
    tables = good_tables()
    ads = tables["ad_performance_daily"].astype({"spend": object, "impressions": object, "revenue": object})
    ads.loc[1, "spend"] = "inf"  # line 3
    ads.loc[2, "spend"] = "1e300"  # line 4
    ads.loc[3, "impressions"] = "99999999999999999999"  # line 5: once stored as -9223372036854775808
    ads.loc[0, "revenue"] = "NaN"  # line 2
    tables["ad_performance_daily"] = ads
    tables["conversions"] = tables["conversions"].astype({"revenue": object})
    tables["conversions"].loc[2, "revenue"] = "-Infinity"
    tables["conversions"].loc[3, "revenue"] = "2e12"
    proc = spendwise_load(write(tmp_path / "bad", tables), url)
    assert proc.returncode == 2
    beyond = "are beyond ±1,000,000,000,000 (not plausible for one row)"
    expected = [
        f"ad_performance_daily.csv: column 'impressions': 1 row(s) {beyond} (line 5: '99999999999999999999')",
        "ad_performance_daily.csv: column 'spend': 1 row(s) are not finite numbers (line 3: 'inf')",
        f"ad_performance_daily.csv: column 'spend': 1 row(s) {beyond} (line 4: '1e300')",
        "ad_performance_daily.csv: column 'revenue': 1 row(s) are not finite numbers (line 2: 'NaN')",
        "conversions.csv: column 'revenue': 1 row(s) are not finite numbers (line 4: '-Infinity')",
        f"conversions.csv: column 'revenue': 1 row(s) {beyond} (line 5: '2e12')",
    ]
    problems = [line for line in proc.stderr.splitlines() if not line.startswith("      fix: ")]
    assert problems == ["raw data rejected, nothing was loaded:"] + [f"  - {e}" for e in expected]
    # Each rule whose words do not say what to do is followed by its fix, as `load --check` prints it.
    assert "      fix: replace inf/nan by the real value" in proc.stderr
    assert "      fix: check the export's unit (cents or micros instead of currency?)" in proc.stderr
    assert Warehouse(url=url).row_counts("raw") == before
    assert raw(url, "ad_performance_daily")["impressions"].max() == 2000


def test_non_finite_parquet_values_are_refused_with_their_row_number(tmp_path):
    tables = good_tables()
    tables["ad_performance_daily"]["spend"] = [1.0, 2.0, np.inf, 4.0]
    tables["ad_performance_daily"]["clicks"] = [1, 2, 3, 2**62]
    proc = spendwise_load(write(tmp_path / "in", tables, "parquet"), f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert proc.returncode == 2
    assert "ad_performance_daily.parquet: column 'spend': 1 row(s) are not finite numbers (row 3: inf)" in proc.stderr
    assert ("ad_performance_daily.parquet: column 'clicks': 1 row(s) are beyond ±1,000,000,000,000 "
            "(not plausible for one row) (row 4: 4611686018427387904)") in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


# ---------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("second", [".parquet", ".csv.gz"])
def test_two_files_for_one_table_are_refused_naming_both(tmp_path, second):
    folder = write(tmp_path / "in", good_tables())
    tp = good_tables()["touchpoints"]
    if second == ".parquet":
        tp.to_parquet(folder / "touchpoints.parquet", index=False)
    else:
        tp.to_csv(folder / "touchpoints.csv.gz", index=False)
    proc = spendwise_load(folder, f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert proc.returncode == 2
    names = {".parquet": "touchpoints.parquet and touchpoints.csv",
             ".csv.gz": "touchpoints.csv and touchpoints.csv.gz"}[second]
    assert f"{folder}: {names} are both there for table touchpoints: keep exactly one of them" in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


def _bomb_parquet(path: Path, rows: int) -> None:
    """A valid touchpoints Parquet of `rows` identical rows: a few hundred KB that expand to GBs."""
    batch = 1_000_000
    schema = pa.schema([(c, pa.string()) for c in RAW_TABLES["touchpoints"].column_names])
    chunk = pa.table({c: pa.array(["search" if c == "channel" else "2025-03-01 10:00:00" if c == "occurred_at"
                                   else "1"] * batch, pa.string()) for c in schema.names}, schema=schema)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(rows // batch):
            writer.write_table(chunk, row_group_size=batch)


def _load_measuring_memory(folder: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """`spendwise load` in a wrapper that reports its peak resident memory (MB) and wall time (s)."""
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "orchestration.cli", "load", str(folder)],
        capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder.parent), "SPENDWISE_WAREHOUSE_URL": url, **env},
    )
    peak_kb = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return proc, peak_kb / 1024, time.perf_counter() - started


def test_a_parquet_that_expands_to_20_million_rows_is_refused_by_its_metadata(tmp_path):
    folder = write(tmp_path / "in", {k: v for k, v in good_tables().items() if k != "touchpoints"})
    _bomb_parquet(folder / "touchpoints.parquet", 20_000_000)
    size_kb = (folder / "touchpoints.parquet").stat().st_size / 1024
    assert size_kb < 1024, size_kb
    proc, peak_mb, seconds = _load_measuring_memory(
        folder, f"duckdb:///{tmp_path / 'w.duckdb'}", **{MAX_ROWS_ENV: "10000000"}
    )
    assert proc.returncode == 2
    assert (
        "touchpoints.parquet: refused before reading: 20,000,000 rows (Parquet metadata) exceed the limit of "
        f"10,000,000 rows per file. Split the file, or raise the limit with {MAX_ROWS_ENV}=N"
    ) in proc.stderr
    # Reading it would take gigabytes (3.4 GB was measured); refusing it costs the interpreter's imports.
    assert peak_mb < 400, f"peak {peak_mb:.0f} MB for a {size_kb:.0f} KB file"
    assert seconds < 60


def test_expanded_size_and_row_count_limits_cover_parquet_bytes_and_gzip_csv(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    folder = write(tmp_path / "in", good_tables(), "parquet")
    proc = spendwise_load(folder, url, **{MAX_BYTES_ENV: "100"})
    assert proc.returncode == 2
    assert "ad_performance_daily.parquet: refused before reading: " in proc.stderr
    assert "bytes uncompressed (Parquet metadata) exceed the limit of 100 bytes per file" in proc.stderr

    gz = write(tmp_path / "gz", {k: v for k, v in good_tables().items() if k != "conversions"})
    with gzip.open(gz / "conversions.csv.gz", "wt") as fh:  # 300,000 rows in a few KB
        fh.write("conversion_id,user_id,occurred_at,revenue\n")
        fh.writelines(f"{i},1,2025-03-01 12:00:00,5\n" for i in range(300_000))
    proc = spendwise_load(gz, url, **{MAX_ROWS_ENV: "100000"})
    assert proc.returncode == 2
    assert "conversions.csv.gz: refused before reading: more than 100,000 rows" in proc.stderr
    assert spendwise_load(gz, url).returncode == 0  # under the default limit it loads
    assert Warehouse(url=url).row_counts("raw")["conversions"] == 300_000


# ------------------------------------------------------------------------------------------ warehouse


@pytest.mark.parametrize(
    "target",
    ["postgresql://postgres:secret@127.0.0.1:1/spendwise", "duckdb:///proc/spendwise/warehouse.duckdb", "file"],
)
def test_an_unwritable_warehouse_is_one_line_and_exit_code_4(tmp_path, target):
    if target == "file":  # the DuckDB path's folder is a regular file
        (tmp_path / "not_a_folder").write_text("")
        target = f"duckdb:///{tmp_path / 'not_a_folder' / 'warehouse.duckdb'}"
    proc = spendwise_load(write(tmp_path / "in", good_tables()), target)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("spendwise load: cannot write to the warehouse ")
    assert lines[0].endswith("(nothing was written)")
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr
