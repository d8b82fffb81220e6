"""Deleting a person's data and raw retention on DuckDB and PostgreSQL: one transaction, counts per table,
zeros for unknown ids, an audit row without ids; and the models dbt builds next no longer hold them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core import audit
from core.purge import enforce_retention, purge_users, read_ids, user_level_relations
from core.settings import DBT_DIR, WarehouseUrl
from core.warehouse import WarehouseClient
from tests.conftest import load_demo

NOW = datetime(2026, 11, 30, 12, 0, 0)


@pytest.fixture
def client(engine_url) -> WarehouseClient:
    return WarehouseClient(engine_url)


def _seed(client: WarehouseClient) -> None:
    """Raw and derived user-level tables shaped like the real ones, plus an aggregate without user ids."""
    touch = pd.DataFrame({
        "touchpoint_id": ["t1", "t2", "t3", "t4"], "user_id": ["u1", "u1", "u2", "u3"],
        "occurred_at": [NOW - timedelta(days=d) for d in (400, 10, 5, 1)], "channel": ["search"] * 4,
    })
    conv = pd.DataFrame({"conversion_id": ["c1", "c2"], "user_id": ["u1", "u3"],
                         "occurred_at": [NOW - timedelta(days=d) for d in (9, 500)], "revenue": [10.0, 20.0]})
    journeys = pd.DataFrame({"journey_id": ["c-c1", "u-u2"], "user_id": ["u1", "u2"], "touch_index": [1, 1]})
    client.publish_tables({"touchpoints": touch, "conversions": conv}, schema="raw", stamp=False)
    client.publish_tables({"int_journeys": journeys, "touchpoint_credit": journeys.assign(credit=1.0),
                           "fct_channel_daily": pd.DataFrame({"channel": ["search"], "conversions": [2]})},
                          schema="analytics", stamp=False)


def test_purge_deletes_every_user_level_row_in_one_transaction_and_audits_counts_only(client):
    _seed(client)
    report = purge_users(client, ["u1", " u1 ", ""], actor="cli:dpo")
    assert report.ids == 1
    assert report.deleted == {"analytics.int_journeys": 1, "analytics.touchpoint_credit": 1,
                              "raw.conversions": 1, "raw.touchpoints": 2}
    for schema, table in (("raw", "touchpoints"), ("raw", "conversions"), ("analytics", "int_journeys"),
                          ("analytics", "touchpoint_credit")):
        assert "u1" not in set(client.read_table(schema, table)["user_id"]), (schema, table)
    assert len(client.read_table("raw", "touchpoints")) == 2  # the others' rows stay
    assert len(client.read_table("analytics", "fct_channel_daily")) == 1
    [row] = audit.entries(client, action="purge_user")
    assert row["actor"] == "cli:dpo"
    assert row["detail"] == {"persons_requested": 1, "rows_deleted": report.deleted}
    stored = client.read_sql("SELECT detail FROM ops.audit_log")["detail"].tolist()
    assert not any("u1" in text for text in stored)


def test_unknown_ids_delete_nothing_and_report_zeros(client):
    _seed(client)
    report = purge_users(client, ["nobody", "u1' OR '1'='1"], actor="cli:dpo")
    assert report.total == 0 and set(report.deleted.values()) == {0} and len(report.deleted) == 4
    assert len(client.read_table("raw", "touchpoints")) == 4


def test_a_failure_part_way_leaves_every_table_as_it_was(client, monkeypatch):
    _seed(client)

    def broken(*args, **kwargs):
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(audit, "record_in", broken)
    with pytest.raises(RuntimeError, match="audit write failed"):
        purge_users(client, ["u1"], actor="cli:dpo")
    assert len(client.read_table("raw", "touchpoints")) == 4
    assert len(client.read_table("analytics", "int_journeys")) == 2


def test_retention_deletes_old_raw_rows_only(client):
    _seed(client)
    report = enforce_retention(client, 30, actor="cli:ops", now=NOW)
    assert report.deleted == {"raw.conversions": 1, "raw.touchpoints": 1}
    assert client.read_table("raw", "touchpoints")["touchpoint_id"].tolist() == ["t2", "t3", "t4"]
    assert client.read_table("raw", "conversions")["conversion_id"].tolist() == ["c1"]
    [row] = audit.entries(client, action="raw_retention")
    assert row["detail"]["days"] == 30 and row["detail"]["rows_deleted"] == report.deleted
    with pytest.raises(ValueError, match="whole number of days above 0"):
        enforce_retention(client, 0, actor="cli:ops")


def test_id_files_skip_blanks_and_comments_and_bad_files_are_named(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure requests 2026-11\nu1\n\n  u2  \n", encoding="utf-8")
    assert read_ids(ids) == ["u1", "u2"]
    with pytest.raises(ValueError, match="cannot read the id file .*missing.txt"):
        read_ids(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00u1")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_ids(tmp_path / "bin.txt")
    with pytest.raises(ValueError, match="no user id given"):
        purge_users(WarehouseClient(f"duckdb:///{tmp_path / 'w.duckdb'}"), [" "], actor="cli:a")


# ----------------------------------------------------------------- the dbt models built after a purge

DBT = str(Path(sys.executable).with_name("dbt"))


def _dbt(url: str, tmp: Path, *args: str, retention: str | None = None) -> None:
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    env.pop("SPENDWISE_RAW_RETENTION_DAYS", None)
    if retention is not None:
        env["SPENDWISE_RAW_RETENTION_DAYS"] = retention
    result = subprocess.run(
        [DBT, *args, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"dbt failed:\n{result.stdout[-5000:]}\n{result.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_after_a_purge_and_with_retention_the_next_dbt_build_holds_neither(kind, request, tmp_path):
    from ml.synthetic import generate_demo_data

    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if kind == "duckdb" else request.getfixturevalue("pg_url")
    load_demo(url, generate_demo_data(scale=0.02, days=120, seed=5))
    client = WarehouseClient(url)
    select = ("run", "--select", "+touchpoint_credit", "+conversion_paths", "+fct_channel_daily")
    _dbt(url, tmp_path, *select)
    with client.connect() as con:
        found = {f"{s}.{t}" for s, t in user_level_relations(client, con)}
    assert {"raw.touchpoints", "raw.conversions", "analytics.int_journeys", "analytics.touchpoint_credit"} <= found
    assert not {n for n in found if n.startswith("analytics.") and "journeys" not in n and "credit" not in n}

    journeys = client.read_table("analytics", "int_journeys")
    person = str(journeys[journeys["conversion_id"].notna()]["user_id"].iloc[0])
    report = purge_users(client, [person], actor="cli:dpo")
    assert report.deleted["raw.touchpoints"] > 0 and report.deleted["analytics.int_journeys"] > 0
    assert report.deleted["analytics.touchpoint_credit"] > 0

    # The next build, with a 60-day retention: the person stays gone, and nothing older than the cutoff
    # is left in raw or in the journeys built from it.
    before = client.read_sql("SELECT min(occurred_at) AS t FROM raw.touchpoints")["t"].iloc[0]
    _dbt(url, tmp_path, *select, retention="60")
    cutoff = pd.Timestamp(datetime.utcnow() - timedelta(days=60, minutes=5))
    assert pd.Timestamp(before) < cutoff
    for schema, table in (("raw", "touchpoints"), ("raw", "conversions"), ("analytics", "int_journeys"),
                          ("analytics", "touchpoint_credit")):
        df = client.read_table(schema, table)
        assert person not in set(df["user_id"].astype(str)), (schema, table)
        assert len(df) > 0
    for schema, table, column in (("raw", "touchpoints", "occurred_at"), ("raw", "conversions", "occurred_at")):
        oldest = client.read_sql(f"SELECT min({column}) AS t FROM {schema}.{table}")["t"].iloc[0]
        assert pd.Timestamp(oldest) >= cutoff, (schema, table)
    [applied] = audit.entries(client, action="raw_retention")
    assert applied["actor"] == "pipeline:dbt" and applied["detail"]["days"] == 60
    assert applied["detail"]["rows_deleted"]["raw.touchpoints"] > 0
    assert set(applied["detail"]["rows_deleted"]) == {"raw.touchpoints", "raw.conversions"}
    # persist_docs wrote the models' descriptions as comments on this engine too.
    if kind == "postgres":
        comment = client.read_sql("SELECT obj_description('analytics.fct_channel_daily'::regclass) AS c")["c"].iloc[0]
    else:
        comment = client.read_sql("SELECT comment AS c FROM duckdb_tables() WHERE table_name = 'fct_channel_daily'")["c"]
        comment = comment.iloc[0] if len(comment) else None
    assert comment, "persist_docs wrote no table comment"
    assert json.dumps(report.deleted)  # counts only, serialisable for the audit row
