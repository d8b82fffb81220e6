"""A chart writer killed mid-write (SIGKILL: no cleanup runs) leaves a hidden temporary file: the old
chart stays whole and is what the live service serves, the leftover is never listed or served, and
the next chart asset run removes it (a young temporary file, maybe a running writer's, is kept)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from dagster import materialize

from assets.charts import chart_assets
from assets.resources import ChartStore, Warehouse
from charts.plots import STALE_TEMP_AFTER_S, remove_stale_temp_files, write_png_atomic
from core import registry
from core.warehouse import WarehouseClient
from service.app import create_app
from tests.charts.test_plots import roi_timeseries_frame
from tests.service.test_server import LiveServer, png_bytes, refusing_launcher, settings_for

CHART = "roi_timeseries"

# The real write_png_atomic in its own process; fsync stalls, so the process is killed after the bytes
# went to the temporary file and before the rename, the moment a crash leaves a leftover behind.
WRITER = textwrap.dedent("""
    import os, sys, time
    from charts.plots import write_png_atomic

    def stalled_fsync(fd):
        print("writing", flush=True)
        time.sleep(120)

    os.fsync = stalled_fsync
    write_png_atomic(sys.argv[1], bytes.fromhex(sys.argv[2]) + bytes(2_000_000))
""")


def kill_writer_mid_write(target: Path, png: bytes) -> Path:
    """Start a writer of `target`, SIGKILL it mid-write, return the temporary file it left."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), png.hex()], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert writer.stdout.readline().strip() == "writing", "the writer did not start writing"
        os.kill(writer.pid, signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    leftovers = list(target.parent.glob(f".{target.name}.*.tmp"))
    assert len(leftovers) == 1, leftovers
    return leftovers[0]


@pytest.fixture
def site(tmp_path):
    """A DuckDB warehouse with ml_roi_timeseries published and its chart rendered once."""
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    frame = roi_timeseries_frame(["search", "social", "email"]).drop(columns=["run_id", "generated_at"])
    WarehouseClient(url).publish(frame, "ml_roi_timeseries", run_id="run-1")
    charts_dir = tmp_path / "charts"
    old_png = png_bytes("before the crash", "#1b7f3b")
    write_png_atomic(charts_dir / f"{CHART}.png", old_png)
    return {"url": url, "charts": charts_dir, "old_png": old_png, "root": tmp_path}


def test_killed_writer_leftover_is_never_served_and_the_next_chart_run_removes_it(site):
    charts_dir, target = site["charts"], site["charts"] / f"{CHART}.png"
    leftover = kill_writer_mid_write(target, png_bytes("half written", "#c0392b"))
    assert leftover.stat().st_size > 2_000_000  # the bytes were written, the rename never happened
    assert target.read_bytes() == site["old_png"]

    settings = settings_for(site["url"], charts_dir, site["root"] / "dagster_home")
    with LiveServer(create_app(settings, refresh_launcher=refusing_launcher)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            listed = client.get("/charts").json()
            assert [c["name"] for c in listed] == list(registry.CHARTS)
            assert ".tmp" not in client.get("/charts").text and ".tmp" not in client.get("/").text
            served = client.get(f"/charts/{CHART}.png")
            assert served.status_code == 200 and served.content == site["old_png"]
            for path in (f"/charts/{leftover.name}", f"/charts/{leftover.name.removesuffix('.tmp')}",
                         f"/charts/{leftover.name.removeprefix('.').split('.')[0]}.png.tmp"):
                assert client.get(path).status_code == 404, path

    # The leftover is old by now; a second, fresh one may be a writer that is still running.
    stale = time.time() - STALE_TEMP_AFTER_S - 60
    os.utime(leftover, (stale, stale))
    running = charts_dir / f".{CHART}.png.inflight.tmp"
    running.write_bytes(b"\x89PNG\r\n\x1a\n")

    asset = next(a for a in chart_assets if a.key.to_user_string() == f"{CHART}_chart")
    result = materialize([asset], resources={"warehouse": Warehouse(url=site["url"]),
                                             "charts": ChartStore(directory=str(charts_dir))})
    assert result.success
    metadata = result.asset_materializations_for_node(f"{CHART}_chart")[0].metadata
    assert metadata["stale_temp_files_removed"].value == 1
    assert not leftover.exists() and running.exists()
    assert sorted(p.name for p in charts_dir.iterdir()) == sorted([target.name, running.name])
    assert target.read_bytes() != site["old_png"] and target.read_bytes().startswith(b"\x89PNG")


def test_remove_stale_temp_files_keeps_charts_young_files_and_other_names(tmp_path):
    old = time.time() - 3600
    stale = tmp_path / ".mmm_roas.png.x1.tmp"
    keep = {
        "young": tmp_path / ".mmm_roas.png.x2.tmp",
        "chart": tmp_path / "mmm_roas.png",
        "other": tmp_path / "notes.tmp",
    }
    for path in (stale, *keep.values()):
        path.write_bytes(b"x")
    for path in (stale, keep["chart"], keep["other"]):
        os.utime(path, (old, old))
    (tmp_path / ".reach_ctr.png.dir.tmp").mkdir()
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert all(path.exists() for path in keep.values())
    assert remove_stale_temp_files(tmp_path / "missing") == []
