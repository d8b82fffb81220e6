"""The audit log on both warehouses: rows appended with UTC time, actor and JSON detail; append-only; no personal data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from core import audit
from core.warehouse import WarehouseClient


@pytest.fixture
def client(engine_url) -> WarehouseClient:
    return WarehouseClient(engine_url)


def test_record_appends_rows_with_time_actor_and_detail(client):
    assert audit.entries(client) == []
    before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
    audit.record(client, "load", actor="cli:alice", detail={"tables": {"touchpoints": 120}, "files": ["a.csv"]})
    audit.record(client, "purge", actor="cli:bob", detail={"rows_deleted": 3})
    audit.record(client, "grant_bi", actor="cli:bob")

    rows = audit.entries(client)
    assert [r["action"] for r in rows] == ["grant_bi", "purge", "load"]
    assert rows[2]["actor"] == "cli:alice"
    assert rows[2]["detail"] == {"files": ["a.csv"], "tables": {"touchpoints": 120}}
    assert rows[0]["detail"] == {}
    assert len({r["id"] for r in rows}) == 3
    assert all(before <= r["at"] <= datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=1) for r in rows)
    assert [r["action"] for r in audit.entries(client, action="purge")] == ["purge"]
    stored = client.read_sql("SELECT detail FROM ops.audit_log WHERE action = 'load'")["detail"].iloc[0]
    assert json.loads(stored)["tables"] == {"touchpoints": 120}


@pytest.mark.parametrize("detail", [
    {"user_id": "u-1"}, {"ids": ["u-1"]}, {"email": "a@b.c"}, {"nested": {"user_ids": ["x"]}}, {"password": "p"},
])
def test_detail_that_looks_like_personal_data_is_refused_before_writing(client, detail):
    with pytest.raises(ValueError, match="personal data or a secret"):
        audit.record(client, "purge", actor="cli:alice", detail=detail)
    assert audit.entries(client) == []


def test_unserialisable_detail_and_blank_actor_are_refused(client):
    with pytest.raises(TypeError, match="'when'.*datetime"):
        audit.record(client, "load", actor="cli:a", detail={"when": datetime.now()})
    with pytest.raises(ValueError, match="actor"):
        audit.record(client, "load", actor=" ")
    assert audit.entries(client) == []


def test_record_in_commits_or_rolls_back_with_the_callers_transaction(client):
    with client.write_transaction("ops") as con:
        audit.record_in(client, con, "merge", actor="cli:a", detail={"rows": 1})
    with pytest.raises(RuntimeError, match="boom"):
        with client.write_transaction("ops") as con:
            audit.record_in(client, con, "purge", actor="cli:a", detail={"rows": 2})
            raise RuntimeError("boom")
    assert [r["action"] for r in audit.entries(client)] == ["merge"]


def test_postgres_refuses_update_delete_and_truncate_even_for_the_owner(pg_url):
    import psycopg2

    client = WarehouseClient(pg_url)
    audit.record(client, "load", actor="cli:a", detail={"rows": 1})
    for statement in ("UPDATE ops.audit_log SET actor = 'x'", "DELETE FROM ops.audit_log",
                      "TRUNCATE ops.audit_log"):
        with client.connect() as con:
            with pytest.raises(psycopg2.Error, match="append-only"):
                client.execute(con, statement)
    audit.record(client, "purge", actor="cli:a")  # the guard is created once and kept
    assert [r["actor"] for r in audit.entries(client)] == ["cli:a", "cli:a"]


def test_a_landing_merge_is_recorded_with_its_drop_and_rows_and_a_rejected_one_is_not(tmp_path):
    from core.landing import READY_MARKER, process_drop
    from core.settings import WarehouseUrl

    header = "date,channel,campaign_id,impressions,clicks,spend\n"
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    landing = tmp_path / "landing"
    for name, spend in (("drop-1", "10"), ("drop-2", "inf")):
        (landing / name).mkdir(parents=True)
        (landing / name / "ad_performance_daily.csv").write_text(header + f"2026-10-01,ctv,c-1,100,5,{spend}\n")
        (landing / name / READY_MARKER).write_text("")
    assert process_drop(landing / "drop-1", landing, url).status == "merged"
    assert process_drop(landing / "drop-2", landing, url).status == "rejected"
    rows = audit.entries(WarehouseClient(url))
    assert [(r["action"], r["actor"]) for r in rows] == [("landing_merge", "landing")]
    assert rows[0]["detail"]["drop"] == "drop-1"
    assert rows[0]["detail"]["rows"]["ad_performance_daily"] == 1
