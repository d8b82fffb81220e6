"""Excel (xlsx) workbooks of a table, written in openpyxl's write-only mode (memory stays flat).

One writer for every export: `spendwise export --format xlsx` and `GET /data/{table}?format=xlsx`.
Numbers, dates and booleans stay typed; timestamps are naive UTC; NaN, infinities and NULL are empty
cells; text keeps no control characters a workbook cannot hold, and text that starts with "=" stays
text (it would otherwise become a formula when the file is opened).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import IO, Any

# Rows of one Excel sheet, less the header row.
XLSX_MAX_ROWS = 1_048_575
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def excel_value(kind: str | None, value: Any) -> Any:
    """A warehouse value as Excel stores it. kind: the column's registry kind ("number", "integer",
    "date", "timestamp", "text", "boolean") or None to go by the value's type."""
    if value is None:
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()  # numpy scalars (pandas rows) as plain Python values
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if kind in ("number", "integer") or isinstance(value, (float, Decimal)):
        if isinstance(value, bool):
            return value
        try:
            number = float(value) if kind == "number" or not isinstance(value, int) else value
        except (TypeError, ValueError):
            return _clean(str(value))
        return number if not isinstance(number, float) or math.isfinite(number) else None
    if isinstance(value, datetime):
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (date, bool, int)):
        return value
    return _clean(str(value))


def write_xlsx(out: str | IO[bytes], sheet: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               kinds: Sequence[str | None] | None = None) -> None:
    """One sheet (`sheet`, cut to Excel's 31 characters): the header, then `rows`, to a path or a
    binary file object. The caller checks the row count against XLSX_MAX_ROWS first."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    kinds = list(kinds) if kinds is not None else [None] * len(columns)
    book = Workbook(write_only=True)
    ws = book.create_sheet(title=sheet[:31])
    ws.append(list(columns))
    for row in rows:
        values = [excel_value(kind, value) for kind, value in zip(kinds, row)]
        ws.append([_text_cell(ws, WriteOnlyCell, v) if isinstance(v, str) else v for v in values])
    book.save(out)


def _text_cell(sheet, cell_type, value: str):
    cell = cell_type(sheet, value=value)
    cell.data_type = "s"  # never a formula
    return cell


def _clean(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", text)
