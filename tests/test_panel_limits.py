"""Limits page: edits are previewed, saved to the store with the admin's name, and bad cells are named."""
from __future__ import annotations

from panel_support import all_text, app, demo_store, new_store_url, open_page, texts  # noqa: I001

from tokenlimit_core import Policy


def stored(store) -> Policy:
    return Policy.from_json(store.load_policy().policy_json)


def edits(rows=None, added=None):
    return {"edited_rows": rows or {}, "added_rows": added or [], "deleted_rows": []}


def test_edit_a_limit_preview_and_save(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url, signed_in="ann"), "limits")
    assert "No changes." in all_text(at)
    roles = list(stored(store).roles)
    at.session_state[f"lim_roles_{rev}"] = edits({roles.index("user"): {"limit": 12345}})
    at.run()
    preview = at.dataframe[-1].value
    assert preview.values.tolist() == [["roles.user", "40000", "12345"]]
    assert stored(store).roles["user"] == 40000  # nothing saved before the button
    at.button(key="lim_save").click().run()
    assert not at.exception
    assert stored(store).roles["user"] == 12345
    assert store.policy_revision() == rev + 1 and store.load_policy().actor == "ann"
    assert f"Saved revision {rev + 1}." in texts(at.success)
    entry = next(e for e in store.audit_log(10) if e.action == "limits_changed")
    assert entry.actor == "ann" and entry.detail["changes"] == [["roles.user", 40000, 12345]]
    assert "No changes." in all_text(at)  # editors restart from the saved policy


def test_new_tier_assigned_to_a_user_and_a_timezone(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url), "limits")
    at.session_state[f"lim_tiers_{rev}"] = edits(added=[{"tier": "gold", "limit": 500000, "window": "week"}])
    at.session_state[f"lim_user_tiers_{rev}"] = edits(added=[{"user": "bob", "tier": "gold"}])
    at.run()
    at.selectbox(key=f"lim_timezone_{rev}").set_value("Asia/Shanghai").run()
    at.button(key="lim_save").click().run()
    policy = stored(store)
    assert policy.tiers["gold"].daily_limit == 500000 and policy.users["bob"].tiers == ["gold"]
    assert policy.timezone == "Asia/Shanghai"


def test_bad_cells_are_named_and_nothing_is_saved(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url), "limits")
    at.session_state[f"lim_model_limits_{rev}"] = edits({0: {"limit": -5}})
    at.session_state[f"lim_shared_{rev}"] = edits(added=[{"name": "campus-gpt-4o", "limit": 10, "models": "*"}])
    at.run()
    text = all_text(at)
    assert "Model limits (per user), row 1, column “Limit”: is -5; use -1 for unlimited, 0 to block" in text
    assert "Shared budgets, row 3, column “Name”: “campus-gpt-4o” appears twice" in text
    assert not [b for b in at.button if b.key == "lim_save"]
    assert store.policy_revision() == rev


def test_a_save_in_between_is_not_overwritten(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url), "limits")
    at.session_state[f"lim_roles_{rev}"] = edits({0: {"limit": 1}})
    at.run()
    other = stored(store).model_copy(update={"reset_hour": 5})
    store.save_policy(other.to_json(), "bob")
    at.button(key="lim_save").click().run()
    assert stored(store).reset_hour == 5 and stored(store).roles["user"] == 40000
    assert any("Someone saved revision" in w for w in texts(at.warning))


def test_discard_restores_the_stored_policy(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url), "limits")
    at.session_state[f"lim_roles_{rev}"] = edits({0: {"limit": 1}})
    at.run()
    assert "Changes to save (1)" in all_text(at)
    at.button(key="lim_discard").click().run()
    assert "No changes." in all_text(at)


def test_audit_trail_lists_who_changed_what(monkeypatch):
    url = new_store_url()
    store = demo_store(url)
    store.audit("zoe", "grant", {"counter": "user:u1:total@2026-12-04", "tokens": 5})
    at = open_page(app(monkeypatch, url), "limits")
    audit = at.dataframe[-1].value
    assert audit.iloc[0]["Who"] == "zoe" and audit.iloc[0]["Action"] == "grant"


def test_first_save_on_an_empty_store(monkeypatch):
    url = new_store_url()
    at = open_page(app(monkeypatch, url), "limits")
    assert any("No policy saved yet" in i for i in texts(at.info))
    at.button(key="lim_save").click().run()
    from tokenlimit_core import open_store

    store = open_store(url)
    assert store.policy_revision() == 1 and stored(store) == Policy()
