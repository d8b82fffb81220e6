"""The media-mix review gate in the product: a channel the data cannot identify is marked in
mmm_channel_roas, named by a warning check, drawn as such on the ROAS chart and held within a smaller
bound by the budget recommendation (materialized against a real DuckDB warehouse)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from dagster import materialize
from scipy.signal import lfilter

from assets.media_mix import budget_recommendation, media_mix_model
from assets.resources import Warehouse
from charts.plots import PNG_SIGNATURE, ChartContext, mmm_roas_chart

DAYS = 240
# Fast fits: a 150-day window, curves chosen on the whole history, a few bootstrap draws.
MMM_CONFIG = {"lookback_days": 150, "curve_history_days": DAYS, "n_bootstrap": 10}


def _world(kind: str, seed: int = 11) -> dict[str, pd.DataFrame]:
    """Marts for two clean channels (independent, strongly varying spend with dark weeks) and either two
    channels whose budgets are one budget split 60/40 (``collinear``) or one channel that spends the same
    every day (``flat``). Revenue: a baseline plus every channel at ROAS 2 through carryover and saturation."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-06", periods=DAYS, freq="D")

    def varying(scale: float) -> np.ndarray:
        level = np.exp(lfilter([1.0], [1.0, -0.85], rng.normal(0.0, 0.2, DAYS)))
        spend = scale * level * rng.lognormal(0.0, 0.25, DAYS)
        for start in range(int(rng.integers(0, 20)), DAYS, 40):
            spend[start:start + 8] = 0.0
        return spend

    spend = {"radio": varying(900.0), "ooh": varying(600.0)}
    if kind == "collinear":
        shared = varying(1500.0)
        spend["tv_north"] = 0.6 * shared * rng.lognormal(0.0, 0.01, DAYS)
        spend["tv_south"] = 0.4 * shared * rng.lognormal(0.0, 0.01, DAYS)
    else:
        spend["billboard"] = np.full(DAYS, 700.0)

    revenue = 20_000.0 + 800.0 * (dates.day_of_week >= 5)
    for x in spend.values():
        carried = lfilter([0.6], [1.0, -0.4], x)
        saturated = carried / (carried + x.mean())
        revenue = revenue + 2.0 * x.mean() * saturated / saturated.mean()
    revenue = revenue + rng.normal(0.0, 0.01 * revenue.mean(), DAYS)

    channel_daily = pd.DataFrame(
        [(d, c, float(x[i]), 1000, 50) for c, x in spend.items() for i, d in enumerate(dates)],
        columns=["date", "channel", "spend", "impressions", "clicks"],
    )
    channel_daily["ctr"] = channel_daily["clicks"] / channel_daily["impressions"]
    return {
        "fct_channel_daily": channel_daily,
        "fct_revenue_daily": pd.DataFrame({"date": dates, "conversions": 20, "revenue": revenue}),
        "dim_channel": pd.DataFrame({"channel": list(spend)}),
    }


@pytest.fixture(scope="module", params=["collinear", "flat"])
def refreshed(request, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp(request.param) / 'warehouse.duckdb'}"
    wh = Warehouse(url=url)
    wh.publish_tables(_world(request.param), schema="analytics", stamp=False)
    result = materialize(
        [media_mix_model, budget_recommendation], resources={"warehouse": wh},
        run_config={"ops": {"media_mix_model": {"config": MMM_CONFIG}}},
    )
    flagged = {"collinear": {"tv_north": "moves with tv_", "tv_south": "moves with tv_"},
               "flat": {"billboard": "spend hardly varies"}}[request.param]
    return {"kind": request.param, "warehouse": wh, "result": result, "flagged": flagged}


def test_the_channel_table_marks_what_the_data_cannot_identify(refreshed):
    roas = refreshed["warehouse"].read_table("predictions", "mmm_channel_roas").set_index("channel")
    for channel, phrase in refreshed["flagged"].items():
        assert not roas.loc[channel, "identifiable"]
        assert phrase in roas.loc[channel, "review_reason"]
    clean = roas.drop(index=list(refreshed["flagged"]))
    assert sorted(clean.index) == ["ooh", "radio"]
    assert clean["identifiable"].all()
    assert (clean["review_reason"] == "").all()


def test_the_review_figures_are_in_the_diagnostics_and_the_metadata(refreshed):
    diagnostics = refreshed["warehouse"].read_table("predictions", "mmm_diagnostics").set_index("metric")
    channel = next(iter(refreshed["flagged"]))
    assert diagnostics.loc[f"identifiable[{channel}]", "value"] == 0.0
    assert diagnostics.loc[f"identifiable[{channel}]", "detail"] == refreshed["warehouse"].read_table(
        "predictions", "mmm_channel_roas").set_index("channel").loc[channel, "review_reason"]
    assert diagnostics.loc["identifiable[radio]", "value"] == 1.0
    for figure in ("spend_variation", "spend_floor", "max_correlation", "variance_inflation", "spend_days"):
        assert f"{figure}[{channel}]" in diagnostics.index
    assert np.isfinite(diagnostics.loc["review_out_of_sample_error", "value"])
    if refreshed["kind"] == "flat":
        assert diagnostics.loc["spend_variation[billboard]", "value"] == pytest.approx(0.0, abs=1e-9)
    else:
        assert diagnostics.loc["max_correlation[tv_north]", "value"] > 0.8
        assert diagnostics.loc["correlated_with[tv_north]", "detail"] == "tv_south"

    metadata = refreshed["result"].asset_materializations_for_node("media_mix_model")[0].metadata
    assert set(metadata["not_identifiable"].value) == set(refreshed["flagged"])
    assert "spend_variation" in metadata["review"].value and channel in metadata["review"].value


