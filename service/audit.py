"""HTTP-triggered refreshes, scenario calls and exports in the audit log (core.audit, `ops.audit_log`), by the
caller's token name. Written after the response is sent (a background task): a warehouse that is busy
delays the audit row, never the client; a failure to write it is logged (without detail) and not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.audit import record
from service.reader import WarehouseReader

logger = logging.getLogger("spendwise.service")


def audit(reader: WarehouseReader, action: str, actor: str, detail: Mapping[str, Any]) -> None:
    """Append one audit row (action such as "http_refresh", actor "api-token" / "read-token" / "anonymous")."""
    try:
        with reader.writing() as client:
            record(client, action, actor=actor, detail=detail)
    except Exception as exc:
        logger.error("could not record %s by %s in the audit log: %s: %s", action, actor, exc.__class__.__name__,
                     str(exc)[:300])
