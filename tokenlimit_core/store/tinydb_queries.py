"""History queries of the tinydb store: history files + closed journals not merged yet + the hot state.

Callers hold the history lock (so no merge runs meanwhile) and pass the generation `g` their hot
copy belongs to: closed journals are those before `g`, and a journal's rollup changes count only
for files that have not merged that generation yet, so nothing is counted twice or missed.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from .base import DailyUsage, LedgerEvent
from .tinydb_history import FIELDS, History, add_roll, empty_row, month_of_day, month_of_ts
from .tinydb_ops import event_row
from .tinydb_journal import journal_generation, read_closed


def closed_journals(folder: str, current: int) -> list[tuple[int, str]]:
    """(generation, path) of journals older than the current generation, oldest first."""
    found = []
    for name in os.listdir(folder):
        generation = journal_generation(name)
        if generation is not None and generation < current:
            found.append((generation, os.path.join(folder, name)))
    return sorted(found)


def rollups(history: History, closed: list[tuple[int, str]], hot: dict[tuple[str, str, str], dict],
            kind: str, first: str, last: str, user_id: Optional[str]) -> list[DailyUsage]:
    """Daily (kind='daily', first/last are days) or monthly (first/last are 'YYYY-MM') rollups."""
    def key_of(day: str) -> str:
        return day if kind == "daily" else month_of_day(day)

    def wanted(period: str, user: str) -> bool:
        return first <= period <= last and (user_id is None or user == user_id)

    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row, _merged in history.rollup_rows(kind, first, last):
        period = row["day"] if kind == "daily" else row["month"]
        if wanted(period, row["user_id"]):
            out[(period, row["user_id"], row["model"])] = dict(row)
    merged_cache: dict[str, int] = {}
    for generation, path in closed:
        for rec in read_closed(path):
            ev, roll = rec.get("ev"), rec.get("roll")
            if not roll or not wanted(key_of(ev["day"]), ev["user_id"]):
                continue
            period = key_of(ev["day"])
            if period not in merged_cache:
                merged_cache[period] = history.merged_through(kind, period)
            if merged_cache[period] < generation:
                add_roll(out.setdefault((period, ev["user_id"], ev["model"]), empty_row()), roll)
    for (day, user, model), row in hot.items():
        period = key_of(day)
        if wanted(period, user):
            add_roll(out.setdefault((period, user, model), empty_row()), [row[f] for f in FIELDS])
    return [DailyUsage(period, user, model, **{f: row[f] for f in FIELDS})
            for (period, user, model), row in sorted(out.items())]


def ledger(history: History, closed: list[tuple[int, str]], hot: list[LedgerEvent], start: float, end: float,
           user_id: Optional[str], cutoff: float) -> list[LedgerEvent]:
    """Ledger events with start <= ts < end (and ts >= the retention cutoff), oldest first."""
    start = max(start, cutoff)
    if end <= start:
        return []
    versions: dict[str, dict] = {}
    for path in history.segments(month_of_ts(start), month_of_ts(max(start, end - 1e-6))):
        for ev, _keys in history.read_segment(path):
            versions[ev["request_id"]] = ev
    for _generation, path in closed:
        for rec in read_closed(path):
            if "ev" in rec:
                versions[rec["ev"]["request_id"]] = rec["ev"]
    for event in hot:
        versions[event.request_id] = event_row(event)
    events = [LedgerEvent.from_dict(ev) for ev in versions.values()
              if start <= ev["ts"] < end and (user_id is None or ev["user_id"] == user_id)]
    return sorted(events, key=lambda e: e.ts)


def find_event(history: History, closed: list[tuple[int, str]], request_id: str) -> Optional[tuple[dict, list]]:
    """The latest (event, counters) of a request outside the hot state: closed journals, then segments."""
    for _generation, path in reversed(closed):
        found = None
        for rec in read_closed(path):
            ev = rec.get("ev")
            if ev is not None and ev["request_id"] == request_id:
                found = (ev, rec.get("k", []))
        if found:
            return found
    return history.find_event(request_id)
