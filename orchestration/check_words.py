"""A failed dbt test in words: what the data breaks, the rule, and the fix, for the refresh summary.

The words come from where the test is declared (`description:` is the rule, `config: meta:` may add
`violation` and `fix`); tests declared without them get a generic sentence built from the test's kind.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping


def _table(node: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    attached = node.get("attached_node")
    if attached is None:
        sources = [s for s in node.get("depends_on", {}).get("nodes", []) if s.startswith("source.")]
        attached = sources[0] if sources else None
    parent = manifest.get("nodes", {}).get(attached) or manifest.get("sources", {}).get(attached) or {}
    return parent.get("name") or (attached or "the table").rsplit(".", 1)[-1]


def _generic(test: str, kwargs: Mapping[str, Any], column: str | None, rows: str) -> tuple[str, str, str]:
    """(violation, rule, fix) for the project's generic tests, from the test's arguments."""
    col = column or kwargs.get("column_name") or "a column"
    if test == "not_null":
        return f"{rows} rows with no {col}", f"every row needs a {col}", f"fill in {col} in the export"
    if test == "unique":
        return (f"{rows} values of {col} that appear on more than one row", f"each {col} may appear once",
                "remove the repeated rows from the export")
    if test == "unique_combination":
        cols = ", ".join(kwargs.get("combination_of_columns", []))
        return (f"{rows} ({cols}) combinations that appear on more than one row",
                f"each ({cols}) may appear on one row", f"aggregate the export by {cols}")
    if test == "non_negative":
        return f"{rows} rows with a negative {col}", f"{col} is never negative", "correct or remove those rows"
    if test == "accepted_values":
        values = ", ".join(str(v) for v in kwargs.get("values", []))
        return f"{rows} rows whose {col} is not one of {values}", f"{col} is one of {values}", f"map {col} to one of them"
    if test == "relationships":
        to = str(kwargs.get("to", "")).replace("ref('", "").replace("')", "").replace("source('", "")
        field = kwargs.get("field", col)
        return (f"{rows} rows whose {col} is not a {field} of {to}", f"every {col} must be a known {field} of {to}",
                f"add the missing {field} values to {to} or correct {col}")
    if test == "expression_is_true":
        expr = kwargs.get("expression", "")
        return f"{rows} rows where `{expr}` is not true", f"`{expr}` holds on every row", "correct those rows"
    if test == "no_date_gaps":
        return (f"{rows} missing days", f"{col} has no missing day between the first and the last",
                "export the missing days (days without delivery as zero rows)")
    return (f"{rows} rows that fail the test `{test}`", f"the data passes `{test}`",
            "see the failing rows with `dbt test --select <test name>` in dbt_project/")


def explain_test(manifest: Mapping[str, Any], unique_id: str, failed_rows: int | None) -> str:
    """'<table> has <violation>; <rule>: <fix>' for the dbt test `unique_id`; '' when not a test."""
    node = manifest.get("nodes", {}).get(unique_id)
    if not node or node.get("resource_type") != "test":
        return ""
    meta = {**node.get("meta", {}), **node.get("config", {}).get("meta", {})}
    test_metadata = node.get("test_metadata") or {}
    if failed_rows == 0:
        # a failed test without one failing row did not run: dbt stopped it with an error
        return (f"{_table(node, manifest)} was not checked: dbt could not run the test `{node.get('name', unique_id)}` "
                "(an error, not a rule broken by the data); the failed dbt step's log says why")
    rows = f"{failed_rows:,}" if failed_rows is not None else "some"
    violation, rule, fix = _generic(
        test_metadata.get("name", node.get("name", "")), test_metadata.get("kwargs", {}), node.get("column_name"), rows
    )
    if meta.get("violation"):
        violation = str(meta["violation"]).replace("{rows}", rows)
    rule = (node.get("description") or "").strip().rstrip(".") or rule
    fix = str(meta.get("fix") or fix).strip().rstrip(".")
    return f"{_table(node, manifest)} has {violation}; {rule}: {fix}"


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def load_manifest(path: Path) -> dict[str, Any]:
    """The dbt manifest at `path` (cached while the file is unchanged); empty when it is missing.

    A `dbt parse` elsewhere may be rewriting the file: a half-written one is read again shortly."""
    for attempt in range(5):
        try:
            return _load(str(path), path.stat().st_mtime_ns)
        except OSError:
            return {}
        except ValueError:
            time.sleep(0.5 * (attempt + 1))
    return {}
