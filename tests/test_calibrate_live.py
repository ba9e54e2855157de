"""Calibration from the ledger (web-UI vs API traffic) and applying a calibration to the stored policy."""
from __future__ import annotations

import random

import pytest

from tokenlimit_core import Engine, UserInfo, open_store
from tokenlimit_core.calibrate_live import apply, fit_from_ledger
from tokenlimit_core.estimate import calibration_for
from tokenlimit_core.policy import Calibration, Policy
from tokenlimit_core.store.base import LedgerEvent

DAY = 1_764_806_400.0  # 2025-12-04 00:00 UTC


def events(source: str, count: int, *, scale: float, intercept: float, webui_shift: float = 0.0, seed: int = 1,
           model: str = "gpt-4o", noise: float = 0.01) -> list[LedgerEvent]:
    """Settled requests whose actual prompt is intercept + scale·estimate (+ web-UI extra), ±noise."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        core = rng.randint(30, 6000)
        est = core + webui_shift
        actual = (intercept + scale * core) * (1 + rng.uniform(-noise, noise))
        out.append(LedgerEvent(f"{source}-{seed}-{i}", DAY + i * 60, "2025-12-04", "u1", model=model,
                               source=source, est_prompt=round(est), status="settled",
                               actual_prompt=round(actual), actual_completion=10))
    return out


def test_recovers_scale_overhead_and_webui_overhead():
    current = Calibration(webui_overhead=0.0)
    api = events("api", 200, scale=1.1, intercept=40)
    webui = events("webui", 200, scale=1.1, intercept=40 + 2500, seed=2)
    fitted = fit_from_ledger(api + webui, current)
    assert set(fitted) == {"api", "webui"}
    assert fitted["api"].tokens == pytest.approx(1.1, rel=0.01)
    assert fitted["api"].per_message == pytest.approx(3.3, rel=0.01)
    assert fitted["api"].overhead == pytest.approx(3 * 1.1 + 40, abs=8)
    assert fitted["api"].webui_overhead == 0
    assert fitted["webui"].webui_overhead == pytest.approx(2500, rel=0.02)
    assert fitted["webui"].tokens == pytest.approx(1.1, rel=0.01)
    assert fitted["webui"].fitted_on.startswith("ledger: 200 settled webui requests, 2025-12-04")


def test_webui_estimates_already_carrying_an_overhead_are_corrected_not_doubled():
    current = Calibration(webui_overhead=1000.0)
    api = events("api", 100, scale=1.0, intercept=0)
    webui = events("webui", 100, scale=1.0, intercept=2600, webui_shift=1000, seed=3)
    fitted = fit_from_ledger(api + webui, current)
    assert fitted["webui"].webui_overhead == pytest.approx(2600, rel=0.02)


def test_webui_only_traffic_puts_the_intercept_into_the_webui_overhead():
    fitted = fit_from_ledger(events("webui", 80, scale=0.9, intercept=3000, noise=0.0), Calibration())
    assert set(fitted) == {"webui"}
    assert fitted["webui"].webui_overhead == pytest.approx(3000, abs=5)
    assert fitted["webui"].tokens == pytest.approx(0.9, abs=0.001)


def test_only_settled_events_of_the_model_count_and_small_groups_are_skipped():
    api = events("api", 30, scale=1.2, intercept=0, model="llama3:8b")
    other = events("api", 30, scale=3.0, intercept=0, model="gpt-4o", seed=5)
    pending = [LedgerEvent(f"p{i}", DAY, "2025-12-04", "u", model="llama3:8b", est_prompt=100, status="pending")
               for i in range(50)]
    fitted = fit_from_ledger(api + other + pending + events("webui", 5, scale=1, intercept=0), Calibration(),
                             model="llama3*")
    assert set(fitted) == {"api"}
    assert fitted["api"].tokens == pytest.approx(1.2, rel=0.02)
    assert fit_from_ledger([], Calibration()) == {}


def test_apply_round_trips_through_a_memory_store_and_is_audited():
    store = open_store("memory://")
    store.save_policy(Policy(roles={"user": 5000}).to_json(), "seed")
    calibration = Calibration(tokens=0.8, han=-0.3, space_han=1.2, webui_overhead=2400, fitted_on="test")
    revision = apply(store, "qwen3*", calibration, actor="alice")
    assert revision == 2
    policy = Policy.from_json(store.load_policy().policy_json)
    assert policy.roles == {"user": 5000}
    assert policy.calibration["qwen3*"] == calibration
    assert calibration_for(policy, "qwen3:8b") == calibration
    entry = store.audit_log(1)[0]
    assert entry.actor == "alice" and entry.action == "calibration"
    assert entry.detail["model"] == "qwen3*" and entry.detail["before"] is None
    assert entry.detail["after"]["space_han"] == 1.2

    apply(store, "qwen3*", Calibration(tokens=0.9), actor="bob")
    assert store.audit_log(1)[0].detail["before"]["tokens"] == 0.8


def test_apply_stores_a_twin_beside_the_calibration_and_keeps_it():
    store = open_store("memory://")
    store.save_policy(Policy().to_json(), "seed")
    own, twin = Calibration(encoding="qwen3", per_message=4.1), Calibration(encoding="cl100k_base", tokens=0.7)
    apply(store, "qwen3*", own, actor="alice", twin=twin)
    policy = Policy.from_json(store.load_policy().policy_json)
    assert policy.calibration == {"qwen3*": own, "qwen3*@cl100k_base": twin}
    assert store.audit_log(1)[0].detail["twin"]["tokens"] == 0.7
    refit = Calibration(encoding="qwen3", webui_overhead=2000)
    apply(store, "qwen3*", refit, actor="bob")  # no twin (a ledger fit, say): the earlier one stays
    assert Policy.from_json(store.load_policy().policy_json).calibration == {"qwen3*": refit,
                                                                             "qwen3*@cl100k_base": twin}
    with pytest.raises(ValueError, match="twin"):
        apply(store, "qwen3*", own, actor="alice", twin=own)
    with pytest.raises(ValueError, match="without '@'"):
        apply(store, "qwen3*@cl100k_base", twin, actor="alice")


def test_engine_uses_the_applied_calibration():
    store = open_store("memory://")
    engine = Engine(store, seed=Policy(roles={"user": 100_000}), policy_ttl=0)
    body = {"messages": [{"role": "user", "content": "hello there " * 50}]}
    before = engine.check(UserInfo("u1"), "qwen3:8b", body, request_id="r1").estimate.prompt
    apply(store, "qwen3*", Calibration(overhead=0, tokens=2, per_message=0), actor="admin")
    after = engine.check(UserInfo("u1"), "qwen3:8b", body, request_id="r2").estimate.prompt
    assert after == pytest.approx(2 * (before - 3 - 3), abs=2)


def test_apply_refuses_bad_input_clearly():
    store = open_store("memory://")
    with pytest.raises(ValueError, match="has no policy yet"):
        apply(store, "gpt-4o*", Calibration(), actor="a")
    store.save_policy(Policy().to_json(), "seed")
    with pytest.raises(ValueError, match="model_pattern"):
        apply(store, " ", Calibration(), actor="a")
    with pytest.raises(ValueError, match="actor"):
        apply(store, "gpt-4o*", Calibration(), actor="")
    assert store.policy_revision() == 1
