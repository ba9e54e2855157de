"""migrate: everything a store holds reaches another store, once, across backends."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tokenlimit_core import Engine, open_store
from tokenlimit_core.demo import generate
from tokenlimit_core.migrate import _ledger_slices, migrate
from tokenlimit_core.store import StoreError

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def snapshot(store):
    """Everything migrate promises to copy, in a comparable form."""
    record = store.load_policy()
    return {
        "policy": record.policy_json if record else None,
        "counters": sorted((str(c.key), c.used, c.pending, c.granted, round(exp, 3))
                           for c, exp in store.all_counters()),
        "users": sorted(u.to_dict().items().__repr__() for u in store.users()),
        "daily": sorted(store.daily_usage("0001-01-01", "9999-12-31"), key=repr),
        "ledger": sorted((e.to_dict() for e in store.ledger(0, 253402300799.0)), key=lambda d: d["request_id"]),
    }


@pytest.fixture(scope="module")
def source():
    store = open_store(f"memory://{uuid.uuid4().hex}")
    generate(store, users=12, days=4, seed=3, now=NOW)
    engine = Engine(store)
    alice = next(u for u in store.users() if u.role == "user")
    status = engine.statuses(alice, "gpt-4o")[0]
    store.grant(status.counter.key, 5000, status.reset_at.timestamp(), "admin")
    return store


def test_copies_everything_and_twice_duplicates_nothing(source, store):
    summary = migrate(source, store)
    assert snapshot(store) == snapshot(source)
    assert summary.policy == "copied" and summary.events == len(source.ledger(0, 253402300799.0)) > 0
    assert summary.counters > 0 and summary.users == len(source.users()) > 0 and summary.daily_rows > 0
    revision = store.policy_revision()
    again = migrate(source, store)
    assert again.policy == "unchanged" and store.policy_revision() == revision
    assert snapshot(store) == snapshot(source)
    assert [e.action for e in store.audit_log()][:2] == ["migrate", "migrate"]


def test_copied_open_windows_keep_enforcing(source):
    target = open_store("memory://")
    migrate(source, target)
    user = next(u for u in source.users() if u.role == "user")
    before = [(s.budget.scope, s.counter.used, s.counter.pending, s.counter.granted)
              for s in Engine(source).statuses(user, "gpt-4o")]
    after = [(s.budget.scope, s.counter.used, s.counter.pending, s.counter.granted)
             for s in Engine(target).statuses(user, "gpt-4o")]
    assert after == before and any(used for _, used, _, _ in after)


def test_chain_memory_to_store_to_memory(source, store_url):
    middle = open_store(store_url)
    migrate(source, middle)
    back = open_store("memory://")
    migrate(middle, back)
    middle.close()
    assert snapshot(back) == snapshot(source)


def test_progress_bar_and_summary_text(source, capsys):
    summary = migrate(source, open_store("memory://"), progress=True)
    assert "ledger" in capsys.readouterr().err
    assert f"{summary.events} ledger events" in summary.describe("en")
    assert f"账本事件 {summary.events} 条" in summary.describe("zh")


def test_same_store_and_empty_source():
    named = f"memory://{uuid.uuid4().hex}"
    with pytest.raises(StoreError, match="same store"):
        migrate(open_store(named), open_store(named))
    summary = migrate(open_store("memory://"), open_store("memory://"))
    assert (summary.policy, summary.events, summary.daily_rows) == ("none", 0, 0)


def test_ledger_slices_cover_all_time_without_overlap():
    slices = _ledger_slices("2026-01-01", "2026-03-01")
    assert slices[0][0] == 0.0 and slices[-1][1] > time.time() * 100
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    assert all(end - start <= timedelta(days=7).total_seconds() for start, end in slices[1:-2])
    assert _ledger_slices(None, None) == [(0.0, 253402300799.0)]


def test_events_far_outside_usage_days_are_copied():
    from tokenlimit_core.store import DailyUsage, LedgerEvent

    source = open_store("memory://")
    source.put_history(daily=[DailyUsage("2026-06-01", "u", "m", 5)],
                       events=[LedgerEvent("early", 1000.0, "1970-01-01", "u"),
                               LedgerEvent("late", 4e10, "3237-07-31", "u")])
    target = open_store("memory://")
    assert migrate(source, target).events == 2
    assert {e.request_id for e in target.ledger(0, 253402300799.0)} == {"early", "late"}
