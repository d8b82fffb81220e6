"""Dagster assets and asset checks, one module per domain; thin wrappers around ml/ and charts/."""

from assets.attribution import attribution

ASSETS: list = [attribution]
ASSET_CHECKS: list = []
