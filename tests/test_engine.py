"""The engine: charge at the inlet, settle at the outlet, failure modes, concurrency."""
import logging
import threading
from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta, timezone

import pytest

from tokenlimit_core import Engine, Policy, Price, QuotaExceeded, SharedBudget, Tier, UserInfo, UserOverride, open_store
from tokenlimit_core.store import CounterKey, StoreUnavailable
from tokenlimit_core.usage import Usage

ALICE = UserInfo("alice", "Alice", "alice@example.org", "user")
BODY = {"messages": [{"role": "user", "content": "Explain photosynthesis briefly."}], "max_tokens": 50}


def make(policy=None, **kwargs):
    store = open_store("memory://")
    return Engine(store, seed=policy or Policy(roles={"user": 1000}), **kwargs), store


def test_check_charges_pending_then_settle_replaces_it():
    engine, store = make()
    decision = engine.check(ALICE, "gpt-4o", BODY, request_id="r1")
    assert decision.allowed and decision.status == "allowed"
    assert decision.estimate.completion == 50 and decision.remaining == 1000
    [total] = store.counters([decision.budgets[0].counter.key])
    assert total.pending == decision.estimate.total
    event = engine.settle("r1", usage=Usage(30, 70, "openai"))
    assert event.status == "settled" and event.tokens == 100
    assert engine.settle("r1", usage=Usage(30, 70, "openai")) is None  # never twice
    status = engine.statuses(ALICE, "gpt-4o")[0]
    assert (status.counter.used, status.counter.pending, status.remaining) == (100, 0, 900)


def test_decision_is_frozen():
    engine, _ = make()
    with pytest.raises(FrozenInstanceError):
        engine.check(ALICE, "m", BODY).allowed = False


def test_refusal_too_large_then_used_up_with_clear_text():
    engine, _ = make(Policy(roles={"user": 200}))
    big = {"messages": [{"role": "user", "content": "word " * 400}]}
    too_large = engine.check(ALICE, "gpt-4", big)
    assert not too_large.allowed and too_large.reason == "too_large"
    text = engine.refusal_text(too_large)
    assert "200" in text and "too large" in text and "wait until" in text
    engine.check(ALICE, "gpt-4", BODY, request_id="a")
    engine.settle("a", usage=Usage(150, 60, "openai"))
    used_up = engine.check(ALICE, "gpt-4", BODY)
    assert used_up.reason == "used_up" and used_up.used == 210 and used_up.remaining == -10
    assert "210" in engine.refusal_text(used_up) and "0 are left" in engine.refusal_text(used_up)
    assert "已使用 210" in engine.refusal_text(used_up, "zh")


def test_warning_near_threshold():
    engine, _ = make(Policy(roles={"user": 100}, warning_threshold=0.5))
    first = engine.check(ALICE, "m", {"messages": [], "max_tokens": 20})
    assert first.status == "allowed"
    second = engine.check(ALICE, "m", {"messages": [], "max_tokens": 40})
    assert second.status == "warned" and second.allowed
    assert "%" in engine.warning_text(second) and "%" in engine.warning_text(second, "zh")


def test_per_model_limit_is_compared_with_that_models_usage():
    """The original filter compared a per-model limit with the user's total over all models."""
    engine, _ = make(Policy(roles={"user": 10_000}, model_limits={"gpt-4": 500}))
    engine.check(ALICE, "llama3", BODY, request_id="l")
    engine.settle("l", usage=Usage(900, 0, "openai"))
    decision = engine.check(ALICE, "gpt-4", BODY)
    assert decision.allowed
    assert {s.budget.kind: s.counter.used for s in decision.budgets} == {"total": 900, "model": 0}


def test_shadow_mode_records_but_never_refuses():
    engine, store = make(Policy(roles={"user": 10}, shadow_mode=True))
    decision = engine.check(ALICE, "m", BODY, request_id="s")
    assert decision.allowed and decision.status == "shadow_denied"
    assert store.get_event("s").decision == "shadow_denied"


