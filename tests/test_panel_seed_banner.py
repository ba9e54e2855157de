"""The banner when the filter's valves or TOKEN_LIMIT_* variables differ from the store's policy."""
from __future__ import annotations

from panel_support import app, new_store_url, open_page, texts  # noqa: I001

from app_pages.common.seed_banner import env_seed, merge_seed
from tokenlimit_core import Calibration, Engine, Policy, Price, Tier, open_store


def store_with_policy(url) -> Policy:
    policy = Policy(roles={"user": 10_000, "admin": -1}, tiers={"premium": Tier(daily_limit=50_000)},
                    prices={"gpt-4o": Price(input=2.5, output=10)}, calibration={"gpt-4o": Calibration(tokens=0.97)})
    open_store(url).save_policy(policy.to_json(), "ann")
    return policy


def test_merge_takes_the_seeds_settings_and_keeps_prices_and_calibration():
    current = Policy(roles={"user": 1, "pending": 0}, prices={"m": Price(input=1, output=2)},
                     calibration={"m": Calibration(tokens=0.9)})
    seed = Policy(roles={"user": 5}, model_limits={"gpt-4": 9}, reset_hour=6)
    merged = merge_seed(current, seed)
    assert merged.roles == {"user": 5, "pending": 0} and merged.model_limits == {"gpt-4": 9}
    assert merged.reset_hour == 6 and merged.prices == current.prices and merged.calibration == current.calibration


def test_env_seed_only_when_policy_variables_are_set():
    assert env_seed({"TOKEN_LIMIT_STORE_URL": "memory://x", "TOKEN_LIMIT_LANGUAGE": "zh"}) is None
    seed = env_seed({"TOKEN_LIMIT_DAILY_LIMITS": '{"user": 777, "gold": 5000}'})
    assert seed.roles == {"user": 777} and seed.tiers["gold"].daily_limit == 5000


def test_environment_differs_banner_import(monkeypatch):
    url = new_store_url()
    store_with_policy(url)
    at = app(monkeypatch, url, signed_in="ann")
    monkeypatch.setenv("TOKEN_LIMIT_DAILY_LIMITS", '{"user": 777, "admin": -1}')
    open_page(at, "overview")
    assert any("TOKEN_LIMIT_* variables of this panel's environment differ" in w for w in texts(at.warning))
    assert ["roles.user", "10000", "777"] in at.dataframe[0].value.values.tolist()
    at.button(key="seed_import_env").click().run()
    store = open_store(url)
    policy = Policy.from_json(store.load_policy().policy_json)
    assert policy.roles["user"] == 777 and policy.prices and policy.calibration
    assert store.audit_log(1)[0].action == "seed_imported" and store.audit_log(1)[0].actor == "ann"
    assert not any("differ" in w for w in texts(at.warning))


def test_keep_the_stores_policy_hides_the_banner(monkeypatch):
    url = new_store_url()
    original = store_with_policy(url)
    at = app(monkeypatch, url)
    monkeypatch.setenv("TOKEN_LIMIT_RESET_HOUR", "6")
    open_page(at, "limits")
    at.button(key="seed_keep_env").click().run()
    assert not any("differ" in w for w in texts(at.warning))
    assert Policy.from_json(open_store(url).load_policy().policy_json) == original


def test_filter_reported_difference_banner(monkeypatch):
    url = new_store_url()
    store_with_policy(url)
    Engine(open_store(url), seed=Policy(roles={"user": 5, "admin": -1})).policy()  # the filter starts
    at = open_page(app(monkeypatch, url), "overview")
    assert any("The filter's valves / TOKEN_LIMIT_* settings differ" in w for w in texts(at.warning))
    at.button(key="seed_import_filter").click().run()
    assert Policy.from_json(open_store(url).load_policy().policy_json).roles["user"] == 5
    assert not any("differ" in w for w in texts(at.warning))


def test_read_only_session_sees_the_banner_but_cannot_import(monkeypatch):
    url = new_store_url()
    store_with_policy(url)
    at = app(monkeypatch, url, password=None)
    monkeypatch.setenv("TOKEN_LIMIT_DAILY_LIMITS", '{"user": 777}')
    open_page(at, "overview")
    assert at.button(key="seed_import_env").disabled and at.button(key="seed_keep_env").disabled
