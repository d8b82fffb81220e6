"""`spendwise load` then `spendwise purge-user` (one id, a file, unknown ids, --retention) on DuckDB and
PostgreSQL: counts per table, exit codes, the refresh lock, and an audit trail without ids."""

from __future__ import annotations

import re

import pytest

from core import audit
from core.refresh_lock import RefreshLock
from core.settings import WarehouseUrl, get_settings
from core.warehouse import WarehouseClient
from orchestration.cli import main
from tests.core.test_hostile_files import ENGINES, good_tables, raw, write


@pytest.fixture(params=ENGINES)
def url(request, tmp_path, monkeypatch) -> str:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", url)
    monkeypatch.delenv("SPENDWISE_RAW_RETENTION_DAYS", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_load_purge_and_retention_from_the_command_line(url, tmp_path, capsys, monkeypatch):
    assert main(["load", str(write(tmp_path / "export-2025-03", good_tables(["u-1", "u-2", "u-3", "u-4"])))]) == 0
    touches = raw(url, "touchpoints")
    per_user = touches.groupby("user_id").size().to_dict()
    capsys.readouterr()

    assert main(["purge-user", "u-2"]) == 0
    out = capsys.readouterr().out
    assert "Deleted rows of 1 user id in one transaction:" in out
    assert re.search(rf"raw\.touchpoints\s+{per_user['u-2']:,} rows", out), out
    assert "u-2" not in set(raw(url, "touchpoints")["user_id"]) | set(raw(url, "conversions")["user_id"])

    ids = tmp_path / "erasure.txt"
    ids.write_text("# requests of November\nu-3\nnobody\n\n", encoding="utf-8")
    assert main(["purge-user", "--file", str(ids)]) == 0
    assert "Deleted rows of 2 user ids" in capsys.readouterr().out
    assert sorted(set(raw(url, "touchpoints")["user_id"])) == ["u-1", "u-4"]

    assert main(["purge-user", "nobody-at-all"]) == 0
    assert re.search(r"total\s+0 rows", capsys.readouterr().out)

    assert main(["purge-user"]) == 2
    assert "give a user id" in capsys.readouterr().err
    assert main(["purge-user", "--file", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the id file" in capsys.readouterr().err

    lock = RefreshLock(WarehouseUrl.parse(url))
    lock.acquire("run-under-test")
    try:
        assert main(["purge-user", "u-1"]) == 3
    finally:
        lock.release()
    assert "already running" in capsys.readouterr().err
    assert "u-1" in set(raw(url, "touchpoints")["user_id"])

    monkeypatch.setenv("SPENDWISE_RAW_RETENTION_DAYS", "banana")
    assert main(["purge-user", "--retention"]) == 2
    assert "SPENDWISE_RAW_RETENTION_DAYS='banana' is not a whole number" in capsys.readouterr().err
    monkeypatch.setenv("SPENDWISE_RAW_RETENTION_DAYS", "36500")  # the rows are from 2025: all kept
    assert main(["purge-user", "--retention"]) == 0
    assert len(raw(url, "touchpoints")) > 0
    assert main(["purge-user", "--retention", "30"]) == 0  # everything is older than 30 days
    assert "raw user-level rows older than 30 days" in capsys.readouterr().out
    assert len(raw(url, "touchpoints")) == 0 and len(raw(url, "conversions")) == 0

    log = audit.entries(WarehouseClient(url), limit=20)
    assert [e["action"] for e in log] == ["raw_retention", "raw_retention", "purge_user", "purge_user", "purge_user",
                                          "load"]
    assert log[-1]["detail"]["folder"] == "export-2025-03" and log[-1]["detail"]["tables"]["touchpoints"] == len(touches)
    assert log[-2]["detail"] == {"persons_requested": 1, "rows_deleted": log[-2]["detail"]["rows_deleted"]}
    assert log[-2]["detail"]["rows_deleted"]["raw.touchpoints"] == per_user["u-2"]
    assert all(e["actor"].startswith("cli:") for e in log)
    text = WarehouseClient(url).read_sql("SELECT detail FROM ops.audit_log")["detail"].str.cat()
    assert "u-2" not in text and "u-3" not in text and "nobody" not in text


def test_no_warehouse_yet_is_exit_4_and_creates_none(tmp_path, monkeypatch, capsys):
    path = tmp_path / "never.duckdb"
    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", f"duckdb:///{path}")
    get_settings.cache_clear()
    try:
        assert main(["purge-user", "u-1"]) == 4
        assert main(["export", "channel_attribution", "--out", str(tmp_path / "x.csv")]) == 4
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.count(f"no warehouse at {path}") == 2
    assert not path.exists()
