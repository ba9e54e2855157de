"""Closed history of the tinydb store: daily and monthly rollups and the ledger, apart from the hot state.

Layout under `history/` (all written atomically; TinyDB documents are TinyDB-readable):
- `daily/YYYY-MM/YYYY-MM-DD.json`: a TinyDB document, table `rows` = one row per (user, model) of that
  day, table `meta` = the last journal generation merged into it;
- `monthly/YYYY-MM.json`: the same per (user, model) and month, so a year's overview reads 12 small
  files instead of a year of daily rows;
- `ledger/YYYY-MM/seg-GGGGGGGG-j.jsonl`: the ledger events a journal generation finished, one
  `{"ev": event, "k": counters}` per line (month by event time, UTC); `-bN` files come from bulk loads.
  When one request appears in several segments, the later segment wins;
- `audit/upto-GGGGGGGG.json`: audit entries older than the hot state keeps.
Merging a closed journal is idempotent per file (each rollup file records the generation it merged), so a
crash in the middle of it is finished by the next merge. Callers hold the history lock.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from collections import defaultdict
from typing import Any, Iterable, Iterator, Optional

from .base import DailyUsage, LedgerEvent
from .tinydb_files import AtomicJSONStorage, FileMode, corrupt, make_dir, os_error, read_json, write_atomic
from .tinydb_index import LedgerIndex, indexable
from .tinydb_ops import event_row
from .tinydb_journal import encode, read_closed

FIELDS = ("tokens", "prompt_tokens", "completion_tokens", "requests", "denied", "cost")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
OTHER = "other"  # month bucket for usage days that are not dates (custom window labels)


def month_of_day(day: str) -> str:
    """The month folder of a usage day ('other' for labels that are not dates)."""
    return day[:7] if DATE.fullmatch(day) else OTHER


def month_of_ts(ts: float) -> str:
    """The UTC month of a timestamp (clamped to years 1970..9999, so open-ended ranges work)."""
    return time.strftime("%Y-%m", time.gmtime(min(max(ts, 0.0), 253402300799.0)))


def day_file_name(day: str) -> str:
    return f"{day}.json" if DATE.fullmatch(day) else "x-" + hashlib.sha1(day.encode()).hexdigest()[:20] + ".json"


def add_roll(row: dict[str, Any], roll: list) -> None:
    """Add a [tokens, prompt, completion, requests, denied, cost] change to a rollup row."""
    for name, value in zip(FIELDS, roll):
        row[name] = round(row.get(name, 0) + value, 10) if name == "cost" else row.get(name, 0) + value


def empty_row(**ids) -> dict[str, Any]:
    return {**ids, "tokens": 0, "prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "denied": 0, "cost": 0.0}


class History:
    """The files under `history/`; not locked by itself (the store holds the history lock)."""

    def __init__(self, root: str, mode: FileMode):
        self.root = os.path.join(root, "history")
        self.mode = mode
        self.index = LedgerIndex(self.root, mode)

    # -- rollup documents (TinyDB format)
    def _day_path(self, day: str) -> str:
        return os.path.join(self.root, "daily", month_of_day(day), day_file_name(day))

    def _month_path(self, month: str) -> str:
        return os.path.join(self.root, "monthly", f"{month}.json")

    def load_rows(self, path: str) -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
        """Rows of a rollup document keyed by (user, model), and the last generation merged into it."""
        # One parse of the TinyDB document (TinyDB's Table API would parse it once per table).
        doc = AtomicJSONStorage(path, read_only=True).read()
        if doc is None:
            return {}, -1
        try:
            rows = {(r["user_id"], r["model"]): r for r in doc.get("rows", {}).values()}
            meta = list(doc.get("meta", {}).values())
            return rows, int(meta[0]["merged_through"]) if meta else -1
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise corrupt(path, f"a row lacks a field ({exc!r})") from None

    def save_rows(self, path: str, rows: dict[tuple[str, str], dict[str, Any]], merged_through: int) -> None:
        """Write a rollup document (TinyDB layout) atomically."""
        make_dir(os.path.dirname(path), self.mode)
        doc = {"rows": {str(i): row for i, row in enumerate(rows.values(), start=1)},
               "meta": {"1": {"merged_through": merged_through}}}
        AtomicJSONStorage(path, self.mode).write(doc)

    # -- merging closed journals
    def merge_journal(self, path: str, generation: int) -> None:
        """Fold a closed journal into the history files, then delete it (safe to repeat after a crash)."""
        records = read_closed(path)
        by_day: dict[str, dict[tuple[str, str], list]] = defaultdict(dict)
        events: dict[str, tuple[dict, list]] = {}
        for rec in records:
            ev = rec.get("ev")
            if ev is None:
                continue
            events[ev["request_id"]] = (ev, rec.get("k", []))
            roll = rec.get("roll")
            if roll:
                slot = by_day[ev["day"]].setdefault((ev["user_id"], ev["model"]), [0, 0, 0, 0, 0, 0.0])
                for i, value in enumerate(roll):
                    slot[i] += value
        by_month: dict[str, list] = defaultdict(list)
        for ev, keys in events.values():
            by_month[month_of_ts(ev["ts"])].append({"ev": ev, "k": keys})
        for month, rows in by_month.items():
            self._write_segment(month, f"seg-{generation:08d}-j.jsonl", rows)
        self.apply_deltas(by_day, generation)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise os_error(exc, path, "removing merged journal") from exc

    def apply_deltas(self, by_day: dict[str, dict[tuple[str, str], list]], generation: int) -> None:
        """Add rollup changes of one generation to day and month files that have not merged it yet."""
        months: dict[str, dict[tuple[str, str], list]] = defaultdict(dict)
        for day, deltas in by_day.items():
            path = self._day_path(day)
            rows, merged = self.load_rows(path)
            if merged < generation:
                for (user, model), roll in deltas.items():
                    add_roll(rows.setdefault((user, model), empty_row(day=day, user_id=user, model=model)), roll)
                self.save_rows(path, rows, generation)
            month = months[month_of_day(day)]
            for key, roll in deltas.items():
                slot = month.setdefault(key, [0, 0, 0, 0, 0, 0.0])
                for i, value in enumerate(roll):
                    slot[i] += value
        for month, deltas in months.items():
            path = self._month_path(month)
            rows, merged = self.load_rows(path)
            if merged < generation:
                for (user, model), roll in deltas.items():
                    add_roll(rows.setdefault((user, model), empty_row(month=month, user_id=user, model=model)), roll)
                self.save_rows(path, rows, generation)

    def _write_segment(self, month: str, name: str, rows: list[dict]) -> None:
        folder = os.path.join(self.root, "ledger", month)
        make_dir(folder, self.mode)
        write_atomic(os.path.join(folder, name), b"".join(encode(r) for r in rows), self.mode)
        self.index.add((r["ev"]["request_id"] for r in rows), f"ledger/{month}/{name}")

    # -- bulk loading (set semantics)
    def put_daily(self, rows: Iterable[DailyUsage]) -> None:
        """Set daily rows (replacing what a day held for that user and model); months follow."""
        by_day: dict[str, dict[tuple[str, str], DailyUsage]] = defaultdict(dict)
        for row in rows:
            by_day[row.day][(row.user_id, row.model)] = row
        months: dict[str, dict[tuple[str, str], list]] = defaultdict(dict)
        for day, new_rows in by_day.items():
            path = self._day_path(day)
            rows_now, merged = self.load_rows(path)
            month = months[month_of_day(day)]
            for key, new in new_rows.items():
                old = rows_now.get(key) or empty_row()
                values = [new.tokens, new.prompt_tokens, new.completion_tokens, new.requests, new.denied, new.cost]
                slot = month.setdefault(key, [0, 0, 0, 0, 0, 0.0])
                for i, (name, value) in enumerate(zip(FIELDS, values)):
                    slot[i] += value - old.get(name, 0)
                rows_now[key] = dict(zip(FIELDS, values), day=day, user_id=key[0], model=key[1])
            self.save_rows(path, rows_now, merged)
        for month, deltas in months.items():
            path = self._month_path(month)
            rows_now, merged = self.load_rows(path)
            for (user, model), roll in deltas.items():
                add_roll(rows_now.setdefault((user, model), empty_row(month=month, user_id=user, model=model)), roll)
            self.save_rows(path, rows_now, merged)

    def put_events(self, events: Iterable[LedgerEvent], generation: int) -> None:
        """Add ledger events as new segments (a later load of the same request id wins)."""
        by_month: dict[str, list] = defaultdict(list)
        for event in events:
            by_month[month_of_ts(event.ts)].append({"ev": event_row(event), "k": []})
        for month, rows in by_month.items():
            folder = os.path.join(self.root, "ledger", month)
            existing = os.listdir(folder) if os.path.isdir(folder) else []
            n = sum(1 for name in existing if name.startswith(f"seg-{generation:08d}-b"))
            self._write_segment(month, f"seg-{generation:08d}-b{n:04d}.jsonl", rows)

    # -- reading
    def rollup_rows(self, kind: str, first: str, last: str) -> Iterator[tuple[dict[str, Any], int]]:
        """(row, merged_through) of daily or monthly documents whose day/month may fall in [first, last]."""
        if kind == "daily":
            base = os.path.join(self.root, "daily")
            for month in self._folders(base, first[:7], last[:7]):
                folder = os.path.join(base, month)
                for name in sorted(os.listdir(folder)):
                    if name.endswith(".json") and (month == OTHER or first <= name[:-5] <= last):
                        rows, merged = self.load_rows(os.path.join(folder, name))
                        for row in rows.values():
                            yield row, merged
        else:
            base = os.path.join(self.root, "monthly")
            names = sorted(os.listdir(base)) if os.path.isdir(base) else []
            for name in names:
                if name.endswith(".json") and first <= name[:-5] <= last:
                    rows, merged = self.load_rows(os.path.join(base, name))
                    for row in rows.values():
                        yield row, merged

    def merged_through(self, kind: str, key: str) -> int:
        """The generation a day's or month's rollup file has merged (-1 when it does not exist)."""
        path = self._day_path(key) if kind == "daily" else self._month_path(key)
        return self.load_rows(path)[1]

    def _folders(self, base: str, first_month: str, last_month: str) -> list[str]:
        names = sorted(os.listdir(base)) if os.path.isdir(base) else []
        return [n for n in names if n == OTHER or first_month <= n <= last_month]

    def segments(self, first_month: str = "", last_month: str = "9999-99") -> list[str]:
        """Ledger segment paths of months in range, oldest first (later ones win)."""
        base = os.path.join(self.root, "ledger")
        paths = []
        for month in self._folders(base, first_month, last_month):
            folder = os.path.join(base, month)
            paths += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".jsonl")]
        return paths

    def read_segment(self, path: str) -> list[tuple[dict, list]]:
        """(event, counters) rows of one ledger segment."""
        rows = []
        for rec in read_closed(path, required="ev"):
            rows.append((rec["ev"], rec.get("k", [])))
        return rows

    def find_event(self, request_id: str) -> Optional[tuple[dict, list]]:
        """The latest (event, counters) of a request in the ledger segments, through the index."""
        if indexable(request_id):
            if not self.index.exists() and self.segments():
                self.index.rebuild(self.segments(), lambda p: [ev["request_id"] for ev, _k in self.read_segment(p)])
            segment = self.index.lookup(request_id)
            paths = [os.path.join(self.root, segment)] if segment else []
        else:
            paths = list(reversed(self.segments()))
        for path in paths:
            if not os.path.exists(path):
                continue  # removed by retention
            found = None
            for ev, keys in self.read_segment(path):
                if ev["request_id"] == request_id:
                    found = (ev, keys)
            if found:
                return found
        return None

    def old_audit(self) -> list[list]:
        """Audit rows moved out of the hot state, oldest first."""
        folder = os.path.join(self.root, "audit")
        rows: list[list] = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith(".json"):
                rows += read_json(os.path.join(folder, name), [])
        return rows

    def put_audit(self, rows: list[list], generation: int) -> None:
        """Keep audit rows the hot state no longer holds."""
        folder = os.path.join(self.root, "audit")
        make_dir(folder, self.mode)
        write_atomic(os.path.join(folder, f"upto-{generation:08d}.json"), encode(rows), self.mode)

    def drop_ledger_before(self, cutoff: float) -> int:
        """Delete ledger months that end before `cutoff` (retention); returns how many."""
        base = os.path.join(self.root, "ledger")
        dropped = 0
        for month in self._folders(base, "", month_of_ts(cutoff)):
            if month == OTHER or month >= month_of_ts(cutoff):
                continue
            folder = os.path.join(base, month)
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
            dropped += 1
        return dropped

    def size(self) -> int:
        """Bytes the history files take."""
        total = 0
        for folder, _dirs, files in os.walk(self.root):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        return total

