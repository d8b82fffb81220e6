"""`spendwise load DIR`: validation errors that name file, column and bad rows; atomic replacement."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from core.raw_contract import RAW_TABLES, RawDataError, read_raw_dir, replace_raw_tables
from assets.resources import Warehouse


def _good_tables() -> dict[str, pd.DataFrame]:
    return {
        "ad_performance_daily": pd.DataFrame(
            {
                "date": ["2025-03-01", "2025-03-02"], "channel": ["search", "social"],
                "campaign_id": ["c1", "c2"], "campaign_name": ["Brand", "Prospecting"],
                "impressions": [1000, 2000], "reach": [800, 1500], "clicks": [50, 40],
                "spend": [120.5, 80.0], "conversions": [3, 1], "revenue": [300.0, 90.0],
            }
        ),
        "touchpoints": pd.DataFrame(
            {
                "touchpoint_id": [1, 2, 3], "user_id": [10, 10, 11],
                "occurred_at": ["2025-03-01T10:00:00Z", "2025-03-02 11:00:00", "2025-03-02T12:00:00+02:00"],
                "channel": ["search", "social", "search"], "campaign_id": ["c1", "c2", "c1"],
                "interaction": ["click", "impression", "visit"],
            }
        ),
        "conversions": pd.DataFrame(
            {"conversion_id": ["o-1"], "user_id": [10], "occurred_at": ["2025-03-02 12:30:00"], "revenue": [99.9]}
        ),
    }


def _write(folder, tables, fmt="csv"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_good_folder_is_typed_and_timestamps_are_utc(tmp_path, fmt):
    frames = read_raw_dir(_write(tmp_path / "in", _good_tables(), fmt))
    assert set(frames) == set(RAW_TABLES)
    tp = frames["touchpoints"]
    assert str(tp["occurred_at"].dtype).startswith("datetime64")
    # +02:00 is converted to UTC, a bare timestamp is taken as UTC
    assert tp["occurred_at"].tolist()[2] == pd.Timestamp("2025-03-02 10:00:00")
    assert frames["ad_performance_daily"]["impressions"].dtype == "int64"
    assert list(frames["conversions"].columns) == RAW_TABLES["conversions"].column_names


def test_errors_name_the_file_the_column_and_the_bad_row_count(tmp_path):
    tables = _good_tables()
    tables["ad_performance_daily"]["spend"] = ["120.5", "lots"]
    tables["touchpoints"]["occurred_at"] = ["2025-03-01", "yesterday", "soon"]
    tables["conversions"] = tables["conversions"].drop(columns=["revenue"])
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "in", tables))
    text = str(err.value)
    assert "ad_performance_daily.csv: column 'spend': 1 row(s) are not numbers (row 2: 'lots')" in text
    assert "touchpoints.csv: column 'occurred_at': 2 row(s) are not timestamps" in text
    assert "conversions.csv: missing column(s) ['revenue']" in text
    assert "nothing was loaded" in text


def test_missing_file_and_empty_required_values_are_reported(tmp_path):
    tables = _good_tables()
    tables["touchpoints"].loc[1, "user_id"] = None
    folder = _write(tmp_path / "in", {k: v for k, v in tables.items() if k != "conversions"})
    with pytest.raises(RawDataError) as err:
        read_raw_dir(folder)
    assert "no conversions.csv or conversions.parquet" in str(err.value)
    assert "touchpoints.csv: column 'user_id': 1 row(s) are empty (required column)" in str(err.value)


def test_replacement_is_atomic_and_drops_demo_truth(tmp_path):
    wh = Warehouse(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    good = _good_tables()
    replace_raw_tables(wh, good, extra={"ground_truth_daily": pd.DataFrame({"x": [1]})})
    assert wh.row_counts("raw")["ground_truth_daily"] == 1
    frames = read_raw_dir(_write(tmp_path / "in", good))
    frames["touchpoints"] = frames["touchpoints"].iloc[:2]
    replace_raw_tables(wh, frames, drop_ground_truth=True)
    assert wh.row_counts("raw") == {"ad_performance_daily": 2, "conversions": 1, "touchpoints": 2}


def test_cli_load_exits_2_with_the_message_and_leaves_the_warehouse_untouched(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    replace_raw_tables(Warehouse(url=url), _good_tables())
    bad = _good_tables()
    bad["ad_performance_daily"]["clicks"] = [1.5, 2]
    folder = _write(tmp_path / "bad", bad)
    env = {"SPENDWISE_WAREHOUSE_URL": url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(folder)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert "ad_performance_daily.csv: column 'clicks': 1 row(s) are not whole numbers" in proc.stderr
    assert Warehouse(url=url).row_counts("raw") == {"ad_performance_daily": 2, "conversions": 1, "touchpoints": 3}
    ok = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(_write(tmp_path / "ok", _good_tables(), "parquet"))],
        capture_output=True, text=True, env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "raw.touchpoints" in ok.stdout
