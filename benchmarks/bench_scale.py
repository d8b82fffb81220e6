"""Time and memory of `spendwise demo` + `spendwise refresh` at a given scale, per step.

Runs both commands as subprocesses on a fresh DuckDB file (or the PostgreSQL URL given) and samples
the memory of the whole process tree (the command and every process it starts: dbt, pool workers)
every 0.25 s. Memory is the sum of the processes' proportional set size (PSS, from
/proc/PID/smaps_rollup), so pages shared between processes are not counted twice; RSS of the tree is
reported beside it. Per step of the refresh (from the Dagster run's step statistics): wall time and
the peak tree memory while that step ran.

Run: .venv/bin/python benchmarks/bench_scale.py --scale 13.5 [--days 730] [--workdir DIR]
     [--duckdb-params 'memory_limit=1GB&threads=2'] [--skip-demo] [--docs]
     (the demo's scale 1 is ~740k touchpoints: 1.35 = ~1M, 13.5 = ~10M, 135 = ~100M)
`--docs` writes the figures into docs/scale_benchmarks.md (its own section, replaced on the next run
of the same scale and parameters) with the command, date, revision and load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# `python -m` from the checkout (cwd=ROOT): this checkout's code, whatever the editable install points at
SPENDWISE = [sys.executable, "-m", "orchestration.cli"]
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in KiB; (0, 0) when it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        return 0, 0
    return pss, rss


@dataclass
class Sampler:
    """Samples the tree memory of `pid` until stopped: [(monotonic, wall, pss_kb, rss_kb, processes)]."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, float, int, int, int]] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            pids = tree_pids(self.pid)
            pss = rss = 0
            for p in pids:
                a, b = memory_kb(p)
                pss, rss = pss + a, rss + b
            self.samples.append((time.monotonic(), time.time(), pss, rss, len(pids)))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float | None = None, end: float | None = None) -> tuple[int, int]:
        inside = [s for s in self.samples if (start is None or s[1] >= start) and (end is None or s[1] <= end)]
        if not inside:
            return 0, 0
        return max(s[2] for s in inside), max(s[3] for s in inside)


def measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, Sampler]:
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid)
        code = proc.wait()
    sampler.stop()
    return code, time.monotonic() - started, sampler


def step_stats(dagster_home: Path) -> list[tuple[str, float, float]]:
    """(step, start, end) wall-clock seconds of the last run in `dagster_home`."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        runs = instance.get_runs(limit=1)
        if not runs:
            return []
        stats = instance.get_run_step_stats(runs[0].run_id)
        return sorted(((s.step_key, s.start_time, s.end_time) for s in stats if s.start_time and s.end_time),
                      key=lambda s: s[1])
    finally:
        instance.dispose()


def gib(kb: int) -> str:
    return f"{kb / 1024 / 1024:.2f}"


DOCS = ROOT / "docs" / "scale_benchmarks.md"
DOCS_HEADER = """# Scale benchmarks: what a refresh costs as data grows

