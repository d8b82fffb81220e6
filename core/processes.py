"""Which process is which: an identity that survives pid reuse, a liveness test, and children that die
with their parent. Linux (/proc, prctl); elsewhere liveness is unknown and children are not tied.

Stdlib only, so the dbt wrapper (orchestration/dbt_child.py) can use it under any Python.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

# Tags a refresh run carries so that any process on the same host can tell whether it still runs.
HOST_TAG = "spendwise/host"
PID_TAG = "spendwise/pid"
PID_START_TAG = "spendwise/pid_start"
BOOT_ID_TAG = "spendwise/boot_id"

_PR_SET_PDEATHSIG = 1


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_started_at(pid: int) -> datetime | None:
    """The wall-clock start of `pid` (UTC), from its start ticks and the boot time."""
    ticks = process_start_ticks(pid)
    if ticks is None:
        return None
    try:
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return datetime.fromtimestamp(boot, tz=timezone.utc) + timedelta(seconds=int(ticks) / os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class ProcessIdentity:
    """One process on one host during one boot: a reused pid has another start time."""

    host: str
    pid: int
    start_ticks: str
    boot_id: str

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start_ticks(pid) or "", _boot_id())

    def to_tags(self) -> dict[str, str]:
        return {HOST_TAG: self.host, PID_TAG: str(self.pid), PID_START_TAG: self.start_ticks,
                BOOT_ID_TAG: self.boot_id}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ProcessIdentity | None:
        """The identity recorded in a run's tags, or None when the run carries none (or a broken one)."""
        try:
            return cls(tags[HOST_TAG], int(tags[PID_TAG]), tags.get(PID_START_TAG, ""), tags.get(BOOT_ID_TAG, ""))
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def gone_reason(self) -> str | None:
        """Why this process is certainly gone, or None when it runs or cannot be checked from here.

        Only a process on this host can be checked; one on another host is never declared gone.
        A zombie (killed, not yet reaped by its parent) counts as gone.
        """
        if self.host != socket.gethostname() or not Path("/proc/self/stat").exists():
            return None
        current_boot = _boot_id()
        if self.boot_id and current_boot and self.boot_id != current_boot:
            return f"{self.describe()} belonged to an earlier boot of this host"
        fields = _stat_fields(self.pid)
        if fields is None:
            return f"{self.describe()} no longer exists"
        if self.start_ticks and len(fields) > 19 and fields[19] != self.start_ticks:
            return f"{self.describe()} no longer exists (the pid now belongs to another process)"
        if fields[0] in ("Z", "X"):
            return f"{self.describe()} has exited (killed or crashed)"
        return None


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent thread exits (Linux PR_SET_PDEATHSIG).

    The signal follows the *thread* that started this process, so start children from a thread that
    lives as long as they should (the main thread). When `expected_parent` is given and the parent
    is already another process (it died before this call), the signal is sent at once. Returns
    False where the platform has no prctl.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return True
