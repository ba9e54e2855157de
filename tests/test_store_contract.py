"""The store contract: every backend (memory, tinydb, redis) passes these unchanged."""
from __future__ import annotations

import threading
import time

import pytest

from tokenlimit_core import Engine, Policy, UserInfo, open_store
from tokenlimit_core.store import (SCHEMA_VERSION, BudgetCharge, ChargeRequest, CounterKey, LedgerEvent,
                                   Settlement)

FAR = time.time() + 86400


def charge(store, rid, amount, limit=100, scope="user:u1:total", window="2026-12-04", user="u1",
           model="m", enforce=True, day="2026-12-04"):
    key = CounterKey(scope, window)
    event = LedgerEvent(request_id=rid, ts=time.time(), day=day, user_id=user, model=model,
                        est_prompt=amount, est_completion=0)
    return store.charge(ChargeRequest(rid, amount, (BudgetCharge(key, limit, FAR),), event, enforce))


def test_empty_store_has_no_policy(store):
    assert store.load_policy() is None
    assert store.policy_revision() == 0


def test_policy_round_trip_and_revision(store):
    policy = Policy(roles={"user": 123}, model_limits={"gpt-4*": 5})
    rev1 = store.save_policy(policy.to_json(), "admin")
    rev2 = store.save_policy(policy.to_json(), "admin")
    assert rev2 == rev1 + 1 == store.policy_revision()
    assert Policy.from_json(store.load_policy().policy_json) == policy
    assert store.load_policy().actor == "admin"


def test_charge_counts_pending_and_refuses_over_limit(store):
    assert charge(store, "r1", 60).charged
    second = charge(store, "r2", 60)
    assert not second.charged
    assert second.verdict.decision == "denied" and second.verdict.reason == "too_large"
    [counter] = store.counters([CounterKey("user:u1:total", "2026-12-04")])
    assert (counter.used, counter.pending) == (0, 60)
    assert store.get_event("r2").status == "denied"
    assert store.get_event("r2").reason == "too_large" and store.get_event("r1").reason is None


def test_used_up_versus_too_large(store):
    assert charge(store, "r1", 100).charged
    assert charge(store, "r2", 1).verdict.reason == "used_up"


def test_shadow_mode_charges_but_marks(store):
    charge(store, "r1", 90)
    result = charge(store, "r2", 90, enforce=False)
    assert result.charged and result.verdict.decision == "shadow_denied"
    assert store.get_event("r2").reason == "too_large"


def test_charge_is_idempotent_per_request(store):
    assert charge(store, "r1", 30).charged
    again = charge(store, "r1", 30)
    assert again.duplicate
    [counter] = store.counters([CounterKey("user:u1:total", "2026-12-04")])
    assert counter.pending == 30


def test_settle_replaces_pending_once(store):
    charge(store, "r1", 50)
    event = store.settle("r1", Settlement(20, 15, "openai", 0.5), time.time())
    assert event.status == "settled" and event.actual_prompt == 20 and event.actual_completion == 15
    assert store.settle("r1", Settlement(20, 15, "openai"), time.time()) is None
    [counter] = store.counters([CounterKey("user:u1:total", "2026-12-04")])
    assert (counter.used, counter.pending) == (35, 0)
    assert store.get_event("r1").status == "settled"


def test_settle_unknown_request_is_none(store):
    assert store.settle("nope", Settlement(1, 1, "openai"), time.time()) is None


def test_settle_denied_request_is_none(store):
    charge(store, "r1", 500)
    assert store.settle("r1", Settlement(1, 1, "openai"), time.time()) is None


