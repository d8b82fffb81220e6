"""Warehouse values as JSON and CSV: a column's JSON kind from its warehouse type, NaN and infinities as
null, dates as YYYY-MM-DD and timestamps as ISO 8601 UTC."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

_INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "INT2", "INT4", "INT8",
}
_NUMBER_TYPES = {"DOUBLE", "FLOAT", "REAL", "DOUBLE PRECISION", "FLOAT4", "FLOAT8", "DECIMAL", "NUMERIC"}
_STRING_TYPES = {"VARCHAR", "TEXT", "STRING", "CHARACTER VARYING", "CHARACTER", "CHAR", "BPCHAR"}


def column_kind(data_type: str) -> str:
    """JSON-level kind of a warehouse column type: string, integer, number, boolean, date, datetime, other."""
    base = data_type.upper().strip().split("(")[0].strip()
    if base == "DATE":
        return "date"
    if base.startswith("TIMESTAMP"):
        return "datetime"
    if base in ("BOOLEAN", "BOOL"):
        return "boolean"
    if base in _INTEGER_TYPES:
        return "integer"
    if base in _NUMBER_TYPES:
        return "number"
    if base in _STRING_TYPES:
        return "string"
    return "other"


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # publish stores naive UTC timestamps
            return value.isoformat() + "Z"
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return _number(value) if isinstance(value, float) else value
    if isinstance(value, (datetime, date)):
        return _timestamp(value) if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return _number(value)
    return str(value)


_JSON_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "date": lambda v: v.isoformat() if isinstance(v, date) else str(v),
    "datetime": _timestamp,
    "number": _number,
    "integer": int,
    "boolean": bool,
    "string": str,
    "other": _plain,
}


@dataclass(frozen=True)
class Column:
    """A column as the warehouse has it (name and type), not as the registry declares it."""

    name: str
    data_type: str

    @property
    def kind(self) -> str:
        return column_kind(self.data_type)


@dataclass(frozen=True)
class TablePage:
    table: str
    columns: list[Column]
    rows: list[tuple]
    total: int

    def json_columns(self) -> list[list[Any]]:
        """Column-wise JSON-ready values: NaN/inf -> None, dates and timestamps as ISO strings."""
        if not self.rows:
            return [[] for _ in self.columns]
        out = []
        for column, values in zip(self.columns, zip(*self.rows)):
            convert = _JSON_CONVERTERS[column.kind]
            out.append([None if v is None else convert(v) for v in values])
        return out

    def json_rows(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row)) for row in zip(*self.json_columns())] if self.rows else []

    def csv_text(self, header: bool = True) -> str:
        """Header row (unless `header=False`: a later chunk of a streamed export), then the JSON values:
        empty for null, true/false for booleans."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if header:
            writer.writerow([c.name for c in self.columns])
        columns = self.json_columns()
        for row in zip(*columns) if columns else ():
            writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v)
                             for v in row])
        return buffer.getvalue()
