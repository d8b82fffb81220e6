"""A user's own export, not the demo, from files to published predictions through the CLI a user runs.

Built here from scratch, not from ml/synthetic.py: other channel names, one campaign id on two
platforms, touchpoint channel names joined to the ad export's by channels.csv's aliases, no `reach`
and no `interaction` column, touchpoints without a campaign on some rows, data ending four weeks ago.
`spendwise load`, then `spendwise refresh` (exit 0, warnings only), then every prediction table.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from assets.resources import Warehouse
from tests.conftest import LIGHT_RUN_CONFIG_FILE

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


AGE_DAYS = 28  # the export ends four weeks before today


def own_export(days: int = 540, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Ad export, touchpoints and sales where spend drives sales, built here from scratch."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=pd.Timestamp(date.today() - timedelta(days=AGE_DAYS)), periods=days, freq="D")
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
                # One touch in ten was not tagged with a campaign (optional column, empty there).
                touches.append((f"t{len(touches)}", f"u{user}", sold_at - pd.Timedelta(hours=float(rng.uniform(1, 200))),
                                CHANNELS[channel][1], campaign if rng.random() > 0.1 else None))
            if converted:
                sales.append((f"o{len(sales)}", f"u{user}", sold_at, round(float(rng.lognormal(4.3, 0.3)), 2)))
    return {
        "ad_performance_daily": pd.concat(ads, ignore_index=True),
        "touchpoints": pd.DataFrame(touches, columns=["touchpoint_id", "user_id", "occurred_at", "channel", "campaign_id"]),
        "conversions": pd.DataFrame(sales, columns=["conversion_id", "user_id", "occurred_at", "revenue"]),
    }


def test_own_export_loads_and_refreshes_with_aliases_and_colliding_campaign_ids(tmp_path, dbt_manifest):
    from core import registry

    tables = own_export()
    folder = tmp_path / "export"
    folder.mkdir()
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "channels.csv").write_text(CHANNELS_CSV)
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = {"SPENDWISE_WAREHOUSE_URL": url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "DAGSTER_HOME": str(tmp_path / "home"), "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts"),
           "SPENDWISE_RUN_CONFIG": str(LIGHT_RUN_CONFIG_FILE)}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "load", str(folder), "--check"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "google_ads (= paid_search)" in proc.stdout and "connected_tv (= ctv)" in proc.stdout
    assert "Channel names" not in proc.stdout and "Result: clean" in proc.stdout
    assert not (tmp_path / "warehouse.duckdb").exists()  # the check wrote nothing

    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "load", str(folder)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "raw.channel_aliases" in proc.stdout

    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh"], capture_output=True, text=True,
                          env=env, timeout=1500)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-3000:]
    assert "Result: published; exit code 0 (with warnings)" in out, out[-3000:]
    assert "FAILED" not in out and "Failures" not in out, out[-3000:]
    assert f"{AGE_DAYS} days old" in out  # stale data is a warning with its age
    assert "channel_names_consistent" not in out  # every name is mapped by the aliases
    assert f"predictions: {len(registry.TABLES)} tables" in out

    wh = Warehouse(url=url)
    for table in registry.TABLES.values():
        rows = wh.read_sql(f"select count(*) as n from {table.qualified_name}")["n"].iloc[0]
        assert rows > 0, table.qualified_name
    dim = wh.read_table("analytics", "dim_channel").set_index("channel")
    assert sorted(dim.index) == sorted(CHANNELS)
    assert dim.loc["newsletter", "channel_group"] == "owned" and not dim.loc["newsletter", "is_paid"]
    ads = tables["ad_performance_daily"]
    for channel, (ad_name, _, campaigns) in CHANNELS.items():
        assert dim.loc[channel, "campaigns"] == len(campaigns)
        assert dim.loc[channel, "touchpoints"] > 0  # the touchpoints' names joined through the aliases
    campaigns = wh.read_table("predictions", "campaign_attribution")
    linear = campaigns[campaigns["model"] == "linear"].set_index(["channel", "campaign_id"])
    assert linear.index.is_unique
    for channel in ("paid_search", "paid_social"):
        expected = ads[(ads["channel"] == CHANNELS[channel][0]) & (ads["campaign_id"] == "pai-00")]["spend"].sum()
        assert linear.loc[(channel, "pai-00"), "spend"] == pytest.approx(expected)
        assert linear.loc[(channel, "pai-00"), "campaign_name"] == f"{channel} pai-00"
        assert linear.loc[(channel, "pai-00"), "attributed_conversions"] > 0
    # No reach in the export: null in the forecast table, not zeros.
    reach = wh.read_table("predictions", "ml_reach_ctr_timeseries")
    assert reach["reach"].isna().all() and reach["impressions"].notna().all()
    # The models work as of the data's last day, four weeks ago.
    last = pd.Timestamp(ads["date"].max())
    roi = wh.read_table("predictions", "ml_roi_timeseries")
    assert pd.Timestamp(roi.loc[~roi["is_forecast"].astype(bool), "date"].max()) == last
    assert sorted((tmp_path / "charts").glob("*.png"))