def test_tasks_are_metered_but_refused_only_when_configured():
    engine, store = make(Policy(roles={"user": 10}))
    decision = engine.check(ALICE, "m", BODY, request_id="t", task="title_generation")
    assert decision.allowed and store.get_event("t").task == "title_generation"
    strict, _ = make(Policy(roles={"user": 10}, refuse_tasks=True))
    assert not strict.check(ALICE, "m", BODY, task="title_generation").allowed


def test_unmetered_models_are_not_charged():
    engine, store = make(Policy(roles={"user": 10}, target_models=["gpt-*"]))
    decision = engine.check(ALICE, "llama3", BODY, request_id="u")
    assert decision.allowed and decision.status == "unmetered" and store.get_event("u") is None


def test_admin_never_refused_by_default():
    engine, _ = make(Policy(roles={"user": 10, "admin": -1}, model_limits={"*": 5},
                            shared=[SharedBudget(name="all", limit=1)]))
    admin = UserInfo("root", role="admin")
    assert all(engine.check(admin, "gpt-4o", BODY).allowed for _ in range(5))


def test_settle_without_usage_estimates_the_reply():
    engine, store = make()
    decision = engine.check(ALICE, "gpt-4", BODY, request_id="r")
    body = {"messages": BODY["messages"] + [{"role": "assistant", "content": "Plants turn light into sugar."}]}
    event = engine.settle("r", body)
    assert event.actual_source == "estimate"
    assert event.actual_prompt == decision.estimate.prompt and 4 <= event.actual_completion <= 10


def test_unsettled_request_keeps_its_estimate_and_can_be_refunded():
    engine, store = make()
    decision = engine.check(ALICE, "m", BODY, request_id="lost")
    assert engine.statuses(ALICE, "m")[0].counter.pending == decision.estimate.total
    store.refund("lost", "admin")
    assert engine.statuses(ALICE, "m")[0].counter.pending == 0


def test_request_belongs_to_the_window_it_was_checked_in():
    clock = [datetime(2026, 12, 4, 23, 59, tzinfo=timezone.utc)]
    engine, store = make(Policy(roles={"user": 1000}, timezone="UTC"), clock=lambda: clock[0])
    engine.check(ALICE, "m", BODY, request_id="late")
    clock[0] += timedelta(minutes=2)
    engine.settle("late", usage=Usage(10, 10, "openai"))
    [old, new] = store.counters([CounterKey("user:alice:total", "2026-12-04"),
                                 CounterKey("user:alice:total", "2026-12-05")])
    assert (old.used, old.pending, new.used) == (20, 0, 0)
    assert store.get_event("late").day == "2026-12-04"


def test_cost_from_prices():
    engine, store = make(Policy(roles={"user": -1}, prices={"gpt-4o*": Price(input=2.5, output=10.0)}))
    engine.check(ALICE, "gpt-4o-mini", BODY, request_id="c")
    event = engine.settle("c", usage=Usage(1_000_000, 100_000, "openai"))
    assert event.cost == pytest.approx(3.5)


def test_policy_changes_in_the_store_are_picked_up():
    engine, store = make(policy_ttl=0)
    assert engine.policy().roles["user"] == 1000
    store.save_policy(Policy(roles={"user": 7}).to_json(), "panel")
    assert engine.policy().roles["user"] == 7


def test_seed_that_differs_from_store_is_reported_once(caplog):
    store = open_store("memory://")
    store.save_policy(Policy(roles={"user": 5}).to_json(), "panel")
    engine = Engine(store, seed=Policy(roles={"user": 99}), policy_ttl=0)
    with caplog.at_level(logging.WARNING):
        engine.policy()
        store.save_policy(Policy(roles={"user": 6}).to_json(), "panel")
        engine.policy()
    assert engine.policy().roles["user"] == 6
    assert sum("differ" in r.message for r in caplog.records) == 1
    assert [a.action for a in store.audit_log()].count("seed_differs") == 1


