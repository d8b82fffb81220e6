"""The triangulation asset against a real DuckDB warehouse: the media-mix model fitted on crafted marts, Markov
credit and platform claims beside it, the chart drawn from it, and the demo truth check with and without truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import materialize
from scipy.signal import lfilter

from assets.charts import chart_assets
from assets.media_mix import media_mix_model
from assets.resources import ChartStore, Warehouse
from assets.triangulation import channel_triangulation
from charts.plots import PNG_SIGNATURE

DAYS = 240
MMM_CONFIG = {"lookback_days": 150, "curve_history_days": DAYS, "n_bootstrap": 10}
CHANNELS = ["radio", "ooh", "tv"]
TRIANGULATION_CHART = next(a for a in chart_assets if a.key.to_user_string() == "channel_triangulation_chart")


def _marts(seed: int = 3) -> dict[str, pd.DataFrame]:
    """Three channels with varying spend at true ROAS 2 (through carryover and saturation); radio and ooh report
    platform conversions and revenue (2.5x what they add), tv reports none. One converting journey a day."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-06", periods=DAYS, freq="D")
    spend = {}
    for channel, scale in zip(CHANNELS, (900.0, 600.0, 1200.0)):
        level = np.exp(lfilter([1.0], [1.0, -0.85], rng.normal(0.0, 0.2, DAYS)))
        x = scale * level * rng.lognormal(0.0, 0.25, DAYS)
        for start in range(int(rng.integers(0, 20)), DAYS, 40):
            x[start:start + 8] = 0.0
        spend[channel] = x
    revenue = 20_000.0 + 800.0 * (dates.day_of_week >= 5)
    for x in spend.values():
        carried = lfilter([0.6], [1.0, -0.4], x)
        saturated = carried / (carried + x.mean())
        revenue = revenue + 2.0 * x.mean() * saturated / saturated.mean()
    revenue = revenue + rng.normal(0.0, 0.01 * revenue.mean(), DAYS)
    rows = [(d, c, float(x[i]), 1000, 50, None if c == "tv" else 5.0 * x[i] / 100,
             None if c == "tv" else 2.5 * 2.0 * x[i]) for c, x in spend.items() for i, d in enumerate(dates)]
    channel_daily = pd.DataFrame(rows, columns=["date", "channel", "spend", "impressions", "clicks", "conversions",
                                                "revenue"])
    channel_daily["ctr"] = channel_daily["clicks"] / channel_daily["impressions"]
    journeys = pd.DataFrame({"journey_id": [f"c-{i}" for i in range(DAYS)], "is_converted": True, "touch_index": 1,
                             "converted_at": dates + pd.Timedelta(hours=12), "revenue": 100.0})
    return {
        "fct_channel_daily": channel_daily,
        "fct_revenue_daily": pd.DataFrame({"date": dates, "conversions": 20, "revenue": revenue}),
        "dim_channel": pd.DataFrame({"channel": CHANNELS}),
        "int_journeys": journeys,
    }


def _markov() -> pd.DataFrame:
    share = np.array([0.5, 0.2, 0.3])
    return pd.DataFrame({"model": "markov", "channel": CHANNELS, "attributed_revenue": share * 24_000.0,
                         "share": share, "share_lower": share - 0.04, "share_upper": share + 0.04})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    wh = Warehouse(url=f"duckdb:///{tmp_path_factory.mktemp('triangulation') / 'warehouse.duckdb'}")
    wh.publish_tables(_marts(), schema="analytics", stamp=False)
    fitted = materialize([media_mix_model], resources={"warehouse": wh},
                         run_config={"ops": {"media_mix_model": {"config": MMM_CONFIG}}})
    assert fitted.success
    wh.publish_tables({"channel_attribution": _markov()}, run_id="attribution-run")
    return wh


