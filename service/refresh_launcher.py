"""Refresh launches for POST /refresh: `refresh_all` in a detached child process, under a run id chosen
here so the service can answer at once. No dagster import: the child records the run itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.settings import REPO_ROOT

HTTP_TRIGGER_TAG = ("spendwise/trigger", "http")

RefreshLauncher = Callable[[Any], str]
"""Starts a refresh run recorded in the given DagsterInstance and returns its run id without waiting."""


class SubprocessRefreshLauncher:
    """Runs `refresh_all` in a detached child process under a run id chosen here.

    The child (`python -m orchestration.cli refresh --run-id ID --trigger http`) executes the job in-process
    in the Dagster instance, as `spendwise refresh` does: it needs no daemon, survives a restart
    of the HTTP service, and the run shows up in the Dagster UI under the id returned at once.
    `command` replaces the child's argv (tests); `{run_id}` in it is substituted.
    """

    def __init__(
        self,
        dagster_home: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        log_dir: Path | None = None,
    ):
        self.dagster_home = Path(dagster_home)
        self.env = dict(env or {})
        self.command = command or [sys.executable, "-m", "orchestration.cli", "refresh", "--run-id", "{run_id}",
                                   "--trigger", HTTP_TRIGGER_TAG[1], "--log-level", "INFO"]
        self.log_dir = Path(log_dir) if log_dir else self.dagster_home / "spendwise_refresh_logs"
        self._children: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.launched_at: dict[str, datetime] = {}
        self.last_error: str | None = None

    def __call__(self, instance) -> str:
        run_id = str(uuid.uuid4())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"refresh-{run_id}.log"
        env = {**os.environ, **self.env, "DAGSTER_HOME": str(self.dagster_home)}
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                [part.replace("{run_id}", run_id) for part in self.command],
                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C on the server does not interrupt a refresh half-way.
                start_new_session=True,
            )
        self._children[run_id] = (child, log_path)
        threading.Thread(target=_end_group_after, args=(child.pid,), name=f"refresh-{run_id}-group",
                         daemon=True).start()
        self.launched_at[run_id] = datetime.now(timezone.utc)
        self.last_error = None
        return run_id

    def starting(self, instance) -> list[str]:
        """Run ids launched here whose child is alive but has not recorded the run yet.

        Loading the definitions takes a while, so the run appears in the instance some seconds
        after the launch; until then these ids count as in progress. Children that exited are
        reaped; one that exited without ever creating its run is reported in `last_error`.
        """
        waiting = []
        for run_id, (child, log_path) in list(self._children.items()):
            code = child.poll()  # before the lookup: an exited child's run record is final
            recorded = instance.get_run_by_id(run_id) is not None
            if code is None and not recorded:
                waiting.append(run_id)
            elif code is not None:
                self._children.pop(run_id, None)  # concurrent /status requests may both get here
                self.launched_at.pop(run_id, None)
                if not recorded:
                    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                    self.last_error = (
                        f"refresh process for run {run_id} exited with code {code} before starting the run; "
                        f"log {log_path}:\n{tail}"
                    )
        return waiting


def _end_group_after(pid: int) -> None:
    """Once the child `pid` has exited, however it ended, kill what is left of its process group (its session).

    A refresh killed at the wrong moment leaves processes its own cleanup never ran for: Dagster mirrors each
    step's output with `tail -F` watched by a script that kills it when the run process dies, and a kill -9
    between the two starts orphans the tail for good (seen in tests/orchestration/test_runs_and_locks.py).
    They all share the child's process group (start_new_session). Waits without reaping (WNOWAIT), so the
    exited child still holds its pid and the group id cannot pass to another process before the kill;
    Popen.poll in `starting` reaps it as before.
    """
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (AttributeError, OSError):  # reaped already by poll() (its pid may be reused: leave it), or no waitid
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # nothing left in the group
        pass