class FlakyStore:
    """Wraps a store; raises StoreUnavailable while `down` is set."""

    def __init__(self, inner):
        self.inner, self.down = inner, False
        self.url = "redis://user:secret@db:6379/0"

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down:
                raise StoreUnavailable("connection refused")
            return attr(*args, **kwargs)
        return call


@pytest.mark.parametrize("mode, allowed", [("allow", True), ("block", False)])
def test_store_outage_applies_failure_mode_logs_once_and_recovers(mode, allowed, caplog):
    flaky = FlakyStore(open_store("memory://"))
    engine = Engine(flaky, seed=Policy(roles={"user": 1000}), failure_mode=mode, policy_ttl=0)
    assert engine.check(ALICE, "m", BODY).allowed
    flaky.down = True
    with caplog.at_level(logging.INFO):
        decisions = [engine.check(ALICE, "m", BODY) for _ in range(20)]
        assert {d.allowed for d in decisions} == {allowed}
        assert engine.settle("whatever", usage=Usage(1, 1, "openai")) is None
        flaky.down = False
        assert engine.check(ALICE, "m", BODY).allowed
    lines = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in line for line in lines) == 1
    assert sum("reachable again" in line for line in lines) == 1
    assert all("secret" not in line for line in lines)
    if not allowed:
        assert "unavailable" in engine.refusal_text(decisions[0])


def test_bad_failure_mode_is_named():
    with pytest.raises(ValueError, match="failure_mode"):
        Engine(open_store("memory://"), failure_mode="maybe")


def test_usage_info_like_the_original_filter():
    engine, _ = make()
    engine.check(ALICE, "m", BODY, request_id="u")
    engine.settle("u", usage=Usage(40, 60, "openai"))
    assert engine.usage_info(ALICE, "m", 60) == {"daily_limit": 1000, "total_used": 100, "remaining": 900,
                                                 "current_request": 60}
    admin = engine.usage_info(UserInfo("root", role="admin"), "m", 5)
    assert admin["remaining"] == -1


def test_200_concurrent_checks_never_overshoot():
    engine, store = make(Policy(roles={"user": 10_000}, completion_cap=10_000))
    engine.check(ALICE, "m", {"messages": [], "max_tokens": 9_000}, request_id="big")
    results = []
    barrier = threading.Barrier(50)

    def worker(n):
        barrier.wait()
        for i in range(4):
            results.append(engine.check(ALICE, "m", {"messages": [], "max_tokens": 37}))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    status = engine.statuses(ALICE, "m")[0]
    charged = sum(d.estimate.total for d in results if d.allowed)
    assert status.counter.pending == 9_003 + charged <= 10_000  # 9,000 + 3 per-request overhead
    assert len(results) == 200 and sum(d.allowed for d in results) == (10_000 - 9_003) // 40


def test_quota_exceeded_carries_the_decision():
    engine, _ = make(Policy(roles={"user": 0}))
    decision = engine.check(ALICE, "m", BODY)
    error = QuotaExceeded(engine.refusal_text(decision), decision)
    assert error.decision is decision and "0" in str(error)


def test_user_directory_is_kept_current():
    engine, store = make(Policy(roles={"user": 100}, tiers={"t": Tier()}, users={"alice": UserOverride(tiers=["t"])}))
    engine.check(UserInfo("alice", "Alice", "a@x.org", "user", ("g1",)), "m", BODY)
    [user] = store.users()
    assert (user.name, user.email, user.groups) == ("Alice", "a@x.org", ("g1",))


def test_estimation_off_admits_while_quota_is_left_and_settles_actuals():
    store = open_store("memory://")
    engine = Engine(store, seed=Policy(roles={"user": 100}), estimation=False)
    big = {"messages": [{"role": "user", "content": "word " * 500}]}
    first = engine.check(ALICE, "m", big, request_id="a")
    assert first.allowed and first.estimate.method == "disabled"
    reply = {"messages": big["messages"] + [{"role": "assistant", "content": "ok"}]}
    event = engine.settle("a", reply)
    assert event.actual_prompt > 400  # estimated from the outlet's messages, not the 1-token placeholder
    assert not engine.check(ALICE, "m", big).allowed