def _triangulate(wh: Warehouse, charts_dir=None):
    assets = [channel_triangulation] + ([TRIANGULATION_CHART] if charts_dir else [])
    resources = {"warehouse": wh, **({"charts": ChartStore(directory=str(charts_dir))} if charts_dir else {})}
    result = materialize(assets, resources=resources)
    assert result.success
    return result, {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_the_table_lines_up_platform_claims_markov_and_incrementality_over_the_model_window(warehouse, tmp_path):
    result, checks = _triangulate(warehouse, tmp_path / "charts")
    table = warehouse.read_table("predictions", "channel_triangulation").set_index("channel")
    roas = warehouse.read_table("predictions", "mmm_channel_roas").set_index("channel")
    diag = warehouse.read_table("predictions", "mmm_diagnostics").set_index("metric")["detail"]
    assert sorted(table.index) == sorted(CHANNELS)
    assert str(table["window_start_date"].iloc[0])[:10] == diag["start_date"][:10]
    assert str(table["window_end_date"].iloc[0])[:10] == diag["end_date"][:10]
    # Platform claims are the export's sums over the window; tv's export has none.
    daily = warehouse.read_table("analytics", "fct_channel_daily")
    inside = pd.to_datetime(daily["date"]).between(pd.Timestamp(diag["start_date"]), pd.Timestamp(diag["end_date"]))
    radio = daily[inside & (daily["channel"] == "radio")]
    assert table.loc["radio", "platform_revenue"] == pytest.approx(radio["revenue"].sum())
    assert pd.isna(table.loc["tv", "platform_revenue"]) and pd.isna(table.loc["tv", "platform_overclaim"])
    assert "no platform revenue in the export" in table.loc["tv", "reading"]
    # Markov credit is brought to the window by the share of journey revenue converting in it (150 of 240 days).
    assert table.loc["radio", "attributed_revenue"] == pytest.approx(12_000.0 * 150 / DAYS)
    assert table.loc["radio", "mmm_contribution"] == pytest.approx(roas.loc["radio", "contribution"])
    assert table.loc["radio", "platform_overclaim"] == pytest.approx(
        table.loc["radio", "platform_revenue"] / roas.loc["radio", "contribution"])
    # The platforms claim 2.5x the true effect: the over-claim the table shows is near it.
    assert 1.5 < table.loc["radio", "platform_overclaim"] < 4.0
    assert list(table["identifiable"]) == list(roas.loc[table.index, "identifiable"])
    assert checks["gx_channel_triangulation"].passed
    assert checks["mmm_matches_demo_truth"].passed
    assert checks["mmm_matches_demo_truth"].description == "no ground truth (your own data)"
    png = (tmp_path / "charts" / "channel_triangulation.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)


def _publish_truth(wh: Warehouse, factor: float) -> None:
    """Ground truth whose ROAS is `factor` times the model's, per channel (the demo writes raw.ground_truth_*)."""
    roas = wh.read_table("predictions", "mmm_channel_roas").set_index("channel")["roas"]
    daily = wh.read_table("analytics", "fct_channel_daily", ["date", "channel", "spend"])
    daily["contribution"] = daily["spend"] * daily["channel"].map(roas * factor)
    wh.publish_tables({"ground_truth_daily": daily}, schema="raw", stamp=False)


def test_the_truth_check_warns_when_a_major_channel_is_confidently_wrong(warehouse):
    _publish_truth(warehouse, 1.1)
    _, checks = _triangulate(warehouse)
    truth = checks["mmm_matches_demo_truth"]
    assert truth.passed, truth.description
    assert truth.description.startswith("no major channel confidently wrong. 3 of 3 major channels within 25%")
    assert "radio" in truth.metadata["comparison"].value

    _publish_truth(warehouse, 10.0)
    result, checks = _triangulate(warehouse)  # a warning: the table is still published
    truth = checks["mmm_matches_demo_truth"]
    assert not truth.passed
    assert "major channel(s) confidently wrong" in truth.description
    assert truth.metadata["roas_error"].value["radio"] == pytest.approx(0.1 - 1, abs=1e-3)
    assert result.asset_materializations_for_node("channel_triangulation")
