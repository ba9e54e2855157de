"""Key names and record encoding of the Redis store (no server needed)."""
from __future__ import annotations

from tokenlimit_core.store import CounterKey, DailyUsage, LedgerEvent
from tokenlimit_core.store.redis_layout import (SEP, SET_BY_CHARGE, KeyLayout, event_from_flat, event_from_hash,
                                                event_pairs, number_text, pack_usage, unpack_usage)


def full_event() -> LedgerEvent:
    return LedgerEvent(request_id="r/1:ü", ts=1764892800.1234567, day="2026-12-05", user_id="李雷", role="admin",
                       model="llama3:8b", base_model="llama3", source="webui", task="title_generation",
                       est_prompt=120, est_completion=60, est_method="tiktoken", charged=180, status="settled",
                       decision="warned", deciding="user:李雷:total@2026-12-05", actual_prompt=100,
                       actual_completion=7, actual_source="openai", settled_at=1764892801.000001, cost=0.000123)


def test_event_round_trips_exactly_through_hash_fields():
    event = full_event()
    pairs = event_pairs(event)
    raw = {k.encode(): v.encode() for k, v in zip(pairs[0::2], pairs[1::2])}
    assert event_from_hash(raw) == event
    assert event_from_flat([x.encode() for x in pairs]) == event


def test_none_fields_are_left_out_and_read_back_as_none():
    event = LedgerEvent(request_id="r", ts=1.5, day="d", user_id="u")
    pairs = event_pairs(event)
    assert "base_model" not in pairs[0::2] and "cost" not in pairs[0::2]
    back = event_from_hash(dict(zip(pairs[0::2], pairs[1::2])))
    assert back == event and back.cost is None


def test_charge_owned_fields_can_be_skipped_and_internal_fields_are_ignored():
    pairs = event_pairs(full_event(), skip=SET_BY_CHARGE)
    assert not set(SET_BY_CHARGE) & set(pairs[0::2])
    raw = dict(zip(pairs[0::2], pairs[1::2]), request_id="r/1:ü", ts="1.5", day="d", user_id="u",
               _amount="5", _keys="[]", _pq="x")
    assert event_from_hash(raw).est_method == "tiktoken" and event_from_hash(raw).request_id == "r/1:ü"


def test_integers_written_as_floats_still_read():
    assert event_from_hash({b"request_id": b"r", b"ts": b"1", b"day": b"d", b"user_id": b"u",
                            b"charged": b"12.0"}).charged == 12


def test_empty_hash_is_no_event():
    assert event_from_hash({}) is None and event_from_flat([]) is None


def test_numbers_keep_every_bit():
    assert float(number_text(0.1 + 0.2)) == 0.1 + 0.2
    assert number_text(7) == "7" and number_text(True) == "1"


def test_rollup_value_round_trip():
    row = DailyUsage("2026-12-05", "u", "m", 10, 6, 4, 3, 1, 0.30000000000000004)
    assert DailyUsage(*unpack_usage(row.day, row.user_id, row.model, pack_usage(row))) == row
    # the scripts write integers with %d and costs with %.15g; replies come as bytes
    assert DailyUsage(*unpack_usage("d", "u", "m", b"1 2 3 4 5 1.25e-05")).cost == 1.25e-05
    assert unpack_usage("d", "u", "m", "1 2 3.0 4 5 0")[5] == 3


def test_key_names_keep_prefix_and_separate_user_from_model():
    keys = KeyLayout("tl:")
    assert keys.counter(CounterKey("user:a:total", "2026-12-05")) == "tl:c:user:a:total@2026-12-05"
    assert keys.pending_queue("a:b", "c") != keys.pending_queue("a", "b:c")
    assert keys.pending_queue("a", "m").split("pq:", 1)[1].split(SEP) == ["a", "m"]
    names = [v for k, v in vars(keys).items() if k != "prefix"]
    assert all(n.startswith("tl:") for n in names) and len(set(names)) == len(names)
