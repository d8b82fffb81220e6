"""A user's own export, not the demo: other channel names, one campaign id on two platforms, touchpoint
channel names joined to the ad export's by channels.csv's aliases; `spendwise load` then a real refresh."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import instance_for_test

from assets.resources import Warehouse
from tests.orchestration.test_pipeline import run_refresh_job

pytestmark = pytest.mark.slow

# (name in the ad export, name in the touchpoints, campaigns with their daily spend level)
CHANNELS = {
    "paid_search": ("google_ads", "paid_search", {"pai-00": 300.0, "pai-01": 120.0}),
    "paid_social": ("meta", "Paid_Social ", {"pai-00": 150.0, "soc-01": 90.0}),
    "programmatic": ("dv360", "programmatic", {"prg-00": 110.0}),
    "ctv": ("ctv", "connected_tv", {"ctv-00": 200.0}),
    "newsletter": ("newsletter", "email_newsletter", {"nl-00": 15.0}),
    "partners": ("affiliates", "partners", {"ptn-00": 60.0}),
}
CHANNELS_CSV = """channel,channel_group,is_paid,description,aliases
paid_search,performance,true,Search ads,google_ads|cpc
paid_social,awareness,true,Social ads,meta
programmatic,awareness,true,Programmatic display,DV360
ctv,awareness,true,Connected TV,connected_tv
newsletter,owned,false,Our newsletter,email_newsletter
partners,performance,true,Partner referrals,affiliates
"""


def own_export(days: int = 540, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Ad export, touchpoints and sales where spend drives sales, built here from scratch."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=pd.Timestamp(date.today() - timedelta(days=1)), periods=days, freq="D")
    weekly = 1 + 0.25 * np.sin(2 * np.pi * np.arange(days) / 7)
    ads, spend_of = [], {}
    for channel, (ad_name, _, campaigns) in CHANNELS.items():
        total = np.zeros(days)
        for campaign, level in campaigns.items():
            flights = np.repeat(rng.uniform(0.3, 1.7, days // 28 + 1), 28)[:days]
            spend = np.round(level * weekly * flights * rng.lognormal(0, 0.15, days), 2)
            impressions = np.round(spend * rng.uniform(80, 120, days)).astype(int)
            ads.append(pd.DataFrame({
                "date": dates.strftime("%Y-%m-%d"), "channel": ad_name, "campaign_id": campaign,
                "campaign_name": f"{channel} {campaign}", "impressions": impressions,
                "clicks": np.round(impressions * 0.02).astype(int), "spend": spend,
            }))
            spend_of[(channel, campaign)] = spend
            total += spend
    keys = list(spend_of)
    spend_matrix = np.column_stack([spend_of[k] for k in keys])
    conversions_per_day = rng.poisson(4 + spend_matrix.sum(axis=1) / 60)
    touches, sales, user = [], [], 0
    for day, count in enumerate(conversions_per_day):
        weights = spend_matrix[day] / spend_matrix[day].sum()
        for converted in [True] * count + [False] * (2 * count):
            user += 1
            sold_at = dates[day] + pd.Timedelta(hours=float(rng.uniform(8, 22)))
            for k in range(int(rng.integers(1, 4))):
                channel, campaign = keys[rng.choice(len(keys), p=weights)]
                touches.append((f"t{len(touches)}", f"u{user}", sold_at - pd.Timedelta(hours=float(rng.uniform(1, 200))),
                                CHANNELS[channel][1], campaign))
            if converted:
                sales.append((f"o{len(sales)}", f"u{user}", sold_at, round(float(rng.lognormal(4.3, 0.3)), 2)))
    return {
        "ad_performance_daily": pd.concat(ads, ignore_index=True),
        "touchpoints": pd.DataFrame(touches, columns=["touchpoint_id", "user_id", "occurred_at", "channel", "campaign_id"]),
        "conversions": pd.DataFrame(sales, columns=["conversion_id", "user_id", "occurred_at", "revenue"]),
    }


def test_own_export_loads_and_refreshes_with_aliases_and_colliding_campaign_ids(tmp_path, dbt_manifest):
    tables = own_export()
    folder = tmp_path / "export"
    folder.mkdir()
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "channels.csv").write_text(CHANNELS_CSV)
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "load", str(folder)], capture_output=True,
                          text=True, env={"SPENDWISE_WAREHOUSE_URL": url, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "raw.channel_aliases" in proc.stdout

    with instance_for_test() as instance:
        result = run_refresh_job(url, instance, tmp_path / "charts")
    failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert result.success, failed
    assert "channel_names_consistent" not in failed, failed["channel_names_consistent"]

    wh = Warehouse(url=url)
    dim = wh.read_table("analytics", "dim_channel").set_index("channel")
    assert sorted(dim.index) == sorted(CHANNELS)
    assert dim.loc["newsletter", "channel_group"] == "owned" and not dim.loc["newsletter", "is_paid"]
    ads = tables["ad_performance_daily"]
    for channel, (ad_name, _, campaigns) in CHANNELS.items():
        assert dim.loc[channel, "campaigns"] == len(campaigns)
    campaigns = wh.read_table("predictions", "campaign_attribution")
    linear = campaigns[campaigns["model"] == "linear"].set_index(["channel", "campaign_id"])
    assert linear.index.is_unique
    for channel in ("paid_search", "paid_social"):
        expected = ads[(ads["channel"] == CHANNELS[channel][0]) & (ads["campaign_id"] == "pai-00")]["spend"].sum()
        assert linear.loc[(channel, "pai-00"), "spend"] == pytest.approx(expected)
        assert linear.loc[(channel, "pai-00"), "campaign_name"] == f"{channel} pai-00"
        assert linear.loc[(channel, "pai-00"), "attributed_conversions"] > 0
