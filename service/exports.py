"""Exports of a published table as CSV (streamed in chunks) or as an Excel workbook (openpyxl).

Each chunk is one short read (service.reader), so a long download never holds the warehouse: a DuckDB
refresh can start between two chunks. When it does, the rows would mix two runs, so the export stops
(the client sees a truncated transfer, not a silently mixed file) and the log says why.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

from core.xlsx import XLSX_MAX_ROWS, XLSX_MEDIA_TYPE, write_xlsx
from service.errors import ApiError
from service.reader import MAX_LIMIT, WarehouseReader
from service.values import TablePage

logger = logging.getLogger("spendwise.service")

EXPORT_CHUNK_ROWS = MAX_LIMIT
__all__ = ["Export", "ExportChanged", "EXPORT_CHUNK_ROWS", "XLSX_MAX_ROWS", "XLSX_MEDIA_TYPE"]


class ExportChanged(RuntimeError):
    """The table changed (a refresh published it) while the export was being read."""


class Export:
    """One export: its first chunk is read at once (so a missing table or a busy warehouse is still an
    HTTP error status), the rest lazily while the response is sent.

    limit: rows to send from `offset` on; None: every matching row.
    """

    def __init__(self, reader: WarehouseReader, table: str, filters: dict[str, Any], limit: int | None, offset: int):
        self.reader, self.table, self.filters, self.offset = reader, table, filters, offset
        self.first = reader.table_page(table, filters, min(limit or EXPORT_CHUNK_ROWS, EXPORT_CHUNK_ROWS), offset)
        available = max(self.first.total - offset, 0)
        self.rows = available if limit is None else min(limit, available)
        self._runs = _runs(self.first)

    def pages(self) -> Iterator[TablePage]:
        page, sent = self.first, 0
        while True:
            page = TablePage(page.table, page.columns, page.rows[: self.rows - sent], page.total)
            yield page
            sent += len(page.rows)
            if sent >= self.rows or not page.rows:
                return
            page = self.reader.table_page(self.table, self.filters, min(EXPORT_CHUNK_ROWS, self.rows - sent),
                                          self.offset + sent)
            if page.total != self.first.total or not _runs(page) <= self._runs:
                message = (f"export of {self.table} stopped after {sent} of {self.rows} rows: a refresh published "
                           "the table meanwhile; download it again")
                logger.warning(message)
                raise ExportChanged(message)

    def csv_chunks(self) -> Iterator[bytes]:
        for number, page in enumerate(self.pages()):
            yield page.csv_text(header=number == 0).encode()

    def xlsx_bytes(self) -> bytes:
        if self.rows > XLSX_MAX_ROWS:
            raise ApiError(400, "too_many_rows",
                           f"{self.rows} rows do not fit in one Excel sheet (at most {XLSX_MAX_ROWS}); use format=csv, "
                           "or narrow the export with filters or limit")
        buffer = io.BytesIO()
        rows = (row for page in self.pages() for row in page.rows)
        write_xlsx(buffer, self.table, [c.name for c in self.first.columns], rows,
                   kinds=[c.kind for c in self.first.columns])
        return buffer.getvalue()


def _runs(page: TablePage) -> set[str]:
    names = [c.name for c in page.columns]
    if "run_id" not in names:
        return set()
    at = names.index("run_id")
    return {str(row[at]) for row in page.rows if row[at] is not None}
