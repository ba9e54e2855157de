"""Panel data loading: rollup and directory tables, and each user's total budget in the current window."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import panel_support  # noqa: F401  (puts the checkout on sys.path for app_pages)
from app_pages.common import data
from panel_support import new_store_url
from tokenlimit_core import CounterKey, LedgerEvent, Policy, UserInfo, open_store, window_label
from tokenlimit_core.store import BudgetCharge, ChargeRequest


def test_window_totals_shares_and_unlimited_users():
    url = new_store_url()
    store = open_store(url)
    policy = Policy(roles={"user": 1000, "admin": -1}, timezone="UTC")
    store.save_policy(policy.to_json(), "t")
    for uid, role in (("u1", "user"), ("u2", "user"), ("boss", "admin")):
        store.touch_user(UserInfo(uid, uid.upper(), f"{uid}@x", role))
    now = datetime.now(timezone.utc)
    key = CounterKey("user:u1:total", window_label(policy.window_spec(), now))
    event = LedgerEvent(request_id="r1", ts=time.time(), day="2026-12-04", user_id="u1", est_prompt=900)
    store.charge(ChargeRequest("r1", 900, (BudgetCharge(key, 1000, time.time() + 3600),), event))
    store.grant(key, 500, time.time() + 3600, "ann")
    directory = data.users(store, url)
    assert directory["id"].tolist() == ["boss", "u1", "u2"]
    totals = data.window_totals(store, url, policy.to_json(), directory, now.timestamp()).set_index("user_id")
    assert totals.at["u1", "pending"] == 900 and totals.at["u1", "granted"] == 500
    assert totals.at["u1", "share"] == 900 / 1500 and totals.at["u2", "share"] == 0
    assert totals.at["boss", "limit"] == -1 and totals.at["boss", "share"] == 0
    assert data.user_limits(policy, directory) == {"boss": -1, "u1": 1000, "u2": 1000}
    daily = data.daily(store, url, "2026-12-01", "2026-12-31")
    assert daily[["user_id", "tokens", "requests"]].values.tolist() == [["u1", 900, 1]]


def test_refresh_button_reads_the_store_again(monkeypatch):
    from panel_support import app, demo_store, open_page

    url = new_store_url()
    store = demo_store(url, users=3, days=1)
    at = open_page(app(monkeypatch, url), "users")
    before = at.caption[0].value
    store.touch_user(UserInfo("newcomer", "New Comer", "new@x", "user"))
    at.run()
    assert at.caption[0].value == before  # cached for 30 s
    at.button(key="refresh").click().run()
    total = len(store.users())
    assert at.caption[0].value.startswith(f"{total} of {total} users")
