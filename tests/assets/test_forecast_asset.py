"""The channel_forecasts asset on a crafted fct_channel_daily: the skill columns and metadata it publishes."""

import numpy as np
import pandas as pd
from dagster import materialize

from assets.forecasts import channel_forecasts
from assets.resources import Warehouse
from core import registry
from ml.forecasting import FUTURE_SPEND, METHOD, MODEL_METHODS, NAIVE_METHODS


def _daily(days: int = 150) -> pd.DataFrame:
    """'weekly': a pure weekly pattern (same-weekday naive is perfect); 'trend': steady growth (the model wins)."""
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    t = np.arange(days)
    pattern = np.array([1.0, 1.4, 0.8, 1.1, 0.6, 1.3, 0.9])[dates.day_of_week]
    rng = np.random.default_rng(3)
    frames = []
    for channel, spend in (("weekly", 200.0 * pattern), ("trend", 100.0 + 4.0 * t + rng.normal(0, 3, days))):
        frames.append(pd.DataFrame({
            "date": dates, "channel": channel, "spend": spend, "revenue": 3.0 * spend,
            "conversions": spend / 50.0, "impressions": spend * 40.0, "reach": spend * 30.0, "clicks": spend * 1.2,
        }))
    return pd.concat(frames, ignore_index=True)


def test_the_roi_forecast_publishes_skill_and_names_the_fallback(duckdb_url):
    wh = Warehouse(url=duckdb_url)
    wh.publish_tables({"fct_channel_daily": _daily()}, schema="analytics", stamp=False)
    config = {"ops": {"channel_forecasts": {"config": {"horizon_days": 14, "backtest_folds": 2, "n_jobs": 1}}}}
    result = materialize([channel_forecasts], resources={"warehouse": wh}, run_config=config, raise_on_error=False)
    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == []

    roi = wh.read_table("predictions", "ml_roi_forecast").set_index("channel")
    assert list(roi.reset_index().columns) == [*registry.table("ml_roi_forecast").column_names, *registry.RUN_COLUMNS]
    assert {"naive_mape", "skill", "total_skill"} <= set(roi.columns)
    # Same-weekday naive forecasts a pure weekly pattern exactly: the forecast falls back to it and says so.
    assert roi.loc["weekly", "method"] == "naive_weekday" and roi.loc["weekly", "skill"] == 0.0
    assert roi.loc["weekly", "naive_mape"] < 1e-9
    # The trend is beyond any naive mean: the model is published, with a positive skill.
    assert roi.loc["trend", "method"] == METHOD and roi.loc["trend", "skill"] > 0.2
    assert (roi["skill"] >= 0).all() and (roi["total_skill"] >= 0).all()

    metadata = next(e for e in result.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == "roi_forecast").materialization.metadata
    skill_md = metadata["forecast_skill"].value
    assert "naive_weekday" in skill_md and "model_total_error" in skill_md
    records = metadata["forecast_skill_records"].value
    assert len(records) == 2 * 6 and {r["method"] for r in records} <= {*MODEL_METHODS, *NAIVE_METHODS}
    assert metadata["future_spend"].value == FUTURE_SPEND
    assert metadata["median_interval_factor"].value >= 1.0
    assert all(r["interval_factor"] >= 1.0 and 0.0 <= r["backtest_coverage"] <= 1.0 for r in records)
    assert metadata["median_published_skill"].value >= 0
    assert metadata["series_on_naive_fallback"].value >= 6  # every metric of 'weekly'
