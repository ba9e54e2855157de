"""What end users read: refusals, warnings and usage lines, in English and Simplified Chinese.

Templates use `str.format` fields: {limit_name} {limit} {used} {pending}
{remaining} {estimate} {reset_at} {percent} {window}. An admin may override any
template per language in `Policy.messages` ({"zh": {"used_up": "..."}}).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Optional

from .periods import get_zone

if TYPE_CHECKING:
    from .engine import Decision

log = logging.getLogger("tokenlimit.messages")
LANGUAGES = ("en", "zh")

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "used_up": "Token limit reached: your {limit_name} is {limit:,} tokens per {window}; "
                   "you have used {used:,} and {remaining:,} are left. It resets at {reset_at}.",
        "too_large": "This request is too large: it needs about {estimate:,} tokens but only {remaining:,} "
                     "of your {limit_name} ({limit:,} tokens per {window}) are left. "
                     "Shorten the conversation or wait until {reset_at}.",
        "warning": "You have used {percent}% of your {limit_name} ({used:,} of {limit:,} tokens this {window}); "
                   "{remaining:,} left until {reset_at}.",
        "usage_line": "Tokens: {current:,} this reply · {used:,} of {limit:,} used this {window} · resets {reset_at}",
        "unavailable": "Token quotas are unavailable right now, so this request was blocked. Please try again shortly.",
        "day": "day", "week": "week", "month": "month", "unlimited": "unlimited",
        "total": "total limit", "model": "limit for {model}", "shared": "shared budget '{name}'",
    },
    "zh": {
        "used_up": "已达到令牌上限：您的{limit_name}为每{window} {limit:,} 个令牌，已使用 {used:,}，剩余 {remaining:,}。"
                   "将于 {reset_at} 重置。",
        "too_large": "请求过大：本次约需 {estimate:,} 个令牌，但您的{limit_name}（每{window} {limit:,} 个令牌）"
                     "仅剩 {remaining:,}。请缩短对话，或等到 {reset_at}。",
        "warning": "您已使用{limit_name}的 {percent}%（本{window}已用 {used:,} / {limit:,} 个令牌），"
                   "剩余 {remaining:,}，将于 {reset_at} 重置。",
        "usage_line": "令牌：本次回复 {current:,} · 本{window}已用 {used:,} / {limit:,} · {reset_at} 重置",
        "unavailable": "令牌配额服务暂时不可用，本次请求已被拦截。请稍后再试。",
        "day": "天", "week": "周", "month": "月", "unlimited": "不限",
        "total": "总额度", "model": "{model} 的额度", "shared": "共享额度“{name}”",
    },
}


def text(key: str, language: str = "en", overrides: Optional[dict[str, dict[str, str]]] = None, **fields) -> str:
    """One message in a language, with admin overrides; falls back to English, never raises."""
    language = language if language in LANGUAGES else "en"
    template = ((overrides or {}).get(language) or {}).get(key) or TEMPLATES[language].get(key) \
        or TEMPLATES["en"].get(key, key)
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        log.warning("message template %s/%s is broken (%s); using the built-in one", language, key, exc)
        return TEMPLATES[language].get(key, key).format(**fields)


def format_time(moment: Optional[datetime], zone_name: Optional[str]) -> str:
    """A reset time as local wall time with its zone, e.g. '2026-12-05 00:00 CST'."""
    if moment is None:
        return "-"
    local = moment.astimezone(get_zone(zone_name))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or zone_name or "")


def limit_name(kind: str, scope: str, language: str = "en") -> str:
    """A budget's name for users: 'total limit', 'limit for gpt-4', "shared budget 'school'"."""
    if kind == "model":
        return text("model", language, model=scope.split(":model:", 1)[-1])
    if kind == "shared":
        return text("shared", language, name=scope.split(":", 1)[-1])
    return text("total", language)


def decision_fields(decision: "Decision", language: str, zone_name: Optional[str]) -> dict:
    """The template fields for a decision."""
    b = decision.budget
    return {
        "limit_name": limit_name(b.kind, b.scope, language) if b else text("unlimited", language),
        "limit": b.limit if b else -1,
        "window": text(b.window.kind if b else "day", language),
        "used": decision.used, "pending": decision.pending,
        "remaining": max(decision.remaining, 0) if decision.remaining is not None else -1,
        "estimate": decision.estimate.total if decision.estimate else 0,
        "reset_at": format_time(decision.reset_at, zone_name),
        # Share of the limit once this request is counted: what the user is about to reach.
        "percent": round(100 * (decision.used + decision.pending + (decision.estimate.total if decision.estimate
                                                                    else 0)) / b.limit) if b and b.limit > 0 else 0,
    }


def refusal(decision: "Decision", language: str = "en", overrides=None, zone_name: Optional[str] = None) -> str:
    """Why a request was refused: which limit, its value, used, left, and when it resets."""
    key = "too_large" if decision.reason == "too_large" else "used_up"
    return text(key, language, overrides, **decision_fields(decision, language, zone_name))


def warning(decision: "Decision", language: str = "en", overrides=None, zone_name: Optional[str] = None) -> str:
    """A heads-up that a limit is nearly spent, counting this request."""
    fields = decision_fields(decision, language, zone_name)
    this_request = decision.estimate.total if decision.estimate else 0
    fields["used"] = decision.used + decision.pending + this_request
    if fields["remaining"] >= 0:
        fields["remaining"] = max(fields["remaining"] - this_request, 0)
    return text("warning", language, overrides, **fields)
