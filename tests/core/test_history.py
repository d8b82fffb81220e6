"""Prediction history: appended with every publication in the same transaction, retention by days and by
runs, new columns added to an existing history, on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from core.history import history_runs, read_history
from core.settings import HISTORY_SCHEMA, HistoryRetention
from core.warehouse import WarehouseClient

NOW = datetime.now(timezone.utc)


def _frame(n: int, value: float) -> pd.DataFrame:
    return pd.DataFrame({"channel": [f"c{i}" for i in range(n)], "value": [value] * n})


@pytest.fixture
def url(engine_url) -> str:
    return engine_url


def _client(url: str, days=None, runs=None) -> WarehouseClient:
    return WarehouseClient(url, history_retention=HistoryRetention(days=days, runs=runs))


def test_every_publication_appends_its_rows_and_the_current_table_holds_only_the_last(url):
    client = _client(url)
    client.publish(_frame(3, 1.0), "example", run_id="run-1", generated_at=NOW - timedelta(hours=1))
    published = client.publish(_frame(2, 2.0), "example", run_id="run-2", generated_at=NOW)
    assert published.history.rows_appended == 2 and published.history.runs_kept == 2
    current = client.read_table("predictions", "example")
    assert len(current) == 2 and set(current["run_id"]) == {"run-2"}
    history = read_history(client, "example")
    assert history.groupby("run_id")["value"].agg(["count", "first"]).to_dict("index") == {
        "run-1": {"count": 3, "first": 1.0}, "run-2": {"count": 2, "first": 2.0}}
    assert [r for r, _ in history_runs(client, "example")] == ["run-2", "run-1"]
    # The predictions schema BI reads holds no history table.
    assert list(client.row_counts("predictions")) == ["example"]


def test_retention_by_days_removes_old_runs_and_keeps_recent_ones(url):
    client = _client(url, days=7)  # the seeds' 7-day expiry
    for run, age in (("eight-days", 8), ("six-days", 6), ("one-day", 1)):
        client.publish(_frame(2, 1.0), "example", run_id=run, generated_at=NOW - timedelta(days=age))
    # Age is measured from each publication: at the one-day run, eight-days was exactly 7 days old (kept).
    assert {r for r, _ in history_runs(client, "example")} == {"eight-days", "six-days", "one-day"}
    published = client.publish(_frame(2, 1.0), "example", run_id="now", generated_at=NOW)
    assert published.history.runs_removed == 1 and published.history.runs_kept == 3
    assert {r for r, _ in history_runs(client, "example")} == {"six-days", "one-day", "now"}
    later = client.publish(_frame(2, 1.0), "example", run_id="in-two-days", generated_at=NOW + timedelta(days=2))
    assert later.history.runs_removed == 1  # six-days is now eight days old
    assert {r for r, _ in history_runs(client, "example")} == {"one-day", "now", "in-two-days"}
    assert len(read_history(client, "example")) == 6


def test_retention_by_runs_keeps_the_newest_runs_of_each_table(url):
    client = _client(url, runs=2)
    for i in range(4):
        client.publish_tables({"a": _frame(2, float(i)), "b": _frame(1, float(i))}, run_id=f"run-{i}",
                              generated_at=NOW + timedelta(minutes=i))
    for table in ("a", "b"):
        assert [r for r, _ in history_runs(client, table)] == ["run-3", "run-2"]
    assert sorted(read_history(client, "a")["value"]) == [2.0, 2.0, 3.0, 3.0]
    # Both limits together: a run goes when either says so.
    both = _client(url, days=1, runs=5)
    both.publish(_frame(1, 9.0), "a", run_id="run-4", generated_at=NOW + timedelta(days=1, minutes=3))
    assert [r for r, _ in history_runs(client, "a")] == ["run-4", "run-3"]


def test_a_failed_publication_appends_no_history(url, monkeypatch):
    client = _client(url)
    client.publish_tables({"a": _frame(2, 1.0), "b": _frame(2, 1.0)}, run_id="good")
    bad = _frame(2, 1.0).assign(value=[object(), object()])
    with pytest.raises(TypeError, match="column 'value'"):
        client.publish_tables({"a": _frame(5, 3.0), "b": bad}, run_id="bad")
    # A crash after the history was written is rolled back with the publication.
    import core.history

    original = core.history._apply_retention

    def crash(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError("simulated crash after the history append")

    monkeypatch.setattr(core.history, "_apply_retention", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        client.publish(_frame(4, 4.0), "a", run_id="crashed")
    monkeypatch.undo()
    for table in ("a", "b"):
        assert set(read_history(client, table)["run_id"]) == {"good"}
        assert set(client.read_table("predictions", table)["run_id"]) == {"good"}


def test_a_new_column_is_added_to_the_existing_history(url):
    client = _client(url)
    client.publish(_frame(2, 1.0), "example", run_id="before")
    published = client.publish(_frame(2, 2.0).assign(extra=["x", "y"], ratio=[0.5, 0.25]), "example", run_id="after")
    assert published.history.columns_added == ("extra", "ratio")
    history = read_history(client, "example").sort_values(["run_id", "channel"])
    assert history.loc[history["run_id"] == "before", ["extra", "ratio"]].isna().all().all()
    assert history.loc[history["run_id"] == "after", "ratio"].tolist() == [0.5, 0.25]
    # A column the new run no longer has stays in the history, empty for it.
    client.publish(_frame(1, 3.0), "example", run_id="without")
    assert read_history(client, "example").query("run_id == 'without'")["extra"].isna().all()


def test_history_columns_take_the_registry_types_even_when_the_first_run_has_no_values(url):
    client = _client(url)
    empty_values = pd.DataFrame({"metric": ["r2", "start_date"], "value": [None, None], "detail": ["", "2025-01-01"]})
    client.publish(empty_values, "mmm_diagnostics", run_id="first")
    client.publish(pd.DataFrame({"metric": ["r2"], "value": [0.8], "detail": ["fit"]}), "mmm_diagnostics",
                   run_id="second")
    types = dict(WarehouseClient(url).read_sql(
        "select column_name, data_type from information_schema.columns where table_schema = "
        f"'{HISTORY_SCHEMA}' and table_name = 'mmm_diagnostics'").itertuples(index=False))
    assert types["value"].upper() in ("DOUBLE", "DOUBLE PRECISION")
    assert read_history(client, "mmm_diagnostics", run_ids=["second"])["value"].tolist() == [0.8]


def test_raw_and_unstamped_publications_keep_no_history(url):
    client = _client(url)
    client.publish_tables({"touchpoints": _frame(2, 1.0)}, schema="raw", stamp=False)
    assert history_runs(client, "touchpoints") == []
    with pytest.raises(ValueError, match="run-stamped"):
        client.publish_tables({"x": _frame(1, 1.0)}, stamp=False, history=True)


def test_retention_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("SPENDWISE_HISTORY_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("SPENDWISE_HISTORY_RETENTION_RUNS", raising=False)
    assert HistoryRetention.from_env() == HistoryRetention(days=35, runs=None)
    monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_DAYS", "7")
    monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_RUNS", "336")
    assert HistoryRetention.from_env() == HistoryRetention(days=7.0, runs=336)
    assert HistoryRetention.from_env().describe() == "7 days and the newest 336 runs"
    monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_DAYS", "off")
    assert HistoryRetention.from_env().days is None
    for bad in ("-1", "a week", "nan"):
        monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="SPENDWISE_HISTORY_RETENTION_DAYS"):
            HistoryRetention.from_env()
    monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_DAYS", "7")
    monkeypatch.setenv("SPENDWISE_HISTORY_RETENTION_RUNS", "2.5")
    with pytest.raises(ValueError, match="whole number of runs"):
        HistoryRetention.from_env()
