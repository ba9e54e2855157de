"""`redis://host:port/db` and `rediss://` — one quota shared by every Open WebUI node.

Charge, settle, refund, grant, reset and policy saves each run as one Lua
script (redis_*.lua beside this file), so every node sees the same counters
and no two requests can both take the last tokens. The key layout is in
redis_layout.py; connection options and error handling in redis_connection.py.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterable, Optional

import redis

from .base import (SCHEMA_VERSION, AuditEntry, ChargeRequest, ChargeResult, Counter, CounterKey, DailyUsage,
                   LedgerEvent, PolicyRecord, Settlement, StoreError, StoreUnavailable, UserInfo, Verdict)
from .redis_connection import ErrorMapper, RedisOptions, connect, display_url, load_scripts, split_options
from .redis_layout import (SEP, SET_BY_CHARGE, KeyLayout, event_from_flat, event_pairs,
                           number_text, pack_usage, text, unpack_usage)

CHUNK = 1000  # request hashes read per pipeline round trip


class RedisStore:
    """The Store protocol on Redis; safe for any number of threads, processes and nodes."""

    def __init__(self, url: str, options: Optional[RedisOptions] = None, *, _client_url: Optional[str] = None):
        self.url = display_url(url)
        self.options = options or RedisOptions()
        self.keys = KeyLayout(self.options.prefix)
        self._errors = ErrorMapper(url)
        self._client = connect(_client_url or url, self.options)
        self._scripts = load_scripts(self._client)
        self._own = threading.local()  # per-thread connection for the hot path (see _thread_client)
        self._schema_checked = False
        try:
            self._check_schema()
        except StoreUnavailable:
            pass  # checked on first use: a node may start while Redis is still coming up

    @classmethod
    def from_url(cls, url: str, **options) -> "RedisStore":
        """Open the store a redis:// or rediss:// URL names; store options may be in its query."""
        client_url, parsed = split_options(url, options)
        return cls(url, parsed, _client_url=client_url)

    # -- plumbing
    def _check_schema(self) -> None:
        with self._errors.mapped("read the schema version"):
            self._client.set(self.keys.schema, SCHEMA_VERSION, nx=True)
            found = self._client.get(self.keys.schema)
        if found is not None and text(found) != str(SCHEMA_VERSION):
            raise StoreError(
                f"Redis store {self.url} (prefix {self.options.prefix!r}) has schema version {text(found)}, "
                f"but this tokenlimit reads version {SCHEMA_VERSION}: run the same tokenlimit version on every "
                f"node, or copy the data to a new store with `python -m tokenlimit_core migrate --from OLD --to NEW`")
        self._schema_checked = True

    def _run(self, what: str, script: str, keys: list[str], args: list[Any]):
        if not self._schema_checked:
            self._check_schema()
        with self._errors.mapped(what):
            return self._scripts[script](keys=keys, args=args, client=self._thread_client())

    def _thread_client(self) -> redis.Redis:
        """This thread's own connection from the shared pool: skips the pool's lock and bookkeeping per call."""
        client = getattr(self._own, "client", None)
        if client is None:
            client = redis.Redis(connection_pool=self._client.connection_pool, single_connection_client=True)
            self._own.client = client
        return client

    def _call(self, what: str, fn, *args, **kwargs):
        if not self._schema_checked:
            self._check_schema()
        with self._errors.mapped(what):
            return fn(*args, **kwargs)

    # -- policy
    def load_policy(self) -> Optional[PolicyRecord]:
        """The policy in force, or None when none was saved."""
        raw = self._call("load the policy", self._client.hgetall, self.keys.policy)
        if not raw:
            return None
        row = {text(k): text(v) for k, v in raw.items()}
        return PolicyRecord(row["json"], int(row["revision"]), float(row["updated_at"]), row.get("actor", ""))

    def policy_revision(self) -> int:
        """The policy's revision (0 = none): one GET, cheap enough for every node to poll."""
        value = self._call("read the policy revision", self._client.get, self.keys.policy_revision)
        return int(value) if value is not None else 0

    def save_policy(self, policy_json: str, actor: str) -> int:
        """Store a new policy under the next revision; returns the revision."""
        return int(self._run("save the policy", "policy",
                             [self.keys.policy_revision, self.keys.policy, self.keys.audit],
                             [policy_json, actor, repr(time.time())]))

    # -- quota
    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Check and charge every budget in one Lua step, or refuse; a repeated request id changes nothing."""
        event, budgets, o = request.event, request.budgets, self.options
        keys = [self.keys.request(request.request_id), self.keys.pending_queue(event.user_id, event.model),
                self.keys.ledger, self.keys.user_ledger(event.user_id), self.keys.stream,
                self.keys.counter_index, self.keys.seq] + [self.keys.counter(b.key) for b in budgets]
        args: list[Any] = [self.keys.prefix, int(request.amount), "1" if request.enforce else "0",
                           repr(float(request.warn_threshold)), len(budgets), o.counter_grace, o.stream_maxlen,
                           repr(time.time()), o.ledger_days * 86400, number_text(float(event.ts)),
                           request.request_id, event.day, event.user_id, event.model, int(event.est_prompt),
                           "" if event.cost is None else number_text(float(event.cost))]
        for b in budgets:
            args += [int(b.limit), number_text(float(b.expires_at)), str(b.key)]
        args.append(json.dumps(event_pairs(event, skip=SET_BY_CHARGE), ensure_ascii=False))
        packed = json.dumps([a if isinstance(a, str) else str(a) for a in args], ensure_ascii=False)
        raw = self._run("charge a request", "charge", keys, [packed])
        charged, charge, decision, deciding, reason, duplicate = raw[:6]
        flat = [int(x) for x in raw[6:]]
        counters = tuple(Counter(b.key, *flat[3 * i:3 * i + 3]) for i, b in enumerate(budgets))
        verdict = Verdict(bool(charge), text(decision), int(deciding) - 1 if int(deciding) else None,
                          text(reason) or None)
        return ChargeResult(bool(charged), counters, verdict, duplicate=bool(duplicate))

    def settle(self, request_id: str, settlement: Settlement, now: float) -> Optional[LedgerEvent]:
        """Replace a pending charge by the actual usage, once, in one Lua step."""
        cost = "" if settlement.cost is None else repr(float(settlement.cost))
        raw = self._run("settle a request", "settle", [self.keys.request(request_id), self.keys.stream],
                        [self.keys.prefix, int(settlement.prompt_tokens), int(settlement.completion_tokens),
                         settlement.source, cost, repr(float(now)), self.options.stream_maxlen, request_id])
        return event_from_flat(json.loads(raw)) if raw else None

    def refund(self, request_id: str, actor: str) -> Optional[LedgerEvent]:
        """Give back what a pending or settled request counts for, once."""
        raw = self._run("refund a request", "refund",
                        [self.keys.request(request_id), self.keys.stream, self.keys.audit],
                        [self.keys.prefix, actor, repr(time.time()), self.options.stream_maxlen, request_id])
        return event_from_flat(json.loads(raw)) if raw else None

    def grant(self, key: CounterKey, tokens: int, expires_at: float, actor: str) -> Counter:
        """Extra tokens on a counter (audited)."""
        raw = self._run("grant tokens", "grant", [self.keys.counter(key), self.keys.counter_index, self.keys.audit],
                        [int(tokens), number_text(float(expires_at)), self.options.counter_grace, str(key),
                         repr(time.time()), actor])
        return Counter(key, *(int(x) for x in raw))

    def reset(self, key: CounterKey, actor: str) -> Counter:
        """Clear a counter's use and grants; pending charges stay (audited)."""
        raw = self._run("reset a counter", "reset", [self.keys.counter(key), self.keys.audit],
                        [str(key), repr(time.time()), actor])
        return Counter(key, *(int(x) for x in raw))

    def counters(self, keys: Iterable[CounterKey]) -> list[Counter]:
        """The counters' current state, read in one transaction."""
        keys = list(keys)
        if not keys:
            return []

        def read():
            pipe = self._client.pipeline(transaction=True)
            for key in keys:
                pipe.hmget(self.keys.counter(key), "used", "pending", "granted")
            return pipe.execute()

        rows = self._call("read counters", read)
        return [Counter(k, *(int(v) if v is not None else 0 for v in row)) for k, row in zip(keys, rows)]

    def oldest_pending(self, user_id: str, model: str) -> Optional[str]:
        """The oldest pending request of a user and model, or None."""
        found = self._run("find the oldest pending request", "oldest",
                          [self.keys.pending_queue(user_id, model)], [self.keys.prefix])
        return text(found) if found else None

    # -- history
    def get_event(self, request_id: str) -> Optional[LedgerEvent]:
        """One ledger event, or None."""
        return self._events([request_id])[0]

    def ledger(self, start: float, end: float, user_id: Optional[str] = None) -> list[LedgerEvent]:
        """Ledger events with start <= ts < end, of everyone or one user."""
        index = self.keys.ledger if user_id is None else self.keys.user_ledger(user_id)
        ids = [text(rid) for rid in self._call("read the ledger", self._client.zrangebyscore, index,
                                                 repr(float(start)), f"({float(end)!r}")]
        out = []
        for at in range(0, len(ids), CHUNK):
            out += [e for e in self._events(ids[at:at + CHUNK]) if e is not None]
        return out

    def _events(self, request_ids: list[str]) -> list[Optional[LedgerEvent]]:
        raw = self._run("read ledger events", "events", [self.keys.request(r) for r in request_ids], [])
        return [event_from_flat(flat) for flat in json.loads(raw)]

    def daily_usage(self, first_day: str, last_day: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        """Daily rollups of the days from first_day to last_day, of everyone or one user."""
        return self._rollups(self.keys.days, self.keys.day_rollup, self.keys.user_rollup, first_day, last_day,
                             user_id)

    def monthly_usage(self, first_month: str, last_month: str, user_id: Optional[str] = None) -> list[DailyUsage]:
        """Monthly rollups ('YYYY-MM' in `day`) from first_month to last_month, of everyone or one user."""
        return self._rollups(self.keys.months, self.keys.month_rollup, self.keys.user_month_rollup, first_month,
                             last_month, user_id)

    def _rollups(self, index: str, period_key, user_key, first: str, last: str,
                 user_id: Optional[str]) -> list[DailyUsage]:
        if first > last:
            return []
        rows = []
        if user_id is not None:
            raw = self._call("read usage totals", self._client.hgetall, user_key(user_id))
            for field, value in raw.items():
                period, model = text(field).split(SEP, 1)
                if first <= period <= last:
                    rows.append(unpack_usage(period, user_id, model, value))
            rows.sort()  # by (period, user, model), as the memory store orders them
            return [DailyUsage(*row) for row in rows]

        def read():
            periods = [text(p) for p in self._client.zrangebylex(index, f"[{first}", f"[{last}")]
            pipe = self._client.pipeline(transaction=False)
            for period in periods:
                pipe.hgetall(period_key(period))
            return list(zip(periods, pipe.execute()))

        for period, raw in self._call("read usage totals", read):  # periods come in order
            rows += sorted(unpack_usage(period, *field.decode().split(SEP, 1), value) for field, value in raw.items())
        return [DailyUsage(*row) for row in rows]

    # -- bulk
    def put_history(self, daily: Iterable[DailyUsage] = (), events: Iterable[LedgerEvent] = ()) -> None:
        """Bulk-load rollups and ledger events (set semantics: loading twice changes nothing)."""
        def write(batch_daily, batch_events):
            pipe = self._client.pipeline(transaction=False)
            if batch_daily:
                args = [self.keys.prefix]
                for row in batch_daily:
                    args += [row.day, row.user_id, row.model, pack_usage(row)]
                self._scripts["put_daily"](keys=[], args=args, client=pipe)
            now = repr(time.time())
            for ev in batch_events:
                self._scripts["put_event"](
                    keys=[self.keys.request(ev.request_id), self.keys.ledger, self.keys.user_ledger(ev.user_id)],
                    args=[number_text(float(ev.ts)), ev.request_id, self.options.ledger_days * 86400, now]
                    + event_pairs(ev), client=pipe)
            pipe.execute()

        for batch_daily, batch_events in _batches(daily, events):
            self._call("load history", write, batch_daily, batch_events)

    def put_counters(self, counters: Iterable[tuple[Counter, float]]) -> None:
        """Bulk-load counters with their window ends (set semantics)."""
        def write(batch):
            pipe = self._client.pipeline(transaction=False)
            for counter, expires_at in batch:
                key = self.keys.counter(counter.key)
                pipe.hset(key, mapping={"used": counter.used, "pending": counter.pending,
                                        "granted": counter.granted, "exp": number_text(float(expires_at))})
                pipe.expireat(key, int(expires_at + self.options.counter_grace) + 1)
                pipe.zadd(self.keys.counter_index, {str(counter.key): float(expires_at)})
            pipe.execute()

        for batch, _ in _batches(counters, ()):
            self._call("load counters", write, batch)

    def all_counters(self) -> list[tuple[Counter, float]]:
        """Every counter whose window has not ended, with its window end."""
        def read():
            names = [text(n) for n in self._client.zrangebyscore(self.keys.counter_index, f"({time.time()!r}", "+inf")]
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(f"{self.keys.prefix}c:{name}", "used", "pending", "granted", "exp")
            return list(zip(names, pipe.execute()))

        out = []
        for name, row in self._call("read all counters", read):
            if row[3] is None:
                continue  # expired between the two reads
            scope, window = name.rsplit("@", 1)
            used, pending, granted = (int(v) if v is not None else 0 for v in row[:3])
            out.append((Counter(CounterKey(scope, window), used, pending, granted), float(row[3])))
        return out

    # -- directory and audit
    def touch_user(self, user: UserInfo) -> None:
        """Add or update a user directory entry."""
        self._call("update the user directory", self._client.hset, self.keys.users, user.id,
                   json.dumps(user.to_dict(), ensure_ascii=False))

    def users(self) -> list[UserInfo]:
        """The user directory."""
        raw = self._call("read the user directory", self._client.hgetall, self.keys.users)
        return [UserInfo.from_dict(json.loads(v)) for v in raw.values()]

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Append to the audit trail."""
        entry = json.dumps({"ts": time.time(), "actor": actor, "action": action, "detail": dict(detail)},
                           ensure_ascii=False)
        self._call("write the audit trail", self._client.lpush, self.keys.audit, entry)

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first."""
        raw = self._call("read the audit trail", self._client.lrange, self.keys.audit, 0, max(limit, 1) - 1)
        return [AuditEntry(**json.loads(v)) for v in raw][:limit]

    # -- housekeeping
    def info(self) -> dict[str, Any]:
        """Backend, URL (password hidden), prefix, schema version, sizes and health; never raises."""
        out: dict[str, Any] = {"backend": "redis", "url": self.url, "prefix": self.options.prefix,
                               "schema_version": SCHEMA_VERSION, "stream_maxlen": self.options.stream_maxlen,
                               "ledger_days": self.options.ledger_days}

        def read():
            pipe = self._client.pipeline(transaction=False)
            pipe.zcard(self.keys.ledger)
            pipe.zcount(self.keys.counter_index, f"({time.time()!r}", "+inf")
            pipe.hlen(self.keys.users)
            pipe.xlen(self.keys.stream)
            pipe.get(self.keys.schema)
            pipe.info("server")
            return pipe.execute()

        try:
            events, counters, users, stream, schema, server = self._call("read store info", read)
        except StoreError as exc:
            return {**out, "healthy": False, "error": str(exc)}
        return {**out, "events": events, "counters": counters, "users": users, "stream_length": stream,
                "schema_version": int(schema) if schema is not None else SCHEMA_VERSION,
                "redis_version": server.get("redis_version"), "healthy": True}

    def close(self) -> None:
        """Close the connections."""
        own = getattr(self._own, "client", None)
        if own is not None:
            own.close()
        self._client.close()


def _batches(first: Iterable, second: Iterable, size: int = 500):
    """Pairs of lists of at most `size` items from two iterables, without reading either whole."""
    it1, it2 = iter(first), iter(second)
    while True:
        a = [x for _, x in zip(range(size), it1)]
        b = [x for _, x in zip(range(size), it2)]
        if not a and not b:
            return
        yield a, b
