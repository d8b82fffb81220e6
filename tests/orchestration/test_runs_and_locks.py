"""Killed refreshes, the processes they leave, and one refresh at a time — with real processes.

`spendwise refresh` runs as a real subprocess on a small demo; it is killed with SIGKILL at a phase
read from its process tree (dbt running, Prophet workers running) or from the lock and the run record
(run started). Then the schedule's own evaluation, `spendwise status` and a real POST /refresh on a
live server must see the run as failed with the reason and start a new one, and nothing the killed
process started may still run. Figures are printed (`pytest -s`) as `KILL ...` / `CONCURRENT ...` lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, build_schedule_context

from core.refresh_lock import RefreshLock
from core.settings import REPO_ROOT, WarehouseUrl
from orchestration.dbt import DBT_WRAPPER, dbt_executable, prune_dbt_artifacts
from service.dagster_bridge import REAPED_TAG, refresh_in_progress
from tests.conftest import LIGHT_RUN_CONFIG_FILE, load_demo

PYTHON = sys.executable
LOCAL_YAML = REPO_ROOT / "deploy" / "dagster.local.yaml"


# --------------------------------------------------------------------------------------------
# Processes, read from /proc


def _proc_table() -> dict[int, tuple[int, str, str, str]]:
    """pid -> (parent pid, state, start ticks, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[0], fields[19], cmdline)
    return table


def descendants(root: int) -> dict[int, tuple[str, str]]:
    """Live (not zombie) descendants of `root`: pid -> (start ticks, command line)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = {}, [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            _, state, ticks, cmdline = table[pid]
            if state not in ("Z", "X"):
                found[pid] = (ticks, cmdline)
            stack.append(pid)
    return found


def still_running(processes: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of `processes` that still run (same pid and start time, not a zombie)."""
    table = _proc_table()
    return {pid: cmd for pid, (ticks, cmd) in processes.items()
            if pid in table and table[pid][2] == ticks and table[pid][1] not in ("Z", "X")}


def is_dbt(cmdline: str) -> bool:
    return "dbt" in cmdline and (" build " in cmdline or " parse " in cmdline)


def is_pool_worker(cmdline: str) -> bool:
    return "spawn_main" in cmdline


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"process {proc.pid} exited with {proc.returncode} while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def kill_and_check(pid: int, phase: str, wait=None, leftovers_timeout: float = 30) -> dict:
    """SIGKILL `pid` and wait (bounded) until every process it had started is gone; report and assert."""
    before = descendants(pid)
    os.kill(pid, signal.SIGKILL)
    if wait is not None:
        wait()
    deadline = time.monotonic() + leftovers_timeout
    left = still_running(before)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = still_running(before)
    figures = {
        "phase": phase, "children": len(before), "dbt": sum(is_dbt(c) for _, c in before.values()),
        "spawned": sum(is_pool_worker(c) for _, c in before.values()), "left_behind": len(left),
    }
    print("KILL", figures)
    assert not left, f"processes outlived the killed refresh ({phase}): {left}"
    return figures


# --------------------------------------------------------------------------------------------
# A refresh as a real `spendwise refresh` subprocess


def refresh_env(root: Path, url: str, home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(root), "DAGSTER_HOME": str(home),
        "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(root / "charts"),
        "SPENDWISE_RUN_CONFIG": str(LIGHT_RUN_CONFIG_FILE),
    }


