"""Refreshes on DuckDB while dashboards keep reading: N real `spendwise refresh` runs, one after the
other, on a small demo, while a bounded client loop hits a live `spendwise serve` at a fixed rate.

Prints how many refreshes succeeded, the request rate reached (overall and while refreshes ran),
the status codes (503s by error code), latency percentiles, and every 200 answer that was not a
complete table: a page of `channel_attribution` must hold every row of the table and one run_id,
and the table's row count must be what that run published (`ml_roi_timeseries` is checked by count).

Run: .venv/bin/python benchmarks/bench_refresh_under_load.py [--refreshes 10] [--rate 60] [--scale 0.02]
     [--days 150] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import registry  # noqa: E402
from core.warehouse import WarehouseClient  # noqa: E402

SPENDWISE = str(Path(sys.executable).with_name("spendwise"))
FULL_TABLE = "channel_attribution"  # small: every answer holds the whole table
COUNTED_TABLE = "ml_roi_timeseries"  # larger: a page, and the table's count in the same snapshot
CHECKED = (FULL_TABLE, COUNTED_TABLE)
PATHS = (
    f"/data/{FULL_TABLE}?limit=10000",
    f"/data/{COUNTED_TABLE}?limit=200",
    "/data",
    f"/data/{FULL_TABLE}?limit=10000&format=csv",
    "/charts",
)
BASELINE_RUN = "baseline"
_ONE_VALUE = {"text": "x", "integer": 1, "number": 1.5, "boolean": False,
              "date": pd.Timestamp("2024-01-01"), "timestamp": pd.Timestamp("2024-01-01 00:00")}


# --------------------------------------------------------------------------------------------- setup


def prepare_warehouse(env: dict[str, str], scale: float, days: int) -> dict[str, dict[str, int]]:
    """Demo raw data (`spendwise demo`), and a baseline publication of the checked tables so readers
    get 200s before the first refresh. Returns {table: {run_id: rows}} for that baseline."""
    subprocess.run([SPENDWISE, "demo", "--scale", str(scale), "--days", str(days)], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    client = WarehouseClient(env["SPENDWISE_WAREHOUSE_URL"])
    published = {}
    for rows, table in enumerate(CHECKED, start=7):
        columns = registry.table(table).columns
        frame = pd.DataFrame({c.name: [_ONE_VALUE[c.type]] * rows for c in columns})
        client.publish(frame, table, run_id=BASELINE_RUN)
        published[table] = {BASELINE_RUN: rows}
    return published


def published_rows(url: str) -> dict[str, dict[str, int]]:
    """{table: {run_id: rows}} as the warehouse holds them now (call while no refresh runs)."""
    client = WarehouseClient(url)
    with client.connect(read_only=True) as con:  # read-only: the service's readers may stay
        return {
            table: {str(run): int(n) for run, n in client.fetch(
                con, f'SELECT run_id, count(*) FROM predictions."{table}" GROUP BY run_id')}
            for table in CHECKED
        }


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`spendwise serve` on a loopback port, in its own process, its log in `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([SPENDWISE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def __enter__(self) -> Service:
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"spendwise serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/charts", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"spendwise serve did not answer within 60 s; see {self.log.name}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# ------------------------------------------------------------------------------------ the client loop


@dataclass
class Answer:
    at: float
    path: str
    status: int
    seconds: float
    error: str | None = None  # the JSON error code of a 4xx/5xx (and the runs a 503 names)
    table: str | None = None  # for checked 200s: the table, its total rows, rows sent, run ids seen
    total: int | None = None
    rows: int | None = None
    run_ids: frozenset = frozenset()
    problem: str | None = None  # a 503 without Retry-After, a malformed body


@dataclass
class LoadLoop:
    """Requests at `rate` per second from `workers` threads, only to 127.0.0.1, until stop() or a bound:
    at most `max_seconds` and `max_requests`."""

    base_url: str
    rate: float
    max_seconds: float
    max_requests: int
    workers: int = 6
    answers: list[Answer] = field(default_factory=list)
    transport_errors: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the load loop only targets 127.0.0.1, not {self.base_url}")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._issued = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> LoadLoop:
        self.started = time.monotonic()
        self._deadline = self.started + self.max_seconds
        self._client = httpx.Client(base_url=self.base_url, timeout=30,
                                    limits=httpx.Limits(max_connections=self.workers))
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self.stopped = time.monotonic()
        self._client.close()

    def _next_slot(self) -> tuple[int, float] | None:
        with self._lock:
            if self._issued >= self.max_requests:
                return None
            index, self._issued = self._issued, self._issued + 1
        return index, self.started + index / self.rate

    def _work(self) -> None:
        while not self._stop.is_set():
            slot = self._next_slot()
            if slot is None or slot[1] > self._deadline:
                return
            index, at = slot
            wait = at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            path = PATHS[index % len(PATHS)]
            began = time.monotonic()
            try:
                response = self._client.get(path)
            except httpx.TransportError as exc:
                with self._lock:
                    self.transport_errors[type(exc).__name__] += 1
                continue
            answer = read_answer(path, response, began)
            with self._lock:
                self.answers.append(answer)


def read_answer(path: str, response: httpx.Response, began: float) -> Answer:
    answer = Answer(began, path, response.status_code, time.monotonic() - began)
    if response.status_code >= 400:
        try:
            body = response.json()
            answer.error, answer.run_ids = body.get("error"), frozenset(body.get("run_ids") or ())
        except ValueError:
            answer.problem = "error without a JSON body"
        if response.status_code == 503 and not response.headers.get("retry-after", "").isdigit():
            answer.problem = "503 without Retry-After"
        return answer
    table = next((t for t in CHECKED if path.startswith(f"/data/{t}?")), None)
    if response.status_code != 200 or table is None:
        return answer
    answer.table, answer.total = table, int(response.headers["x-total-count"])
    if "format=csv" in path:
        lines = response.text.splitlines()
        column = lines[0].split(",").index("run_id")
        answer.rows, answer.run_ids = len(lines) - 1, frozenset(line.split(",")[column] for line in lines[1:])
    else:
        rows = response.json()["rows"]
        answer.rows, answer.run_ids = len(rows), frozenset(r["run_id"] for r in rows)
    return answer


def incomplete(answers: list[Answer], published: dict[str, dict[str, int]]) -> list[str]:
    """Every checked 200 that is not a whole table as some run published it, described."""
    bad = []
    for a in answers:
        if a.table is None:
            continue
        sent = a.total if a.table == FULL_TABLE else min(200, a.total or 0)  # PATHS: the whole table, 200 rows
        run_id = next(iter(a.run_ids)) if len(a.run_ids) == 1 else None
        expected = published.get(a.table, {}).get(run_id)
        if run_id is None or expected is None or a.total != expected or a.rows != sent:
            bad.append(f"{a.path}: total {a.total}, rows {a.rows}, run ids {sorted(a.run_ids)}, "
                       f"published by that run: {expected}")
    return bad


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ----------------------------------------------------------------------------------------- the run


@dataclass
class Refresh:
    run: int
    exit_code: int
    seconds: float
    lock_errors: int
    started: float
    ended: float


def run_refreshes(env: dict[str, str], count: int, workdir: Path, published: dict[str, dict[str, int]],
                  tail_seconds: float = 5.0) -> list[Refresh]:
    """`count` refreshes one after the other; `published` gains each run's row counts. Waits
    `tail_seconds` after the last one, so readers also meet the last run's tables."""
    url, done = env["SPENDWISE_WAREHOUSE_URL"], []
    for run in range(1, count + 1):
        started = time.monotonic()
        log = workdir / f"refresh_{run}.log"
        with open(log, "w") as out:
            code = subprocess.run([SPENDWISE, "refresh"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=ROOT, timeout=3600).returncode
        ended = time.monotonic()
        text = log.read_text(errors="replace")
        done.append(Refresh(run, code, ended - started, text.count("Could not set lock"), started, ended))
        for table, runs in published_rows(url).items():
            published.setdefault(table, {}).update(runs)
        print(f"  refresh {run}/{count}: exit {code} in {ended - started:.0f} s"
              + (f", {done[-1].lock_errors} lock error line(s), log {log}" if code or done[-1].lock_errors else ""),
              flush=True)
    time.sleep(tail_seconds)
    return done


def environment(workdir: Path) -> dict[str, str]:
    """The environment of every process of the run: a DuckDB file, charts and Dagster home in `workdir`."""
    return {**os.environ, "SPENDWISE_WAREHOUSE_URL": f"duckdb:///{workdir / 'warehouse.duckdb'}",
            "SPENDWISE_CHARTS_DIR": str(workdir / "charts"), "DAGSTER_HOME": str(workdir / "dagster_home")}


def summarise(refreshes: list[Refresh], loop: LoadLoop, published: dict[str, dict[str, int]]) -> dict:
    answers = loop.answers
    first, last = refreshes[0].started, refreshes[-1].ended
    during = [a for a in answers if first <= a.at <= last]
    refresh_runs = {run for table in published.values() for run in table} - {BASELINE_RUN}
    return {
        "refreshes_ok": sum(r.exit_code == 0 for r in refreshes),
        "refreshes": len(refreshes),
        "lock_error_lines": sum(r.lock_errors for r in refreshes),
        "refresh_seconds": [round(r.seconds) for r in refreshes],
        "requests": len(answers),
        "rate": len(answers) / (loop.stopped - loop.started),
        "requests_during_refreshes": len(during),
        "rate_during_refreshes": len(during) / (last - first),
        "statuses": Counter(a.status if a.error is None else f"{a.status} {a.error}" for a in answers),
        "transport_errors": dict(loop.transport_errors),
        "problems": Counter(a.problem for a in answers if a.problem),
        "checked_200": sum(a.table is not None for a in answers),
        "checked_200_of_refreshes": sum(a.table is not None and bool(a.run_ids & refresh_runs) for a in answers),
        "runs_named_by_503": set().union(*(a.run_ids for a in answers if a.error == "refresh_running")),
        "refresh_runs": refresh_runs,
        "incomplete": incomplete(answers, published),
        "p50_ms": 1000 * percentile([a.seconds for a in answers], 0.5),
        "p95_ms": 1000 * percentile([a.seconds for a in answers], 0.95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refreshes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=60.0, help="requests per second to aim for")
    parser.add_argument("--scale", type=float, default=0.02, help="demo scale (1.0 = ~740k touchpoints)")
    parser.add_argument("--days", type=int, default=150, help="days of demo history (the media-mix model needs 60)")
    parser.add_argument("--max-minutes", type=float, default=120, help="the client loop stops after this, at most")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spendwise_refresh_load_"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment(workdir)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"workdir {workdir}, demo scale {args.scale}, {args.days} days, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    published = prepare_warehouse(env, args.scale, args.days)
    with Service(env, workdir / "serve.log") as service:
        loop = LoadLoop(service.url, args.rate, max_seconds=args.max_minutes * 60,
                        max_requests=int(args.rate * args.max_minutes * 60)).start()
        try:
            refreshes = run_refreshes(env, args.refreshes, workdir, published)
        finally:
            loop.stop()
    report = summarise(refreshes, loop, published)
    print(f"refreshes succeeded: {report['refreshes_ok']} of {report['refreshes']} "
          f"(durations {report['refresh_seconds']} s; 'Could not set lock' lines: {report['lock_error_lines']})")
    print(f"requests: {report['requests']} at {report['rate']:.1f}/s overall, "
          f"{report['rate_during_refreshes']:.1f}/s while refreshes ran; p50 {report['p50_ms']:.0f} ms, "
          f"p95 {report['p95_ms']:.0f} ms")
    print("status codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["statuses"].items(), key=str)))
    if report["transport_errors"] or report["problems"]:
        print(f"transport errors: {report['transport_errors']}, problems: {dict(report['problems'])}")
    print(f"checked 200 answers: {report['checked_200']} ({report['checked_200_of_refreshes']} with a refresh's "
          f"tables), incomplete tables: {len(report['incomplete'])}")
    for line in report["incomplete"][:10]:
        print(f"  {line}")
    ok = report["refreshes_ok"] == report["refreshes"] and not report["incomplete"] and not report["problems"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
