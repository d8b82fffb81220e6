"""Done-when for issue 14 items 1-3: two demo refreshes on DuckDB with new days loaded in between.

The first refresh runs on the demo data cut 7 days short (every raw table that has a date ends 7 days
earlier), the second on the full demo data: as if a week of data had arrived between two scheduled runs.
"""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import instance_for_test

from assets.resources import Warehouse
from core import registry
from core.history import history_runs, read_history
from tests.conftest import load_demo
from tests.orchestration.test_pipeline import run_refresh_job

pytestmark = pytest.mark.slow

NEW_DAYS = 7
DATE_COLUMNS = {"ad_performance_daily": "date", "touchpoints": "occurred_at", "conversions": "occurred_at",
                "ground_truth_daily": "date", "ground_truth_revenue_daily": "date"}


class _Cut:
    """The demo data set with every dated raw table ending `days` earlier (what load_demo reads)."""

    def __init__(self, data, days: int):
        self.data, self.days = data, days

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = dict(self.data.tables())
        last = pd.to_datetime(tables["ad_performance_daily"]["date"]).max().normalize()
        end = last - pd.Timedelta(days=self.days - 1)  # the first day left out
        for name, column in DATE_COLUMNS.items():
            if name in tables:
                frame = tables[name]
                tables[name] = frame[pd.to_datetime(frame[column]) < end].reset_index(drop=True)
        return tables


@pytest.fixture(scope="module")
def two_refreshes(tmp_path_factory, demo_data, dbt_manifest):
    url = f"duckdb:///{tmp_path_factory.mktemp('history') / 'warehouse.duckdb'}"
    charts = tmp_path_factory.mktemp("history_charts")
    with instance_for_test() as instance:
        load_demo(url, _Cut(demo_data, NEW_DAYS))
        first = run_refresh_job(url, instance, charts)
        load_demo(url, demo_data)
        second = run_refresh_job(url, instance, charts)
    return {"url": url, "charts": charts, "first": first, "second": second}


def test_two_refreshes_with_new_days_keep_history_score_forecasts_and_explain_changes(two_refreshes, demo_data):
    first, second = two_refreshes["first"], two_refreshes["second"]
    assert first.success, first.get_failed_step_keys()
    assert second.success, second.get_failed_step_keys()
    wh = Warehouse(url=two_refreshes["url"])
    client = wh.client
    runs = [first.run_id, second.run_id]

    # History: both runs of every table that keeps one; the tables BI reads hold the second run only.
    for table in registry.TABLES.values():
        current = wh.read_table("predictions", table.name)
        assert set(current["run_id"]) == {second.run_id}, table.name
        kept = [run for run, _ in history_runs(client, table.name)]
        assert kept == ([second.run_id, first.run_id] if table.history else []), table.name
    history = read_history(client, "mmm_channel_roas")
    assert history.groupby("run_id").size().to_dict() == {run: len(wh.read_table("predictions", "mmm_channel_roas"))
                                                          for run in runs}

    # Forecast scoring: the first run's forecast scored against the 7 days that arrived, nothing else.
    last_day = pd.to_datetime(demo_data.tables()["ad_performance_daily"]["date"]).max().normalize()
    points = wh.read_table("predictions", "forecast_accuracy")
    scored = points[points["status"] == "scored"]
    assert len(scored) > 0 and set(scored["forecast_run_id"]) == {first.run_id}
    assert pd.to_datetime(scored["date"]).between(last_day - pd.Timedelta(days=NEW_DAYS - 1), last_day).all()
    assert set(scored["horizon_days"]) == set(range(1, NEW_DAYS + 1))
    assert (scored["abs_error"] - (scored["predicted"] - scored["actual"]).abs()).abs().max() < 1e-9
    assert set(points.loc[points["status"] == "pending", "forecast_run_id"]) == {first.run_id, second.run_id}
    by_horizon = wh.read_table("predictions", "forecast_accuracy_by_horizon")
    scored_by_horizon = by_horizon.groupby("horizon_days")["scored_points"].sum()
    assert (scored_by_horizon.loc[1:NEW_DAYS] > 0).all() and scored_by_horizon.loc[NEW_DAYS + 1:].sum() == 0
    hit = by_horizon.dropna(subset=["interval_hit_rate"])
    assert hit["interval_hit_rate"].between(0, 1).all() and (hit["nominal_coverage"] == 0.95).all()
    assert (two_refreshes["charts"] / "forecast_accuracy.png").stat().st_size > 10_000
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert "forecast_intervals_cover_nominal" in checks  # judged or "too few points": not run-blocking

    # Run changes: every headline compared with the first run, and every move put down to the new week.
    changes = wh.read_table("predictions", "run_changes")
    assert set(changes["number"]) == {"attribution_share", "mmm_roas", "forecast_roi", "recommended_spend"}
    assert set(changes["previous_run_id"]) == {first.run_id} and set(changes["current_run_id"]) == {second.run_id}
    moved = changes[changes["change"].fillna(0) != 0]
    assert len(moved) > 0
    assert moved["likely_cause"].str.contains(f"{NEW_DAYS} new day\\(s\\) of data").all(), \
        moved.loc[~moved["likely_cause"].str.contains("new day"), ["number", "channel", "likely_cause"]]
    assert not changes["likely_cause"].str.contains("restated").any()  # the earlier days did not change
    assert changes["matters"].any()
    from dagster import AssetKey

    materialization = second.asset_materializations_for_node("run_changes")[0]
    assert materialization.asset_key == AssetKey("run_changes")
    assert "new day(s) of data" in materialization.metadata["moves"].value
