"""`spendwise load` never swaps the raw tables under a running refresh: it takes the refresh lock."""

from core.refresh_lock import RefreshLock
from core.settings import WarehouseUrl
from tests.core.test_hostile_files import ENGINES, good_tables, raw, spendwise_load, url, write  # noqa: F401

__all__ = ["ENGINES"]


def test_load_during_a_refresh_exits_3_in_one_line_and_writes_nothing(tmp_path, url):  # noqa: F811
    first = spendwise_load(write(tmp_path / "first", good_tables()), url)
    assert first.returncode == 0, first.stderr
    before = raw(url, "conversions")

    lock = RefreshLock(WarehouseUrl.parse(url))
    lock.acquire("run-under-test")
    try:
        blocked = spendwise_load(write(tmp_path / "second", good_tables(["7", "8"])), url)
    finally:
        lock.release()
    assert blocked.returncode == 3, blocked.stderr
    lines = blocked.stderr.strip().splitlines()
    assert len(lines) == 1 and "already running" in lines[0] and "run-under-test" in lines[0]
    assert raw(url, "conversions").equals(before)

    after = spendwise_load(write(tmp_path / "third", good_tables(["7", "8"])), url)
    assert after.returncode == 0, after.stderr
    assert sorted(raw(url, "conversions")["user_id"]) == ["7", "8"]
