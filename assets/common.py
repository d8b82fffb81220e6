"""Small helpers shared by the asset modules: kinds, table metadata, markdown for the UI."""

from __future__ import annotations

from orchestration.settings import PREDICTIONS_SCHEMA, get_settings


def python_kinds(*extra: str) -> set[str]:
    return {"python", get_settings().warehouse.kind, *extra}


def table_metadata(table: str) -> dict[str, str]:
    return {"dagster/table_name": f"{PREDICTIONS_SCHEMA}.{table}"}


def markdown_table(df, digits: int = 2, max_rows: int = 40) -> str:
    """A DataFrame as a markdown table for the Dagster UI (numbers rounded, long tables cut)."""
    shown = df.head(max_rows).round(digits)
    text = shown.to_markdown()
    if len(df) > max_rows:
        text += f"\n\n… {len(df) - max_rows} more rows"
    return text


def check_results(asset_key: str, outcomes) -> list:
    """Dagster check results for `ml.checks.CheckOutcome`s (error severity)."""
    from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

    return [
        AssetCheckResult(
            asset_key=asset_key, check_name=o.name, passed=o.passed, severity=AssetCheckSeverity.ERROR,
            description=o.description, metadata={"detail": MetadataValue.json(_jsonable(o.detail))},
        )
        for o in outcomes
    ]


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))
