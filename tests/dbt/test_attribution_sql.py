"""The dbt attribution models built on the demo data on DuckDB and PostgreSQL, checked against ml.attribution.

Runs the real `dbt build` in a subprocess against a fresh warehouse per engine; a few minutes in all.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from ml.attribution import heuristics
from core.settings import DBT_DIR, WarehouseUrl
from assets.resources import Warehouse
from tests.conftest import load_demo

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))
# conversion_paths feeds ml.attribution.
SELECT = ["+attribution", "conversion_paths"]
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "w_shaped", "assisted")
BUCKETS = int(yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())["vars"]["attribution_bootstrap_buckets"])


def run_dbt(url: str, target_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the dbt CLI on the project against the warehouse at `url`, output in `target_path`."""
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    return subprocess.run(
        [DBT, *args, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR), "--target-path", str(target_path)],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=900,
    )


def assert_dbt_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"dbt failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


def expected_bucket(journey_id: str, buckets: int = BUCKETS) -> int:
    """The bucket the SQL macro gives: the first 60 bits of the MD5 hex digest, modulo `buckets`."""
    return int(hashlib.md5(journey_id.encode()).hexdigest()[:15], 16) % buckets


def channel_totals(credit: pd.DataFrame) -> pd.DataFrame:
    return credit.groupby(["model", "channel"], as_index=False)[["credit", "credited_revenue"]].sum()


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory, demo_data):
    """The demo data loaded into a fresh warehouse and `dbt build --select +attribution` run on it."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('attr_duck') / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    load_demo(url, demo_data)
    target = tmp_path_factory.mktemp(f"dbt_target_{request.param}")
    assert_dbt_ok(run_dbt(url, target, "build", "--select", *SELECT))
    wh = Warehouse(url=url)
    return {
        "url": url,
        "target": target,
        "credit": wh.read_table("analytics", "touchpoint_credit"),
        "buckets": wh.read_table("analytics", "attribution_credit_buckets"),
        "paths": wh.read_table("analytics", "conversion_paths"),
    }


def test_credit_sums_to_one_per_conversion_and_model(built):
    credit = built["credit"]
    assert set(credit["model"]) == set(MODELS)
    assert credit["credit"].between(0, 1).all()
    sums = credit.groupby(["model", "conversion_id"])["credit"].sum()
    assert np.abs(sums - 1).max() < 1e-9


def test_every_converting_journey_is_credited_once_per_model(built):
    credit, paths = built["credit"], built["paths"]
    converting_journeys = int(paths["conversions"].sum())
    converting_revenue = float(paths["conversion_value"].sum())
    assert converting_journeys > 1000  # the demo set is big enough for the comparison to mean something
    per_model = credit.groupby("model").agg(
        conversions=("credit", "sum"), revenue=("credited_revenue", "sum"), distinct=("conversion_id", "nunique"),
    )
    for model, row in per_model.iterrows():
        assert row["distinct"] == converting_journeys, model
        assert row["conversions"] == pytest.approx(converting_journeys, abs=1e-9), model
        assert row["revenue"] == pytest.approx(converting_revenue, rel=1e-9), model


def test_first_last_and_linear_agree_with_ml_heuristics(built):
    paths = built["paths"].rename(
        columns={"conversions": "total_conversions", "conversion_value": "total_conversion_value", "nulls": "total_null"}
    )
    expected = heuristics(paths[["path", "total_conversions", "total_conversion_value", "total_null"]])
    sql = channel_totals(built["credit"])
    merged = expected.merge(sql, on=["model", "channel"], how="left").fillna({"credit": 0.0, "credited_revenue": 0.0})
    assert set(merged["model"]) == {"first_touch", "last_touch", "linear"}
    assert len(merged) == len(expected)
    np.testing.assert_allclose(merged["credit"], merged["attributed_conversions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(merged["credited_revenue"], merged["attributed_value"], rtol=1e-9, atol=1e-9)
    # The SQL credits no channel that the path table does not know.
    assert set(sql.loc[sql["model"].isin(["first_touch", "last_touch", "linear"]), "channel"]) <= set(expected["channel"])


def test_models_disagree_where_their_rules_do(built):
    totals = channel_totals(built["credit"]).pivot(index="channel", columns="model", values="credit")
    for a, b in [("first_touch", "last_touch"), ("linear", "time_decay"), ("position_based", "w_shaped"),
                 ("linear", "assisted")]:
        assert np.abs(totals[a] - totals[b]).max() > 1e-3, (a, b)


def test_buckets_hold_each_journey_once_and_match_the_touch_level_credit(built):
    credit, buckets = built["credit"], built["buckets"]
    assert buckets["bucket"].between(0, BUCKETS - 1).all()
    credited = credit[credit["credit"] > 0].assign(bucket=lambda d: d["journey_id"].map(expected_bucket))
    keys = ["model", "bucket", "campaign_id", "channel"]
    expected = credited.groupby(keys, as_index=False, dropna=False).agg(
        conversions=("credit", "sum"), revenue=("credited_revenue", "sum"), journeys=("conversion_id", "nunique"),
    )
    merged = expected.merge(buckets, on=keys, how="outer", suffixes=("_expected", ""), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    np.testing.assert_allclose(merged["conversions"], merged["conversions_expected"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged["revenue"], merged["revenue_expected"], rtol=1e-12, atol=1e-9)
    assert (merged["journeys"] == merged["journeys_expected"]).all()
    # Under first touch each conversion has one credited touch, so journeys add up to conversions.
    first = buckets[buckets["model"] == "first_touch"]
    assert first["journeys"].sum() == credit["conversion_id"].nunique()


def test_bucket_formula_spreads_journey_ids_uniformly():
    ids = [f"c-{n}" for n in range(200_000)]
    counts = np.bincount([expected_bucket(i) for i in ids], minlength=BUCKETS)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert counts.min() > 0.8 * len(ids) / BUCKETS


def test_vars_change_the_credits(built, tmp_path):
    result = run_dbt(
        built["url"], built["target"], "run", "--select", "touchpoint_credit",
        "--vars", "{attribution_time_decay_half_life_days: 1, attribution_position_first_weight: 0.6}",
    )
    assert_dbt_ok(result)
    after = Warehouse(url=built["url"]).read_table("analytics", "touchpoint_credit")
    keys = ["model", "journey_id", "touchpoint_id"]
    merged = built["credit"].merge(after[[*keys, "credit"]], on=keys, suffixes=("_default", "_changed"))
    assert len(merged) == len(built["credit"]) == len(after)
    moved = merged.assign(diff=(merged["credit_changed"] - merged["credit_default"]).abs()).groupby("model")["diff"].max()
    assert moved["time_decay"] > 0.05
    assert moved["position_based"] > 0.05
    assert moved.drop(["time_decay", "position_based"]).max() == 0
    # A shorter half-life moves credit towards the touches closest to the conversion.
    decay = merged[(merged["model"] == "time_decay") & (merged["touch_index"] == merged["touch_count"])]
    multi = decay[decay["touch_count"] > 1]
    assert (multi["credit_changed"] >= multi["credit_default"] - 1e-12).all()
    assert (multi["credit_changed"] > multi["credit_default"]).mean() > 0.5
    sums = after.groupby(["model", "conversion_id"])["credit"].sum()
    assert np.abs(sums - 1).max() < 1e-9


@pytest.mark.parametrize(
    ("bad_vars", "message"),
    [
        ("{attribution_position_first_weight: 0.7}", "attribution_position_last_weight must be <= 1"),
        ("{attribution_bootstrap_buckets: 2.5}", "attribution_bootstrap_buckets must be a whole number"),
    ],
)
def test_bad_vars_stop_dbt_with_a_message_that_names_them(bad_vars, message, tmp_path):
    url = f"duckdb:///{tmp_path / 'unused.duckdb'}"
    result = run_dbt(url, tmp_path / "target", "parse", "--vars", bad_vars)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_credit_sums_data_test_fails_on_a_wrong_sum_and_on_a_missing_model(built, tmp_path):
    """The dbt data test `touchpoint_credit_sums_to_one` finds a (journey, model) whose credit is off and a
    converting journey one model gave no rows; the table is put back afterwards for the other tests."""
    client = Warehouse(url=built["url"]).client
    credit = built["credit"]
    first, second = sorted(credit["journey_id"].unique())[:2]
    with client.write_transaction("analytics") as con:
        client.execute(con, "CREATE TABLE analytics.touchpoint_credit_kept AS SELECT * FROM analytics.touchpoint_credit")
        client.execute(con, "UPDATE analytics.touchpoint_credit SET credit = credit + 0.01 "
                            f"WHERE model = 'linear' AND journey_id = '{first}'")
        client.execute(con, f"DELETE FROM analytics.touchpoint_credit WHERE model = 'w_shaped' AND journey_id = '{second}'")
    try:
        result = run_dbt(built["url"], tmp_path / "target", "test", "--select", "touchpoint_credit_sums_to_one")
        assert result.returncode != 0, f"the data test passed on corrupted credit:\n{result.stdout[-3000:]}"
        assert "Got 2 results" in result.stdout, result.stdout[-3000:]
    finally:
        with client.write_transaction("analytics") as con:
            client.execute(con, "DELETE FROM analytics.touchpoint_credit")
            client.execute(con, "INSERT INTO analytics.touchpoint_credit SELECT * FROM analytics.touchpoint_credit_kept")
            client.execute(con, "DROP TABLE analytics.touchpoint_credit_kept")
    assert_dbt_ok(run_dbt(built["url"], tmp_path / "target", "test", "--select", "touchpoint_credit_sums_to_one"))
