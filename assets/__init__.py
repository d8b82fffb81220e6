"""Dagster assets and asset checks, one module per domain; thin wrappers around ml/ and charts/."""

ASSETS: list = []
ASSET_CHECKS: list = []
