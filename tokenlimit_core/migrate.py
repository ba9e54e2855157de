"""Copy everything a store holds into another one (memory, tinydb, redis, in any direction).

Policy, counters of open windows, the user directory, daily rollups and the
ledger are copied with the bulk store methods, which have set semantics: a
second run rewrites the same records and duplicates nothing. Requests still in
flight while migrating keep their estimate (stop the filter first to avoid them).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Optional

from .store import Store, StoreError, redact_url

BATCH = 20_000
LEDGER_SLICE_DAYS = 7
END_OF_TIME = 253402300799.0  # 9999-12-31


@dataclass(frozen=True)
class MigrationSummary:
    """What a migration copied."""

    source: str
    target: str
    policy: str  # copied | unchanged | none
    counters: int
    users: int
    daily_rows: int
    events: int

    def describe(self, language: str = "en") -> str:
        """A short report for the terminal, in English or Chinese."""
        if language == "zh":
            policy = {"copied": "已复制", "unchanged": "未变（两边相同）", "none": "源存储没有策略"}[self.policy]
            return (f"已从 {self.source} 迁移到 {self.target}：策略{policy}；计数器 {self.counters} 个；"
                    f"用户 {self.users} 个；每日汇总 {self.daily_rows} 行；账本事件 {self.events} 条。")
        policy = {"copied": "copied", "unchanged": "unchanged (same on both)", "none": "none in source"}[self.policy]
        return (f"Migrated {self.source} -> {self.target}: policy {policy}; {self.counters} counters; "
                f"{self.users} users; {self.daily_rows} daily rows; {self.events} ledger events.")


def migrate(source: Store, target: Store, *, progress: bool = False, actor: str = "migrate") -> MigrationSummary:
    """Copy policy, open counters, users, daily rollups and ledger from `source` to `target`."""
    from tqdm import tqdm

    private = source.url.split("://", 1)[-1].strip("/") == ""  # e.g. memory:// is private to one object
    if source is target or (source.url == target.url and not private):
        raise StoreError(f"migrate: source and target are the same store ({redact_url(source.url)})")
    policy = _copy_policy(source, target, actor)
    counters = source.all_counters()
    target.put_counters(counters)
    users = source.users()
    for user in tqdm(users, desc="users", unit="user", disable=not progress or not users):
        target.touch_user(user)
    daily = source.daily_usage("0001-01-01", "9999-12-31")
    with tqdm(total=len(daily), desc="daily rows", unit="row", disable=not progress or not daily) as bar:
        for start in range(0, len(daily), BATCH):
            target.put_history(daily=daily[start:start + BATCH])
            bar.update(len(daily[start:start + BATCH]))
    days = [row.day for row in daily]
    slices = _ledger_slices(min(days, default=None), max(days, default=None))
    events = 0
    for start, end in tqdm(slices, desc="ledger", unit="week", disable=not progress):
        batch = source.ledger(start, end)
        for first in range(0, len(batch), BATCH):
            target.put_history(events=batch[first:first + BATCH])
        events += len(batch)
    summary = MigrationSummary(redact_url(source.url), redact_url(target.url), policy, len(counters), len(users),
                               len(daily), events)
    target.audit(actor, "migrate", {"from": summary.source, "counters": summary.counters, "users": summary.users,
                                    "daily_rows": summary.daily_rows, "events": summary.events})
    return summary


def _copy_policy(source: Store, target: Store, actor: str) -> str:
    record = source.load_policy()
    if record is None:
        return "none"
    current = target.load_policy()
    if current is not None and current.policy_json == record.policy_json:
        return "unchanged"
    target.save_policy(record.policy_json, actor)
    return "copied"


def _ledger_slices(first_day: Optional[str], last_day: Optional[str]) -> list[tuple[float, float]]:
    """Time ranges covering all of time: weekly slices over the days with usage, open-ended at both ends."""
    if first_day is None or last_day is None:
        return [(0.0, END_OF_TIME)]

    def stamp(day: date) -> float:
        return datetime.combine(day, datetime.min.time(), timezone.utc).timestamp()

    start, stop = date.fromisoformat(first_day) - timedelta(days=2), date.fromisoformat(last_day) + timedelta(days=2)
    bounds = [0.0]
    day = start
    while day < stop:
        bounds.append(max(0.0, stamp(day)))
        day += timedelta(days=LEDGER_SLICE_DAYS)
    bounds.append(stamp(stop))
    bounds.append(END_OF_TIME)
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
