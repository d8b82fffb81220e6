"""The one check-then-publish path of the Python assets, and the check specs it reports on.

Every asset hands its frames here: one UTC stamp for the run, the registry's column list, the asset's
invariants and each table's great-expectations suite on the rows about to be published, then all
tables in one transaction, or a `Failure` naming the failed checks with the previous tables kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from core import registry
from core.checks import CheckOutcome
from assets.resources import Warehouse


def gx_check(table: str, df, **params) -> CheckOutcome:
    """The table's great-expectations suite (core.quality), run in-process on `df`."""
    from core.quality import validate_table

    result = validate_table(table, df, **params)
    return CheckOutcome(f"gx_{table}", result.passed, result.summary()[:1000], result.metadata())


def gx_specs(asset: str) -> list[AssetCheckSpec]:
    """One blocking check per registry table the asset publishes: its suite, run before publication."""
    return [
        AssetCheckSpec(
            t.check_name, asset=asset, blocking=True,
            description=f"great-expectations suite for {t.qualified_name}, run on the rows before they are "
            "published: a failure keeps the previous table.",
        )
        for t in registry.tables_of_asset(asset)
    ]


def invariant_specs(asset: str, checks: Mapping[str, str]) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(name, asset=asset, description=text, blocking=True) for name, text in checks.items()]


def check_results(asset: str, outcomes: Iterable[CheckOutcome]) -> list[AssetCheckResult]:
    """Dagster check results (error severity) for CheckOutcomes of `asset`."""
    results = []
    for o in outcomes:
        metadata: dict[str, Any] = {"detail": MetadataValue.json(_jsonable(o.detail))}
        if o.detail.get("failures_markdown"):  # GX: failing expectations with sample bad values
            metadata["failures"] = MetadataValue.md(o.detail["failures_markdown"])
        results.append(AssetCheckResult(
            asset_key=asset, check_name=o.name, passed=o.passed, severity=AssetCheckSeverity.ERROR,
            description=o.description, metadata=metadata,
        ))
    return results


def check_and_publish(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    frames: Mapping[str, Any],
    *,
    invariants: Mapping[str, list[CheckOutcome]] | None = None,
    suite_params: Mapping[str, Mapping[str, Any]] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Check every frame, then publish them all in one transaction, or stop.

    frames: registry table name -> rows (without run_id/generated_at).
    invariants: asset name -> the asset's own CheckOutcomes (shares sum to 1, intervals contain...).
    suite_params: table -> parameters of its GX suite (channels, horizon_days).
    metadata: asset name -> extra metadata for its materialization.

    Yields the check results of every asset, then one MaterializeResult per asset that owns a
    published table; raises `Failure` (after yielding the results) when any check failed.
    """
    generated_at = datetime.now(timezone.utc)
    stamp = {"run_id": context.run_id, "generated_at": generated_at.replace(tzinfo=None)}
    conformed = {name: registry.conform(name, df) for name, df in frames.items()}
    outcomes: dict[str, list[CheckOutcome]] = {asset: list(found) for asset, found in (invariants or {}).items()}
    for name, df in conformed.items():
        params = dict((suite_params or {}).get(name, {}))
        outcomes.setdefault(registry.table(name).asset, []).append(gx_check(name, df.assign(**stamp), **params))
    for asset, found in outcomes.items():
        yield from check_results(asset, found)
    failed = [o.name for found in outcomes.values() for o in found if not o.passed]
    if failed:
        raise Failure(
            f"{len(failed)} check(s) failed ({', '.join(failed)}): nothing was published and the previous "
            f"tables {', '.join(registry.table(n).qualified_name for n in conformed)} are kept",
            metadata={"failed_checks": MetadataValue.json(failed)},
        )
    published = warehouse.publish_tables(conformed, run_id=context.run_id, generated_at=generated_at)
    by_asset: dict[str, dict[str, Any]] = {}
    for table in published:
        asset = registry.table(table.table).asset
        entry = by_asset.setdefault(asset, {"dagster/row_count": table.rows})
        entry[f"rows/{table.table}"] = table.rows
    for asset, entry in by_asset.items():
        entry["generated_at"] = MetadataValue.timestamp(generated_at.timestamp())
        yield MaterializeResult(asset_key=asset, metadata={**entry, **dict((metadata or {}).get(asset, {}))})


def markdown_table(df, digits: int = 2, max_rows: int = 40) -> str:
    """A DataFrame as a markdown table for the Dagster UI (numbers rounded, long tables cut)."""
    shown = df.head(max_rows).round(digits)
    text = shown.to_markdown()
    if len(df) > max_rows:
        text += f"\n\n… {len(df) - max_rows} more rows"
    return text


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))
