"""`spendwise export TABLE --format csv|xlsx --out FILE` on a real DuckDB warehouse: the file holds the
published rows, read back with pandas and openpyxl; bad requests are one line and exit code 2; audited."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from openpyxl import load_workbook

from core import audit
from core.registry import TABLES
from core.settings import get_settings
from core.warehouse import WarehouseClient
from orchestration.cli import main

TABLE = "channel_attribution"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> WarehouseClient:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", url)
    get_settings.cache_clear()
    client = WarehouseClient(url)
    spec = TABLES[TABLE]
    rows = []
    for i, channel in enumerate(("search", "social", "=HYPERLINK(\"x\")")):
        row = {c.name: (f"{channel}" if c.type == "text" else float(i) + 0.25) for c in spec.columns}
        rows.append(row)
    df = pd.DataFrame(rows)
    df.loc[1, "attributed_roas"] = float("nan")  # a missing value must stay an empty cell
    client.publish(df, TABLE, run_id="run-export")
    yield client
    get_settings.cache_clear()


def test_csv_and_xlsx_hold_the_published_rows_and_each_export_is_audited(warehouse, tmp_path, capsys):
    published = warehouse.read_table("predictions", TABLE)

    assert main(["export", TABLE, "--format", "csv", "--out", str(tmp_path / "a.csv")]) == 0
    csv = pd.read_csv(tmp_path / "a.csv")
    assert list(csv.columns) == list(published.columns)
    assert csv["channel"].tolist() == published["channel"].tolist()
    assert csv["attributed_roas"].isna().tolist() == [False, True, False]
    assert set(csv["run_id"]) == {"run-export"}

    assert main(["export", TABLE, "--format", "xlsx", "--out", str(tmp_path / "a.xlsx")]) == 0
    sheet = load_workbook(tmp_path / "a.xlsx", read_only=True)[TABLE]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == list(published.columns)
    assert len(values) == 1 + len(published)
    by_name = [dict(zip(values[0], v)) for v in values[1:]]
    # the same writer as the HTTP export: text that looks like a formula stays text
    assert [r["channel"] for r in by_name] == ["search", "social", '=HYPERLINK("x")']
    raw = load_workbook(tmp_path / "a.xlsx")[TABLE]
    assert raw.cell(row=4, column=list(values[0]).index("channel") + 1).data_type == "s"
    assert by_name[1]["attributed_roas"] is None
    assert math.isclose(by_name[2]["share"], 2.25)
    assert by_name[0]["generated_at"].year >= 2025  # a real Excel date-time, not text
    out = capsys.readouterr().out
    assert f"predictions.{TABLE}: 3 rows written to {tmp_path / 'a.xlsx'} (xlsx)" in out

    exports = audit.entries(warehouse, action="export")
    assert [(e["detail"]["format"], e["detail"]["file"], e["detail"]["rows"]) for e in exports] == [
        ("xlsx", "a.xlsx", 3), ("csv", "a.csv", 3)]
    assert list(tmp_path.glob(".*partial")) == []


@pytest.mark.parametrize("argv, message", [
    (["export", "no_such_table", "--out", "{tmp}/x.csv"], "'no_such_table' is not a registered prediction table; "
                                                          "registered: channel_attribution, campaign_attribution"),
    (["export", "mmm_channel_roas", "--out", "{tmp}/x.csv"], "predictions.mmm_channel_roas has not been published yet"),
    (["export", TABLE, "--out", "{tmp}/missing/x.csv"], "folder"),
])
def test_bad_requests_exit_2_with_one_line_and_write_nothing(warehouse, tmp_path, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.csv").exists()
    assert audit.entries(warehouse, action="export") == []


def test_an_unknown_format_is_refused_by_the_parser(warehouse, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", TABLE, "--format", "xls", "--out", str(tmp_path / "x.xls")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'xls'" in capsys.readouterr().err
