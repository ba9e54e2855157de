"""Settings page: store status from `info()`, message templates en/zh with a preview, saved into the policy."""
from __future__ import annotations

from panel_support import all_text, app, demo_store, new_store_url, open_page, texts  # noqa: I001

from tokenlimit_core import Policy


def test_store_status(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=3, days=1)
    at = open_page(app(monkeypatch, url), "settings")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Backend"] == "memory" and metrics["Health"] == "Healthy"
    info = dict(at.dataframe[0].value.values.tolist())
    assert info["events"] == str(store.info()["events"])


def test_edit_a_chinese_template_preview_and_save(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=3, days=1)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url, signed_in="ann"), "settings")
    at.text_area(key=f"set_msg_zh_used_up_{rev}").input("额度用完：{used:,}/{limit:,}，{reset_at} 重置").run()
    assert "预览: 额度用完：9,200/10,000" in all_text(at) or "Preview: 额度用完：9,200/10,000" in all_text(at)
    at.button(key="set_save").click().run()
    policy = Policy.from_json(store.load_policy().policy_json)
    assert policy.messages == {"zh": {"used_up": "额度用完：{used:,}/{limit:,}，{reset_at} 重置"}}
    assert any(e.action == "messages_changed" and e.actor == "ann" for e in store.audit_log(5))


def test_broken_template_is_named_and_not_saved(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=3, days=1)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url), "settings")
    at.text_area(key=f"set_msg_en_warning_{rev}").input("You used {percnt}%").run()
    assert any("The en template “warning” is broken" in e and "percnt" in e for e in texts(at.error))
    assert not [b for b in at.button if b.key == "set_save"]
