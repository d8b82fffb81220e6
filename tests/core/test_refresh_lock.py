"""The refresh lock across real processes: DuckDB (flock beside the file) and PostgreSQL (advisory lock).

A holder is a separate Python process; killing it with SIGKILL must free the lock at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core.processes import ProcessIdentity, process_start_ticks
from core.refresh_lock import LOCK_SUFFIX, RefreshInProgress, RefreshLock, describe_holder
from core.settings import REPO_ROOT, WarehouseUrl

HOLDER = textwrap.dedent("""
    import sys, time
    from core.settings import WarehouseUrl
    from core.refresh_lock import RefreshLock
    lock = RefreshLock(WarehouseUrl.parse(sys.argv[1]))
    lock.acquire(sys.argv[2])
    print("held", flush=True)
    time.sleep(120)
""")


def start_holder(url: str, run_id: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, run_id], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'wh' / 'warehouse.duckdb'}"
    return request.getfixturevalue("pg_url")


def test_holder_is_none_and_creates_nothing_when_free(tmp_path):
    lock = RefreshLock(WarehouseUrl.parse(f"duckdb:///{tmp_path / 'missing' / 'w.duckdb'}"))
    assert lock.holder() is None
    assert not (tmp_path / "missing").exists()


def test_second_acquire_names_the_holder_and_a_killed_holder_frees_the_lock(url):
    lock = RefreshLock(WarehouseUrl.parse(url))
    holder = start_holder(url, "run-held-by-a-child")
    try:
        seen = lock.holder()
        assert seen is not None
        assert seen["run_id"] == "run-held-by-a-child" and seen["pid"] == holder.pid
        assert seen["host"] == ProcessIdentity.current().host and seen["since"].endswith("Z")
        started = time.monotonic()
        with pytest.raises(RefreshInProgress) as refused:
            lock.acquire("run-second")
        assert time.monotonic() - started < 5
        message = str(refused.value)
        assert message.startswith("already running: run run-held-by-a-child since ") and "\n" not in message
        assert f"pid {holder.pid}" in message and refused.value.holder == seen
        assert not lock.held
    finally:
        kill(holder)
    # The kernel (flock) or the server (the session ended) released it with the process.
    deadline = time.monotonic() + 10
    while lock.holder() is not None:
        assert time.monotonic() < deadline, "the lock of a killed holder was not released"
        time.sleep(0.1)
    info = lock.acquire("run-after-kill")
    try:
        assert lock.holder() == info  # the holder itself sees its own lock
        assert info["pid"] == os.getpid()
    finally:
        lock.release()
    assert lock.holder() is None


def test_probes_never_make_an_acquire_fail(url):
    """holder() is probed by readers all the time (the HTTP service); it must never refuse a refresh."""
    parsed = WarehouseUrl.parse(url)
    stop = threading.Event()
    probes = []

    def probe():
        prober = RefreshLock(parsed)
        while not stop.is_set():
            probes.append(prober.holder())

    threads = [threading.Thread(target=probe) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        lock = RefreshLock(parsed)
        deadline, i = time.monotonic() + 30, 0
        while i < 5 or (len(probes) < 20 and time.monotonic() < deadline):
            lock.acquire(f"run-{i}")  # would raise RefreshInProgress if a probe got in the way
            lock.release()
            i += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(probes) >= 20
    assert all(p is None or p["run_id"].startswith("run-") for p in probes)


def test_duckdb_lock_file_sits_beside_the_warehouse_and_holds_json(tmp_path):
    url = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    lock = RefreshLock(url)
    assert lock.path == tmp_path / f"warehouse.duckdb{LOCK_SUFFIX}"
    info = lock.acquire("run-json")
    try:
        assert json.loads(lock.path.read_text()) == info
        assert set(info) == {"run_id", "pid", "host", "since"}
    finally:
        lock.release()
    assert lock.path.read_text() == ""  # a released lock names nobody
    assert not (tmp_path / "warehouse.duckdb").exists()  # the warehouse itself is never created


def test_describe_holder_is_one_line():
    assert describe_holder({"run_id": "abc", "since": "2024-06-30T12:00:00Z", "pid": 7, "host": "h"}) == (
        "already running: run abc since 2024-06-30T12:00:00Z (pid 7 on h)"
    )
    assert describe_holder(None).startswith("already running")


def test_process_identity_tells_a_live_process_from_a_gone_or_reused_one():
    me = ProcessIdentity.current()
    assert me.gone_reason() is None and ProcessIdentity.from_tags(me.to_tags()) == me
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = ProcessIdentity(me.host, child.pid, process_start_ticks(child.pid), me.boot_id)
    assert identity.gone_reason() is None
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while identity.gone_reason() is None:  # a zombie (not yet waited for) already counts as gone
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.wait()
    assert "no longer exists" in identity.gone_reason()
    reused = ProcessIdentity(me.host, os.getpid(), "1", me.boot_id)  # same pid, another start time
    assert "another process" in reused.gone_reason()
    assert ProcessIdentity("another-host", 1, "1", "").gone_reason() is None  # cannot tell: never gone
    assert ProcessIdentity.from_tags({"spendwise/trigger": "ui"}) is None
