"""Attribution assets: nine models side by side, published to `predictions` with their checks."""

from dagster import AssetExecutionContext, AssetKey, AssetSpec, Config, MetadataValue, multi_asset
from pydantic import Field

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs, invariant_specs, markdown_table
from core import registry
from assets.resources import Warehouse

GROUP = "attribution"
ASSET_NAMES = ("channel_attribution", "campaign_attribution", "campaign_channel_attribution",
               "attribution_model_comparison")
CHECKS = {
    "shares_sum_to_one": "Every model's channel shares sum to 1 (within 1e-9).",
    "credited_conversions_match_observed": "Every model credits exactly the observed converting journeys.",
    "intervals_contain_estimates": "Every share interval contains its point estimate.",
    "no_negative_credit": "No model gives negative credit (none of the nine may).",
}
INPUTS = [AssetKey(["analytics", t]) for t in ("attribution_credit_buckets", "conversion_paths", "fct_campaign_daily", "dim_campaign")]


class AttributionConfig(Config):
    markov_order: int = Field(1, ge=1, le=3, description="Markov chain order (1-3)")
    n_bootstrap: int = Field(200, ge=0, le=5000, description="bootstrap draws for the share intervals")
    ci: float = Field(0.95, gt=0.5, lt=1.0, description="interval coverage")
    seed: int = Field(0, ge=0, description="bootstrap seed")


@multi_asset(
    specs=[
        AssetSpec(name, deps=INPUTS, group_name=GROUP, kinds=python_kinds(), skippable=True,
                  description=asset_description(name, "Attribution at channel/campaign level."),
                  metadata=table_metadata(name))
        for name in ASSET_NAMES
    ],
    check_specs=invariant_specs("channel_attribution", CHECKS) + [s for a in ASSET_NAMES for s in gx_specs(a)],
    can_subset=False,
)
def attribution(context: AssetExecutionContext, config: AttributionConfig, warehouse: Warehouse):
    """First/last/linear/time-decay/U/W/assisted credit from dbt, exact Markov and Shapley in Python.

    When a check fails nothing is published, so the previous tables stay and downstream charts skip.
    """
    from ml.attribution.report import build_attribution_tables, check_attribution

    paths = warehouse.read_table("analytics", "conversion_paths")
    tables = build_attribution_tables(
        warehouse.read_table("analytics", "attribution_credit_buckets"),
        paths,
        warehouse.read_sql(
            "select campaign_id, channel, sum(spend) as spend from analytics.fct_campaign_daily group by campaign_id, channel"
        ),
        warehouse.read_table("analytics", "dim_campaign", ["channel", "campaign_id", "campaign_name"]),
        markov_order=config.markov_order, n_bootstrap=config.n_bootstrap, ci=config.ci, seed=config.seed,
    )
    channels = {"channels": sorted(tables.channel["channel"].unique())}
    frames = tables.frames()
    headline = {
        "models": MetadataValue.text(", ".join(m for m in registry.ATTRIBUTION_MODELS if m in set(tables.channel["model"]))),
        "share_by_model": MetadataValue.md(markdown_table(tables.comparison.set_index("channel"), digits=3)),
    }
    yield from check_and_publish(
        context, warehouse, frames,
        invariants={"channel_attribution": check_attribution(tables, observed_conversions=float(paths["conversions"].sum()))},
        suite_params={name: channels for name in frames if "channel" in registry.table(name).column_names
                      and name != "attribution_model_comparison"},
        metadata={name: headline for name in ASSET_NAMES},
    )
