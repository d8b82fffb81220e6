"""The publish path on a real PostgreSQL with other sessions holding locks: readers never block it,
a lock held in an idle transaction stops it after the lock timeout with a message naming that
session, and the previous table is kept until the session ends."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pandas as pd
import psycopg2
import pytest

from core.warehouse import LOCK_TIMEOUT_ENV, WarehouseClient, WarehouseLockTimeout, lock_timeout_seconds

pytestmark = pytest.mark.postgres


def session(url: str, application_name: str):
    """Another client of the warehouse (a BI tool, an admin's psql), in a transaction until closed."""
    parsed = urlparse(url)
    return psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username or "postgres",
                            dbname=parsed.path.lstrip("/"), application_name=application_name)


def frame(n: int, version: int) -> pd.DataFrame:
    return pd.DataFrame({"channel": [f"c{i}" for i in range(n)], "spend": [float(version)] * n})


@pytest.fixture
def published(pg_url):
    client = WarehouseClient(pg_url, lock_timeout=1.5)
    client.publish(frame(4, 1), "lock_probe", run_id="run-1")
    return client


def test_an_idle_reader_does_not_block_an_in_place_publication(published, pg_url):
    reader = session(pg_url, "bi-dashboard")
    reader.set_session(isolation_level="REPEATABLE READ")
    try:
        with reader.cursor() as cur:  # BEGIN; SELECT ...; and then nothing: idle in transaction
            cur.execute("SELECT count(*) FROM predictions.lock_probe")
        started = time.monotonic()
        published.publish(frame(6, 2), "lock_probe", run_id="run-2")
        assert time.monotonic() - started < 1.5
        with reader.cursor() as cur:  # the reader's snapshot still sees the rows it started with
            cur.execute("SELECT count(*) FROM predictions.lock_probe")
            assert cur.fetchone()[0] == 4
    finally:
        reader.close()
    assert len(published.read_table("predictions", "lock_probe")) == 6


@pytest.mark.parametrize("shape_changes", [False, True], ids=["same_columns", "new_columns"])
def test_a_held_lock_stops_the_publication_after_the_timeout_naming_the_session(published, pg_url, shape_changes):
    blocker = session(pg_url, "bi-maintenance" if not shape_changes else "bi-dashboard")
    with blocker.cursor() as cur:
        if shape_changes:  # a plain reader: only a rebuild (new columns) needs more than it allows
            cur.execute("SELECT count(*) FROM predictions.lock_probe")
        else:  # an index built in a transaction left open holds a SHARE lock
            cur.execute("CREATE INDEX lock_probe_channel ON predictions.lock_probe (channel)")
        cur.execute("SELECT pg_backend_pid()")
        blocker_pid = cur.fetchone()[0]
    new = frame(5, 3).assign(extra=1) if shape_changes else frame(5, 3)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockTimeout) as raised:
            published.publish(new, "lock_probe", run_id="run-3")
        waited = time.monotonic() - started
        message = str(raised.value)
        assert 1.5 <= waited < 15, waited
        assert "predictions.lock_probe" in message
        assert f"pid {blocker_pid}" in message
        assert ("'bi-dashboard'" if shape_changes else "'bi-maintenance'") in message
        assert "idle in transaction" in message
        assert ("AccessShareLock" if shape_changes else "ShareLock") in message
        assert "pg_terminate_backend" in message and LOCK_TIMEOUT_ENV in message
        kept = published.read_table("predictions", "lock_probe")
        assert len(kept) == 4 and set(kept["run_id"]) == {"run-1"}
    finally:
        blocker.rollback()
        blocker.close()
    published.publish(new, "lock_probe", run_id="run-3")
    again = published.read_table("predictions", "lock_probe")
    assert len(again) == 5 and set(again["run_id"]) == {"run-3"}


def test_lock_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    assert lock_timeout_seconds() == 60
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout_seconds() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=LOCK_TIMEOUT_ENV):
            lock_timeout_seconds()
