"""Files the Export page offers: usage, ledger or audit trail for a period, as CSV or JSON Lines."""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Optional

from tokenlimit_core import export
from tokenlimit_core.store import Store

KINDS = ("usage", "ledger", "audit")
AUDIT_COLUMNS = ["time", "actor", "action", "detail"]


def rows_for(store: Store, kind: str, first: str, last: str, user_id: Optional[str] = None) -> list[dict]:
    """The rows of one export (counts, ids, names and e-mails; never message text)."""
    if kind == "usage":
        return export.usage_rows(store, first, last, user_id or None)
    if kind == "ledger":
        return export.ledger_rows(store, first, last, user_id or None)
    if kind == "audit":
        rows = []
        for entry in store.audit_log(100_000):
            moment = datetime.fromtimestamp(entry.ts, timezone.utc)
            if first <= moment.date().isoformat() <= last and (not user_id or entry.actor == user_id):
                rows.append({"time": moment.isoformat(timespec="seconds"), "actor": entry.actor,
                             "action": entry.action, "detail": entry.detail})
        return rows[::-1]
    raise ValueError(f"export kind must be one of {', '.join(KINDS)}, not {kind!r}")


def file_name(kind: str, fmt: str, first: str, last: str) -> str:
    """e.g. tokenlimit-usage-2026-11-01_2026-11-30.csv"""
    return f"tokenlimit-{kind}-{first}_{last}.{fmt}"


def render(rows: list[dict], kind: str, fmt: str) -> str:
    """The rows as CSV (with a header) or JSON Lines text."""
    columns = {"usage": export.USAGE_COLUMNS, "ledger": export.LEDGER_COLUMNS, "audit": AUDIT_COLUMNS}[kind]
    if fmt == "csv" and kind == "audit":
        import json

        rows = [{**row, "detail": json.dumps(row["detail"], ensure_ascii=False)} for row in rows]
    buffer = io.StringIO()
    export.write(rows, fmt, buffer, columns)
    return buffer.getvalue()