def start_refresh(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([PYTHON, "-m", "orchestration.cli", "refresh"], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def held_by(url: str, pid: int):
    holder = RefreshLock(WarehouseUrl.parse(url)).holder()
    return holder if holder and holder.get("pid") == pid else None


def run_started(home: Path, run_id: str):
    instance = DagsterInstance.from_config(str(home))
    try:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.status == DagsterRunStatus.STARTED and "spendwise/pid" in run.tags else None
    finally:
        instance.dispose()


def second_refresh_is_refused(env: dict[str, str], first_run_id: str, label: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", "orchestration.cli", "refresh"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    print("CONCURRENT", {"warehouse": label, "exit": proc.returncode, "seconds": round(seconds, 1),
                         "stderr": proc.stderr.strip()})
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spendwise refresh: already running: run {first_run_id} since ")
    assert proc.stdout == ""
    assert seconds < 30
    return seconds


@pytest.fixture(scope="module")
def small_demo():
    from ml.synthetic import generate_demo_data

    return generate_demo_data(scale=0.05, seed=11, days=200)


def new_home(root: Path) -> Path:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(LOCAL_YAML.read_text())
    return home


def schedule_tick(url: str, instance):
    from orchestration.definitions import build_definitions

    schedule = build_definitions(url).resolve_schedule_def("refresh_every_30_minutes")
    return schedule.evaluate_tick(build_schedule_context(instance=instance))


# --------------------------------------------------------------------------------------------
# Kill -9, then the schedule, status and POST /refresh


@pytest.mark.slow
def test_killed_refreshes_are_reaped_and_the_schedule_and_post_refresh_start_new_ones(
    tmp_path, dbt_manifest, small_demo
):
    from core.settings import Settings
    from service.app import create_app
    from tests.service.test_server import LiveServer

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, small_demo)
    home = new_home(tmp_path)
    env = refresh_env(tmp_path, url, home)

    # 1. A CLI refresh, killed while dbt builds; a second CLI refresh meanwhile is refused at once.
    log = tmp_path / "first.log"
    first = start_refresh(env, log)
    try:
        holder = wait_for(lambda: held_by(url, first.pid), 120, "the first refresh to take the lock", first, log)
        run_id = holder["run_id"]
        second_refresh_is_refused(env, run_id, "duckdb")
        wait_for(lambda: any(is_dbt(c) for _, c in descendants(first.pid).values()), 300, "dbt to start", first, log)
        time.sleep(3)  # dbt is writing
        assert run_started(home, run_id)
        kill_and_check(first.pid, "CLI refresh, during dbt", wait=first.wait)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    assert RefreshLock(WarehouseUrl.parse(url)).holder() is None
    instance = DagsterInstance.from_config(str(home))
    try:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED  # nobody noticed yet
        tick = schedule_tick(url, instance)
        assert tick.run_requests, tick.skip_message  # the next tick starts a new run
        dead = instance.get_run_by_id(run_id)
        assert dead.status == DagsterRunStatus.FAILURE
        assert f"pid {first.pid}" in dead.tags[REAPED_TAG] and "the refresh schedule" in dead.tags[REAPED_TAG]
    finally:
        instance.dispose()

    status = subprocess.run([PYTHON, "-m", "orchestration.cli", "status"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert f"Last refresh: run {run_id} FAILURE (trigger cli)" in status.stdout
    assert "reason: The process running this refresh is gone" in status.stdout
    assert "Refresh lock: free" in status.stdout

    # 2. POST /refresh on a live server starts a real child; kill it once its run has started.
    settings = Settings(warehouse=WarehouseUrl.parse(url), charts_dir=tmp_path / "charts", dagster_home=home)
    app = create_app(settings)
    children = []
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            child_runs = []
            for attempt in range(2):
                response = client.post("/refresh")
                assert response.status_code == 202, response.text
                child_run = response.json()["run_id"]
                child_runs.append(child_run)
                child_log = home / "spendwise_refresh_logs" / f"refresh-{child_run}.log"
                run = wait_for(lambda: run_started(home, child_run), 180, "the HTTP child's run to start",
                               log=child_log)
                child_pid = int(run.tags["spendwise/pid"])
                children.append(child_pid)
                busy = client.post("/refresh")
                assert busy.status_code == 409
                assert busy.json()["detail"].startswith(f"already running: run {child_run} since ")
                if attempt == 0:
                    kill_and_check(child_pid, "HTTP refresh child, right after its run started")
                    # The next POST finds the dead run, marks it failed and launches a new child.
            reaped = DagsterInstance.from_config(str(home))
            try:
                first_child = reaped.get_run_by_id(child_runs[0])
                assert first_child.status == DagsterRunStatus.FAILURE
                assert "POST /refresh" in first_child.tags[REAPED_TAG]
            finally:
                reaped.dispose()
            kill_and_check(children[-1], "HTTP refresh child, right after its run started")
            status_body = client.get("/status").json()
            assert status_body["refresh_running"] is False
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_kill_during_the_prophet_forecasts_leaves_no_worker(tmp_path, dbt_manifest, small_demo):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, small_demo)
    home = new_home(tmp_path)
    log = tmp_path / "refresh.log"
    proc = start_refresh(refresh_env(tmp_path, url, home), log)
    try:
        holder = wait_for(lambda: held_by(url, proc.pid), 120, "the refresh to take the lock", proc, log)
        wait_for(lambda: sum(is_pool_worker(c) for _, c in descendants(proc.pid).values()) >= 2, 600,
                 "the Prophet pool workers", proc, log)
        time.sleep(1)
        figures = kill_and_check(proc.pid, "CLI refresh, during the Prophet forecasts", wait=proc.wait)
        assert figures["spawned"] >= 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    instance = DagsterInstance.from_config(str(home))
    try:
        assert refresh_in_progress(instance, checked_by="the test") == []
        run = instance.get_run_by_id(holder["run_id"])
        assert run.status == DagsterRunStatus.FAILURE and "the test" in run.tags[REAPED_TAG]
        # The forecasts had started: dbt and the checks before them had finished in the same run.
        done = {e.step_key for e in instance.all_logs(holder["run_id"], of_type=DagsterEventType.STEP_SUCCESS)}
        assert "spendwise_dbt_models" in done and "channel_forecasts" not in done
    finally:
        instance.dispose()


@pytest.mark.slow
def test_postgres_second_refresh_is_refused_and_a_killed_one_frees_the_warehouse(
    tmp_path, dbt_manifest, small_demo, pg_url
):
    load_demo(pg_url, small_demo)
    home = new_home(tmp_path)
    env = refresh_env(tmp_path, pg_url, home)
    log = tmp_path / "first.log"
    first = start_refresh(env, log)
    try:
        holder = wait_for(lambda: held_by(pg_url, first.pid), 120, "the first refresh to take the lock", first, log)
        second_refresh_is_refused(env, holder["run_id"], "postgres")
        wait_for(lambda: any(is_dbt(c) for _, c in descendants(first.pid).values()), 300, "dbt to start", first, log)
        time.sleep(3)
        kill_and_check(first.pid, "CLI refresh on PostgreSQL, during dbt", wait=first.wait)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The server ends the killed session and its advisory lock with it.
    wait_for(lambda: RefreshLock(WarehouseUrl.parse(pg_url)).holder() is None, 30, "PostgreSQL to free the lock")
    instance = DagsterInstance.from_config(str(home))
    try:
        tick = schedule_tick(pg_url, instance)
        assert tick.run_requests, tick.skip_message
        assert instance.get_run_by_id(holder["run_id"]).status == DagsterRunStatus.FAILURE
    finally:
        instance.dispose()


# --------------------------------------------------------------------------------------------
# Runs launched by the Dagster daemon: the executor holds the lock in the run worker

LOCKED_JOB = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import dagster as dg
    from dagster import DagsterInstance, execute_job, reconstructable
    from core.settings import WarehouseUrl
    from orchestration.runs import RunBoundWarehouse, refresh_locked

    def build_job():
        url = WarehouseUrl.parse(os.environ["LOCKED_JOB_URL"])
        inner = dg.in_process_executor if url.kind == "duckdb" else dg.multiprocess_executor

        @dg.op(required_resource_keys={"warehouse"})
        def work(context):
            Path(os.environ["LOCKED_JOB_MARK"]).write_text(str(os.getpid()))
            time.sleep(float(os.environ["LOCKED_JOB_SLEEP"]))

        @dg.job(name="refresh_all", executor_def=refresh_locked(inner, url),
                resource_defs={"warehouse": RunBoundWarehouse(url=url.url)})
        def refresh_all():
            work()

        return refresh_all

    if __name__ == "__main__":
        with DagsterInstance.get() as instance:
            result = execute_job(reconstructable(build_job), instance=instance, raise_on_error=False)
            print("RUN", result.run_id, result.success, flush=True)
""")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request, tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'w.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_run_worker_holds_the_lock_is_refused_while_held_and_is_reaped_when_killed(tmp_path, warehouse_url):
    script = tmp_path / "locked_job.py"
    script.write_text(LOCKED_JOB)
    home = new_home(tmp_path)
    mark = tmp_path / "op_pid"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DAGSTER_HOME": str(home), "LOCKED_JOB_URL": warehouse_url,
           "LOCKED_JOB_MARK": str(mark), "LOCKED_JOB_SLEEP": "120"}
    lock = RefreshLock(WarehouseUrl.parse(warehouse_url))

    # While another process holds the lock, the run fails at once with the holder's line.
    lock.acquire("run-held-elsewhere")
    try:
        refused = subprocess.run([PYTHON, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=300)
    finally:
        lock.release()
    assert "RUN" in refused.stdout and refused.stdout.strip().endswith("False"), refused.stderr[-3000:]
    assert not mark.exists()  # no step ran
    refused_run_id = refused.stdout.split()[1]

    worker = subprocess.Popen([PYTHON, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    instance = DagsterInstance.from_config(str(home))
    try:
        wait_for(mark.exists, 180, "the op to run", worker)
        holder = lock.holder()
        run = instance.get_run_by_id(holder["run_id"])
        assert holder["pid"] == worker.pid and int(run.tags["spendwise/pid"]) == worker.pid
        # On PostgreSQL the op runs in a step subprocess; the lock stays with the run worker.
        assert (int(mark.read_text()) == worker.pid) == (WarehouseUrl.parse(warehouse_url).kind == "duckdb")
        assert refresh_in_progress(instance, checked_by="the test") == [run.run_id]
        kill_and_check(worker.pid, f"run worker ({WarehouseUrl.parse(warehouse_url).kind} executor)",
                       wait=worker.wait)
        wait_for(lambda: lock.holder() is None, 30, "the lock to be released")
        assert refresh_in_progress(instance, checked_by="the test") == []
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        failure = instance.get_run_by_id(refused_run_id)
        assert failure.status == DagsterRunStatus.FAILURE
        messages = " ".join(str(e.dagster_event.event_specific_data) for e in instance.all_logs(refused_run_id)
                            if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE")
        assert "already running: run run-held-elsewhere since" in messages
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        instance.dispose()


# --------------------------------------------------------------------------------------------
# Children tied to their parent: the dbt wrapper and the Prophet pool initializer

PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen(sys.argv[1:])
    print(child.pid, flush=True)
    time.sleep(120)
""")


