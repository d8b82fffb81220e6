"""The registry's charts as files in the charts folder: their state (stat only) and their ETags."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core import registry


@dataclass(frozen=True)
class ChartFile:
    name: str
    title: str
    path: Path
    exists: bool
    size_bytes: int | None
    last_modified: datetime | None
    version: str | None


def chart_files(charts_dir: Path) -> list[ChartFile]:
    """Every registry chart with its file state (stat only, nothing read)."""
    out = []
    for chart in registry.CHARTS.values():
        path = charts_dir / f"{chart.name}.png"
        try:
            st = path.stat()
        except OSError:
            out.append(ChartFile(chart.name, chart.title, path, False, None, None, None))
            continue
        modified = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
        version = f"{st.st_mtime_ns:x}{st.st_size:x}"
        out.append(ChartFile(chart.name, chart.title, path, True, st.st_size, modified, version))
    return out


def read_chart(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the stat of those same bytes.

    fstat and read on one descriptor: the ETag always describes the bytes sent, even when a refresh
    swaps the file in between. Raises FileNotFoundError while the chart has not been rendered.
    """
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        return handle.read(), st


def strong_etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/ prefixes are ignored; `*` matches any current file."""
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
