"""HTTP-triggered refreshes, scenario calls and exports in the audit log (core.audit, `ops.audit_log`), by the
caller's token name. Written after the response is sent (a background task): a warehouse that is busy
delays the audit row, never the client; a failure to write it is logged (without detail) and not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from service.reader import WarehouseReader

try:  # core.audit arrived with issue 15 item 6; the service still starts on a tree without it
    from core.audit import record as _record
except ImportError:  # pragma: no cover - only on a tree without core/audit.py
    _record = None

logger = logging.getLogger("spendwise.service")
AUDIT_AVAILABLE = _record is not None


def audit(reader: WarehouseReader, action: str, actor: str, detail: Mapping[str, Any]) -> None:
    """Append one audit row (action such as "http_refresh", actor "api-token" / "read-token" / "anonymous")."""
    if _record is None:
        logger.warning("audit log unavailable (core.audit missing): %s by %s not recorded", action, actor)
        return
    try:
        with reader.writing() as client:
            _record(client, action, actor=actor, detail=detail)
    except Exception as exc:
        logger.error("could not record %s by %s in the audit log: %s: %s", action, actor, exc.__class__.__name__,
                     str(exc)[:300])
