"""Data the pages show, read from the store's rollups (never a year of raw events) and cached briefly."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from operator import attrgetter
from typing import Optional

import pandas as pd
import streamlit as st

from tokenlimit_core import CounterKey, Policy, resolve, window_bounds, window_label
from tokenlimit_core.periods import usage_day
from tokenlimit_core.store import Store

TTL = 30  # seconds: the panel is a dashboard, not a live counter
DAILY_COLUMNS = ["day", "user_id", "model", "tokens", "prompt_tokens", "completion_tokens", "requests",
                 "denied", "cost"]
USER_COLUMNS = ["id", "name", "email", "role", "groups", "last_seen"]
EVENT_COLUMNS = ["request_id", "ts", "day", "user_id", "role", "model", "base_model", "source", "task",
                 "est_prompt", "est_completion", "est_method", "charged", "status", "decision", "deciding",
                 "actual_prompt", "actual_completion", "actual_source", "settled_at", "cost"]


def today(policy: Policy, now: Optional[datetime] = None) -> date:
    """The accounting day now, as the engine labels ledger events (local date, shifted by the reset hour)."""
    return date.fromisoformat(usage_day(policy.window_spec(), now or datetime.now(timezone.utc)))


PAST_TTL = 600  # finished days change only by a refund of an old request: re-read them every 10 minutes


def daily(store: Store, url: str, first_day: str, last_day: str, user_id: Optional[str] = None) -> pd.DataFrame:
    """Daily rollup rows (day, user, model) between two days, inclusive.

    Finished days are cached for 10 minutes, the last two days for 30 s, so a year's view is read
    from the store once and then only the recent rows are refreshed.
    """
    # "Recent" starts yesterday in UTC: an admin's local today is never earlier than that, in any zone.
    recent = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    if last_day < recent:
        return _daily_past(store, url, first_day, last_day, user_id)
    if first_day >= recent:
        return _daily_current(store, url, first_day, last_day, user_id)
    before = (date.fromisoformat(recent) - timedelta(days=1)).isoformat()
    past = _daily_past(store, url, first_day, before, user_id)
    current = _daily_current(store, url, recent, last_day, user_id)
    return current if past.empty else pd.concat([past, current], ignore_index=True)


_DAILY_FIELDS = attrgetter(*DAILY_COLUMNS)


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(map(_DAILY_FIELDS, rows)), columns=DAILY_COLUMNS)


@st.cache_data(ttl=60, show_spinner=False, max_entries=8)
def monthly(_store: Store, url: str, first_month: str, last_month: str) -> pd.DataFrame:
    """Month rollup rows (the month 'YYYY-MM' in `day`, user, model): a year in thousands of rows, not millions."""
    return _frame(_store.monthly_usage(first_month, last_month))


@st.cache_data(ttl=PAST_TTL, show_spinner=False, max_entries=16)
def _daily_past(_store: Store, url: str, first_day: str, last_day: str, user_id: Optional[str]) -> pd.DataFrame:
    return _frame(_store.daily_usage(first_day, last_day, user_id))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=32)
def _daily_current(_store: Store, url: str, first_day: str, last_day: str, user_id: Optional[str]) -> pd.DataFrame:
    return _frame(_store.daily_usage(first_day, last_day, user_id))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=8)
def users(_store: Store, url: str) -> pd.DataFrame:
    """The user directory as a table."""
    rows = [(u.id, u.name, u.email, u.role, ", ".join(u.groups), u.last_seen) for u in _store.users()]
    frame = pd.DataFrame.from_records(rows, columns=USER_COLUMNS)
    frame["last_seen"] = pd.to_datetime(frame["last_seen"], unit="s", utc=True)
    return frame.sort_values("id", ignore_index=True)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=16)
def ledger(_store: Store, url: str, start: float, end: float, user_id: Optional[str] = None) -> pd.DataFrame:
    """Ledger events in [start, end) as a table (counts and ids only; the ledger holds no message text)."""
    events = _store.ledger(start, end, user_id)
    # vars(): a flat dataclass's fields without asdict()'s deep copy (ten times faster on many events)
    frame = pd.DataFrame.from_records([vars(e) for e in events], columns=EVENT_COLUMNS)
    frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return frame


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=8)
def window_totals(_store: Store, url: str, policy_json: str, directory: pd.DataFrame,
                  now_ts: float) -> pd.DataFrame:
    """Each known user's total budget in the current window: limit, granted, used, pending, share used."""
    policy = Policy.from_json(policy_json)
    now = datetime.fromtimestamp(now_ts, timezone.utc)
    rows, keys = [], []
    for user in directory.itertuples(index=False):
        groups = [g for g in user.groups.split(", ") if g]
        total = next((b for b in resolve(policy, user.id, user.role, "*", groups=groups) if b.kind == "total"), None)
        if total is None:
            continue
        keys.append(CounterKey(total.scope, window_label(total.window, now)))
        rows.append((user.id, user.name, user.email, total.limit, total.reason,
                     window_bounds(total.window, now)[1]))
    counters = _store.counters(keys) if keys else []
    frame = pd.DataFrame.from_records(
        [(*row, c.granted, c.used, c.pending) for row, c in zip(rows, counters)],
        columns=["user_id", "name", "email", "limit", "reason", "reset_at", "granted", "used", "pending"])
    cap = frame["limit"] + frame["granted"]
    frame["share"] = ((frame["used"] + frame["pending"]) / cap.where((frame["limit"] >= 0) & (cap > 0))).fillna(0.0)
    frame.loc[frame["limit"] == 0, "share"] = 1.0
    frame.loc[frame["limit"] < 0, "share"] = 0.0
    return frame


def user_limits(policy: Policy, directory: pd.DataFrame) -> dict[str, int]:
    """Each user's total limit per window (-1 unlimited), for utilization."""
    out = {}
    for user in directory.itertuples(index=False):
        groups = [g for g in user.groups.split(", ") if g]
        total = next((b for b in resolve(policy, user.id, user.role, "*", groups=groups) if b.kind == "total"), None)
        out[user.id] = total.limit if total else -1
    return out


def minute_ceiling(now: datetime) -> float:
    """`now` rounded up to the next minute (epoch s), so cached reads of 'until now' are reused for a minute."""
    return (now.replace(second=0, microsecond=0) + timedelta(minutes=1)).timestamp()


def day_range(last: date, days: int) -> tuple[str, str]:
    """(first, last) ISO days of a window of `days` days ending on `last`."""
    return (last - timedelta(days=days - 1)).isoformat(), last.isoformat()


def refresh() -> None:
    """Forget cached data (after a change made from the panel)."""
    st.cache_data.clear()
