"""The Redis store beyond the shared contract: Lua agrees with Python, expiry, stream cap, schema, policy reach."""
from __future__ import annotations

import time
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenlimit_core import Engine, Policy
from tokenlimit_core.store import (BudgetCharge, ChargeRequest, Counter, CounterKey, LedgerEvent, Settlement,
                                   StoreError, judge, open_store)
from tokenlimit_core.store.memory import MemoryStore

FAR = time.time() + 86400
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def server(redis_server):
    """The session's redis-server, and a fresh key prefix per test (so tests never see each other's keys)."""
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    client = redis.Redis(port=redis_server["port"], db=0)
    yield {"url": f"{redis_server['url']}/0?prefix={prefix}", "prefix": prefix, "client": client}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def store(server):
    s = open_store(server["url"])
    yield s
    s.close()


def request(rid, amount, budgets, user="u1", model="m", enforce=True, threshold=0.8, ts=None):
    event = LedgerEvent(request_id=rid, ts=ts or time.time(), day="2026-12-05", user_id=user, model=model,
                        est_prompt=amount // 2, est_completion=amount - amount // 2, cost=amount / 1000)
    return ChargeRequest(rid, amount, tuple(budgets), event, enforce, threshold)


counter_state = st.tuples(st.integers(-1, 300), st.integers(0, 300), st.integers(0, 120), st.integers(0, 60))


@SLOW
@given(budgets=st.lists(counter_state, max_size=4), amount=st.integers(0, 400), enforce=st.booleans(),
       threshold=st.sampled_from([0.0, 0.5, 0.8, 0.95, 1.0, 1.2]))
def test_lua_judge_agrees_with_python_judge(store, budgets, amount, enforce, threshold):
    window = uuid.uuid4().hex
    charges = [BudgetCharge(CounterKey(f"s{i}", window), limit, FAR) for i, (limit, *_) in enumerate(budgets)]
    counters = tuple(Counter(c.key, used, pending, granted) for c, (_, used, pending, granted) in zip(charges, budgets))
    store.put_counters([(c, FAR) for c in counters])
    result = store.charge(request(window, amount, charges, enforce=enforce, threshold=threshold))
    expected = judge(tuple(charges), counters, amount, enforce, threshold)
    assert result.verdict == expected and result.counters == counters and result.charged == expected.charge
    after = tuple(store.counters([c.key for c in charges]))
    again = store.charge(request(window, amount, charges, enforce=enforce, threshold=threshold))
    assert again.duplicate and again.verdict == judge(tuple(charges), after, 0, enforce, threshold)
    assert tuple(store.counters([c.key for c in charges])) == after


operation = st.one_of(
    st.tuples(st.just("charge"), st.integers(0, 4), st.integers(0, 90), st.sets(st.integers(0, 2), max_size=3),
              st.booleans()),
    st.tuples(st.just("settle"), st.integers(0, 4), st.integers(0, 60), st.integers(0, 60),
              st.one_of(st.none(), st.floats(0, 2, allow_nan=False).map(lambda x: round(x, 4)))),
    st.tuples(st.just("refund"), st.integers(0, 4)),
    st.tuples(st.just("grant"), st.integers(0, 2), st.integers(-20, 50)),
    st.tuples(st.just("reset"), st.integers(0, 2)),
)


@settings(SLOW, max_examples=150)
@given(ops=st.lists(operation, max_size=30))
def test_every_operation_matches_the_memory_reference(server, ops):
    ref = MemoryStore()
    run = uuid.uuid4().hex[:8]
    sut = open_store(server["url"].replace(server["prefix"], f"{server['prefix']}{run}:"))
    keys = [CounterKey(f"scope{i}", "w") for i in range(3)]
    limits = [200, 120, -1]
    now = 1764892800.0
    for step, op in enumerate(ops):
        now += 1
        if op[0] == "charge":
            _, n, amount, which, enforce = op
            budgets = [BudgetCharge(keys[i], limits[i], FAR) for i in sorted(which)]
            req = request(f"r{n}", amount, budgets, model=f"m{n % 2}", enforce=enforce, ts=now)
            assert sut.charge(req) == ref.charge(req)
        elif op[0] == "settle":
            _, n, p, c, cost = op
            assert sut.settle(f"r{n}", Settlement(p, c, "openai", cost), now) == ref.settle(
                f"r{n}", Settlement(p, c, "openai", cost), now)
        elif op[0] == "refund":
            assert sut.refund(f"r{op[1]}", "admin") == ref.refund(f"r{op[1]}", "admin")
        elif op[0] == "grant":
            assert sut.grant(keys[op[1]], op[2], FAR, "admin") == ref.grant(keys[op[1]], op[2], FAR, "admin")
        else:
            assert sut.reset(keys[op[1]], "admin") == ref.reset(keys[op[1]], "admin")
        assert sut.counters(keys) == ref.counters(keys), f"after step {step}: {op}"
    for model in ("m0", "m1"):
        assert sut.oldest_pending("u1", model) == ref.oldest_pending("u1", model)
    by_id = lambda events: sorted(events, key=lambda e: e.request_id)  # noqa: E731
    assert by_id(sut.ledger(0, 2e9)) == by_id(ref.ledger(0, 2e9, None))
    got, want = sut.daily_usage("2026-01-01", "2026-12-31"), ref.daily_usage("2026-01-01", "2026-12-31")
    assert [(r.day, r.user_id, r.model, r.tokens, r.prompt_tokens, r.completion_tokens, r.requests, r.denied)
            for r in got] == [(r.day, r.user_id, r.model, r.tokens, r.prompt_tokens, r.completion_tokens,
                               r.requests, r.denied) for r in want]
    assert [r.cost for r in got] == pytest.approx([r.cost for r in want], abs=1e-9)
    months = sut.monthly_usage("2026-01", "2026-12")
    assert [(r.day, r.model, r.tokens, r.requests, r.denied) for r in months] == [
        (r.day, r.model, r.tokens, r.requests, r.denied) for r in ref.monthly_usage("2026-01", "2026-12")]
    assert [(a.actor, a.action, a.detail) for a in sut.audit_log(500)] == [
        (a.actor, a.action, a.detail) for a in ref.audit_log(500)]
    sut.close()


def test_counters_expire_after_their_window_plus_grace(server):
    store = open_store(server["url"], counter_grace=50)
    key = CounterKey("user:u1:total", "2026-12-05")
    ends = time.time() + 100
    assert store.charge(request("r1", 10, [BudgetCharge(key, 100, ends)])).charged
    ttl = server["client"].ttl(server["prefix"] + "c:" + str(key))
    assert 140 <= ttl <= 151
    # a later window end (same counter label, e.g. a policy change) extends the expiry, never shortens it
    store.grant(key, 5, ends + 1000, "admin")
    assert server["client"].ttl(server["prefix"] + "c:" + str(key)) > 1000
    store.close()


def test_settle_after_the_counter_expired_does_not_bring_it_back(store, server):
    key = CounterKey("user:u1:total", "2026-12-04")
    store.charge(request("r1", 10, [BudgetCharge(key, 100, FAR)]))
    server["client"].delete(server["prefix"] + "c:" + str(key))
    event = store.settle("r1", Settlement(3, 4, "openai"), time.time())
    assert event.status == "settled" and event.tokens == 7
    assert not server["client"].exists(server["prefix"] + "c:" + str(key))
    assert store.daily_usage("2026-12-05", "2026-12-05")[0].tokens == 7


def test_every_ledger_change_goes_to_the_capped_stream(server):
    store = open_store(server["url"], stream_maxlen=20)
    key = CounterKey("user:u1:total", "w")
    for i in range(300):
        store.charge(request(f"r{i}", 1, [BudgetCharge(key, -1, FAR)]))
    store.settle("r299", Settlement(1, 0, "openai"), time.time())
    length = server["client"].xlen(server["prefix"] + "stream")
    assert 20 <= length <= 20 + 100  # MAXLEN ~ trims whole nodes of 100 entries
    *_, (_, last) = server["client"].xrange(server["prefix"] + "stream", count=None)
    assert last[b"request_id"] == b"r299" and last[b"status"] == b"settled"
    assert not any(k.startswith(b"_") for k in last)
    assert store.info()["stream_length"] == length
    store.close()


def test_stream_can_be_turned_off(server):
    store = open_store(server["url"], stream_maxlen=0)
    store.charge(request("r1", 1, []))
    assert not server["client"].exists(server["prefix"] + "stream")
    assert store.get_event("r1").status == "pending"
    store.close()


def test_ledger_retention_drops_old_events_only(server):
    store = open_store(server["url"], ledger_days=1)
    old = LedgerEvent(request_id="old", ts=time.time() - 3 * 86400, day="2026-12-01", user_id="u1")
    recent = LedgerEvent(request_id="new", ts=time.time() - 3600, day="2026-12-05", user_id="u1")
    store.put_history(events=[old, recent])
    store.charge(request("r1", 1, []))
    assert {e.request_id for e in store.ledger(0, 2e9)} == {"new", "r1"}
    assert 86000 < server["client"].ttl(server["prefix"] + "r:r1") <= 86401
    store.close()


def test_scripts_reload_after_script_flush(store, server):
    server["client"].script_flush()
    key = CounterKey("user:u1:total", "w")
    assert store.charge(request("r1", 5, [BudgetCharge(key, 10, FAR)])).charged
    server["client"].script_flush()
    assert store.settle("r1", Settlement(1, 1, "openai"), time.time()).status == "settled"


def test_schema_version_is_recorded_and_another_version_is_refused(store, server):
    assert server["client"].get(server["prefix"] + "schema") == b"1"
    server["client"].set(server["prefix"] + "schema", "7")
    with pytest.raises(StoreError) as err:
        open_store(server["url"])
    message = str(err.value)
    assert "schema version 7" in message and "version 1" in message and "migrate" in message


def test_prefixes_keep_stores_apart(server):
    a = open_store(server["url"])
    b = open_store(server["url"].replace(server["prefix"], server["prefix"] + "other:"))
    a.save_policy(Policy(roles={"user": 5}).to_json(), "admin")
    assert b.load_policy() is None and b.policy_revision() == 0
    a.close()
    b.close()


def test_policy_revision_is_one_get_and_reaches_other_nodes(server):
    node_a, node_b = open_store(server["url"]), open_store(server["url"])
    engine_b = Engine(node_b, seed=Policy(roles={"user": 100}), policy_ttl=0.2)
    assert engine_b.policy().roles["user"] == 100
    assert Engine(node_b).policy_ttl <= 1.0  # the default re-reads well within a second
    node_a.save_policy(Policy(roles={"user": 999}).to_json(), "admin")
    assert server["client"].get(server["prefix"] + "policy:rev") == b"2"
    time.sleep(0.25)
    assert engine_b.policy().roles["user"] == 999
    node_a.close()
    node_b.close()


def test_info_names_the_store_without_secrets(store, server):
    info = store.info()
    assert info["backend"] == "redis" and info["prefix"] == server["prefix"] and info["healthy"]
    assert info["redis_version"] and info["events"] == 0


def test_zero_token_requests_settle_and_refund(store):
    key = CounterKey("user:u1:total", "w")
    for rid in ("z1", "z2"):
        assert store.charge(request(rid, 0, [BudgetCharge(key, 10, FAR)])).charged
    assert store.refund("z1", "admin").status == "refunded"
    assert store.settle("z2", Settlement(0, 0, "openai"), time.time()).status == "settled"
    assert store.refund("z2", "admin").status == "refunded"
    [counter] = store.counters([key])
    assert (counter.used, counter.pending) == (0, 0)


def test_monthly_rollups_stay_the_sum_of_their_days(store):
    from tokenlimit_core.store import DailyUsage

    key = CounterKey("user:u1:total", "w")
    store.charge(request("live", 30, [BudgetCharge(key, -1, FAR)]))  # day 2026-12-05, live traffic
    store.settle("live", Settlement(10, 5, "openai"), time.time())
    days = [DailyUsage(f"2026-12-0{d}", "u1", "m", tokens=100 * d, requests=d, cost=0.25) for d in (1, 2)]
    store.put_history(days, [])
    store.put_history([DailyUsage("2026-12-02", "u1", "m", tokens=7, requests=1)], [])  # set semantics
    store.put_history(days[:1], [])  # loading again changes nothing
    daily = store.daily_usage("2026-12-01", "2026-12-31")
    [month] = [r for r in store.monthly_usage("2026-12", "2026-12") if r.model == "m"]
    mine = [r for r in daily if r.model == "m"]
    assert month.tokens == sum(r.tokens for r in mine) == 100 + 7 + 15
    assert month.requests == sum(r.requests for r in mine) == 3
    assert month.cost == pytest.approx(sum(r.cost for r in mine)) == 0.25 + 0.03
    assert [r.day for r in store.monthly_usage("2026-01", "2026-12", user_id="u1")] == ["2026-12"]