def test_daily_usage_rolls_up_charges_and_settles(store):
    charge(store, "r1", 50, model="a")
    charge(store, "r2", 10, model="b")
    charge(store, "r3", 999, model="b")  # denied
    store.settle("r1", Settlement(30, 5, "openai", 1.25), time.time())
    rows = {(r.model): r for r in store.daily_usage("2026-12-01", "2026-12-31")}
    assert rows["a"].tokens == 35 and rows["a"].prompt_tokens == 30 and rows["a"].completion_tokens == 5
    assert rows["a"].requests == 1 and rows["a"].cost == pytest.approx(1.25)
    assert rows["b"].tokens == 10 and rows["b"].requests == 2 and rows["b"].denied == 1
    assert store.daily_usage("2026-11-01", "2026-11-30") == []
    assert [r.user_id for r in store.daily_usage("2026-12-01", "2026-12-31", user_id="u1")] == ["u1", "u1"]


def test_monthly_usage_sums_days(store):
    from tokenlimit_core.store import DailyUsage

    store.put_history([DailyUsage("2025-01-0%d" % d, "u1", "m", tokens=10 * d, requests=1, cost=0.5)
                       for d in range(1, 4)] + [DailyUsage("2025-02-01", "u1", "m", tokens=7, requests=1)], [])
    rows = store.monthly_usage("2025-01", "2025-02")
    assert [(r.day, r.tokens, r.requests) for r in rows] == [("2025-01", 60, 3), ("2025-02", 7, 1)]
    assert rows[0].cost == pytest.approx(1.5)
    assert store.monthly_usage("2025-02", "2025-02", user_id="nobody") == []


def test_refund_pending_and_settled(store):
    charge(store, "r1", 40)
    charge(store, "r2", 30)
    store.settle("r2", Settlement(10, 10, "openai"), time.time())
    assert store.refund("r1", "admin").status == "refunded"
    assert store.refund("r2", "admin").status == "refunded"
    assert store.refund("r2", "admin") is None
    [counter] = store.counters([CounterKey("user:u1:total", "2026-12-04")])
    assert (counter.used, counter.pending) == (0, 0)
    assert [a.action for a in store.audit_log()][:2] == ["refund", "refund"]
    assert sum(r.tokens for r in store.daily_usage("2026-12-01", "2026-12-31")) == 0


def test_grant_raises_the_limit_and_reset_clears(store):
    key = CounterKey("user:u1:total", "2026-12-04")
    charge(store, "r1", 100)
    store.settle("r1", Settlement(100, 0, "openai"), time.time())
    assert not charge(store, "r2", 10).charged
    assert store.grant(key, 50, FAR, "admin").granted == 50
    assert charge(store, "r3", 10).charged
    counter = store.reset(key, "admin")
    assert counter.used == 0 and counter.granted == 0
    actions = [a.action for a in store.audit_log()]
    assert "grant" in actions and "reset" in actions


def test_oldest_pending_by_user_and_model(store):
    charge(store, "r1", 5, model="a")
    charge(store, "r2", 5, model="a")
    charge(store, "r3", 5, model="b")
    assert store.oldest_pending("u1", "a") == "r1"
    store.settle("r1", Settlement(1, 1, "openai"), time.time())
    assert store.oldest_pending("u1", "a") == "r2"
    assert store.oldest_pending("u2", "a") is None


def test_ledger_by_time_and_user(store):
    charge(store, "r1", 5, user="u1")
    charge(store, "r2", 5, user="u2", scope="user:u2:total")
    events = store.ledger(0, time.time() + 10)
    assert {e.request_id for e in events} == {"r1", "r2"}
    assert [e.request_id for e in store.ledger(0, time.time() + 10, user_id="u2")] == ["r2"]
    assert store.ledger(0, 1) == []


def test_user_directory(store):
    store.touch_user(UserInfo("u1", "Alice", "alice@example.org", "user", ("staff",), 10.0))
    store.touch_user(UserInfo("u1", "Alice B", "alice@example.org", "admin", ("staff",), 20.0))
    store.touch_user(UserInfo("u2", "李雷", "li@example.org", "user", (), 30.0))
    users = {u.id: u for u in store.users()}
    assert users["u1"].name == "Alice B" and users["u1"].role == "admin" and users["u1"].groups == ("staff",)
    assert users["u2"].name == "李雷"


