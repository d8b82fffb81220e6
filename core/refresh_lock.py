"""One refresh at a time per warehouse, whoever starts it (CLI, HTTP child, Dagster run worker).

The process that owns a refresh run holds the lock for the run's whole life; if it dies the kernel
(DuckDB: `flock` on `<warehouse>.duckdb.refresh.lock`) or the server (PostgreSQL: a session-level
advisory lock on a dedicated connection) releases it, so a killed refresh never blocks the next one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from core.processes import die_with_parent
from core.settings import WarehouseUrl
from core.warehouse import WarehouseUnavailable

LOCK_SUFFIX = ".refresh.lock"
# pg_try_advisory_lock(int4, int4): shows in pg_locks as classid=_PG_LOCK_CLASS, objid=_PG_LOCK_ID, objsubid=2.
_PG_LOCK_CLASS = 0x53505744  # "SPWD"
_PG_LOCK_ID = 1
_PG_APPLICATION_PREFIX = "spendwise refresh "
_PG_HOLDER_MARK = "spendwise-refresh-holder"
# A holder() probe takes a shared lock for microseconds; an acquire that meets one tries again.
_ACQUIRE_ATTEMPTS = 6
_ACQUIRE_PAUSE_S = 0.05


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _locked_by_another(fd: int) -> bool:
    """True when some other open file holds an exclusive flock on fd's file; never waits."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def describe_holder(holder: dict | None) -> str:
    """The one line a second refresh request answers with: `already running: run <id> since <time>`."""
    if not holder or not holder.get("run_id"):
        return "already running: another refresh holds the refresh lock"
    where = ""
    if holder.get("pid") or holder.get("host"):
        where = f" (pid {holder.get('pid') or '?'} on {holder.get('host') or '?'})"
    return f"already running: run {holder['run_id']} since {holder.get('since') or '?'}{where}"


# Warehouses locked by a flock on a file (a local file or folder); PostgreSQL takes an advisory lock.
_FILE_LOCKED = ("duckdb", "spark")


class RefreshInProgress(RuntimeError):
    """Another process holds the refresh lock of this warehouse; `holder` says who (or is None)."""

    def __init__(self, holder: dict | None):
        self.holder = holder
        super().__init__(describe_holder(holder))


