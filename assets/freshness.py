"""Freshness: a published table or chart is overdue when older than two schedule intervals.

Dagster's freshness daemon (part of `make dev`) evaluates the policy; the UI shows overdue assets
and /status reports them stale by the same rule.
"""

from dagster import FreshnessPolicy, map_asset_specs

from core.settings import SCHEDULE_INTERVAL, STALE_AFTER

POLICY = FreshnessPolicy.time_window(fail_window=STALE_AFTER, warn_window=STALE_AFTER - SCHEDULE_INTERVAL / 2)


def with_freshness_policy(assets):
    """The same asset definitions, every spec carrying the freshness policy."""
    return map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=POLICY), assets)