def test_the_warning_check_fails_with_severity_warn_naming_each_channel(refreshed):
    result = refreshed["result"]
    assert result.success  # a warning stops nothing
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "mmm_channels_identifiable")
    assert not check.passed
    assert check.severity.value == "WARN"
    for channel, phrase in refreshed["flagged"].items():
        assert f"{channel}: " in check.description
        assert phrase in check.description
    assert "radio" not in check.description and "ooh:" not in check.description
    blocking = [e.check_name for e in result.get_asset_check_evaluations()
                if e.check_name != "mmm_channels_identifiable" and not e.passed]
    assert blocking == []


def test_the_budget_keeps_a_channel_that_is_not_identifiable_within_the_smaller_bound(refreshed):
    budget = refreshed["warehouse"].read_table("predictions", "ml_budget_recommendation").set_index("channel")
    for channel in refreshed["flagged"]:
        row = budget.loc[channel]
        assert abs(row["change_pct"]) <= 10.0 + 1e-6, row.to_dict()
        assert row["reason"].startswith("not identifiable, so held within ±10% of current spend: ")
        assert "[review: " in row["reason"] and refreshed["flagged"][channel] in row["reason"]
    for channel in ("radio", "ooh"):
        assert "not identifiable" not in budget.loc[channel, "reason"]
        assert abs(budget.loc[channel, "change_pct"]) <= 30.0 + 1e-6
    assert "cannot identify held within a smaller bound" in budget.loc["TOTAL", "reason"]
    metadata = refreshed["result"].asset_materializations_for_node("budget_recommendation")[0].metadata
    assert sorted(metadata["not_identifiable"].value) == sorted(refreshed["flagged"])


def test_the_budget_bound_bites_where_the_normal_one_would_move_more(refreshed):
    """Without the gate the optimizer would cut or raise the flagged channel further than 10%."""
    from ml.budget import recommend_budget
    from ml.mmm import ResponseModel

    wh = refreshed["warehouse"]
    model = ResponseModel.from_parameters(wh.read_table("predictions", "mmm_response_parameters"))
    free = recommend_budget(model).table.set_index("channel")
    published = wh.read_table("predictions", "ml_budget_recommendation").set_index("channel")
    moved = [c for c in refreshed["flagged"] if abs(free.loc[c, "change_pct"]) > 10.0 + 1e-6]
    assert moved, free["change_pct"].to_dict()
    for channel in moved:
        assert abs(published.loc[channel, "change_pct"]) == pytest.approx(10.0, abs=1e-4)


def test_the_roas_chart_draws_the_published_table_with_its_verdict(refreshed):
    table = refreshed["warehouse"].read_table("predictions", "mmm_channel_roas")
    png = mmm_roas_chart(table, ChartContext(None, None, datetime(2025, 9, 1), "run"))
    assert png.startswith(PNG_SIGNATURE)


def _materialize_with_lift_tests(tmp_path, body: str):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    wh = Warehouse(url=url)
    wh.publish_tables(_world("flat"), schema="analytics", stamp=False)
    path = tmp_path / "lift_tests.csv"
    path.write_text(body)
    result = materialize(
        [media_mix_model], resources={"warehouse": wh}, raise_on_error=False,
        run_config={"ops": {"media_mix_model": {"config": {**MMM_CONFIG, "lift_tests_file": str(path)}}}},
    )
    return wh, result


def test_a_lift_test_file_calibrates_the_channel_the_data_cannot_identify(tmp_path):
    """billboard spends the same every day (true ROAS 2): a lift test measuring 2.0 +- 0.2 answers what its
    spend cannot, so the gate passes it and its ROAS and interval follow the test."""
    wh, result = _materialize_with_lift_tests(
        tmp_path, "channel,start,end,roas,roas_se\nbillboard,2025-07-01,2025-07-28,2.0,0.2\n")
    assert result.success
    roas = wh.read_table("predictions", "mmm_channel_roas").set_index("channel")
    row = roas.loc["billboard"]
    assert "spend hardly varies" not in row["review_reason"]
    assert abs(row["roas"] / 2.0 - 1) < 0.2 and row["roas_lower"] <= 2.0 <= row["roas_upper"]
    assert row["roas_upper"] - row["roas_lower"] < 2.0
    diagnostics = wh.read_table("predictions", "mmm_diagnostics").set_index("metric")
    assert diagnostics.loc["n_lift_tests", "value"] == 1.0


def test_a_bad_lift_test_file_fails_the_model_naming_file_line_and_column(tmp_path):
    _, result = _materialize_with_lift_tests(
        tmp_path, "channel,start,end,roas,roas_se\nbillboard,2025-07-01,2025-07-28,2.0,-1\n")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "lift_tests.csv: line 2: column 'roas_se': '-1' is not a number > 0" in str(
        failure.event_specific_data.error)
