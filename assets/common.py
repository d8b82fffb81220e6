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

    results = []
    for o in outcomes:
        metadata = {"detail": MetadataValue.json(_jsonable(o.detail))}
        if o.detail.get("failures_markdown"):  # GX: failing expectations with sample bad values
            metadata["failures"] = MetadataValue.md(o.detail["failures_markdown"])
        results.append(AssetCheckResult(
            asset_key=asset_key, check_name=o.name, passed=o.passed, severity=AssetCheckSeverity.ERROR,
            description=o.description, metadata=metadata,
        ))
    return results


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))


def gx_check(table: str, df, **params):
    """The table's great-expectations suite, run in-process on the rows about to be published."""
    from assets.quality import validate_table
    from ml.checks import CheckOutcome

    result = validate_table(table, df, **params)
    return CheckOutcome(f"gx_{table}", result.passed, result.summary()[:1000], result.metadata())


def gx_spec(table: str, asset: str):
    from dagster import AssetCheckSpec

    return AssetCheckSpec(
        f"gx_{table}", asset=asset, blocking=True,
        description=f"great-expectations suite for predictions.{table}, run before publication: "
        "a failure keeps the previous table.",
    )
