"""`memory://` — the reference store: plain dicts behind one lock.

`StoreState` holds the rules every backend must follow (what charge, settle,
refund, grant and reset do to counters, ledger and rollups) on JSON-able dicts,
so a file-backed store can apply the very same operations to its own state.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any, Iterable, Optional

from .base import (SCHEMA_VERSION, AuditEntry, ChargeRequest, ChargeResult, Counter, CounterKey, DailyUsage,
                   LedgerEvent, PolicyRecord, Settlement, UserInfo, judge, monthly_from_daily, rollup_delta,
                   settled_event)


class StoreState:
    """The data of a store and the operations on it; not thread-safe by itself."""

    def __init__(self):
        self.counters: dict[str, dict[str, Any]] = {}  # "scope@window" -> {used, pending, granted, expires_at}
        self.pending: dict[str, int] = {}  # request_id -> amount still pending (oldest first)
        self.keys: dict[str, list] = {}  # request_id -> [[scope, window, expires_at], ...] it was charged to
        self.events: dict[str, LedgerEvent] = {}  # request_id -> event (insertion = time order)
        self.daily: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.users: dict[str, UserInfo] = {}
        self.audit: list[AuditEntry] = []
        self.policy: Optional[PolicyRecord] = None

    # -- counters
    def counter(self, key: CounterKey) -> Counter:
        row = self.counters.get(str(key))
        if not row:
            return Counter(key)
        return Counter(key, row["used"], row["pending"], row["granted"])

    def _add(self, key: CounterKey, expires_at: float, used: int = 0, pending: int = 0, granted: int = 0):
        row = self.counters.setdefault(str(key), {"used": 0, "pending": 0, "granted": 0, "expires_at": expires_at})
        row["used"] += used
        row["pending"] += pending
        row["granted"] += granted
        row["expires_at"] = max(row.get("expires_at", 0), expires_at)

    def _roll(self, before: LedgerEvent, after: Optional[LedgerEvent], requests: int = 0, denied: int = 0):
        delta = rollup_delta(before, after)
        row = self.daily.setdefault((before.day, before.user_id, before.model),
                                    {"tokens": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                     "requests": 0, "denied": 0, "cost": 0.0})
        row["tokens"] += delta.tokens
        row["prompt_tokens"] += delta.prompt_tokens
        row["completion_tokens"] += delta.completion_tokens
        row["cost"] = round(row["cost"] + delta.cost, 10)
        row["requests"] += requests
        row["denied"] += denied

    # -- quota
    def charge(self, req: ChargeRequest) -> ChargeResult:
        counters = tuple(self.counter(b.key) for b in req.budgets)
        if req.request_id in self.events:
            old = self.events[req.request_id]
            verdict = judge(req.budgets, counters, 0, req.enforce, req.warn_threshold)
            return ChargeResult(old.status not in ("denied",), counters, verdict, duplicate=True)
        verdict = judge(req.budgets, counters, req.amount, req.enforce, req.warn_threshold)
        deciding = str(req.budgets[verdict.deciding].key) if verdict.deciding is not None else None
        event = replace(req.event, request_id=req.request_id, decision=verdict.decision, deciding=deciding, reason=verdict.reason,
                        charged=req.amount if verdict.charge else 0,
                        status="pending" if verdict.charge else "denied")
        if verdict.charge:
            for b in req.budgets:
                self._add(b.key, b.expires_at, pending=req.amount)
            self.pending[req.request_id] = req.amount
            self.keys[req.request_id] = [[b.key.scope, b.key.window, b.expires_at] for b in req.budgets]
        self.events[req.request_id] = event
        empty = replace(event, status="denied")
        self._roll(empty, event, requests=1, denied=0 if verdict.charge else 1)
        return ChargeResult(verdict.charge, counters, verdict)

    def settle(self, request_id: str, settlement: Settlement, now: float) -> Optional[LedgerEvent]:
        amount = self.pending.pop(request_id, None)
        if amount is None:
            return None
        for scope, window, expires_at in self.keys[request_id]:
            self._add(CounterKey(scope, window), expires_at, used=settlement.total, pending=-amount)
        before = self.events[request_id]
        after = settled_event(before, settlement, now)
        self.events[request_id] = after
        self._roll(before, after)
        return after

    def refund(self, request_id: str, actor: str, now: float) -> Optional[LedgerEvent]:
        event = self.events.get(request_id)
        if event is None or event.status in ("refunded", "denied"):
            return None
        amount = self.pending.pop(request_id, None)
        for scope, window, expires_at in self.keys.get(request_id, []):
            if amount is not None:
                self._add(CounterKey(scope, window), expires_at, pending=-amount)
            else:
                self._add(CounterKey(scope, window), expires_at, used=-event.tokens)
        after = replace(event, status="refunded")
        self.events[request_id] = after
        self._roll(event, after)
        self.audit.append(AuditEntry(now, actor, "refund", {"request_id": request_id, "tokens": event.tokens}))
        return after

    def grant(self, key: CounterKey, tokens: int, expires_at: float, actor: str, now: float) -> Counter:
        self._add(key, expires_at, granted=tokens)
        self.audit.append(AuditEntry(now, actor, "grant", {"counter": str(key), "tokens": tokens}))
        return self.counter(key)

    def reset(self, key: CounterKey, actor: str, now: float) -> Counter:
        row = self.counters.get(str(key))
        if row:
            self.audit.append(AuditEntry(now, actor, "reset", {"counter": str(key), "used": row["used"]}))
            row["used"] = 0
            row["granted"] = 0
        return self.counter(key)

    def oldest_pending(self, user_id: str, model: str) -> Optional[str]:
        for request_id in self.pending:  # dicts keep insertion order: oldest first
            event = self.events[request_id]
            if event.user_id == user_id and event.model == model:
                return request_id
        return None

    # -- history
    def ledger(self, start: float, end: float, user_id: Optional[str]) -> list[LedgerEvent]:
        return [e for e in self.events.values()
                if start <= e.ts < end and (user_id is None or e.user_id == user_id)]

    def daily_usage(self, first_day: str, last_day: str, user_id: Optional[str]) -> list[DailyUsage]:
        chosen = [(key, row) for key, row in self.daily.items()
                  if first_day <= key[0] <= last_day and (user_id is None or key[1] == user_id)]
        return [DailyUsage(day, uid, model, **row) for (day, uid, model), row in sorted(chosen)]

    def put_history(self, daily: Iterable[DailyUsage], events: Iterable[LedgerEvent]) -> None:
        for row in daily:
            self.daily[(row.day, row.user_id, row.model)] = {
                "tokens": row.tokens, "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                "requests": row.requests, "denied": row.denied, "cost": row.cost}
        for event in events:
            if event.request_id not in self.pending:
                self.events[event.request_id] = event

    def put_counters(self, counters: Iterable[tuple[Counter, float]]) -> None:
        for counter, expires_at in counters:
            self.counters[str(counter.key)] = {"used": counter.used, "pending": counter.pending,
                                               "granted": counter.granted, "expires_at": expires_at}

    def all_counters(self, now: float) -> list[tuple[Counter, float]]:
        out = []
        for text, row in self.counters.items():
            if row["expires_at"] > now:
                scope, window = text.rsplit("@", 1)
                out.append((Counter(CounterKey(scope, window), row["used"], row["pending"], row["granted"]),
                            row["expires_at"]))
        return out

    def save_policy(self, policy_json: str, actor: str, now: float) -> int:
        revision = (self.policy.revision if self.policy else 0) + 1
        self.policy = PolicyRecord(policy_json, revision, now, actor)
        self.audit.append(AuditEntry(now, actor, "policy", {"revision": revision}))
        return revision


_NAMED: dict[str, tuple[StoreState, threading.RLock]] = {}


class MemoryStore:
    """Reference backend: everything in this process, gone when it exits.

    `memory://` is private to one object; `memory://name` is shared by every
    store opened with that name in this process.
    """

    def __init__(self, url: str = "memory://"):
        self.url = url
        name = url.split("://", 1)[1] if "://" in url else ""
        if name:
            self._state, self._lock = _NAMED.setdefault(name, (StoreState(), threading.RLock()))
        else:
            self._state, self._lock = StoreState(), threading.RLock()

    @classmethod
    def from_url(cls, url: str, **_options) -> "MemoryStore":
        return cls(url)

    def load_policy(self) -> Optional[PolicyRecord]:
        with self._lock:
            return self._state.policy

    def policy_revision(self) -> int:
        with self._lock:
            return self._state.policy.revision if self._state.policy else 0

    def save_policy(self, policy_json: str, actor: str) -> int:
        with self._lock:
            return self._state.save_policy(policy_json, actor, time.time())

    def charge(self, request: ChargeRequest) -> ChargeResult:
        with self._lock:
            return self._state.charge(request)

    def settle(self, request_id: str, settlement: Settlement, now: float) -> Optional[LedgerEvent]:
        with self._lock:
            return self._state.settle(request_id, settlement, now)

    def refund(self, request_id: str, actor: str) -> Optional[LedgerEvent]:
        with self._lock:
            return self._state.refund(request_id, actor, time.time())

    def grant(self, key: CounterKey, tokens: int, expires_at: float, actor: str) -> Counter:
        with self._lock:
            return self._state.grant(key, tokens, expires_at, actor, time.time())

    def reset(self, key: CounterKey, actor: str) -> Counter:
        with self._lock:
            return self._state.reset(key, actor, time.time())

    def counters(self, keys: Iterable[CounterKey]) -> list[Counter]:
        with self._lock:
            return [self._state.counter(k) for k in keys]

    def oldest_pending(self, user_id: str, model: str) -> Optional[str]:
        with self._lock:
            return self._state.oldest_pending(user_id, model)

    def get_event(self, request_id: str) -> Optional[LedgerEvent]:
        with self._lock:
            return self._state.events.get(request_id)

    def ledger(self, start: float, end: float, user_id: Optional[str] = None) -> list[LedgerEvent]:
        with self._lock:
            return self._state.ledger(start, end, user_id)

    def daily_usage(self, first_day: str, last_day: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        with self._lock:
            return self._state.daily_usage(first_day, last_day, user_id)

    def put_history(self, daily: Iterable[DailyUsage] = (), events: Iterable[LedgerEvent] = ()) -> None:
        with self._lock:
            self._state.put_history(daily, events)

    def put_counters(self, counters: Iterable[tuple[Counter, float]]) -> None:
        with self._lock:
            self._state.put_counters(counters)

    def all_counters(self) -> list[tuple[Counter, float]]:
        with self._lock:
            return self._state.all_counters(time.time())

    def monthly_usage(self, first_month: str, last_month: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        with self._lock:
            return monthly_from_daily(self._state.daily_usage(first_month + "-01", last_month + "-31", user_id))

    def touch_user(self, user: UserInfo) -> None:
        with self._lock:
            self._state.users[user.id] = user

    def users(self) -> list[UserInfo]:
        with self._lock:
            return list(self._state.users.values())

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        with self._lock:
            self._state.audit.append(AuditEntry(time.time(), actor, action, dict(detail)))

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            return list(reversed(self._state.audit[-limit:]))

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {"backend": "memory", "url": self.url, "schema_version": SCHEMA_VERSION,
                    "events": len(self._state.events), "counters": len(self._state.counters),
                    "users": len(self._state.users), "healthy": True}

    def close(self) -> None:
        pass
