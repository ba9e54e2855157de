"""The Store protocol operations of the tinydb store (mixed into `TinyDBStore`).

Every change runs under the store lock on the caught-up hot state, with the same `StoreState`
method the memory store uses, and is then appended to the journal as one line; an operation
that changes nothing writes nothing. History queries hold the history lock first (lock order:
history, then store) and combine history files, closed journals and the hot state.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable, Optional

from .base import (SCHEMA_VERSION, AuditEntry, ChargeRequest, ChargeResult, Counter, CounterKey, DailyUsage,
                   LedgerEvent, PolicyRecord, Settlement, UserInfo)
from . import tinydb_ops as ops
from . import tinydb_queries as queries


class TinyDBOperations:
    """Store protocol methods; the host class provides locking, the journal and history."""

    # -- policy
    def load_policy(self) -> Optional[PolicyRecord]:
        """The policy in force, or None when none was saved."""
        with self._locked() as state:
            return state.policy

    def policy_revision(self) -> int:
        """The policy's revision (0 = none); cheap: a stat and the journal tail."""
        with self._locked() as state:
            return state.policy.revision if state.policy else 0

    def save_policy(self, policy_json: str, actor: str) -> int:
        """Store a new policy; returns its revision."""
        now = time.time()
        with self._locked() as state:
            revision = state.save_policy(policy_json, actor, now)
            self._append({"op": "policy", "json": policy_json, "actor": actor, "now": now})
            return revision

    # -- quota
    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge atomically against every budget, or refuse; a repeated request id changes nothing."""
        with self._locked() as state:
            duplicate = request.request_id in state.events
            result = state.charge(request)
            if not duplicate:
                self._append(ops.charge_record(request, state.events[request.request_id]))
            return result

    def settle(self, request_id: str, settlement: Settlement, now: float) -> Optional[LedgerEvent]:
        """Replace a pending charge by actual usage, once."""
        with self._locked() as state:
            if request_id not in state.pending:
                return None
            before = state.events[request_id]
            after = state.settle(request_id, settlement, now)
            self._append(ops.settle_record(request_id, settlement, now, before, after, state.keys[request_id]))
            return after

    def refund(self, request_id: str, actor: str) -> Optional[LedgerEvent]:
        """Take back a request's charge (pending or settled), also for requests already in history."""
        now = time.time()
        with self._history_locked():
            _generation, closed, hot = self._hot_view(lambda state: request_id in state.events)
            found = None if hot else queries.find_event(self.history, closed, request_id)
            with self._locked() as state:
                injected = False
                if request_id not in state.events and found is not None:
                    state.events[request_id] = LedgerEvent.from_dict(found[0])
                    state.keys[request_id] = found[1]
                    injected = True
                before = state.events.get(request_id)
                keys = state.keys.get(request_id, [])
                after = state.refund(request_id, actor, now)
                if after is None:
                    if injected:
                        del state.events[request_id], state.keys[request_id]
                    return None
                self._append(ops.refund_record(request_id, actor, now, before, after, keys, injected))
                return after

    def grant(self, key: CounterKey, tokens: int, expires_at: float, actor: str) -> Counter:
        """Give a counter extra tokens for its window."""
        now = time.time()
        with self._locked() as state:
            counter = state.grant(key, tokens, expires_at, actor, now)
            self._append({"op": "grant", "key": [key.scope, key.window], "tokens": tokens, "exp": expires_at,
                          "actor": actor, "now": now})
            return counter

    def reset(self, key: CounterKey, actor: str) -> Counter:
        """Clear a counter's used and granted tokens."""
        now = time.time()
        with self._locked() as state:
            counter = state.reset(key, actor, now)
            self._append({"op": "reset", "key": [key.scope, key.window], "actor": actor, "now": now})
            return counter

    def counters(self, keys: Iterable[CounterKey]) -> list[Counter]:
        """The counters of these keys (zero when never charged)."""
        with self._locked() as state:
            return [state.counter(k) for k in keys]

    def oldest_pending(self, user_id: str, model: str) -> Optional[str]:
        """The oldest pending request id of a user and model."""
        with self._locked() as state:
            return state.oldest_pending(user_id, model)

    # -- history
    def get_event(self, request_id: str) -> Optional[LedgerEvent]:
        """A request's ledger event: from the hot state, else from history."""
        with self._locked() as state:
            event = state.events.get(request_id)
        if event is not None:
            return event
        with self._history_locked():
            _generation, closed, event = self._hot_view(lambda state: state.events.get(request_id))
            if event is not None:
                return event
            found = queries.find_event(self.history, closed, request_id)
        if found is None or found[0]["ts"] < self._cutoff():
            return None
        return LedgerEvent.from_dict(found[0])

    def ledger(self, start: float, end: float, user_id: Optional[str] = None) -> list[LedgerEvent]:
        """Ledger events with start <= ts < end, oldest first."""
        with self._history_locked():
            _generation, closed, hot = self._hot_view(lambda state: list(state.events.values()))
            return queries.ledger(self.history, closed, hot, start, end, user_id, self._cutoff())

    def daily_usage(self, first_day: str, last_day: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        """Tokens per (day, user, model) for first_day <= day <= last_day."""
        return self._rollups("daily", first_day, last_day, user_id)

    def monthly_usage(self, first_month: str, last_month: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        """Tokens per (month, user, model), months as 'YYYY-MM' in the `day` field; reads no daily rows."""
        return self._rollups("monthly", first_month, last_month, user_id)

    def _rollups(self, kind: str, first: str, last: str, user_id: Optional[str]) -> list[DailyUsage]:
        with self._history_locked():
            _generation, closed, hot = self._hot_view(lambda state: {k: dict(v) for k, v in state.daily.items()})
            return queries.rollups(self.history, closed, hot, kind, first, last, user_id)

    def _cutoff(self) -> float:
        return time.time() - self.retention_days * 86400 if self.retention_days else float("-inf")

    # -- bulk
    def put_history(self, daily: Iterable[DailyUsage] = (), events: Iterable[LedgerEvent] = ()) -> None:
        """Set daily rows and ledger events (loading twice changes nothing); pending requests are kept."""
        daily, events = list(daily), list(events)
        with self._history_locked():
            with self._locked() as state:
                if self._journal.size() > 0:
                    self._compact()
                generation = self._journal.generation
                pending = set(state.pending)
            self._merge_closed()
            self.history.put_daily(daily)
            self.history.put_events([e for e in events if e.request_id not in pending], generation)

    def put_counters(self, counters: Iterable[tuple[Counter, float]]) -> None:
        """Set counters (used, pending, granted) with their window ends."""
        rows = [[c.key.scope, c.key.window, c.used, c.pending, c.granted, exp] for c, exp in counters]
        with self._locked() as state:
            ops.apply(state, {"op": "counters", "rows": rows})
            self._append({"op": "counters", "rows": rows})

    def all_counters(self) -> list[tuple[Counter, float]]:
        """Every counter of an open window, with its window end."""
        with self._locked() as state:
            return state.all_counters(time.time())

    # -- directory and audit
    def touch_user(self, user: UserInfo) -> None:
        """Add or update a user directory entry."""
        with self._locked() as state:
            if state.users.get(user.id) == user:
                return
            state.users[user.id] = user
            self._append({"op": "user", "u": user.to_dict()})

    def users(self) -> list[UserInfo]:
        """The user directory."""
        with self._locked() as state:
            return list(state.users.values())

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Record who did what."""
        entry = AuditEntry(time.time(), actor, action, dict(detail))
        with self._locked() as state:
            state.audit.append(entry)
            self._append({"op": "audit", "a": ops.audit_row(entry)})

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first."""
        with self._locked() as state:
            rows = [ops.audit_row(a) for a in state.audit]
        if len(rows) < limit:
            with self._history_locked():
                rows = self.history.old_audit() + rows
        return [AuditEntry(float(ts), actor, action, dict(detail))
                for ts, actor, action, detail in reversed(rows[-limit:])]

    # -- housekeeping
    def info(self) -> dict[str, Any]:
        """Backend, URL, path, schema version, sizes and health."""
        out: dict[str, Any] = {"backend": "tinydb", "url": self.url, "path": self.path,
                               "schema_version": SCHEMA_VERSION, "group": self.mode.group or None,
                               "retention_days": self.retention_days, "sync": self.sync}
        try:
            with self._locked() as state:
                out.update(generation=self._journal.generation, journal_bytes=self._journal.size(),
                           state_bytes=os.path.getsize(self._state_path), counters=len(state.counters),
                           pending=len(state.pending), users=len(state.users))
            out["history_bytes"] = self.history.size()
            out["healthy"] = self._merge_error is None
            if self._merge_error:
                out["error"] = self._merge_error
        except Exception as exc:  # info() reports health; it must not raise
            out.update(healthy=False, error=str(exc))
        return out

    def close(self) -> None:
        """Finish background merging and release files."""
        if self._closed:
            return
        self.wait_merged()
        with self._tlock:
            self._closed = True
            if self._journal is not None:
                self._journal.close()
