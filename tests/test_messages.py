"""User-facing texts: both languages, overrides, broken templates never crash."""
from datetime import datetime, timezone

from tokenlimit_core import Engine, Policy, UserInfo, open_store
from tokenlimit_core.messages import TEMPLATES, format_time, limit_name, refusal, text, warning


def refused(policy):
    engine = Engine(open_store("memory://"), seed=policy)
    return engine.check(UserInfo("u", role="user"), "gpt-4o", {"messages": [], "max_tokens": 500})


def test_every_template_exists_in_both_languages():
    assert set(TEMPLATES["en"]) == set(TEMPLATES["zh"])


def test_refusal_names_limit_value_used_left_and_reset():
    decision = refused(Policy(roles={"user": 100}, model_limits={"gpt-4o": 50}, timezone="Asia/Shanghai"))
    en = refusal(decision, "en", zone_name="Asia/Shanghai")
    assert "limit for gpt-4o" in en and "50" in en and "CST" in en
    zh = refusal(decision, "zh", zone_name="Asia/Shanghai")
    assert "gpt-4o 的额度" in zh and "50" in zh and "请求过大" in zh


def test_admin_overrides_and_fallbacks():
    decision = refused(Policy(roles={"user": 10}))
    custom = {"zh": {"too_large": "超额了：{limit} / {remaining}"}}
    assert refusal(decision, "zh", custom) == "超额了：10 / 10"
    broken = {"en": {"too_large": "oops {nonexistent}"}}
    assert "too large" in refusal(decision, "en", broken)
    assert "too large" in refusal(decision, "fr")  # unknown language: English


def test_warning_and_names():
    decision = refused(Policy(roles={"user": 1000}, warning_threshold=0.1))
    assert "%" in warning(decision, "en") and "%" in warning(decision, "zh")
    assert limit_name("shared", "shared:school", "zh") == "共享额度“school”"
    assert text("unavailable", "zh").startswith("令牌配额")


def test_format_time_in_zone():
    moment = datetime(2026, 12, 4, 16, 0, tzinfo=timezone.utc)
    assert format_time(moment, "Asia/Shanghai") == "2026-12-05 00:00 CST"
    assert format_time(None, "UTC") == "-"
