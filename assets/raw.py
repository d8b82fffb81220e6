"""The raw input tables, loaded outside Dagster by `spendwise load` / `spendwise demo`.

Declared as external assets so the graph starts at them and dbt's source tests attach to them.
"""

from dagster import AssetKey, AssetSpec

from core.raw_contract import RAW_TABLES
from core.settings import RAW_SCHEMA, get_settings

raw_tables = [
    AssetSpec(
        key=AssetKey([RAW_SCHEMA, name]),
        group_name="raw",
        description=contract.description,
        kinds={get_settings().warehouse.kind},
        owners=["team:analytics-engineering"],
        metadata={"dagster/table_name": f"{RAW_SCHEMA}.{name}", "loaded_by": "spendwise load DIR | spendwise demo"},
    )
    for name, contract in RAW_TABLES.items()
]
