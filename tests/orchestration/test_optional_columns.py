"""An ad export without reach, campaign_name and platform conversions/revenue, and touchpoints without
campaign_id and interaction: `spendwise load` takes it, and a full refresh on DuckDB publishes every table,
says what is missing, and draws the reach chart with a note."""

from __future__ import annotations

import subprocess
from datetime import datetime
import sys

import pytest
from dagster import instance_for_test

from assets.resources import Warehouse
from core import registry
from core.raw_contract import RAW_TABLES
from ml.forecasting import METHOD, NO_REVENUE_METHOD
from tests.orchestration.test_pipeline import DEMO_MAY_WARN, run_refresh_job

pytestmark = pytest.mark.slow

DROPPED = ["reach", "campaign_name", "conversions", "revenue"]
TOUCH_DROPPED = ["campaign_id", "interaction"]


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, dbt_manifest):
    from ml.synthetic import generate_demo_data

    root = tmp_path_factory.mktemp("optional_columns")
    folder = root / "export"
    folder.mkdir()
    tables = generate_demo_data(scale=0.05, days=200).tables()
    tables["ad_performance_daily"] = tables["ad_performance_daily"].drop(columns=DROPPED)
    tables["touchpoints"] = tables["touchpoints"].drop(columns=TOUCH_DROPPED)
    for name in RAW_TABLES:
        tables[name].to_csv(folder / f"{name}.csv", index=False)
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "DAGSTER_HOME": str(root / "home"),
           "SPENDWISE_WAREHOUSE_URL": url}
    load = subprocess.run([sys.executable, "-m", "orchestration.cli", "load", str(folder)],
                          capture_output=True, text=True, env=env, timeout=600)
    charts = root / "charts"
    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, charts)
    return {"url": url, "load": load, "result": result, "charts": charts,
            "channels": sorted(tables["ad_performance_daily"]["channel"].unique())}


def test_the_folder_loads_with_the_absent_columns_as_nulls(refreshed):
    load = refreshed["load"]
    assert load.returncode == 0, load.stdout[-3000:] + load.stderr[-3000:]
    ads = Warehouse(url=refreshed["url"]).read_table("raw", "ad_performance_daily")
    assert list(ads.columns) == RAW_TABLES["ad_performance_daily"].column_names
    assert len(ads) > 0 and ads[DROPPED].isna().all().all()
    touches = Warehouse(url=refreshed["url"]).read_table("raw", "touchpoints")
    assert len(touches) > 0 and touches[TOUCH_DROPPED].isna().all().all()


def test_the_refresh_succeeds_and_publishes_every_table(refreshed):
    result = refreshed["result"]
    failed = [f"{e.asset_key.to_user_string()}::{e.check_name}: {e.description}"
              for e in result.get_asset_check_evaluations() if not e.passed and e.check_name not in DEMO_MAY_WARN]
    assert result.success, result.get_failed_step_keys()
    assert failed == []
    counts = Warehouse(url=refreshed["url"]).row_counts("predictions")
    assert set(registry.TABLES) <= set(counts) and all(counts[t] > 0 for t in registry.TABLES)


def test_what_the_data_lacks_is_null_and_said_so(refreshed):
    wh = Warehouse(url=refreshed["url"])
    daily = wh.read_table("analytics", "fct_channel_daily")
    assert daily[["reach", "conversions", "revenue"]].isna().all().all() and daily["impressions"].notna().all()
    assert wh.read_table("analytics", "dim_campaign")["campaign_name"].isna().all()
    roi = wh.read_table("predictions", "ml_roi_forecast")
    assert sorted(roi["channel"]) == refreshed["channels"]
    # No ROI of -1 as if the platforms had reported zero revenue: empty, and the method says why.
    assert (roi["method"] == NO_REVENUE_METHOD).all() and METHOD not in set(roi["method"])
    assert roi[["predicted_revenue", "predicted_roi", "roi_lower", "roi_upper"]].isna().all().all()
    assert (roi["predicted_spend"] > 0).all()
    reach = wh.read_table("predictions", "ml_reach_ctr_timeseries")
    assert reach["reach"].isna().all() and reach.loc[reach["is_forecast"].astype(bool), "ctr"].notna().all()
    # Touches without a campaign: the channel attribution is whole, the campaign attribution has no
    # campaign to credit and says so by its (null-campaign) rows rather than inventing one.
    channel = wh.read_table("predictions", "channel_attribution")
    assert channel.groupby("model")["share"].sum().round(6).eq(1.0).all()


def test_the_reach_chart_is_drawn_with_the_no_reach_note(refreshed):
    from matplotlib.text import Text

    from charts.plots import ChartContext, _figure_for

    assert {p.stem for p in refreshed["charts"].glob("*.png")} == set(registry.CHARTS)
    # The published table, drawn as the chart asset draws it, says why there is no reach stack.
    published = Warehouse(url=refreshed["url"]).read_table("predictions", "ml_reach_ctr_timeseries")
    fig = _figure_for("reach_ctr", published, ChartContext(None, None, datetime(2026, 1, 1), None))
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert "no reach in the data" in texts and "reach per day" not in texts
