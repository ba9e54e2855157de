"""Journal records replay to exactly the state the memory store reaches; snapshots keep the hot state."""
from __future__ import annotations

import time
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlimit_core.store import (AuditEntry, BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, PolicyRecord,
                                   Settlement, UserInfo)
from tokenlimit_core.store.memory import StoreState
from tokenlimit_core.store.tinydb_ops import (HOT_AUDIT, PENDING_GRACE, apply, charge_record, event_row,
                                              refund_record, settle_record, snapshot_doc, state_from_doc)

FAR = time.time() + 86400
KEYS = [CounterKey("user:u1:total", "d"), CounterKey("user:u1:model:m", "d"), CounterKey("shared:all", "d")]


def request(rid: str, amount: int, limit: int) -> ChargeRequest:
    budgets = tuple(BudgetCharge(k, limit if i == 0 else 10**6, FAR) for i, k in enumerate(KEYS))
    event = LedgerEvent(request_id=rid, ts=1000.0, day="2026-12-04", user_id="u1", model="m", est_prompt=amount)
    return ChargeRequest(rid, amount, budgets, event)


def run_and_record(state: StoreState, steps) -> list[dict]:
    """Apply steps to a state the way the store does, returning the journal records it would write."""
    records = []
    for kind, n, amount in steps:
        rid = f"r{n}"
        if kind == "charge" and rid not in state.events:
            req = request(rid, amount, 300)
            state.charge(req)
            records.append(charge_record(req, state.events[rid]))
        elif kind == "settle" and rid in state.pending:
            before, s = state.events[rid], Settlement(amount, 2, "openai", 0.01)
            after = state.settle(rid, s, 2000.0)
            records.append(settle_record(rid, s, 2000.0, before, after, state.keys[rid]))
        elif kind == "refund" and rid in state.events and state.events[rid].status not in ("refunded", "denied"):
            before, keys = state.events[rid], state.keys.get(rid, [])
            after = state.refund(rid, "admin", 3000.0)
            records.append(refund_record(rid, "admin", 3000.0, before, after, keys, False))
        elif kind == "grant":
            state.grant(KEYS[0], amount, FAR, "admin", 4000.0)
            records.append({"op": "grant", "key": [KEYS[0].scope, KEYS[0].window], "tokens": amount, "exp": FAR,
                            "actor": "admin", "now": 4000.0})
    return records


steps = st.lists(st.tuples(st.sampled_from(["charge", "settle", "refund", "grant"]), st.integers(0, 12),
                           st.integers(1, 120)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_replaying_records_reaches_the_same_state(plan):
    original = StoreState()
    records = run_and_record(original, plan)
    replayed = StoreState()
    for record in records:
        apply(replayed, record)
    assert replayed.counters == original.counters
    assert replayed.pending == original.pending
    assert replayed.events == original.events
    assert replayed.daily == original.daily


@settings(max_examples=40, deadline=None)
@given(steps)
def test_record_rollups_add_up_to_the_state_rollup(plan):
    state = StoreState()
    records = run_and_record(state, plan)
    total = [0, 0, 0, 0, 0]
    for record in records:
        for i, value in enumerate(record.get("roll", [0] * 6)[:5]):
            total[i] += value
    row = state.daily.get(("2026-12-04", "u1", "m"), {})
    assert total == [row.get(f, 0) for f in ("tokens", "prompt_tokens", "completion_tokens", "requests", "denied")]


def test_snapshot_keeps_hot_state_and_drops_finished_work():
    state = StoreState()
    state.save_policy('{"roles": {}}', "admin", 1.0)
    state.charge(request("open", 10, 100))
    state.charge(request("done", 10, 100))
    state.settle("done", Settlement(3, 4, "openai"), 2.0)
    state.users["u1"] = UserInfo("u1", "Ann", groups=("g",))
    state.counters["user:u1:total@old"] = {"used": 5, "pending": 0, "granted": 0, "expires_at": 10.0}
    state.audit += [AuditEntry(float(i), "a", "x", {"i": i}) for i in range(HOT_AUDIT + 5)]
    doc, archived = snapshot_doc(state, 7, time.time())
    again = state_from_doc(doc)
    assert doc["generation"] == 7 and len(archived) == 6  # 5 + the policy save's entry
    assert list(again.pending) == ["open"] and set(again.events) == {"open"}  # finished requests go to history
    assert "user:u1:total@old" not in again.counters  # closed window
    assert again.counter(KEYS[0]) == state.counter(KEYS[0])
    assert again.policy == PolicyRecord('{"roles": {}}', 1, 1.0, "admin")
    assert again.users == state.users and len(again.audit) == HOT_AUDIT
    assert again.daily == {}  # rollups live in history


def test_stale_pending_leaves_the_hot_state():
    state = StoreState()
    stale = request("stale", 5, 100)
    stale = replace(stale, budgets=tuple(replace(b, expires_at=time.time() - PENDING_GRACE - 60) for b in stale.budgets))
    state.charge(stale)
    state.charge(request("fresh", 5, 100))
    doc, _ = snapshot_doc(state, 1, time.time())
    assert [row[0] for row in doc["pending"]] == ["fresh"]


def test_event_row_is_a_plain_copy():
    event = LedgerEvent(request_id="a", ts=1.0, day="d", user_id="u")
    row = event_row(event)
    row["user_id"] = "changed"
    assert event.user_id == "u" and event_row(event) == event.to_dict()
