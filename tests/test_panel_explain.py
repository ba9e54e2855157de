"""Explain page: every budget for a user and model, its rule, used / pending / remaining, and reset time."""
from __future__ import annotations

from panel_support import all_text, app, new_store_url, open_page, texts  # noqa: I001

from tokenlimit_core import Policy, SharedBudget, Tier, UserInfo, UserOverride, open_store


def store_with_alice(url):
    store = open_store(url)
    policy = Policy(roles={"user": 10_000, "admin": -1}, tiers={"premium": Tier(daily_limit=50_000)},
                    model_limits={"gpt-4*": 5_000}, users={"alice": UserOverride(tiers=["premium"])},
                    shared=[SharedBudget(name="school", limit=100_000, models="gpt-4*")], timezone="UTC")
    store.save_policy(policy.to_json(), "test")
    store.touch_user(UserInfo("alice", "Alice Liu", "alice@example.com", "user", ("teachers",)))
    store.touch_user(UserInfo("bob", "Bob", "bob@example.com", "user"))
    return store


def test_every_budget_with_its_rule_and_counters(monkeypatch):
    url = new_store_url()
    store = store_with_alice(url)
    at = app(monkeypatch, url)
    at.run()
    at.switch_page("app_pages/explain.py").run()
    at.selectbox(key="ex_user").set_value("alice")
    at.text_input(key="ex_model_other").input("gpt-4-turbo").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["rule"].tolist() == ["tiers.premium.daily_limit", "model_limits.gpt-4*", "shared.school"]
    assert table["reason"].tolist()[1] == "model limit for gpt-4*"
    assert table["limit"].tolist() == ["50,000", "5,000", "100,000"]
    assert table["remaining"].tolist()[1] == "5,000" and table["reset"].str.endswith("UTC").all()
    assert any("alice may spend 5,000 more tokens on gpt-4-turbo" in s for s in texts(at.success))
    assert store.policy_revision() == 1  # explaining changes nothing


def test_unmetered_model_and_read_only_access(monkeypatch):
    url = new_store_url()
    store = store_with_alice(url)
    policy = Policy.from_json(store.load_policy().policy_json).model_copy(update={"target_models": ["gpt-4*"]})
    store.save_policy(policy.to_json(), "test")
    at = app(monkeypatch, url, password=None)
    at.run()
    at.switch_page("app_pages/explain.py").run()
    at.selectbox(key="ex_user").set_value("bob")
    at.text_input(key="ex_model_other").input("llama3:8b").run()
    assert "llama3:8b is not metered" in all_text(at)


def test_empty_store_says_there_is_no_policy(monkeypatch):
    at = open_page(app(monkeypatch, new_store_url()), "explain")
    assert any("No policy has been saved" in i for i in texts(at.info))
