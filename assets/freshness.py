"""Freshness: a published table or chart is overdue when older than two schedule intervals.

Dagster's freshness daemon (part of `make dev`) evaluates the policy; the UI shows overdue assets
and /status reports them stale by the same rule.
"""

from datetime import timedelta

from dagster import FreshnessPolicy, map_asset_specs

STALE_AFTER = timedelta(minutes=60)  # two runs of the */30 schedule
POLICY = FreshnessPolicy.time_window(fail_window=STALE_AFTER, warn_window=timedelta(minutes=45))


def with_freshness_policy(assets):
    """The same asset definitions, every spec carrying the freshness policy."""
    return map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=POLICY), assets)
