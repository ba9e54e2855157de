"""Users page: search the directory, one user's history and requests, grant / reset / refund with an audit trail."""
from __future__ import annotations

from datetime import datetime, timezone

from panel_support import app, demo_store, new_store_url, open_page, plotly_charts, texts  # noqa: I001

from tokenlimit_core import CounterKey, Policy, window_label


def pick_active_user(store):
    day = max(r.day for r in store.daily_usage("0000", "9999"))
    return max(store.daily_usage(day, day), key=lambda r: r.tokens).user_id


def test_search_by_name_or_email(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    person = store.users()[3]
    at = open_page(app(monkeypatch, url), "users")
    at.text_input(key="us_search").input(person.email.upper()).run()
    assert at.selectbox(key="us_pick").options == [f"{person.name or person.id} <{person.email}> · {person.id}"]
    at.text_input(key="us_search").input("no-such-person").run()
    assert texts(at.caption)[0].startswith("0 of 8 users match")


def test_history_events_and_grant_reset_refund(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    uid = pick_active_user(store)
    at = open_page(app(monkeypatch, url, signed_in="ann"), "users")
    at.selectbox(key="us_pick").set_value(uid).run()
    assert not at.exception
    assert len(plotly_charts(at)) == 1
    events = at.dataframe[1].value
    assert len(events) > 0 and set(events["request_id"]) <= {e.request_id for e in store.ledger(0, 4e9, uid)}

    scope = f"user:{uid}:total"
    at.selectbox(key="us_grant_budget").set_value(scope)
    at.number_input(key="us_grant_tokens").set_value(2500)
    at.button(key="us_grant").click().run()
    assert not at.exception
    policy = Policy.from_json(store.load_policy().policy_json)
    key = CounterKey(scope, window_label(policy.window_spec(), datetime.now(timezone.utc)))
    assert store.counters([key])[0].granted == 2500
    assert any("Granted 2,500 tokens" in s for s in texts(at.success))

    at.selectbox(key="us_reset_budget").set_value(scope)
    at.checkbox(key="us_reset_sure").check().run()
    at.button(key="us_reset").click().run()
    counter = store.counters([key])[0]
    assert counter.used == 0 and counter.granted == 0

    rid = at.selectbox(key="us_refund_request").options and at.selectbox(key="us_refund_request").value
    at.button(key="us_refund").click().run()
    assert store.get_event(rid).status == "refunded"
    actions = [(e.actor, e.action) for e in store.audit_log(10)]
    assert ("ann", "grant") in actions and ("ann", "reset") in actions and ("ann", "refund") in actions


def test_reset_needs_confirmation(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    at = open_page(app(monkeypatch, url), "users")
    at.selectbox(key="us_pick").set_value(pick_active_user(store)).run()
    assert at.button(key="us_reset").disabled