class RefreshLock:
    """The refresh lock of one warehouse.

    acquire(run_id): take it for this process (raises RefreshInProgress naming the holder);
    release(): give it back (dying does the same); holder(): who holds it, without waiting or
    taking it, as {run_id, pid, host, since} or None.
    """

    def __init__(self, url: WarehouseUrl):
        self.url = url
        self._fd: int | None = None
        self._con = None
        self.info: dict | None = None

    @property
    def path(self) -> Path:
        """DuckDB: the lock file beside the warehouse file; Spark: in the warehouse folder."""
        if self.url.kind == "spark":
            return self.url.spark.root / f"warehouse{LOCK_SUFFIX}"
        if self.url.kind != "duckdb":
            raise AttributeError("a PostgreSQL warehouse has no lock file")
        return Path(str(self.url.duckdb_path) + LOCK_SUFFIX)

    @property
    def held(self) -> bool:
        return self._fd is not None or self._con is not None

    def acquire(self, run_id: str) -> dict:
        """Hold the lock for `run_id` until release() or this process ends; returns the holder info."""
        if self.held:
            raise RuntimeError(f"this RefreshLock is already held for run {self.info and self.info['run_id']}")
        info = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "since": _now_iso()}
        for _ in range(3):
            if self._try_acquire(info):
                self.info = info
                return info
            holder = self.holder()
            if holder is not None:
                raise RefreshInProgress(holder)
            # The holder let go between our attempt and the probe: try again.
        raise RefreshInProgress(self.holder())

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing the only descriptor drops the flock
        if self._con is not None:
            con, self._con = self._con, None
            try:
                with con.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", (_PG_LOCK_CLASS, _PG_LOCK_ID))
            except Exception:
                pass  # closing the session releases it anyway
            finally:
                con.close()
        self.info = None

    def holder(self) -> dict | None:
        """Who holds the lock now ({run_id, pid, host, since}), or None; never waits, never creates files."""
        return self._duckdb_holder() if self.url.kind in _FILE_LOCKED else self._postgres_holder()

    # ------------------------------------------------------------------ DuckDB: flock on a file

    def _try_acquire(self, info: dict) -> bool:
        return self._duckdb_try(info) if self.url.kind in _FILE_LOCKED else self._postgres_try(info)

    def _duckdb_try(self, info: dict) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for attempt in range(_ACQUIRE_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
                if attempt + 1 == _ACQUIRE_ATTEMPTS:
                    os.close(fd)
                    return False
                time.sleep(_ACQUIRE_PAUSE_S)
        payload = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def _duckdb_holder(self) -> dict | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            # The holder writes its JSON right after locking and empties the file before unlocking,
            # so a held lock with an empty file is looked at again.
            for _ in range(10):
                if not _locked_by_another(fd):
                    return None
                try:
                    data = json.loads(os.pread(fd, 4096, 0) or b"null")
                except ValueError:
                    data = None
                if isinstance(data, dict) and data.get("run_id"):
                    return {k: data.get(k) for k in ("run_id", "pid", "host", "since")}
                time.sleep(0.02)
            return {"run_id": None, "pid": None, "host": None, "since": None}
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ PostgreSQL: advisory lock

    def _pg_connect(self, application_name: str):
        import psycopg2

        try:
            con = psycopg2.connect(
                host=self.url.host, port=self.url.port, user=self.url.user, password=self.url.password,
                dbname=self.url.database, application_name=application_name[:63], connect_timeout=10,
                # A holder on a machine that vanishes (no FIN) is dropped after about a minute.
                keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
            )
        except psycopg2.Error as exc:
            raise WarehouseUnavailable(
                f"cannot connect to the PostgreSQL warehouse {self.url.redacted()}: {str(exc).strip()}"
            ) from exc
        con.autocommit = True  # a session lock, no transaction left open
        return con

    def _postgres_try(self, info: dict) -> bool:
        con = self._pg_connect(_PG_APPLICATION_PREFIX + info["run_id"])
        # The statement stays the session's `query` in pg_stat_activity while it idles holding the
        # lock: the comment is how holder() learns the run, pid, host and start of the holder.
        payload = json.dumps(info).replace("*/", "*\\/")
        try:
            with con.cursor() as cur:
                cur.execute(
                    f"SELECT pg_try_advisory_lock({_PG_LOCK_CLASS}, {_PG_LOCK_ID}) /* {_PG_HOLDER_MARK} {payload} */"
                )
                got = bool(cur.fetchone()[0])
        except Exception:
            con.close()
            raise
        if not got:
            con.close()
            return False
        self._con = con
        return True

    def _postgres_holder(self) -> dict | None:
        con = self._pg_connect("spendwise refresh-lock probe")
        try:
            with con.cursor() as cur:
                cur.execute(
                    "SELECT a.application_name, a.query, a.backend_start, host(a.client_addr) "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
                    "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    (_PG_LOCK_CLASS, _PG_LOCK_ID),
                )
                row = cur.fetchone()
        finally:
            con.close()
        if row is None:
            return None
        application, query, backend_start, client_addr = row
        match = re.search(re.escape(_PG_HOLDER_MARK) + r" (\{.*\}) \*/", query or "")
        if match:
            try:
                data = json.loads(match.group(1))
                return {k: data.get(k) for k in ("run_id", "pid", "host", "since")}
            except ValueError:
                pass
        run_id = application[len(_PG_APPLICATION_PREFIX):] if (application or "").startswith(_PG_APPLICATION_PREFIX) else None
        since = backend_start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if backend_start else None
        return {"run_id": run_id, "pid": None, "host": client_addr or "local socket", "since": since}


def tie_to_refresh_owner(url: WarehouseUrl, run_id: str) -> bool:
    """In a process started by the one that holds the refresh lock for `run_id` (a step subprocess of
    Dagster's multiprocess executor, started by the run worker), die when that process dies.

    Returns whether this process was tied; the run's own process (the holder itself) never is.
    """
    holder = RefreshLock(url).holder()
    if not holder or holder.get("run_id") != run_id or holder.get("pid") != os.getppid():
        return False
    return die_with_parent(holder["pid"])
