"""What-if replay: past ledger events against a proposed policy (tokenlimit_core.replay)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenlimit_core import Engine, Policy, Tier, UserInfo, UserOverride, open_store
from tokenlimit_core.replay import NO_TIER, compare, replay, replay_period
from tokenlimit_core.store import LedgerEvent
from tokenlimit_core.usage import Usage

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


def event(rid, minutes, tokens, *, user="alice", model="gpt-4o", decision="allowed", status="settled",
          role="user", task=None, estimate=None):
    ts = (T0 + timedelta(minutes=minutes)).timestamp()
    est = tokens if estimate is None else estimate
    charged = 0 if decision == "denied" else est
    actual = tokens if status in ("settled", "refunded") else None
    return LedgerEvent(request_id=rid, ts=ts, day=T0.date().isoformat(), user_id=user, role=role, model=model,
                       task=task, est_prompt=est, est_completion=0, charged=charged, status=status,
                       decision=decision, actual_prompt=actual, actual_completion=0 if actual is not None else None,
                       actual_source="openai" if actual is not None else None,
                       settled_at=ts + 5 if actual is not None else None)


def policy(**kwargs) -> Policy:
    return Policy(timezone="UTC", **kwargs)


def test_stricter_total_refuses_later_requests_and_counts_savings():
    events = [event("r1", 0, 600), event("r2", 10, 150), event("r3", 20, 200)]
    result = replay(events, policy(roles={"user": 800}))
    would = {r.request_id: r.would for r in result.requests}
    assert would == {"r1": "allowed", "r2": "warned", "r3": "denied"}
    refused = result.requests[2]
    assert refused.reason == "too_large" and refused.rule == "roles.user" and refused.limit == 800
    assert refused.tokens_would == 0 and refused.saved == 200
    totals = result.totals()
    assert totals["refused"] == totals["newly_refused"] == 1
    assert totals["tokens_saved"] == 200 and totals["tokens_was"] == 950


def test_settled_actual_replaces_estimate_before_next_request():
    # r1 is estimated at 900 but used 100: once settled, r2 (500) fits a 1,000 limit.
    events = [event("r1", 0, 100, estimate=900), event("r2", 10, 500)]
    assert [r.would for r in replay(events, policy(roles={"user": 1000})).requests] == ["warned", "allowed"]
    # A request that never settled keeps its estimate pending, so r2 no longer fits.
    events = [event("r1", 0, 0, estimate=900, status="pending"), event("r2", 10, 500)]
    result = replay(events, policy(roles={"user": 1000}))
    assert [r.would for r in result.requests] == ["warned", "denied"]
    assert result.requests[0].tokens_would == 900 and not result.requests[0].actual_known


def test_windows_of_the_proposal_decide_when_counters_restart():
    day2 = 24 * 60
    events = [event("a", 0, 700), event("b", day2, 700)]
    assert [r.would for r in replay(events, policy(roles={"user": 1000})).requests] == ["allowed", "allowed"]
    weekly = replay(events, policy(roles={"user": 1000}, window="week"))
    assert [r.would for r in weekly.requests] == ["allowed", "denied"]


def test_windows_follow_the_zone_to_the_quarter_hour():
    # Asia/Kathmandu is UTC+5:45: its day starts at 18:15 UTC.
    boundary = datetime(2026, 11, 2, 18, 15, tzinfo=timezone.utc)
    minutes = (boundary - T0).total_seconds() / 60
    events = [event("a", minutes - 10, 700), event("b", minutes - 1 / 60, 200), event("c", minutes, 700)]
    result = replay(events, Policy(roles={"user": 1000}, timezone="Asia/Kathmandu"))
    assert [r.would for r in result.requests] == ["allowed", "warned", "allowed"]


def test_refused_then_allowed_now_counts_with_its_estimate():
    events = [event("r1", 0, 900), event("r2", 10, 0, estimate=400, decision="denied", status="denied")]
    result = replay(events, policy(roles={"user": 5000}))
    r2 = result.requests[1]
    assert r2.was == "denied" and r2.would == "allowed"
    assert (r2.tokens_was, r2.tokens_would, r2.saved, r2.actual_known) == (0, 400, -400, False)


def test_model_and_tier_budgets_with_groups_from_the_directory():
    proposal = policy(roles={"user": 10_000}, tiers={"staff": Tier(models={"gpt-4*": 500})},
                      group_tiers={"teachers": "staff"}, model_limits={"gpt-4*": 100})
    events = [event("t1", 0, 300, user="tina", model="gpt-4o"), event("s1", 1, 300, user="sam", model="gpt-4o"),
              event("s2", 2, 50, user="sam", model="llama3:8b")]
    users = {"tina": UserInfo("tina", groups=("teachers",)), "sam": UserInfo("sam")}
    result = replay(events, proposal, users)
    by_id = {r.request_id: r for r in result.requests}
    assert by_id["t1"].would == "allowed" and by_id["t1"].tier == "staff"
    assert by_id["s1"].would == "denied" and by_id["s1"].rule == "model_limits.gpt-4*"
    assert by_id["s2"].would == "allowed" and by_id["s2"].tier == NO_TIER
    by_model = {row["model"]: row for row in result.by("model")}
    assert by_model["gpt-4o"]["refused"] == 1 and by_model["gpt-4o"]["tokens_saved"] == 300
    assert by_model["llama3:8b"]["tokens_saved"] == 0
    by_tier = {row["tier"]: row for row in result.by("tier")}
    assert by_tier["staff"]["refused"] == 0 and by_tier[NO_TIER]["refused"] == 1
    [who] = result.refused_users()
    assert who["user_id"] == "sam" and who["rule"] == "model_limits.gpt-4*" and who["refused"] == 1


def test_unmetered_shadow_and_tasks_are_not_refused():
    events = [event("r1", 0, 900), event("r2", 1, 900, model="local-model"), event("r3", 2, 900),
              event("r4", 3, 900, task="title_generation")]
    proposal = policy(roles={"user": 1000}, target_models=["gpt-*"])
    would = [r.would for r in replay(events, proposal).requests]
    assert would == ["warned", "unmetered", "denied", "shadow_denied"]
    shadow = replay(events, proposal.model_copy(update={"shadow_mode": True}))
    assert [r.would for r in shadow.requests] == ["warned", "unmetered", "shadow_denied", "shadow_denied"]
    assert shadow.totals()["refused"] == 0 and shadow.totals()["tokens_saved"] == 0


def test_refunded_requests_free_their_tokens():
    events = [event("r1", 0, 900, status="refunded"), event("r2", 10, 900)]
    result = replay(events, policy(roles={"user": 1000}))
    assert [r.would for r in result.requests] == ["warned", "warned"]
    assert result.requests[0].tokens_would == 0


def test_compare_puts_policies_side_by_side():
    events = [event("r1", 0, 600), event("r2", 10, 600, model="llama3"), event("r3", 20, 600)]
    results = {"strict": replay(events, policy(roles={"user": 1000})),
               "loose": replay(events, policy(roles={"user": 5000}))}
    overall = {row["policy"]: row for row in compare(results)}
    assert overall["strict"]["refused"] == 2 and overall["loose"]["refused"] == 0
    per_model = {row["model"]: row for row in compare(results, by="model")}
    assert per_model["gpt-4o"]["strict: tokens_saved"] == 600
    assert per_model["llama3"]["strict: refused"] == 1 and per_model["llama3"]["loose: refused"] == 0


def _run_engine(spec, engine_policy):
    """Drive a real engine through a sequence of requests; returns the store."""
    store = open_store("memory://")
    engine = Engine(store, seed=engine_policy)
    users = {"u1": UserInfo("u1", groups=("g1",)), "u2": UserInfo("u2"), "boss": UserInfo("boss", role="admin")}
    pending = []
    for i, (who, model, words, max_tokens, settle_after, actual) in enumerate(spec):
        now = T0 + timedelta(minutes=7 * i)
        body = {"messages": [{"role": "user", "content": "word " * words}], "max_tokens": max_tokens}
        decision = engine.check(users[who], model, body, request_id=f"r{i}", now=now)
        if decision.allowed and settle_after is not None:
            pending.append((i + settle_after, f"r{i}", actual))
        for due, rid, tokens in [p for p in pending if p[0] <= i]:
            engine.settle(rid, usage=Usage(tokens, 7, "openai"), now=now + timedelta(minutes=3))
            pending.remove((due, rid, tokens))
    return store


request_spec = st.tuples(st.sampled_from(["u1", "u2", "boss"]), st.sampled_from(["gpt-4o", "llama3:8b"]),
                         st.integers(1, 300), st.integers(1, 400), st.one_of(st.none(), st.integers(0, 3)),
                         st.integers(0, 600))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request_spec, min_size=1, max_size=40), st.sampled_from(["day", "week"]),
       st.integers(200, 3000), st.integers(100, 1500))
def test_replaying_against_the_policy_in_force_reproduces_every_decision(spec, window, total, model_limit):
    in_force = policy(roles={"user": total}, window=window, model_limits={"gpt-4*": model_limit},
                      tiers={"t": Tier(daily_limit=total * 2)}, group_tiers={"g1": "t"},
                      users={"u2": UserOverride(models={"llama3*": model_limit // 2})})
    store = _run_engine(spec, in_force)
    result = replay_period(store, in_force, T0 - timedelta(days=1), T0 + timedelta(days=30))
    recorded = {e.request_id: e.decision for e in store.ledger(0, 2e9)}
    assert {r.request_id: r.would for r in result.requests} == recorded
    assert result.totals()["tokens_saved"] == 0
