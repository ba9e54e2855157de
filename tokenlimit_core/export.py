"""Usage and ledger as rows (plain dicts) and as CSV or JSON Lines, for the CLI and the panel.

Rows hold counts, ids, names and emails from the user directory: never message text.
"""
from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta, timezone
from typing import IO, Iterable, Optional

from .store import DailyUsage, LedgerEvent, Store

FORMATS = ("csv", "jsonl")
USAGE_COLUMNS = ["day", "user_id", "name", "email", "model", "tokens", "prompt_tokens", "completion_tokens",
                 "requests", "denied", "cost"]
LEDGER_COLUMNS = ["request_id", "ts", "day", "user_id", "name", "email", "role", "model", "base_model", "source",
                  "task", "decision", "deciding", "status", "tokens", "est_prompt", "est_completion", "est_method",
                  "charged", "actual_prompt", "actual_completion", "actual_source", "settled_at", "cost"]
FIRST_DAY, LAST_DAY = "0001-01-01", "9999-12-31"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheets run cells starting with these


def _names(store: Store) -> dict[str, tuple[str, str]]:
    return {u.id: (u.name, u.email) for u in store.users()}


def usage_rows(store: Store, first: str = FIRST_DAY, last: str = LAST_DAY,
               user_id: Optional[str] = None) -> list[dict]:
    """Daily usage per (day, user, model) from `first` to `last` (inclusive), with names and emails."""
    names = _names(store)
    return [_usage_row(row, names.get(row.user_id, ("", ""))) for row in store.daily_usage(first, last, user_id)]


def _usage_row(row: DailyUsage, who: tuple[str, str]) -> dict:
    return {"day": row.day, "user_id": row.user_id, "name": who[0], "email": who[1], "model": row.model,
            "tokens": row.tokens, "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
            "requests": row.requests, "denied": row.denied, "cost": row.cost}


def ledger_rows(store: Store, first: str = FIRST_DAY, last: str = LAST_DAY,
                user_id: Optional[str] = None) -> list[dict]:
    """Ledger events whose accounting day is from `first` to `last` (inclusive), oldest first."""
    names = _names(store)
    events = store.ledger(_day_start(first, -2), _day_start(last, 3), user_id)
    return [_ledger_row(e, names.get(e.user_id, ("", ""))) for e in sorted(events, key=lambda e: e.ts)
            if first <= e.day <= last]


def _ledger_row(event: LedgerEvent, who: tuple[str, str]) -> dict:
    data = event.to_dict()
    data.update(name=who[0], email=who[1], tokens=event.tokens)
    return {column: data.get(column) for column in LEDGER_COLUMNS}


def _day_start(day: str, shift: int) -> float:
    """A timestamp safely outside the accounting day (zones and reset hours move it by < 2 days)."""
    try:
        moved = date.fromisoformat(day) + timedelta(days=shift)
        return max(0.0, datetime.combine(moved, datetime.min.time(), timezone.utc).timestamp())
    except (OverflowError, ValueError):
        return 0.0 if shift < 0 else 253402300799.0


def _safe_cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def write(rows: Iterable[dict], fmt: str, fh: IO[str], columns: Optional[list[str]] = None) -> int:
    """Write rows as CSV (with a header) or JSON Lines to a text stream; returns the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    rows = list(rows)
    if fmt == "jsonl":
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(rows)
    columns = columns or (list(rows[0]) if rows else [])
    writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _safe_cell(v) for k, v in row.items()})
    return len(rows)
