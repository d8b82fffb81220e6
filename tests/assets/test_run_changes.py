"""What changed since the last run: the comparison and its causes on crafted runs, and the asset on real DuckDB and
PostgreSQL warehouses whose history holds one run (first run, explained) and then two."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from assets.resources import Warehouse
from assets.run_changes import run_changes as run_changes_asset
from ml.run_changes import FIRST_RUN, HEADLINES, RunInputs, compare_headline, restated_days, run_changes

NOW = datetime.now(timezone.utc)
CHANNELS = ["search", "social", "tv"]
HEADLINE = {h.number: h for h in HEADLINES}


def _roas(run: str, roas, decay=(0.3, 0.5, 0.7)) -> pd.DataFrame:
    roas = np.asarray(roas, dtype=float)
    return pd.DataFrame({"channel": CHANNELS, "run_id": run, "roas": roas, "roas_lower": roas - 0.5,
                         "roas_upper": roas + 0.5, "adstock_decay": decay, "saturation_half": 100.0,
                         "saturation_shape": 1.0})


def _actuals(days: int, bump: dict | None = None) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    frame = pd.DataFrame([(d, c, 0.5, 10.0) for d in dates for c in CHANNELS],
                         columns=["date", "channel", "roi", "conversions"])
    for (day, channel), value in (bump or {}).items():
        frame.loc[(frame["date"] == dates[day]) & (frame["channel"] == channel), "conversions"] = value
    return frame


def _inputs(run: str, days: int, decay=(0.3, 0.5, 0.7), settings=None, bump=None) -> RunInputs:
    end = pd.Timestamp("2025-01-01") + pd.Timedelta(days=days - 1)
    return RunInputs(run, data_end=end, actuals=_actuals(days, bump),
                     mmm_window=(end - pd.Timedelta(days=179), end), mmm_settings=settings or {"n_bootstrap": 200.0},
                     transforms={c: (d, 100.0, 1.0) for c, d in zip(CHANNELS, decay)}, forecast_horizon=30)


def test_moves_beyond_the_interval_are_signal_and_new_days_are_named_as_the_cause():
    inputs = {"r1": _inputs("r1", 200), "r2": _inputs("r2", 207)}
    table = compare_headline(HEADLINE["mmm_roas"], _roas("r2", [3.0, 1.2, 2.0]), _roas("r1", [2.0, 1.0, 2.0]),
                             inputs).set_index("channel")
    assert table.loc["search", "change"] == pytest.approx(1.0) and table.loc["search", "change_pct"] == pytest.approx(50)
    # search: 2.0 lies outside [2.5, 3.5] -> signal; social: 1.0 inside [0.7, 1.7] -> noise.
    assert table.loc["search", "beyond_interval"] and table.loc["search", "matters"]
    assert not table.loc["social", "beyond_interval"] and not table.loc["social", "matters"]
    assert table.loc["search", "likely_cause"].startswith("7 new day(s) of data: the media-mix window moved to")
    assert table.loc["tv", "likely_cause"] == "unchanged"
    assert set(table["previous_run_id"]) == {"r1"} and set(table["current_run_id"]) == {"r2"}


def test_a_previous_publication_that_repeats_a_key_gives_one_row_per_key():
    # e.g. rows written into the history by another tool: (model, channel) repeated
    previous = pd.DataFrame({"model": ["x"] * 4, "channel": ["x"] * 4, "run_id": "baseline", "share": [0.1, 0.2, 0.3, 0.4],
                             "share_lower": 0.0, "share_upper": 1.0})
    current = pd.DataFrame({"model": ["linear", "linear"], "channel": ["search", "x"], "run_id": "r2",
                            "share": [0.6, 0.4], "share_lower": [0.5, 0.3], "share_upper": [0.7, 0.5]})
    table = compare_headline(HEADLINE["attribution_share"], current, previous, {})
    assert not table.duplicated(["number", "model", "channel"]).any(), table
    assert len(table) == 3
    assert table.set_index(["model", "channel"]).loc[("x", "x"), "previous_value"] == pytest.approx(0.4)


def test_restated_history_a_new_transform_and_a_changed_setting_are_named():
    before = _inputs("r1", 200)
    after = _inputs("r2", 200, decay=(0.3, 0.6, 0.7), settings={"n_bootstrap": 100.0}, bump={(150, "social"): 14.0})
    restated = restated_days(before.actuals, after.actuals)
    assert restated.to_dict("records") == [{"date": pd.Timestamp("2025-05-31"), "channel": "social"}]
    table = compare_headline(HEADLINE["mmm_roas"], _roas("r2", [2.1, 1.9, 2.0], decay=(0.3, 0.6, 0.7)),
                             _roas("r1", [2.0, 1.0, 2.0]), {"r1": before, "r2": after}).set_index("channel")
    social = table.loc["social", "likely_cause"]
    assert "restated history: 1 earlier day(s) of social changed (2025-05-31 to 2025-05-31)" in social
    assert "a different chosen transform for this channel (adstock_decay 0.5 → 0.6)" in social
    assert "a changed setting of the media-mix model: n_bootstrap 200 → 100" in social
    assert "new day" not in social
    assert "restated history on other channels" in table.loc["search", "likely_cause"]


def test_a_number_without_interval_matters_from_ten_percent_and_no_input_change_is_randomness():
    same = {"r1": _inputs("r1", 200), "r2": _inputs("r2", 200)}
    budget = lambda run, spend: pd.DataFrame({"channel": [*CHANNELS, "TOTAL"], "run_id": run,  # noqa: E731
                                              "recommended_spend": spend})
    table = compare_headline(HEADLINE["recommended_spend"], budget("r2", [110.0, 104.0, 0.0, 214.0]),
                             budget("r1", [100.0, 100.0, 0.0, 200.0]), same).set_index("channel")
    assert table["beyond_interval"].isna().all()
    assert table["matters"].to_dict() == {"search": True, "social": False, "tv": False, "TOTAL": False}
    assert table.loc["search", "likely_cause"].startswith("no input change found")
    assert np.isnan(table.loc["tv", "change_pct"])  # from 0: no percentage


def test_the_first_run_and_channels_in_one_run_only_are_explained():
    first = run_changes({"mmm_channel_roas": _roas("r1", [2.0, 1.0, 2.0])}, {"mmm_channel_roas": None}, {})
    assert (first["likely_cause"] == FIRST_RUN).all() and first["previous_run_id"].isna().all()
    assert not first["matters"].any() and first["previous_value"].isna().all()
    added = _roas("r2", [2.0, 1.0, 2.0])
    added = pd.concat([added, added.iloc[[0]].assign(channel="radio")])
    table = run_changes({"mmm_channel_roas": added}, {"mmm_channel_roas": _roas("r1", [2.0, 1.0, 2.0])}, {})
    assert table.set_index("channel").loc["radio", "likely_cause"] == "new in this run (no previous value)"


def _publish_run(client, run: str, days: int, roas, generated_at, shares=(0.5, 0.3, 0.2)) -> None:
    """One refresh's headline tables and what the causes read: timeseries history to `days`, the MMM window."""
    end = pd.Timestamp("2025-01-01") + pd.Timedelta(days=days - 1)
    timeseries = _actuals(days).assign(is_forecast=False)
    timeseries = timeseries.assign(roi_lower=timeseries["roi"], roi_upper=timeseries["roi"],
                                   conversions_lower=10.0, conversions_upper=10.0)
    share = np.asarray(shares)
    frames = {
        "channel_attribution": pd.DataFrame({"model": "markov", "channel": CHANNELS, "share": share,
                                             "share_lower": share - 0.02, "share_upper": share + 0.02}),
        "mmm_channel_roas": _roas(run, roas).drop(columns=["run_id"]),
        "mmm_diagnostics": pd.DataFrame({"metric": ["start_date", "end_date", "n_bootstrap"],
                                         "value": [np.nan, np.nan, 200.0],
                                         "detail": [f"{end - pd.Timedelta(days=179):%Y-%m-%d}", f"{end:%Y-%m-%d}", ""]}),
        "ml_roi_forecast": pd.DataFrame({"channel": CHANNELS, "horizon_days": 30, "predicted_roi": 0.4,
                                         "roi_lower": 0.1, "roi_upper": 0.7}),
        "ml_budget_recommendation": pd.DataFrame({"channel": CHANNELS, "recommended_spend": [100.0, 50.0, 80.0]}),
        "ml_roi_timeseries": timeseries,
    }
    client.publish_tables(frames, run_id=run, generated_at=generated_at)


