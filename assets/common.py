"""Spec helpers shared by the asset modules: kinds and table metadata, read from settings and the registry."""

from __future__ import annotations

from core import registry
from core.settings import get_settings


def python_kinds(*extra: str) -> set[str]:
    return {"python", get_settings().warehouse.kind, *extra}


def table_metadata(table: str) -> dict[str, str]:
    spec = registry.table(table)
    return {"dagster/table_name": spec.qualified_name, "grain": spec.grain}


def asset_description(asset: str, summary: str) -> str:
    """The asset's own summary plus the registry tables it publishes, with what a row is."""
    tables = "; ".join(f"{t.qualified_name} ({t.grain})" for t in registry.tables_of_asset(asset))
    return f"{summary} Publishes {tables}." if tables else summary
