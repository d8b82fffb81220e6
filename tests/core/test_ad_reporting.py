"""The ad_reporting campaign report in place of ad_performance_daily: real files, `spendwise load` into DuckDB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from assets.resources import Warehouse
from core.ad_reporting import read_campaign_report
from core.landing import READY_MARKER, read_drop
from core.raw_contract import RawDataError, read_raw_dir

REPORT = "ad_reporting__campaign_report"


def campaign_report(conversions: bool = True) -> pd.DataFrame:
    """Two platforms, one campaign id on both (ids are per platform), two accounts of google_ads."""
    report = pd.DataFrame({
        "date_day": ["2026-10-01", "2026-10-01", "2026-10-02", "2026-10-01"],
        "platform": ["google_ads", "google_ads", "google_ads", "facebook_ads"],
        "account_id": ["111", "222", "111", "act_9"],
        "account_name": ["Brand", "Performance", "Brand", "Meta"],
        "campaign_id": ["0042", "77", "0042", "0042"],
        "campaign_name": ["Brand search", "Generic", "Brand search", "Prospecting"],
        "clicks": [12, 30, 9, 40],
        "impressions": [400, 2000, 350, 9000],
        "spend": [25.5, 60.0, 20.25, 80.0],
        "conversions": [2.0, 3.5, 1.0, 4.0],
        "conversions_value": [120.0, 210.0, 60.0, 180.0],
    })
    return report if conversions else report.drop(columns=["conversions", "conversions_value"])


def other_tables() -> dict[str, pd.DataFrame]:
    return {
        "touchpoints": pd.DataFrame({
            "touchpoint_id": ["t1", "t2"], "user_id": ["u1", "u2"],
            "occurred_at": ["2026-10-01T10:00:00Z", "2026-10-02T11:00:00Z"], "channel": ["cpc", "meta"],
        }),
        "conversions": pd.DataFrame({
            "conversion_id": ["o1"], "user_id": ["u1"], "occurred_at": ["2026-10-01T12:00:00Z"], "revenue": [99.0],
        }),
    }


def write_folder(folder: Path, report: pd.DataFrame | None, fmt: str = "csv", **extra: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tables = {**other_tables(), **extra}
    if report is not None:
        tables[REPORT] = report
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def spendwise_load(folder: Path, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(folder)], capture_output=True, text=True,
        timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(folder.parent), "SPENDWISE_WAREHOUSE_URL": url},
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_report_loads_as_ad_performance_daily_with_mapped_values(tmp_path, fmt):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    proc = spendwise_load(write_folder(tmp_path / "in", campaign_report(), fmt), url)
    assert proc.returncode == 0, proc.stderr
    ads = Warehouse(url=url).read_table("raw", "ad_performance_daily").sort_values(["channel", "date", "campaign_id"])
    assert list(ads.columns) == [
        "date", "channel", "campaign_id", "campaign_name", "impressions", "reach", "clicks", "spend",
        "conversions", "revenue",
    ]
    rows = [
        (str(r.date)[:10], r.channel, r.campaign_id, r.campaign_name, r.impressions, r.clicks, r.spend,
         r.conversions, r.revenue)
        for r in ads.itertuples()
    ]
    assert rows == [
        ("2026-10-01", "facebook_ads", "0042", "Prospecting", 9000, 40, 80.0, 4.0, 180.0),
        ("2026-10-01", "google_ads", "0042", "Brand search", 400, 12, 25.5, 2.0, 120.0),
        ("2026-10-01", "google_ads", "77", "Generic", 2000, 30, 60.0, 3.5, 210.0),
        ("2026-10-02", "google_ads", "0042", "Brand search", 350, 9, 20.25, 1.0, 60.0),
    ]
    assert ads["reach"].isna().all()  # the report has no reach


def test_missing_conversion_columns_load_as_null(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    report = campaign_report(conversions=False).drop(columns=["campaign_name", "account_name"])
    proc = spendwise_load(write_folder(tmp_path / "in", report), url)
    assert proc.returncode == 0, proc.stderr
    ads = Warehouse(url=url).read_table("raw", "ad_performance_daily")
    assert len(ads) == 4 and sorted(ads["spend"]) == [20.25, 25.5, 60.0, 80.0]
    assert ads[["conversions", "revenue", "campaign_name", "reach"]].isna().all().all()


def test_both_shapes_of_the_ad_export_are_refused_naming_both(tmp_path):
    ads = pd.DataFrame({"date": ["2026-10-01"], "channel": ["x"], "campaign_id": ["c"], "impressions": [1],
                        "clicks": [0], "spend": [1.0]})
    folder = write_folder(tmp_path / "in", campaign_report(), ad_performance_daily=ads)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    proc = spendwise_load(folder, url)
    assert proc.returncode == 2
    assert (f"ad_performance_daily.csv and {REPORT}.csv are both there for table ad_performance_daily: "
            "keep exactly one of them") in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_one_campaign_day_from_two_accounts_is_refused_naming_the_lines(tmp_path):
    report = campaign_report()
    report.loc[1, "campaign_id"] = "0042"  # account 222 reports google_ads campaign 0042 on 2026-10-01 too
    with pytest.raises(RawDataError) as info:
        read_raw_dir(write_folder(tmp_path / "in", report))
    (problem,) = info.value.problems
    assert problem.startswith(
        f"{REPORT}.csv: 1 (date_day, platform, campaign_id) combination(s) come from more than one account_id "
        "(line 2: 2026-10-01, 'google_ads', '0042', account '111', line 3: 2026-10-01, 'google_ads', '0042', "
        "account '222')"
    )
    assert "keep the rows of one of them" in problem and "prefix it with the account_id" in problem


def test_a_repeated_campaign_day_within_one_account_is_refused(tmp_path):
    report = pd.concat([campaign_report(), campaign_report().iloc[[3]]], ignore_index=True)
    with pytest.raises(RawDataError) as info:
        read_raw_dir(write_folder(tmp_path / "in", report))
    (problem,) = info.value.problems
    assert "appear on more than one row of the same account_id (line 5:" in problem and "line 6:" in problem
    assert "aggregate the report by date_day, platform and campaign_id" in problem


def test_problems_name_the_report_columns_and_lines(tmp_path):
    report = campaign_report().astype({"spend": object})
    report.loc[2, "date_day"] = "02/10/2026x"
    report.loc[1, "spend"] = "lots"
    report.loc[3, "account_id"] = ""
    with pytest.raises(RawDataError) as info:
        read_raw_dir(write_folder(tmp_path / "in", report))
    assert info.value.problems == [
        f"{REPORT}.csv: column 'account_id': 1 row(s) are empty (required column) (line 5: nan)",
        f"{REPORT}.csv: column 'date_day': 1 row(s) are not dates (YYYY-MM-DD) (line 4: '02/10/2026x')",
        f"{REPORT}.csv: column 'spend': 1 row(s) are not numbers (line 3: 'lots')",
    ]
    with pytest.raises(RawDataError) as info:
        read_campaign_report(write_folder(tmp_path / "cols", campaign_report().drop(columns=["platform"]))
                             / f"{REPORT}.csv")
    assert "missing column(s) ['platform']; an ad_reporting campaign report needs" in str(info.value)


def test_a_landing_drop_may_hold_the_report(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    campaign_report().to_parquet(drop / f"{REPORT}.parquet", index=False)
    (drop / READY_MARKER).write_text("")
    frames = read_drop(drop)
    assert list(frames) == ["ad_performance_daily"]
    assert sorted(frames["ad_performance_daily"]["revenue"]) == [60.0, 120.0, 180.0, 210.0]
    write_folder(drop, None, ad_performance_daily=campaign_report().rename(columns={"date_day": "date"}))
    with pytest.raises(RawDataError, match="are both there for table ad_performance_daily"):
        read_drop(drop)