Every section below is written by the benchmark named in it (`--docs`), with the command that produced it,
the date, the revision and the load average of the machine (2 cores shared with other work: times are
noisy; the load says how busy it was). A new run of the same benchmark and parameters replaces its
section. Memory is the peak proportional set size (PSS) of the whole process tree (the command, dbt,
pool workers), sampled every 0.25 s; RSS of the tree beside it counts shared pages twice.
See docs/ARCHITECTURE.md "What a refresh costs as data grows" for the summary.
"""


def machine_line() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores, {ram:.0f} GiB RAM"


def revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "ml", "core", "orchestration", "assets",
                            "dbt_project", "benchmarks"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def write_docs_section(key: str, body: str) -> None:
    """Put `body` into docs/scale_benchmarks.md as the section `key`, replacing the earlier one."""
    text = DOCS.read_text() if DOCS.exists() else DOCS_HEADER
    begin, end = f"<!-- {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    DOCS.write_text(text)
    print(f"figures written to {DOCS.relative_to(ROOT)} ({key})")


def touchpoints_label(scale: float) -> str:
    approx = scale * 740_000
    return f"~{approx / 1e6:.0f}M" if approx >= 1e6 else f"~{approx / 1e3:.0f}k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=13.5, help="demo scale (1 = ~740k touchpoints)")
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--warehouse-url", default=None, help="default: a DuckDB file in the workdir")
    parser.add_argument("--duckdb-params", default="",
                        help="query parameters of the DuckDB URL, e.g. 'memory_limit=1GB&threads=2'")
    parser.add_argument("--skip-demo", action="store_true", help="reuse the raw data already in the warehouse")
    parser.add_argument("--docs", action="store_true", help="write the figures into docs/scale_benchmarks.md")
    args = parser.parse_args()
    started_at = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()
    code_revision = revision()  # the code measured, not the one when the figures are written
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spendwise_scale_"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = args.warehouse_url or f"duckdb:///{workdir / 'warehouse.duckdb'}" + (f"?{args.duckdb_params}" if args.duckdb_params else "")
    env = {**os.environ, "SPENDWISE_WAREHOUSE_URL": url,
           "SPENDWISE_CHARTS_DIR": str(workdir / "charts"), "DAGSTER_HOME": str(workdir / "dagster_home")}
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"workdir {workdir}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"DuckDB parameters: {args.duckdb_params or '(defaults)'}")
    rows = []
    if not args.skip_demo:
        code, seconds, sampler = measured(
            [*SPENDWISE, "demo", "--scale", str(args.scale), "--days", str(args.days), "--seed", str(args.seed)],
            env, workdir / "demo.log")
        pss, rss = sampler.peak()
        rows.append(("spendwise demo", seconds, pss, rss))
        print(f"spendwise demo: {seconds:.1f} s, peak PSS {gib(pss)} GiB, peak RSS {gib(rss)} GiB "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        if code:
            print((workdir / "demo.log").read_text()[-3000:])
            return code
    code, seconds, sampler = measured([*SPENDWISE, "refresh"], env, workdir / "refresh.log")
    pss, rss = sampler.peak()
    rows.append(("spendwise refresh", seconds, pss, rss))
    steps = step_stats(workdir / "dagster_home")
    table = [("step", "seconds", "peak PSS GiB", "peak RSS GiB")]
    table += [(name, f"{secs:.1f}", gib(p), gib(r)) for name, secs, p, r in rows]
    for key, start, end in steps:
        p, r = sampler.peak(start, end)
        table.append((f"  {key}", f"{end - start:.1f}", gib(p), gib(r)))
    print()
    for name, secs, p, r in table:
        print(f"{name:44s} {secs:>8s} {p:>13s} {r:>13s}")
    if code:
        print((workdir / "refresh.log").read_text()[-3000:])
    if args.docs:
        load_after = os.getloadavg()
        params = args.duckdb_params or "defaults"
        engine = "PostgreSQL" if args.warehouse_url and not args.warehouse_url.startswith("duckdb") else "DuckDB"
        lines = [
            f"### Full refresh, {touchpoints_label(args.scale)} touchpoints (scale {args.scale:g}), {engine}, "
            f"parameters: {params}",
            "",
            f"`{shlex.join(['.venv/bin/python', 'benchmarks/bench_scale.py', *sys.argv[1:]])}`  ",
            f"{started_at:%Y-%m-%d %H:%M} UTC, revision {code_revision}, {machine_line()}, load average "
            f"{load_before[0]:.1f} before / {load_after[0]:.1f} after (1 min){'' if not code else f', FAILED (exit {code})'}",
            "",
            "| step | seconds | peak PSS GiB | peak RSS GiB |",
            "|---|---:|---:|---:|",
            *(f"| {name.strip() if not name.startswith('  ') else '&nbsp;&nbsp;' + name.strip()} | {secs} | {p} | {r} |"
              for name, secs, p, r in table[1:]),
        ]
        write_docs_section(f"bench_scale scale={args.scale:g} engine={engine} params={params}", "\n".join(lines))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