def test_dbt_wrapper_execs_dbt_and_dies_with_its_parent(tmp_path):
    from core.settings import get_settings
    from orchestration.dbt import dbt_environment

    env = {**os.environ, **dbt_environment(get_settings().warehouse)}
    version = subprocess.run([str(DBT_WRAPPER), "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and "Core" in version.stdout, version.stdout + version.stderr

    # A parent that is killed: the wrapped program (sleep standing in for dbt) goes with it.
    env = {**os.environ, "SPENDWISE_DBT_EXECUTABLE": "/bin/sleep"}
    parent = subprocess.Popen([PYTHON, "-c", PARENT, str(DBT_WRAPPER), "60"], env=env, stdout=subprocess.PIPE,
                              text=True)
    child_pid = int(parent.stdout.readline())
    wait_for(lambda: "sleep" in (Path(f"/proc/{child_pid}/cmdline").read_bytes().decode(errors="replace")
                                 if Path(f"/proc/{child_pid}").exists() else ""), 30, "the exec of the real program")
    figures = kill_and_check(parent.pid, "parent of the dbt wrapper", wait=parent.wait, leftovers_timeout=10)
    assert figures["children"] == 1

    # A parent that is already gone when the wrapper starts: it does not run the program at all.
    late = subprocess.run([str(DBT_WRAPPER), "60"], env={**env, "SPENDWISE_DBT_PARENT_PID": "1"}, timeout=30)
    assert late.returncode == -signal.SIGKILL


POOL = textwrap.dedent("""
    import multiprocessing, os, time
    from concurrent.futures import ProcessPoolExecutor
    from ml.forecasting import _start_worker
    if __name__ == "__main__":
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                   initargs=(os.getpid(),))
        list(pool.map(abs, [1, 2]))  # both workers have run the initializer
        print("ready", flush=True)
        pool.submit(time.sleep, 120)
        pool.submit(time.sleep, 120)
        time.sleep(120)
""")


def test_prophet_pool_workers_die_with_the_process_that_started_them(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    parent = subprocess.Popen([PYTHON, str(script)], cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "ready"
    wait_for(lambda: sum(is_pool_worker(c) for _, c in descendants(parent.pid).values()) == 2, 60, "two workers")
    figures = kill_and_check(parent.pid, "parent of a Prophet pool", wait=parent.wait, leftovers_timeout=10)
    assert figures["spawned"] == 2


# --------------------------------------------------------------------------------------------
# Missing or unreachable warehouses, and dbt artifacts


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "orchestration.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**env, "PYTHONPATH": str(REPO_ROOT)})


@pytest.mark.parametrize("command", ["status", "refresh"])
def test_missing_or_unreachable_warehouse_is_one_line_and_exit_4_and_creates_nothing(tmp_path, command):
    home = tmp_path / "home"
    # A relative-looking URL names a file at the root: it must not be created there.
    relative = Path("/spendwise-test-" + tmp_path.name + ".duckdb")
    cases = {
        f"duckdb://{relative.name}": f"no warehouse at {relative}: run `spendwise demo` or `spendwise load DIR`",
        f"duckdb:///{tmp_path / 'sub' / 'w.duckdb'}":
            f"no warehouse at {tmp_path / 'sub' / 'w.duckdb'}: run `spendwise demo` or `spendwise load DIR`",
        "postgresql://postgres@127.0.0.1:1/spendwise": "cannot reach PostgreSQL at 127.0.0.1:1: ",
    }
    for url, message in cases.items():
        proc = run_cli([command], {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
                                   "SPENDWISE_WAREHOUSE_URL": url}, tmp_path)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert proc.stderr.startswith(f"spendwise {command}: {message}") and proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr
    assert not relative.exists() and not (tmp_path / "sub").exists() and not home.exists()


def test_refresh_help_documents_the_exit_codes():
    proc = run_cli(["refresh", "--help"], dict(os.environ), REPO_ROOT)
    assert proc.returncode == 0
    assert "3  a refresh of this warehouse is already running" in proc.stdout
    assert "already running: run <id> since <time>" in proc.stdout
    # every code the command can return is documented, each on its own line with what it means
    for code, meaning in ((0, "everything was published"), (1, "a step failed"),
                          (2, "the settings are incomplete or invalid"), (4, "no warehouse yet")):
        assert re.search(rf"^  {code}  {meaning}", proc.stdout, flags=re.M), (code, proc.stdout)
    assert "spark:// warehouse without SPENDWISE_SERVING_URL" in proc.stdout


def test_dbt_artifacts_are_pruned_to_the_newest_few(tmp_path, monkeypatch):
    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    (target / "compiled").mkdir()
    folders = []
    for i in range(9):
        folder = target / f"spendwise_dbt_models-{i:07x}-abcdef{i}"
        folder.mkdir()
        (folder / "run_results.json").write_text("{}")
        os.utime(folder, (1_700_000_000 + i, 1_700_000_000 + i))
        folders.append(folder)
    current = folders[0]  # the oldest mtime, but the invocation that just ran: always kept
    removed = prune_dbt_artifacts(target, keep=5, current=current)
    assert sorted(removed) == sorted(folders[1:4])
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["manifest.json", "compiled", current.name, *(f.name for f in folders[4:])]
    )
    from orchestration.dbt import dbt_resource

    monkeypatch.setenv("SPENDWISE_DBT_ARTIFACTS_KEPT", "2")
    assert dbt_resource().artifacts_kept == 2
    monkeypatch.delenv("SPENDWISE_DBT_ARTIFACTS_KEPT")
    assert dbt_resource().artifacts_kept == 5
    assert Path(dbt_resource().dbt_executable) == DBT_WRAPPER and Path(dbt_executable()).name == "dbt"


def test_local_and_production_instances_monitor_runs(tmp_path):
    for yaml_file in ("dagster.local.yaml", "dagster.yaml"):
        text = (REPO_ROOT / "deploy" / yaml_file).read_text()
        assert "run_monitoring:\n" in text and "  enabled: true" in text
    home = new_home(tmp_path)
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 300
        # Why the liveness rule exists: this launcher cannot tell Dagster that a worker died.
        assert not instance.run_launcher.supports_check_run_worker_health


# --------------------------------------------------------------------------------------------
# A refresh outside this Dagster instance: the lock alone refuses POST /refresh and skips the tick

HOLDER = textwrap.dedent("""
    import sys, time
    from core.settings import WarehouseUrl
    from core.refresh_lock import RefreshLock
    RefreshLock(WarehouseUrl.parse(sys.argv[1])).acquire(sys.argv[2])
    print("held", flush=True)
    time.sleep(120)
""")


def test_a_lock_held_elsewhere_answers_409_and_skips_the_schedule_tick(tmp_path, dbt_manifest):
    from dagster import instance_for_test

    from core.settings import Settings
    from service.app import create_app
    from tests.service.test_server import LiveServer, refusing_launcher

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    holder = subprocess.Popen([PYTHON, "-c", HOLDER, url, "run-of-another-instance"], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        expected = "already running: run run-of-another-instance since "
        settings = Settings(warehouse=WarehouseUrl.parse(url), charts_dir=tmp_path / "charts",
                            dagster_home=tmp_path / "home")
        with instance_for_test() as instance:
            with LiveServer(create_app(settings, dagster_instance=instance, refresh_launcher=refusing_launcher)) as server:
                response = httpx.post(f"{server.url}/refresh", timeout=60)
            assert response.status_code == 409
            body = response.json()
            assert body["detail"].startswith(expected) and f"(pid {holder.pid} on " in body["detail"]
            assert body["run_ids"] == ["run-of-another-instance"] and "\n" not in body["detail"]
            tick = schedule_tick(url, instance)
            assert not tick.run_requests and tick.skip_message.startswith(expected)
    finally:
        holder.kill()
        holder.wait()