def test_audit_log_newest_first(store):
    store.audit("alice", "first", {"n": 1})
    store.audit("bob", "second", {"n": 2})
    log = store.audit_log(10)
    assert [a.action for a in log[:2]] == ["second", "first"]
    assert log[0].actor == "bob" and log[0].detail == {"n": 2}


def test_multi_budget_charge_is_all_or_nothing(store):
    keys = [CounterKey("user:u1:total", "w"), CounterKey("user:u1:model:m", "w"), CounterKey("shared:s", "w")]
    budgets = (BudgetCharge(keys[0], 1000, FAR), BudgetCharge(keys[1], 50, FAR), BudgetCharge(keys[2], -1, FAR))
    ev = LedgerEvent(request_id="r1", ts=time.time(), day="w", user_id="u1", model="m")
    assert store.charge(ChargeRequest("r1", 40, budgets, ev)).charged
    ev2 = LedgerEvent(request_id="r2", ts=time.time(), day="w", user_id="u1", model="m")
    result = store.charge(ChargeRequest("r2", 40, budgets, ev2))
    assert not result.charged and result.verdict.deciding == 1
    assert [c.pending for c in store.counters(keys)] == [40, 40, 40]


def test_concurrent_charges_never_overshoot(store_url):
    stores = [open_store(store_url) for _ in range(4)]
    charged = []
    lock = threading.Lock()

    def worker(n):
        s = stores[n % len(stores)]
        for i in range(25):
            if charge(s, f"r{n}-{i}", 7, limit=500).charged:
                with lock:
                    charged.append(7)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [counter] = stores[0].counters([CounterKey("user:u1:total", "2026-12-04")])
    assert counter.pending == sum(charged) <= 500
    assert sum(charged) == 497  # everything that fits was charged
    for s in stores:
        s.close()


def test_engine_end_to_end_on_every_backend(store):
    engine = Engine(store, seed=Policy(roles={"user": 200}))
    user = UserInfo("bob", "Bob", role="user")
    body = {"messages": [{"role": "user", "content": "hello there " * 20}]}
    first = engine.check(user, "llama3:8b", body, request_id="a")
    assert first.allowed
    engine.settle("a", usage=None, body={"usage": {"prompt_tokens": 150, "completion_tokens": 10}})
    second = engine.check(user, "llama3:8b", body, request_id="b")
    assert not second.allowed and second.reason == "too_large"
    assert (second.used, second.pending, second.remaining) == (160, 0, 40)
    assert second.estimate.total > 40


def test_bulk_history_and_counters_load_idempotently(store):
    from tokenlimit_core.store import Counter, DailyUsage

    daily = [DailyUsage("2025-01-0%d" % d, "u%d" % u, "m", tokens=100 * d, requests=d)
             for d in range(1, 4) for u in range(2)]
    events = [LedgerEvent(request_id=f"old{i}", ts=1_700_000_000 + i, day="2025-01-01", user_id="u0",
                          model="m", charged=10, status="settled", actual_prompt=5, actual_completion=5)
              for i in range(3)]
    for _ in range(2):
        store.put_history(daily, events)
        store.put_counters([(Counter(CounterKey("user:u0:total", "2026-12-04"), 70, 0, 5), FAR)])
    rows = store.daily_usage("2025-01-01", "2025-01-31")
    assert len(rows) == 6 and sum(r.tokens for r in rows) == 2 * (100 + 200 + 300)
    assert len(store.ledger(0, 2_000_000_000)) == 3
    [counter] = store.counters([CounterKey("user:u0:total", "2026-12-04")])
    assert (counter.used, counter.granted) == (70, 5)
    assert [c.key for c, _ in store.all_counters()] == [CounterKey("user:u0:total", "2026-12-04")]


def test_info_reports_schema_and_health(store):
    info = store.info()
    assert info["schema_version"] == SCHEMA_VERSION
    assert info["healthy"] is True
    assert "password" not in str(info)
