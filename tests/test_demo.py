"""demo: simulated traffic is real engine traffic, consistent, deterministic, and loads into any store."""
from __future__ import annotations

import collections
from datetime import date, datetime, timezone

import pytest

from tokenlimit_core import Engine, Policy, open_store
from tokenlimit_core.demo import demo_policy, generate, generate_history

NOW = datetime(2026, 12, 4, 15, 30, tzinfo=timezone.utc)  # a Friday afternoon


@pytest.fixture(scope="module")
def filled():
    store = open_store("memory://")
    summary = generate(store, users=30, days=10, seed=1, now=NOW)
    yield store, summary
    store.close()


def _ledger_totals(events):
    totals = collections.Counter()
    for event in events:
        totals[(event.day, event.user_id, event.model)] += event.tokens
    return totals


def test_rollups_match_the_ledger(filled):
    store, summary = filled
    events = store.ledger(0, NOW.timestamp() + 1)
    assert len(events) == summary.requests == summary.events
    rows = store.daily_usage("2026-11-25", "2026-12-04")
    assert len(rows) == summary.daily_rows
    totals = _ledger_totals(events)
    held = {(r.day, r.user_id, r.model): r.tokens for r in rows}
    assert all(totals[key] == tokens for key, tokens in held.items())
    assert all(key in held for key, tokens in totals.items() if tokens)
    assert sum(r.tokens for r in rows) == summary.tokens
    assert sum(r.requests for r in rows) == summary.requests
    assert sum(r.denied for r in rows) == sum(e.status == "denied" for e in events)


def test_traffic_has_refusals_warnings_unsettled_and_rhythm(filled):
    store, summary = filled
    events = store.ledger(0, NOW.timestamp() + 1)
    assert summary.denied > 0 and summary.warned > 0 and summary.unsettled > 0
    assert summary.denied == sum(e.decision == "denied" for e in events)
    assert summary.unsettled == sum(e.status == "pending" for e in events)
    deciding = {e.deciding.split("@")[0].split(":")[0] for e in events if e.decision == "denied"}
    assert "user" in deciding
    by_day = collections.Counter(e.day for e in events)
    weekend = by_day["2026-11-28"] + by_day["2026-11-29"]
    weekdays = by_day["2026-11-30"] + by_day["2026-12-01"]
    assert weekend * 2 < weekdays
    hours = collections.Counter(datetime.fromtimestamp(e.ts, timezone.utc).hour for e in events)
    assert hours[10] > 3 * hours[3]
    assert {e.source for e in events} == {"webui", "api"}
    assert any(e.task for e in events)
    assert any(e.actual_source == "estimate" for e in events)


def test_webui_actuals_exceed_estimates_more_than_api(filled):
    store, _ = filled
    settled = [e for e in store.ledger(0, NOW.timestamp() + 1)
               if e.status == "settled" and e.task is None and e.actual_source != "estimate"]

    def mean_gap(source):
        gaps = [e.actual_prompt - e.est_prompt for e in settled if e.source == source]
        return sum(gaps) / len(gaps)

    assert mean_gap("webui") > 500 > abs(mean_gap("api"))


def test_current_window_counters_are_the_engines(filled):
    store, _ = filled
    policy = Policy.from_json(store.load_policy().policy_json)
    engine = Engine(store)
    today = [e for e in store.ledger(0, NOW.timestamp() + 1) if e.day == "2026-12-04"]
    assert today
    by_user = collections.Counter()
    for e in today:
        by_user[e.user_id] += e.tokens
    users = {u.id: u for u in store.users()}
    for user_id, tokens in by_user.items():
        total = next(s for s in engine.statuses(users[user_id], "gpt-4o", now=NOW) if s.budget.kind == "total")
        assert total.counter.used + total.counter.pending == tokens
    assert policy.shared and policy.tiers and policy.group_tiers and policy.prices


def test_directory_has_roles_groups_and_chinese_names(filled):
    store, summary = filled
    users = store.users()
    assert len(users) == summary.users == 30
    assert {u.role for u in users} >= {"user", "admin", "pending"}
    assert any("\u4e00" <= ch <= "\u9fff" for u in users for ch in u.name)
    assert all("@" in u.email and u.last_seen > 0 for u in users)
    assert any(u.groups for u in users)


def test_deterministic_and_idempotent():
    first, second = open_store("memory://"), open_store("memory://")
    a = generate(first, users=8, days=3, seed=5, now=NOW)
    b = generate(second, users=8, days=3, seed=5, now=NOW)
    assert a == b
    assert first.ledger(0, NOW.timestamp() + 1) == second.ledger(0, NOW.timestamp() + 1)
    again = generate(first, users=8, days=3, seed=5, now=NOW)
    assert again.requests == a.requests
    assert first.daily_usage("2026-01-01", "2026-12-31") == second.daily_usage("2026-01-01", "2026-12-31")
    assert first.policy_revision() == 1
    c = generate(open_store("memory://"), users=8, days=3, seed=6, now=NOW)
    assert c != a


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="users=0"):
        generate(open_store("memory://"), users=0, days=3)


def test_demo_on_every_backend(store):
    summary = generate(store, users=6, days=2, seed=2, now=NOW)
    assert len(store.ledger(0, NOW.timestamp() + 1)) == summary.requests > 0
    assert sum(r.tokens for r in store.daily_usage("2026-12-03", "2026-12-04")) == summary.tokens
    assert Policy.from_json(store.load_policy().policy_json) == demo_policy(6).model_copy(
        update={"users": Policy.from_json(store.load_policy().policy_json).users})


def test_generate_history_rows_and_consistent_events():
    store = open_store("memory://")
    written = generate_history(store, users=20, days=14, models=3, seed=0, events_per_day=4,
                               end=date(2026, 12, 3))
    rows = store.daily_usage("2026-11-20", "2026-12-03")
    assert written == len(rows) == 20 * 14 * 3
    assert len(store.users()) == 20
    assert {r.model for r in rows} == {"gpt-4o", "gpt-4o-mini", "llama3:8b"}
    assert all(r.tokens == r.prompt_tokens + r.completion_tokens for r in rows)
    events = store.ledger(0, 2e9)
    assert events
    by_row = _ledger_totals(events)
    row_tokens = {(r.day, r.user_id, r.model): r for r in rows}
    for key, tokens in by_row.items():
        assert row_tokens[key].tokens == tokens
    assert len({(e.day, e.user_id, e.model) for e in events}) <= 4 * 14
    again = generate_history(store, users=20, days=14, models=3, seed=0, events_per_day=4, end=date(2026, 12, 3))
    assert again == written and store.daily_usage("2026-11-20", "2026-12-03") == rows
