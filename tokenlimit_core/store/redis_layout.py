"""Where the Redis store keeps what, and how records are written as Redis strings and hashes.

Every key starts with a prefix (default `tokenlimit:`), so a Redis shared with
Open WebUI keeps both apart. The layout, by key suffix:

    schema                 string  the store's schema version
    policy / policy:rev    hash / string (INCR)  the policy in force and its revision
    c:<scope>@<window>     hash    counter: used, pending, granted, exp (window end, epoch s)
    counters               zset    counter names by window end (for `all_counters`, migrate)
    r:<request id>         hash    ledger event (LedgerEvent fields) + _amount/_keys/_pq while pending
    pq:<user>\\x1f<model>    zset    pending request ids of a user and model, oldest first
    seq                    string  order of pending requests across nodes
    ledger / lu:<user>     zset    request ids by time, all and per user
    stream                 stream  every ledger change, capped with MAXLEN ~
    days                   zset    days that have rollups; d:<day> and du:<user> hashes hold them
    months                 zset    months ('YYYY-MM') with rollups; m:<month> and mu:<user> hashes hold them
    users / audit          hash / list  user directory (JSON per id) and audit trail (newest first)

Rollup hashes hold one field per (user, model) of a day (`d:<day>`) and per
(day, model) of a user (`du:<user>`), and the same per month (`m:`, `mu:`);
the value packs the six numbers of a `DailyUsage` as "tokens prompt completion
requests denied cost", which the Lua scripts update in place. Monthly rollups
are kept as days change, so a year's overview reads 12 months, not 365 days.
"""
from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any, Optional

from .base import CounterKey, DailyUsage, LedgerEvent

SEP = "\x1f"  # between user and model (or day and model) in rollup fields and queue names
INTERNAL = ("_amount", "_keys", "_pq")  # request-hash fields that are not part of the event


class KeyLayout:
    """Names of every key under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.schema = prefix + "schema"
        self.policy = prefix + "policy"
        self.policy_revision = prefix + "policy:rev"
        self.counter_index = prefix + "counters"
        self.seq = prefix + "seq"
        self.ledger = prefix + "ledger"
        self.stream = prefix + "stream"
        self.days = prefix + "days"
        self.months = prefix + "months"
        self.users = prefix + "users"
        self.audit = prefix + "audit"

    def counter(self, key: CounterKey) -> str:
        return f"{self.prefix}c:{key}"

    def request(self, request_id: str) -> str:
        return f"{self.prefix}r:{request_id}"

    def pending_queue(self, user_id: str, model: str) -> str:
        return f"{self.prefix}pq:{user_id}{SEP}{model}"

    def user_ledger(self, user_id: str) -> str:
        return f"{self.prefix}lu:{user_id}"

    def day_rollup(self, day: str) -> str:
        return f"{self.prefix}d:{day}"

    def user_rollup(self, user_id: str) -> str:
        return f"{self.prefix}du:{user_id}"

    def month_rollup(self, month: str) -> str:
        return f"{self.prefix}m:{month}"

    def user_month_rollup(self, user_id: str) -> str:
        return f"{self.prefix}mu:{user_id}"


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(LedgerEvent)
    out = {}
    for f in fields(LedgerEvent):
        kind = hints[f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        out[f.name] = args[0] if args else kind
    return out


EVENT_TYPES = _field_types()
# fields the charge script gets as arguments of their own, or decides itself
SET_BY_CHARGE = ("request_id", "ts", "day", "user_id", "model", "est_prompt", "cost",
                 "decision", "deciding", "reason", "charged", "status")


def number_text(value: Any) -> str:
    """A number as Redis text that reads back exactly (repr keeps every bit of a float)."""
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def event_pairs(event: LedgerEvent, skip: tuple[str, ...] = ()) -> list[str]:
    """The event as flat [field, value, ...] strings; None fields are left out."""
    out: list[str] = []
    for name, kind in EVENT_TYPES.items():
        value = getattr(event, name)
        if value is None or name in skip:
            continue
        out += [name, number_text(value) if kind in (int, float) else str(value)]
    return out


def _whole(value) -> int:
    """An integer from Redis text; tolerates '3.0' written by other tools."""
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


_CONVERT = {int: _whole, float: float}
# field name (bytes and str) -> (name, converter); int() and float() read bytes directly
_DECODERS = {key: (name, _CONVERT.get(kind, _text)) for name, kind in EVENT_TYPES.items()
             for key in (name, name.encode())}


def event_from_hash(raw: dict) -> Optional[LedgerEvent]:
    """The LedgerEvent stored in a request hash (bytes or str keys), or None for an empty hash."""
    if not raw:
        return None
    data = {}
    for key, value in raw.items():
        decoder = _DECODERS.get(key)
        if decoder is not None:
            data[decoder[0]] = decoder[1](value)
    return LedgerEvent(**data)


def event_from_flat(items: list) -> Optional[LedgerEvent]:
    """The LedgerEvent from a script's flat HGETALL reply [field, value, ...]."""
    return event_from_hash(dict(zip(items[0::2], items[1::2]))) if items else None


def pack_usage(row: DailyUsage) -> str:
    """A rollup value as the scripts keep it."""
    return (f"{int(row.tokens)} {int(row.prompt_tokens)} {int(row.completion_tokens)} {int(row.requests)} "
            f"{int(row.denied)} {float(row.cost)!r}")


def unpack_usage(day: str, user_id: str, model: str, value) -> tuple:
    """A rollup value (str or bytes) as the fields of a DailyUsage, in order."""
    t, p, c, r, d, cost = value.split()
    try:  # the scripts and pack_usage write whole numbers; other tools might not
        return (day, user_id, model, int(t), int(p), int(c), int(r), int(d), float(cost))
    except ValueError:
        return (day, user_id, model, _whole(t), _whole(p), _whole(c), _whole(r), _whole(d), float(cost))


def text(value) -> str:
    """Redis reply bytes as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
