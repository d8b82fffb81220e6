"""Attribution assets: nine models side by side, published to `predictions` with their checks."""

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

import pandas as pd

from assets.common import check_results, gx_check, gx_spec, markdown_table, python_kinds, table_metadata
from orchestration.warehouse import Warehouse

GROUP = "attribution"
TABLES = {
    "channel_attribution": "One row per model and channel: credited conversions and revenue, share with its "
    "95% bootstrap interval, spend and attributed ROAS.",
    "campaign_attribution": "One row per model and campaign (the same measures).",
    "campaign_channel_attribution": "One row per model, campaign and channel (the campaign-level play view).",
    "attribution_model_comparison": "Channels as rows, one share column per model, ready for BI.",
}
CHECKS = {
    "shares_sum_to_one": "Every model's channel shares sum to 1 (within 1e-9).",
    "credited_conversions_match_observed": "Every model credits exactly the observed converting journeys.",
    "intervals_contain_estimates": "Every share interval contains its point estimate.",
    "no_negative_credit": "No model gives negative credit (none of the nine may).",
}
GX_TABLES = ("channel_attribution", "campaign_attribution", "campaign_channel_attribution")
INPUTS = [AssetKey(["analytics", t]) for t in ("attribution_credit_buckets", "conversion_paths", "fct_campaign_daily", "dim_campaign")]

class AttributionConfig(Config):
    markov_order: int = Field(1, ge=1, le=3, description="Markov chain order (1-3)")
    n_bootstrap: int = Field(200, ge=0, le=5000, description="bootstrap draws for the share intervals")
    ci: float = Field(0.95, gt=0.5, lt=1.0, description="interval coverage")
    seed: int = Field(0, ge=0, description="bootstrap seed")

@multi_asset(
    specs=[
        AssetSpec(name, deps=INPUTS, group_name=GROUP, description=text, kinds=python_kinds(),
                  skippable=True, metadata=table_metadata(name))
        for name, text in TABLES.items()
    ],
    check_specs=[AssetCheckSpec(name, asset="channel_attribution", description=text, blocking=True)
                 for name, text in CHECKS.items()]
    + [gx_spec(table, asset=table) for table in GX_TABLES],
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
        warehouse.read_table("analytics", "dim_campaign", ["campaign_id", "campaign_name"]),
        markov_order=config.markov_order, n_bootstrap=config.n_bootstrap, ci=config.ci, seed=config.seed,
    )
    outcomes = check_attribution(tables, observed_conversions=float(paths["conversions"].sum()))
    frames = tables.frames()
    gx = {t: gx_check(t, frames[t].assign(run_id=context.run_id, generated_at=pd.Timestamp.now()),
                      channels=sorted(tables.channel["channel"].unique())) for t in GX_TABLES}
    if all(o.passed for o in [*outcomes, *gx.values()]):
        published = warehouse.publish_tables(tables.frames(), run_id=context.run_id)
        headline = tables.comparison.set_index("channel")
        for table in published:
            yield MaterializeResult(
                asset_key=table.table,
                metadata={
                    "dagster/row_count": table.rows,
                    "models": MetadataValue.text(", ".join(sorted(set(tables.channel["model"])))),
                    "share_by_model": MetadataValue.md(markdown_table(headline, digits=3)),
                },
            )
    yield from check_results("channel_attribution", outcomes)
    for table, outcome in gx.items():
        yield from check_results(table, [outcome])
