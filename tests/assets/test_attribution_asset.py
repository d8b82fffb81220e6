"""The attribution asset on crafted warehouse inputs: what it publishes, and what a failed check keeps."""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, materialize

from assets.attribution import attribution
from ml.attribution.report import ALL_MODELS, RULE_BASED_MODELS, build_attribution_tables, check_attribution
from assets.resources import Warehouse

CHANNELS = ["search", "social", "email"]
CAMPAIGNS = {"c_search": "search", "c_social": "social", "c_email": "email", "c_search2": "search"}


def _inputs(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for model in RULE_BASED_MODELS:
        for bucket in range(40):
            for campaign, channel in CAMPAIGNS.items():
                conv = float(rng.integers(1, 20))
                rows.append((model, bucket, campaign, channel, conv, conv * 80.0, int(conv)))
    buckets = pd.DataFrame(rows, columns=["model", "bucket", "campaign_id", "channel", "conversions", "revenue", "journeys"])
    # Every rule-based model credits the same journeys: make totals per model equal.
    totals = buckets.groupby("model")["conversions"].transform("sum")
    target = buckets[buckets["model"] == "linear"]["conversions"].sum()
    buckets["conversions"] *= target / totals
    paths = pd.DataFrame(
        {
            "path": ["search", "social > search", "email > social > search", "email", "social"],
            "conversions": [0, 0, 0, 0, 0],
            "conversion_value": [0.0] * 5,
            "nulls": [400, 300, 200, 150, 500],
        }
    )
    shares = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
    paths["conversions"] = np.floor(shares * target).astype(int)
    paths.loc[0, "conversions"] += int(round(target)) - paths["conversions"].sum()
    paths["conversion_value"] = paths["conversions"] * 80.0
    spend = pd.DataFrame({"campaign_id": list(CAMPAIGNS), "channel": list(CAMPAIGNS.values()), "spend": [1000.0, 800, 100, 300]})
    names = pd.DataFrame({"channel": list(CAMPAIGNS.values()), "campaign_id": list(CAMPAIGNS),
                          "campaign_name": [c.upper() for c in CAMPAIGNS]})
    return {"buckets": buckets, "paths": paths, "spend": spend, "names": names}


def _publish_inputs(url: str, inputs: dict[str, pd.DataFrame]) -> Warehouse:
    wh = Warehouse(url=url)
    daily = inputs["spend"].assign(date=pd.Timestamp("2025-01-01"))
    wh.publish_tables(
        {
            "attribution_credit_buckets": inputs["buckets"],
            "conversion_paths": inputs["paths"],
            "fct_campaign_daily": daily,
            "dim_campaign": inputs["names"],
        },
        schema="analytics", stamp=False,
    )
    return wh


def test_tables_cover_every_model_and_keep_their_invariants():
    inp = _inputs()
    tables = build_attribution_tables(inp["buckets"], inp["paths"], inp["spend"], inp["names"], n_bootstrap=100)
    assert sorted(set(tables.channel["model"])) == sorted(ALL_MODELS)
    assert len(tables.channel) == len(ALL_MODELS) * len(CHANNELS)
    assert set(tables.campaign["campaign_id"]) == set(CAMPAIGNS)
    assert tables.campaign.loc[tables.campaign["campaign_id"] == "c_search2", "campaign_name"].iloc[0] == "C_SEARCH2"
    assert list(tables.comparison.columns) == ["channel", *ALL_MODELS]
    for model, part in tables.campaign.groupby("model"):
        assert part["share"].sum() == pytest.approx(1.0, abs=1e-9), model
    roas = tables.channel.set_index(["model", "channel"]).loc[("linear", "search")]
    assert roas["attributed_roas"] == pytest.approx(roas["attributed_revenue"] / 1300.0)
    outcomes = check_attribution(tables, observed_conversions=float(inp["paths"]["conversions"].sum()))
    assert [o.name for o in outcomes if not o.passed] == []


def test_campaigns_sharing_an_id_on_two_channels_stay_apart():
    """Platforms number campaigns independently: ('search', 'pai-00') and ('social', 'pai-00') are two campaigns."""
    inp = _inputs()
    shared = {"c_search": "pai-00", "c_social": "pai-00"}
    inp["buckets"]["campaign_id"] = inp["buckets"]["campaign_id"].replace(shared)
    inp["spend"]["campaign_id"] = inp["spend"]["campaign_id"].replace(shared)
    inp["names"]["campaign_id"] = inp["names"]["campaign_id"].replace(shared)
    tables = build_attribution_tables(inp["buckets"], inp["paths"], inp["spend"], inp["names"], n_bootstrap=20)
    linear = tables.campaign[tables.campaign["model"] == "linear"].set_index(["channel", "campaign_id"])
    assert linear.index.is_unique and len(linear) == len(CAMPAIGNS)
    assert linear.loc[("search", "pai-00"), "spend"] == 1000.0
    assert linear.loc[("social", "pai-00"), "spend"] == 800.0
    assert linear.loc[("search", "pai-00"), "campaign_name"] == "C_SEARCH"
    assert linear.loc[("social", "pai-00"), "campaign_name"] == "C_SOCIAL"
    for model, part in tables.campaign.groupby("model"):
        assert part["share"].sum() == pytest.approx(1.0, abs=1e-9), model
        assert not part.duplicated(["channel", "campaign_id"]).any(), model


@pytest.mark.parametrize("untagged", ["some", "all"])
def test_touches_without_a_campaign_keep_the_campaign_tables_whole(untagged):
    """campaign_id is optional on touchpoints: a campaign-less touch still counts in its channel, and each
    channel's campaigns add up to the channel (by tagged credit, else by spend)."""
    inp = _inputs()
    buckets = inp["buckets"]
    if untagged == "all":
        buckets["campaign_id"] = None
    else:  # a third of the rows, and every email touch
        buckets.loc[(buckets["bucket"] % 3 == 0) | (buckets["channel"] == "email"), "campaign_id"] = None
    tables = build_attribution_tables(buckets, inp["paths"], inp["spend"], inp["names"], n_bootstrap=50)
    channel = tables.channel.set_index(["model", "channel"])
    summed = tables.campaign.groupby(["model", "channel"])[["attributed_conversions", "attributed_revenue", "share"]].sum()
    for key, row in summed.iterrows():
        for column in row.index:
            assert row[column] == pytest.approx(channel.loc[key, column], rel=1e-9), (key, column)
    for model, part in tables.campaign.groupby("model"):
        assert part["share"].sum() == pytest.approx(1.0, abs=1e-9), model
    # email has no campaign on any touch: split by spend (its one campaign takes it all).
    email = tables.campaign[(tables.campaign["model"] == "linear") & (tables.campaign["channel"] == "email")]
    assert email["campaign_id"].tolist() == ["c_email"]
    search = tables.campaign[(tables.campaign["model"] == "first_touch") & (tables.campaign["channel"] == "search")]
    if untagged == "all":  # 1000 vs 300 of spend
        share = search.set_index("campaign_id")["attributed_conversions"]
        assert share["c_search"] / share.sum() == pytest.approx(1000 / 1300)
    outcomes = check_attribution(tables, observed_conversions=float(inp["paths"]["conversions"].sum()))
    assert [o.name for o in outcomes if not o.passed] == []


def test_each_check_fails_on_the_input_it_guards():
    inp = _inputs()
    observed = float(inp["paths"]["conversions"].sum())
    broken = inp["buckets"].copy()
    broken.loc[broken["model"] == "assisted", "conversions"] *= 1.1  # credits more than observed
    tables = build_attribution_tables(broken, inp["paths"], inp["spend"], n_bootstrap=50)
    failed = {o.name for o in check_attribution(tables, observed) if not o.passed}
    assert failed == {"credited_conversions_match_observed"}

    negative = inp["buckets"].copy()
    idx = negative.index[(negative["model"] == "linear") & (negative["channel"] == "email")]
    negative.loc[idx, "conversions"] = -1.0
    tables = build_attribution_tables(negative, inp["paths"], inp["spend"], n_bootstrap=50)
    failed = {o.name for o in check_attribution(tables, observed) if not o.passed}
    assert "no_negative_credit" in failed

    tables = build_attribution_tables(inp["buckets"], inp["paths"], inp["spend"], n_bootstrap=50)
    tables.channel.loc[0, "share_upper"] = tables.channel.loc[0, "share"] - 0.01
    failed = {o.name for o in check_attribution(tables, observed) if not o.passed}
    assert failed == {"intervals_contain_estimates"}


def test_asset_publishes_four_tables_and_a_failed_check_keeps_them(duckdb_url):
    inp = _inputs()
    wh = _publish_inputs(duckdb_url, inp)
    result = materialize([attribution], resources={"warehouse": wh}, raise_on_error=False)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    counts = wh.row_counts("predictions")
    assert counts["channel_attribution"] == len(ALL_MODELS) * len(CHANNELS)
    assert set(counts) == {"channel_attribution", "campaign_attribution", "campaign_channel_attribution",
                           "attribution_model_comparison"}
    first_run = set(wh.read_table("predictions", "channel_attribution")["run_id"])

    broken = inp["buckets"].copy()
    broken.loc[broken["model"] == "w_shaped", "conversions"] *= 2
    _publish_inputs(duckdb_url, {**inp, "buckets": broken})
    result = materialize([attribution], resources={"warehouse": wh}, raise_on_error=False)
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == ["credited_conversions_match_observed"]
    assert not result.get_asset_materialization_events()
    assert set(wh.read_table("predictions", "channel_attribution")["run_id"]) == first_run
    assert wh.row_counts("predictions")["channel_attribution"] == len(ALL_MODELS) * len(CHANNELS)


def test_invalid_config_is_rejected_before_anything_runs(duckdb_url):
    wh = _publish_inputs(duckdb_url, _inputs())
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"markov_order\n.*less than or equal to 3"):
        materialize([attribution], resources={"warehouse": wh},
                    run_config={"ops": {"attribution": {"config": {"markov_order": 5}}}})
    assert wh.row_counts("predictions") == {}
    assert AssetKey("channel_attribution") in attribution.keys
