"""The registry is the one list of published tables and charts: suites, charts, docs and dbt agree with it."""

import re

import pandas as pd
import pytest

from core import registry
from core.quality import SUITES, suite_for
from core.settings import DBT_DIR, REPO_ROOT


def test_readme_table_list_is_the_generated_one():
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- registry:tables:start -->\n(.*?)<!-- registry:tables:end -->", readme, re.S)
    assert block, "README.md lost its registry markers"
    assert block.group(1) == registry.markdown_table_list() + "\n", (
        "README's table list is out of date: replace the block with `python -m core.registry`"
    )


@pytest.mark.parametrize("name", list(registry.TABLES))
def test_every_table_has_a_suite_that_expects_exactly_its_registered_columns(name):
    spec = registry.table(name)
    assert spec.suite in SUITES
    column_sets = [e.column_set for e in suite_for(spec.suite) if type(e).__name__ == "ExpectTableColumnsToMatchSet"]
    assert column_sets, f"suite {spec.suite} does not check the columns"
    assert set(column_sets[0]) == {*spec.column_names, *registry.RUN_COLUMNS}


def test_every_interval_names_existing_columns_and_follows_the_naming_rule():
    for spec in registry.TABLES.values():
        for interval in spec.intervals:
            assert {interval.measure, interval.lower, interval.upper} <= set(spec.column_names)
            assert interval.lower.endswith("_lower") and interval.upper.endswith("_upper")
        loose = [c for c in spec.column_names if c.endswith(("_low", "_high", "_ci_low", "_ci_high"))
                 or c in ("lower", "upper")]
        assert not loose, f"{spec.name}: interval columns must be <measure>_lower/_upper, found {loose}"


def test_charts_draw_registered_tables_and_every_renderer_is_registered():
    from charts.plots import CHARTS as RENDERERS

    assert set(RENDERERS) == set(registry.CHARTS)
    for chart in registry.CHARTS.values():
        assert chart.name in registry.table(chart.table).charts


def test_conform_orders_columns_and_names_what_differs():
    spec = registry.table("mmm_revenue_decomposition")
    frame = pd.DataFrame({"value": [1.0], "component": ["baseline"], "date": [pd.Timestamp("2026-01-01")]})
    assert list(registry.conform(spec.name, frame).columns) == spec.column_names
    with pytest.raises(ValueError, match=r"missing columns \['value'\], unregistered columns \['amount'\]"):
        registry.conform(spec.name, frame.rename(columns={"value": "amount"}))
    with pytest.raises(KeyError, match="not a registered prediction table"):
        registry.table("no_such_table")


def test_rule_based_models_match_the_dbt_macro():
    macro = (DBT_DIR / "macros" / "attribution" / "attribution_settings.sql").read_text()
    listed = re.search(r"macro attribution_model_names\(\) %}\s*{{ return\(\[(.*?)\]\) }}", macro, re.S)
    assert listed
    assert tuple(re.findall(r"'(\w+)'", listed.group(1))) == registry.RULE_BASED_MODELS


def test_every_registered_table_is_published_by_an_asset_with_its_gx_check(dbt_manifest):
    from orchestration.definitions import build_definitions

    defs = build_definitions("duckdb:////tmp/spendwise-registry-test.duckdb")
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for spec in registry.TABLES.values():
        assert spec.asset in keys, f"{spec.name}: no asset {spec.asset}"
        assert (spec.asset, spec.check_name) in checks, f"{spec.name}: asset {spec.asset} has no {spec.check_name}"
    for chart in registry.CHARTS.values():
        assert f"{chart.name}_chart" in keys