@pytest.fixture
def warehouse(engine_url) -> Warehouse:
    return Warehouse(url=engine_url)


@pytest.mark.slow
def test_the_asset_explains_the_first_run_then_attributes_moves_to_new_days(warehouse):
    wh = warehouse
    _publish_run(wh.client, "run-1", 200, [2.0, 1.0, 2.0], NOW - timedelta(hours=1))
    result = materialize([run_changes_asset], resources={"warehouse": wh})
    assert result.success
    first = wh.read_table("predictions", "run_changes")
    assert (first["likely_cause"] == FIRST_RUN).all()
    assert set(first["number"]) == {"attribution_share", "mmm_roas", "forecast_roi", "recommended_spend"}
    assert result.asset_materializations_for_node("run_changes")[0].metadata["summary"].value == FIRST_RUN

    _publish_run(wh.client, "run-2", 203, [3.0, 1.0, 2.0], NOW, shares=(0.4, 0.4, 0.2))
    result = materialize([run_changes_asset], resources={"warehouse": wh})
    assert result.success
    table = wh.read_table("predictions", "run_changes").set_index(["number", "channel"])
    assert len(table) == 3 * 4
    search_roas = table.loc[("mmm_roas", "search")]
    assert search_roas["previous_value"] == 2.0 and search_roas["value"] == 3.0 and search_roas["matters"]
    assert search_roas["likely_cause"].startswith("3 new day(s) of data: the media-mix window moved to")
    share = table.loc[("attribution_share", "social")]
    assert share["model"] == "markov" and share["matters"]
    assert share["likely_cause"] == "3 new day(s) of data (2025-07-20 to 2025-07-22)"
    assert table.loc[("forecast_roi", "tv"), "likely_cause"] == "unchanged"
    moves = result.asset_materializations_for_node("run_changes")[0].metadata["moves"].value
    assert "| mmm_roas" in moves and "3 new day(s) of data" in moves and "forecast_roi" not in moves
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
