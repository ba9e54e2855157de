"""Journal records and hot-state snapshots of the tinydb store, as plain JSON.

A journal record names one operation and its arguments, so every process replays it
on its own `StoreState` (the reference semantics of store/memory.py) and reaches the
same state. Records that change the ledger also carry their effect (`ev`: the event
after the operation, `k`: the counters it was charged to, `roll`: how the daily rollup
moved), which is what history merging reads without any state.

The snapshot holds only the hot state: open-window counters, pending requests with
their events, the user directory, the policy and the recent audit trail.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from .base import (SCHEMA_VERSION, AuditEntry, BudgetCharge, ChargeRequest, Counter, CounterKey, LedgerEvent,
                   PolicyRecord, Settlement, UserInfo, rollup_delta)
from .memory import StoreState

SNAPSHOT_FORMAT = "tokenlimit-tinydb-state"
HOT_AUDIT = 1000  # audit entries kept in the hot state; older ones move to history at compaction
# A request still pending a day after all its windows closed will not be settled any more: it keeps
# its estimate (in the ledger and rollups) but leaves the hot state, so the snapshot stays small.
PENDING_GRACE = 86400.0


def event_row(event: LedgerEvent) -> dict[str, Any]:
    """A ledger event as a JSON-able dict (its fields are all scalars, so no deep copy is needed)."""
    return dict(vars(event))


def roll_of(before: LedgerEvent, after: Optional[LedgerEvent], requests: int = 0, denied: int = 0) -> list:
    """The daily-rollup change as [tokens, prompt, completion, requests, denied, cost]."""
    d = rollup_delta(before, after)
    return [d.tokens, d.prompt_tokens, d.completion_tokens, requests, denied, d.cost]


def charge_record(req: ChargeRequest, event: LedgerEvent) -> dict[str, Any]:
    """The record of a charge (charged or denied); `event` is the event as the charge wrote it."""
    empty = replace(event, status="denied")
    denied = 1 if event.status == "denied" else 0
    return {"op": "charge", "amt": req.amount, "enf": req.enforce, "wt": req.warn_threshold,
            "b": [[b.key.scope, b.key.window, b.limit, b.expires_at] for b in req.budgets],
            "ev": event_row(event), "k": [[b.key.scope, b.key.window, b.expires_at] for b in req.budgets],
            "roll": roll_of(empty, event, 1, denied)}


def settle_record(request_id: str, s: Settlement, now: float, before: LedgerEvent, after: LedgerEvent,
                  keys: list) -> dict[str, Any]:
    """The record of a settle."""
    return {"op": "settle", "id": request_id, "s": [s.prompt_tokens, s.completion_tokens, s.source, s.cost],
            "now": now, "ev": event_row(after), "k": keys, "roll": roll_of(before, after)}


def refund_record(request_id: str, actor: str, now: float, before: LedgerEvent, after: LedgerEvent, keys: list,
                  injected: bool) -> dict[str, Any]:
    """The record of a refund; `injected` when the event came from history, not the hot state."""
    record = {"op": "refund", "id": request_id, "actor": actor, "now": now, "ev": event_row(after), "k": keys,
              "roll": roll_of(before, after)}
    if injected:
        record["inject"] = event_row(before)
    return record


def apply(state: StoreState, rec: dict[str, Any]) -> None:
    """Replay one journal record on a state (raises KeyError/TypeError/ValueError on a malformed record)."""
    op = rec["op"]
    if op == "charge":
        ev = LedgerEvent.from_dict(rec["ev"])
        budgets = tuple(BudgetCharge(CounterKey(s, w), int(limit), float(exp)) for s, w, limit, exp in rec["b"])
        state.charge(ChargeRequest(ev.request_id, int(rec["amt"]), budgets, ev, bool(rec["enf"]), float(rec["wt"])))
    elif op == "settle":
        p, c, source, cost = rec["s"]
        state.settle(rec["id"], Settlement(int(p), int(c), source, cost), float(rec["now"]))
    elif op == "refund":
        if "inject" in rec and rec["id"] not in state.events:
            state.events[rec["id"]] = LedgerEvent.from_dict(rec["inject"])
            state.keys[rec["id"]] = rec["k"]
        state.refund(rec["id"], rec["actor"], float(rec["now"]))
    elif op == "grant":
        state.grant(CounterKey(*rec["key"]), int(rec["tokens"]), float(rec["exp"]), rec["actor"], float(rec["now"]))
    elif op == "reset":
        state.reset(CounterKey(*rec["key"]), rec["actor"], float(rec["now"]))
    elif op == "policy":
        state.save_policy(rec["json"], rec["actor"], float(rec["now"]))
    elif op == "user":
        user = UserInfo.from_dict(rec["u"])
        state.users[user.id] = user
    elif op == "audit":
        ts, actor, action, detail = rec["a"]
        state.audit.append(AuditEntry(float(ts), actor, action, dict(detail)))
    elif op == "counters":
        state.put_counters((Counter(CounterKey(s, w), int(u), int(p), int(g)), float(exp))
                           for s, w, u, p, g, exp in rec["rows"])
    else:
        raise ValueError(f"unknown operation {op!r}")


def audit_row(entry: AuditEntry) -> list:
    """An audit entry as a JSON row."""
    return [entry.ts, entry.actor, entry.action, entry.detail]


def snapshot_doc(state: StoreState, generation: int, now: float) -> tuple[dict[str, Any], list]:
    """The hot part of a state as a snapshot, and the audit rows it leaves out (for history)."""
    pending = [(rid, amount) for rid, amount in state.pending.items()
               if max((e for _s, _w, e in state.keys.get(rid, [])), default=now) > now - PENDING_GRACE]
    live_keys = {f"{s}@{w}" for rid, _ in pending for s, w, _e in state.keys.get(rid, [])}
    counters = {text: row for text, row in state.counters.items() if row["expires_at"] > now or text in live_keys}
    policy = state.policy
    doc = {
        "format": SNAPSHOT_FORMAT, "schema_version": SCHEMA_VERSION, "generation": generation, "saved_at": now,
        "policy": None if policy is None else [policy.policy_json, policy.revision, policy.updated_at, policy.actor],
        "counters": counters,
        "pending": [[rid, amount, state.keys.get(rid, []), event_row(state.events[rid])]
                    for rid, amount in pending],
        "users": [{**vars(u), "groups": list(u.groups)} for u in state.users.values()],  # asdict is 10x slower
        "audit": [audit_row(a) for a in state.audit[-HOT_AUDIT:]],
    }
    return doc, [audit_row(a) for a in state.audit[:-HOT_AUDIT]]


def state_from_doc(doc: dict[str, Any]) -> StoreState:
    """A state from a snapshot (raises KeyError/TypeError/ValueError when malformed)."""
    state = StoreState()
    if doc.get("policy"):
        text, revision, updated_at, actor = doc["policy"]
        state.policy = PolicyRecord(text, int(revision), float(updated_at), actor)
    state.counters = {str(k): dict(v) for k, v in doc["counters"].items()}
    for rid, amount, keys, event in doc["pending"]:
        state.pending[rid] = int(amount)
        state.keys[rid] = keys
        state.events[rid] = LedgerEvent.from_dict(event)
    state.users = {u["id"]: UserInfo.from_dict(u) for u in doc["users"]}
    state.audit = [AuditEntry(float(ts), actor, action, dict(detail)) for ts, actor, action, detail in doc["audit"]]
    return state
