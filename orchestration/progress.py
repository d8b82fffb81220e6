"""What a person sees while `spendwise run` / `refresh` runs: a progress line per step of the Dagster run
(read from the run's own event stream), with the steps' own output kept out of the terminal.

dagster-dbt streams dbt's per-node log to the process's stdout, where Dagster's compute-log capture
records it for the run (the run's stdout in the UI); `terminal_apart` keeps it out of the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class StepInfo:
    """A step of the refresh job as a person reads it: checks and charts are listed in groups."""

    kind: str  # "checks", "charts" or "assets"
    label: str


def describe_steps(asset_graph) -> dict[str, StepInfo]:
    """Step key (the op's name) -> what it does, from the definitions' asset graph."""
    steps = {}
    for assets_def in asset_graph.assets_defs:
        if not assets_def.is_executable:
            continue
        name = assets_def.node_def.name
        checks = sorted(assets_def.check_keys, key=lambda k: k.to_user_string())
        groups = set(assets_def.group_names_by_key.values())
        if not assets_def.keys:
            targets = sorted({c.asset_key.to_user_string() for c in checks})
            steps[name] = StepInfo("checks", ", ".join(targets) or name)
        elif groups == {"charts"}:
            steps[name] = StepInfo("charts", name.removesuffix("_chart"))
        elif any("dbt" in spec.kinds for spec in assets_def.specs):
            steps[name] = StepInfo("assets", f"{name} (dbt build: {len(assets_def.keys)} models, {len(checks)} tests)")
        else:
            detail = f"{len(assets_def.keys)} assets, {len(checks)} checks" if len(assets_def.keys) > 1 else (
                f"{len(checks)} checks" if checks else "")
            steps[name] = StepInfo("assets", f"{name} ({detail})" if detail else name)
    return steps


def _short(info: StepInfo) -> str:
    return {"checks": f"checks on {info.label}", "charts": f"{info.label} chart"}.get(info.kind, info.label.split(" (")[0])


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class RunProgress:
    """Writes one line per step, or per group of consecutive check or chart steps, to `stream` as a
    Dagster run's events arrive (`on_event`, an instance event listener). A line opens when its first
    step starts (elapsed time, what runs) and closes when its last step ends (steps done / total,
    how long it took), so a long step shows what is running while it runs."""

    def __init__(self, stream: TextIO, steps: dict[str, StepInfo], total: int | None = None,
                 interleaved: bool = False):
        # interleaved: the steps' own output shares the terminal (--verbose), so no line is left open.
        self.stream, self.steps, self.interleaved = stream, steps, interleaved
        self._labels: list[str] = []
        self.planned: list[str] = list(steps)
        self._seen: set[str] = set()
        self.total = total or len(steps)
        self.done = 0
        self.failed: list[str] = []
        self.started = time.perf_counter()
        self._open: tuple[str, float, int] | None = None  # kind, start time, steps in the line so far
        self._line_ended = True

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
        self._line_ended = text.endswith("\n")

    def on_event(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            return
        kind = event.event_type_value
        if kind == "LOGS_CAPTURED" and getattr(event.event_specific_data, "step_keys", None):
            self.planned = list(event.event_specific_data.step_keys)
            self.total = len(self.planned)
        elif kind == "STEP_START":
            self._seen.add(event.step_key)
            self._step_started(event.step_key)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self._step_ended(event.step_key, failed=kind == "STEP_FAILURE", skipped=kind == "STEP_SKIPPED")

    def _step_started(self, step_key: str) -> None:
        info = self.steps.get(step_key, StepInfo("assets", step_key))
        now = time.perf_counter()
        if self._open is not None and (info.kind == "assets" or info.kind != self._open[0]):
            self._close(now)
        if self._open is None:
            title = {"checks": "checks on ", "charts": "charts: "}.get(info.kind, "")
            self._write(f"  {_clock(now - self.started):>5}  {title}{info.label}")
            self._open = (info.kind, now, 1)
            self._labels = [info.label]
        elif info.label not in self._labels:  # two checks on one table are one name
            self._write(f", {info.label}")
            self._open = (self._open[0], self._open[1], self._open[2] + 1)
            self._labels.append(info.label)
        if info.kind == "assets":
            self._write(" ...\n" if self.interleaved else " ...")

    def _step_ended(self, step_key: str, failed: bool, skipped: bool) -> None:
        self.done += 1
        self._seen.add(step_key)
        now = time.perf_counter()
        if skipped:  # not run because what it needs failed: one line names them all
            self.failed.append(step_key)
            label = _short(self.steps.get(step_key, StepInfo("assets", step_key)))
            if self._open is not None and self._open[0] == "skipped":
                self._write(f", {label}")
                self._labels.append(label)
                return
            if self._open is not None:
                self._close(now)
            self._write(f"  {_clock(now - self.started):>5}  not run, what they need failed: {label}")
            self._open, self._labels = ("skipped", now, 1), [label]
            return
        if failed:
            self.failed.append(step_key)
        if self._open is not None and self._open[0] == "assets":
            self._close(now, "FAILED" if failed else "done")
        elif failed:
            self._write(f" ({step_key} FAILED)")

    def _close(self, now: float, status: str = "") -> None:
        if self._line_ended:  # interleaved: the line was ended when the step started
            self._write(f"  {_clock(now - self.started):>5}  {self._labels[0].split(' (')[0]} {status or 'done'}")
        elif status == "FAILED":
            self._write(" FAILED")
        took = "" if self._open[0] == "skipped" else f" ({now - self._open[1]:.1f} s)"
        self._write(f"{took} [{self.done}/{self.total}]\n")
        self._open = None

    def finish(self) -> None:
        """Close an open line (the run's last group of checks or charts), then name the steps that never
        started: the executor leaves out what depends on a failed step without an event for it."""
        if self._open is not None:
            self._close(time.perf_counter())
        elif not self._line_ended:
            self._write("\n")
        never = [k for k in self.planned if k not in self._seen]
        if never:
            labels = dict.fromkeys(_short(self.steps.get(k, StepInfo("assets", k))) for k in never)
            self._write(f"  {_clock(time.perf_counter() - self.started):>5}  not run, what they need failed "
                        f"({len(never)} steps): {', '.join(labels)}\n")


@contextlib.contextmanager
def terminal_apart(verbose: bool) -> Iterator[TextIO]:
    """Yields a line-buffered stream on this process's stdout as it is now (the terminal). Unless
    `verbose`, file descriptor 1 points at /dev/null meanwhile: whatever the run's steps print (dbt's
    per-node log, streamed to stdout by dagster-dbt) still reaches the run's compute logs, which
    Dagster captures from file descriptor 1, but not the terminal. stderr is left alone."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced (pytest's capture, an embedding app)
        yield sys.stdout
        return
    saved = os.dup(fd)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    if not verbose:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    try:
        yield terminal
    finally:
        terminal.flush()
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)
        terminal.close()
