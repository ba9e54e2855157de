"""Panel texts: English and Chinese catalogs match, every key the pages use exists, the sidebar switch works."""
from __future__ import annotations

import pathlib
import re
import string

from panel_support import ROOT, app, demo_store, new_store_url, open_page, texts  # noqa: I001

from app_pages.common.i18n import CATALOGS, translate
from app_pages.common.texts_en import TEXTS as EN
from app_pages.common.texts_zh import TEXTS as ZH
from tokenlimit_core import Budget, WindowSpec

# Keys built at run time from data (t(f"...{x}")); each family's members must all exist.
DYNAMIC = {"window.": ["day", "week", "month"], "kind.": ["total", "model", "shared"],
           "login.method_": ["password", "openwebui"], "exp.kind.": ["usage", "ledger", "audit"],
           "msg.": ["used_up", "too_large", "warning", "usage_line", "unavailable"],
           "set.language.": ["en", "zh"], "seed.differs_": ["filter", "env"],
           "login.error.": ["name_required", "password_not_configured", "wrong_password", "not_admin",
                            "openwebui_not_configured", "openwebui_error"],
           "err.": ["required", "not_int", "below_min", "not_number", "negative", "duplicate", "unknown_tier",
                    "bad_window", "bad_timezone", "invalid"],
           "limits.tab.": ["roles", "models", "users", "shared", "window", "prices", "audit"],
           "table.": ["roles", "tiers", "tier_models", "user_tiers", "group_tiers", "model_limits", "user_limits",
                      "user_models", "shared", "prices", "general"]}


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalogs_have_the_same_keys_and_fields():
    assert set(EN) == set(ZH)
    for key in EN:
        assert fields(EN[key]) == fields(ZH[key]), key
        assert ZH[key].strip(), key


def test_every_key_used_by_the_pages_exists():
    used = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "app_pages").rglob("*.py"))]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", pathlib.Path(path).read_text()))
    for prefix, names in DYNAMIC.items():
        used |= {prefix + name for name in names}
    missing = sorted(k for k in used if k not in EN)
    assert not missing, missing
    assert len(used) > 150


def test_unknown_key_shows_itself_and_bad_fields_do_not_crash():
    assert translate("no.such.key", "zh") == "no.such.key"
    assert translate("exp.rows", "zh") == CATALOGS["zh"]["exp.rows"]


def test_budget_reasons_in_chinese(monkeypatch):
    from app_pages.common import i18n

    monkeypatch.setattr(i18n, "language", lambda: "zh")
    spec = WindowSpec()
    cases = {"tiers.premium.models.gpt-4.1*": "等级“premium”对 gpt-4.1* 的额度",
             "tiers.premium.daily_limit": "等级“premium”的额度",
             "users.alice.daily_limit": "用户 alice 的个人额度",
             "users.alice.models.gpt-4o": "用户 alice 对 gpt-4o 的个人额度",
             "model_limits.qwen3:*": "qwen3:* 的模型额度", "shared.school": "共享额度“school”",
             "roles.user": "角色“user”的额度"}
    for rule, expected in cases.items():
        assert i18n.budget_reason(Budget("s", "total", 1, spec, "english", rule)) == expected


def test_language_switch_changes_navigation_and_pages(monkeypatch):
    url = new_store_url()
    demo_store(url)
    at = open_page(app(monkeypatch, url), "explain")
    assert texts(at.title) == ["Explain a limit"]
    at.sidebar.radio(key="lang").set_value("zh").run()
    assert texts(at.title) == ["额度说明"]
    assert any("还可使用" in s or "不限额" in s for s in texts(at.success) + texts(at.warning) + texts(at.error))
    at.sidebar.radio(key="lang").set_value("en").run()
    assert texts(at.title) == ["Explain a limit"]


def test_default_language_from_environment(monkeypatch):
    url = new_store_url()
    at = app(monkeypatch, url, signed_in=None)
    monkeypatch.setenv("TOKEN_LIMIT_LANGUAGE", "zh")
    at.run()
    assert texts(at.title) == ["登录 tokenlimit"]
