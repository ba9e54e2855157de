"""Overview page: first-run state with demo data, headline numbers from the store, charts."""
from __future__ import annotations

from datetime import datetime, timezone

from panel_support import all_text, app, demo_store, new_store_url, open_page, plotly_charts, texts  # noqa: I001

from tokenlimit_core import Policy, open_store
from tokenlimit_core.periods import usage_day


def test_empty_store_shows_a_first_run_state_and_loads_demo_data(monkeypatch):
    url = new_store_url()
    at = open_page(app(monkeypatch, url), "overview")
    assert any("This store is empty" in i for i in texts(at.info))
    assert [c.value for c in at.code if "demo" in c.value] == ["python -m tokenlimit_core demo"]
    assert not plotly_charts(at)
    at.button(key="load_demo").click().run(timeout=120)
    assert not at.exception
    store = open_store(url)
    assert len(store.users()) == 60 and store.policy_revision() >= 1
    assert any(e.action == "demo_loaded" and e.actor == "ann" for e in store.audit_log(20))
    assert not any("This store is empty" in i for i in texts(at.info))
    assert len(plotly_charts(at)) >= 4


def test_read_only_session_cannot_load_demo_data(monkeypatch):
    at = open_page(app(monkeypatch, new_store_url(), password=None), "overview")
    assert at.button(key="load_demo").disabled


def test_headline_numbers_match_the_store(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=8, days=3)
    policy = Policy.from_json(store.load_policy().policy_json)
    today = usage_day(policy.window_spec(), datetime.now(timezone.utc))
    tokens_today = sum(r.tokens for r in store.daily_usage(today, today))
    at = open_page(app(monkeypatch, url), "overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens today"] == f"{tokens_today:,}"
    assert "Requests today" in metrics and metrics["Next reset"].endswith("UTC")
    assert any("Close to or over their limit" in s for s in texts(at.subheader))
    assert len(plotly_charts(at)) == 5  # over time, top users, top models, heat map, request sizes
    at.radio(key="ov_days").set_value(7).run()
    assert "Tokens per day by model, last 7 days" in all_text(at)
    at.radio(key="ov_days").set_value(365).run()
    assert not at.exception
    assert "Tokens per month by model, last 365 days" in all_text(at)  # read from month rollups
    assert len(plotly_charts(at)) == 5


def test_users_over_their_limit_are_listed(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=8, days=2)
    policy = Policy.from_json(store.load_policy().policy_json)
    tight = policy.model_copy(update={"roles": {**policy.roles, "user": 1}, "tiers": {}, "group_tiers": {},
                                      "users": {}})
    store.save_policy(tight.to_json(), "test")
    at = open_page(app(monkeypatch, url), "overview")
    near = at.dataframe[0].value
    assert len(near) >= 1 and (near["share"] >= 80).all()
