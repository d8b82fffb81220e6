"""`spendwise load DIR`: validation errors that name file, column and bad rows; atomic replacement."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from core.raw_contract import (
    RAW_TABLES, RawDataError, channel_tables, read_channels_csv, read_raw_dir, replace_raw_tables, validate_raw_frame,
)
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
    # ids are text whatever the file's types: Parquet's integers are written in full digits
    assert tp["user_id"].tolist() == ["10", "10", "11"]
    assert tp["touchpoint_id"].tolist() == ["1", "2", "3"]
    assert list(frames["conversions"].columns) == RAW_TABLES["conversions"].column_names


def test_errors_name_the_file_the_column_and_the_bad_row_count(tmp_path):
    tables = _good_tables()
    tables["ad_performance_daily"]["spend"] = ["120.5", "lots"]
    tables["touchpoints"]["occurred_at"] = ["2025-03-01", "yesterday", "soon"]
    tables["conversions"] = tables["conversions"].drop(columns=["revenue"])
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "in", tables))
    text = str(err.value)
    # the file line as an editor shows it: the header is line 1
    assert "ad_performance_daily.csv: column 'spend': 1 row(s) are not numbers (line 3: 'lots')" in text
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
    assert wh.row_counts("raw") == {"ad_performance_daily": 2, "conversions": 1, "touchpoints": 2,
                                    "channel_metadata": 0, "channel_aliases": 0, "calendar_events": 0}


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
    assert Warehouse(url=url).row_counts("raw") == {"ad_performance_daily": 2, "conversions": 1, "touchpoints": 3,
                                                   "channel_metadata": 0, "channel_aliases": 0, "calendar_events": 0}
    ok = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(_write(tmp_path / "ok", _good_tables(), "parquet"))],
        capture_output=True, text=True, env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "raw.touchpoints" in ok.stdout


def test_ids_stay_text_exactly_as_written(tmp_path):
    tables = _good_tables()
    wide = "123456789012345678901"  # 21 digits: beyond int64 and float64's exact range
    tables["touchpoints"] = tables["touchpoints"].assign(
        touchpoint_id=[wide, str(int(wide) + 1), "0000000000000000000001"],
        user_id=["0123", " 123 ", "guest-7"],  # leading zeros kept, only surrounding spaces dropped
        campaign_id=["007", "7", None],
    )
    tables["conversions"] = tables["conversions"].assign(conversion_id=["00042"], user_id=["0123"])
    frames = read_raw_dir(_write(tmp_path / "in", tables))
    tp = frames["touchpoints"]
    assert tp["touchpoint_id"].tolist() == [wide, "123456789012345678902", "0000000000000000000001"]
    assert tp["user_id"].tolist() == ["0123", "123", "guest-7"]
    assert tp["campaign_id"].tolist()[:2] == ["007", "7"] and pd.isna(tp["campaign_id"].iloc[2])
    assert frames["conversions"][["conversion_id", "user_id"]].values.tolist() == [["00042", "0123"]]
    assert frames["ad_performance_daily"]["campaign_id"].tolist() == ["c1", "c2"]


def test_numeric_ids_in_parquet_become_text_without_decimal_artefacts(tmp_path):
    import numpy as np

    tables = _good_tables()
    tables["touchpoints"] = tables["touchpoints"].assign(
        touchpoint_id=np.array([1, 2, 2**63 - 1], dtype=np.int64),
        user_id=np.array([10, 10, 2**64 - 1], dtype=np.uint64),
        campaign_id=[7.0, np.nan, 12.0],  # a float column, as pandas writes integers with a gap
    )
    frames = read_raw_dir(_write(tmp_path / "in", tables, "parquet"))
    tp = frames["touchpoints"]
    assert tp["touchpoint_id"].tolist() == ["1", "2", "9223372036854775807"]
    assert tp["user_id"].tolist() == ["10", "10", "18446744073709551615"]
    assert tp["campaign_id"].tolist()[0::2] == ["7", "12"]

    tables["touchpoints"]["user_id"] = [10.5, 2.0**60, 11.0]  # not whole / digits already lost
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "bad", tables, "parquet"))
    assert ("touchpoints.parquet: column 'user_id': 2 row(s) are floating-point numbers that cannot be exact ids"
            in str(err.value))
    assert "(row 1: 10.5, row 2: 1.152921504606847e+18)" in str(err.value)


def test_numbers_must_be_finite_and_plausible_and_messages_show_plain_values():
    import numpy as np

    ads = _good_tables()["ad_performance_daily"]
    ads = pd.concat([ads] * 3, ignore_index=True).assign(
        spend=[np.float64(12.5), np.inf, -np.inf, 1e300, 5.0, np.nan],
        clicks=[1.5, 2, 3, 4, 5, 6],
        impressions=[10, 10, 10**13, 10, 10, 10],
        revenue=[1.0, -2e12, None, 3.0, 4.0, 5.0],  # optional: empty is fine, implausible is not
    )
    with pytest.raises(RawDataError) as err:
        validate_raw_frame("ad_performance_daily", ads, source="ads.parquet")
    problems = err.value.problems
    assert "ads.parquet: column 'spend': 2 row(s) are not finite numbers (row 2: inf, row 3: -inf)" in problems
    assert ("ads.parquet: column 'spend': 1 row(s) are beyond ±1,000,000,000,000 (not plausible for one row) "
            "(row 4: 1e+300)") in problems
    assert "ads.parquet: column 'spend': 1 row(s) are empty (required column) (row 6: nan)" in problems
    assert "ads.parquet: column 'clicks': 1 row(s) are not whole numbers (row 1: 1.5)" in problems
    assert ("ads.parquet: column 'impressions': 1 row(s) are beyond ±1,000,000,000,000 (not plausible for one row) "
            "(row 3: 10000000000000)") in problems
    assert ("ads.parquet: column 'revenue': 1 row(s) are beyond ±1,000,000,000,000 (not plausible for one row) "
            "(row 2: -2000000000000.0)") in problems
    assert len(problems) == 6
    assert "np." not in str(err.value)


def test_csv_positions_are_file_lines_across_quoted_newlines_and_blank_lines(tmp_path):
    folder = _write(tmp_path / "in", _good_tables())
    (folder / "ad_performance_daily.csv").write_text(
        "date,channel,campaign_id,campaign_name,impressions,reach,clicks,spend,conversions,revenue\n"
        '2025-03-01,search,c1,"Brand\nline two",1000,800,50,nan,3,300\n'  # lines 2-3
        "\n"  # line 4: skipped, as pandas and Arrow skip it
        "   \n"  # line 5: whitespace only, skipped too
        "2025-03-02,social,c2,Pros,2000,1500,40,80,1,INF\n"  # line 6
        "2025-03-03,social,c2\n"  # line 7: too few fields
        "2025-03-04,social,c2,Pros,2000,1500,40,-Infinity,1,90\n"  # line 8
    )
    with pytest.raises(RawDataError) as err:
        read_raw_dir(folder)
    assert err.value.problems == [
        "ad_performance_daily.csv: 1 line(s) do not have the header's 10 fields (line 7: 3 field(s))",
        "ad_performance_daily.csv: column 'spend': 2 row(s) are not finite numbers "
        "(line 2: 'nan', line 8: '-Infinity')",
        "ad_performance_daily.csv: column 'revenue': 1 row(s) are not finite numbers (line 6: 'INF')",
    ]


def test_missing_markers_are_empty_cells_but_nan_in_a_number_column_is_rejected(tmp_path):
    tables = _good_tables()
    tables["ad_performance_daily"]["revenue"] = ["NA", "nan"]
    tables["ad_performance_daily"]["campaign_name"] = ["NULL", ""]
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "in", tables))
    assert err.value.problems == [
        "ad_performance_daily.csv: column 'revenue': 1 row(s) are not finite numbers (line 3: 'nan')"
    ]


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_file_limits_from_the_environment_must_be_whole_positive_numbers(monkeypatch, value):
    from core.raw_contract import MAX_ROWS_ENV, FileLimits

    monkeypatch.setenv(MAX_ROWS_ENV, value)
    with pytest.raises(RawDataError, match=MAX_ROWS_ENV):
        FileLimits.from_env()
    monkeypatch.setenv(MAX_ROWS_ENV, "2_000_000")
    assert FileLimits.from_env().max_rows == 2_000_000


def test_a_nul_character_in_an_id_or_text_is_refused(tmp_path):
    tables = _good_tables()
    tables["touchpoints"]["user_id"] = ["10", "1\x000", "11"]  # PostgreSQL's text cannot store it
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "in", tables))
    assert err.value.problems == [
        "touchpoints.csv: column 'user_id': 1 row(s) contain a NUL character (line 3: '1\\x000')"
    ]


OPTIONAL = {"ad_performance_daily": ["campaign_name", "reach", "conversions", "revenue"],
            "touchpoints": ["campaign_id", "interaction"]}


def test_the_contract_marks_exactly_the_optional_columns():
    for name, table in RAW_TABLES.items():
        assert [c.name for c in table.columns if c.optional] == OPTIONAL.get(name, []), name
        assert table.mandatory_column_names == [c for c in table.column_names if c not in OPTIONAL.get(name, [])]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_absent_optional_columns_load_as_typed_nulls(tmp_path, fmt):
    tables = _good_tables()
    present = read_raw_dir(_write(tmp_path / "full", tables, fmt))
    for name, columns in OPTIONAL.items():
        tables[name] = tables[name].drop(columns=columns)
    frames = read_raw_dir(_write(tmp_path / "in", tables, fmt))
    for name, columns in OPTIONAL.items():
        frame = frames[name]
        assert list(frame.columns) == RAW_TABLES[name].column_names  # one shape, whatever the file had
        assert len(frame) == len(tables[name]) and frame[columns].isna().all().all()
        # The same column types as a present column with empty cells, so the raw tables keep one schema.
        gaps = present[name].copy()
        gaps[columns] = None
        typed_gaps = validate_raw_frame(name, gaps)
        assert frame.dtypes.astype(str).to_dict() == typed_gaps.dtypes.astype(str).to_dict()
    assert frames["ad_performance_daily"]["spend"].tolist() == [120.5, 80.0]


def test_absent_required_columns_are_named_with_the_optional_ones(tmp_path):
    tables = _good_tables()
    tables["ad_performance_daily"] = tables["ad_performance_daily"].drop(columns=["reach", "spend"])
    tables["touchpoints"] = tables["touchpoints"].drop(columns=["interaction", "user_id"])
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "in", tables))
    text = str(err.value)
    assert "ad_performance_daily.csv: missing column(s) ['spend']" in text
    assert "these may be absent: ['campaign_name', 'reach', 'conversions', 'revenue']" in text
    assert "touchpoints.csv: missing column(s) ['user_id']" in text
    assert "'reach'" not in text.split("missing column(s)")[1].split(";")[0]


def test_absent_optional_columns_reach_the_warehouse_as_null_columns(duckdb_url):
    tables = _good_tables()
    tables["ad_performance_daily"] = tables["ad_performance_daily"].drop(columns=OPTIONAL["ad_performance_daily"])
    tables["touchpoints"] = tables["touchpoints"].drop(columns=OPTIONAL["touchpoints"])
    wh = Warehouse(url=duckdb_url)
    replace_raw_tables(wh, tables)
    ads = wh.read_table("raw", "ad_performance_daily")
    assert list(ads.columns) == RAW_TABLES["ad_performance_daily"].column_names
    assert ads[OPTIONAL["ad_performance_daily"]].isna().all().all()
    assert wh.read_table("raw", "touchpoints")[OPTIONAL["touchpoints"]].isna().all().all()


def test_a_campaign_is_channel_and_campaign_id_and_has_one_row_per_day(tmp_path):
    """Platforms number campaigns independently: one id on two channels is two campaigns, not a duplicate."""
    tables = _good_tables()
    ads = pd.DataFrame({
        "date": ["2025-03-01", "2025-03-01", "2025-03-02"], "channel": ["search", "social", "search"],
        "campaign_id": ["pai-00", "pai-00", "pai-00"], "impressions": [10, 20, 30], "clicks": [1, 2, 3],
        "spend": [1.0, 2.0, 3.0],
    })
    tables["ad_performance_daily"] = ads
    frames = read_raw_dir(_write(tmp_path / "ok", tables))
    assert len(frames["ad_performance_daily"]) == 3

    tables["ad_performance_daily"] = pd.concat([ads, ads.iloc[[1]]], ignore_index=True)
    with pytest.raises(RawDataError) as err:
        read_raw_dir(_write(tmp_path / "dup", tables))
    message = str(err.value)
    assert ("ad_performance_daily.csv: 1 (date, channel, campaign_id) combination(s) appear on more than one row "
            "(line 3, line 5)") in message
    assert "aggregate the export by date, channel and campaign" in message


def test_channels_csv_gives_metadata_and_aliases_trimmed_and_lower_cased(tmp_path):
    tables = _good_tables()
    folder = _write(tmp_path / "in", tables)
    (folder / "channels.csv").write_text(
        "channel,channel_group,is_paid,description,aliases\n"
        "Paid_Search ,performance,true,Search ads,google_ads| CPC \n"
        "newsletter,owned,no,,\n"
    )
    frames = read_raw_dir(folder, channels=True)
    meta = frames["channel_metadata"].set_index("channel")
    assert meta.loc["paid_search", "channel_group"] == "performance" and meta.loc["paid_search", "is_paid"]
    assert not meta.loc["newsletter", "is_paid"] and pd.isna(meta.loc["newsletter", "description"])
    assert sorted(map(tuple, frames["channel_aliases"].to_numpy().tolist())) == [
        ("cpc", "paid_search"), ("google_ads", "paid_search")]


def test_without_channels_csv_the_channel_tables_are_written_empty(tmp_path):
    frames = read_raw_dir(_write(tmp_path / "in", _good_tables()), channels=True)
    assert frames["channel_metadata"].empty and frames["channel_aliases"].empty
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    replace_raw_tables(Warehouse(url=url), {n: frames[n] for n in RAW_TABLES})
    counts = Warehouse(url=url).row_counts("raw")
    assert counts["channel_metadata"] == 0 and counts["channel_aliases"] == 0


@pytest.mark.parametrize("text, expected", [
    ("channel,group,aliases\nsearch,x,\n",
     "channels.csv: line 1: unknown column(s) ['group']; the columns are ['channel', 'channel_group', 'is_paid', "
     "'description', 'aliases']"),
    ("channel,aliases\nsearch,\nsocial,\nSEARCH,\n",
     "channels.csv: line 4: channel 'search' is listed twice (first on line 2): keep one line per channel"),
    ("channel,aliases\nsearch,cpc\nnewsletter,cpc|mail\n",
     "channels.csv: line 3: 'cpc' would map to channel 'newsletter' and to channel 'search' (line 2): "
     "a name can belong to one channel only"),
    ("channel,is_paid\nsearch,maybe\n", "channels.csv: line 2: is_paid 'maybe' is not true/false"),
    ("channel_group\nx\n", "channels.csv: line 1: no 'channel' column"),
])
def test_channels_csv_problems_name_their_line(tmp_path, text, expected):
    folder = _write(tmp_path / "in", _good_tables())
    (folder / "channels.csv").write_text(text)
    with pytest.raises(RawDataError) as err:
        read_raw_dir(folder, channels=True)
    assert expected in str(err.value)
    with pytest.raises(RawDataError):
        read_channels_csv(folder / "channels.csv")


def test_channel_tables_from_records_use_the_same_rules():
    frames = channel_tables([{"channel": "search", "channel_group": "performance", "is_paid": True,
                              "aliases": ["google_ads"]}])
    assert frames["channel_aliases"].to_dict("records") == [{"alias": "google_ads", "channel": "search"}]
    with pytest.raises(RawDataError, match="listed twice"):
        channel_tables([{"channel": "search"}, {"channel": "search"}])
