"""The panel's texts in English and Simplified Chinese, and the sidebar language switch."""
from __future__ import annotations

import os

import streamlit as st

from .texts_en import TEXTS as EN
from .texts_zh import TEXTS as ZH

LANGUAGES = {"en": "English", "zh": "简体中文"}
CATALOGS = {"en": EN, "zh": ZH}
LANG_KEY = "lang"


def default_language() -> str:
    """The language from TOKEN_LIMIT_LANGUAGE (en or zh), else English."""
    value = os.environ.get("TOKEN_LIMIT_LANGUAGE", "").strip().lower()
    return "zh" if value.startswith("zh") else "en"


def language() -> str:
    """The language this session shows: 'en' or 'zh'."""
    value = st.session_state.get(LANG_KEY) or default_language()
    return value if value in CATALOGS else "en"


def t(key: str, /, **fields) -> str:
    """One text in the session's language, formatted with `fields`."""
    return translate(key, language(), **fields)


def has_text(key: str) -> bool:
    """Whether a text key exists (for labels built from data, such as column names)."""
    return key in EN


def translate(key: str, lang: str, /, **fields) -> str:
    """One text in a given language; an unknown key shows itself so it is noticed, never crashes."""
    template = CATALOGS.get(lang, EN).get(key) or EN.get(key) or key
    try:
        return template.format(**fields) if fields else template
    except (KeyError, IndexError, ValueError):
        return template


def language_switch() -> str:
    """The sidebar control that picks English or 简体中文; returns the chosen language."""
    if LANG_KEY not in st.session_state:
        st.session_state[LANG_KEY] = default_language()
    st.sidebar.radio("Language / 语言", options=list(LANGUAGES), format_func=LANGUAGES.get,
                     key=LANG_KEY, horizontal=True)
    return language()


def budget_reason(budget) -> str:
    """Where a budget comes from, in the session's language (the core gives it in English)."""
    lang = language()
    if lang == "en":
        return budget.reason
    rule = budget.rule
    for prefix, key in (("tiers.", "tier"), ("users.", "user")):
        if rule.startswith(prefix):
            name, _, rest = rule[len(prefix):].partition(".models.")
            if rest:
                return translate(f"reason.{key}_model", lang, name=name, pattern=rest)
            return translate(f"reason.{key}_total", lang, name=name.removesuffix(".daily_limit"))
    if rule.startswith("model_limits."):
        return translate("reason.model", lang, pattern=rule[len("model_limits."):])
    if rule.startswith("shared."):
        return translate("reason.shared", lang, name=rule[len("shared."):])
    if rule == "default.admin":
        return translate("reason.admin", lang)
    if rule.startswith("roles."):
        role = rule[len("roles."):]
        if "has no limit" in budget.reason:
            return translate("reason.role_fallback", lang)
        return translate("reason.role", lang, role=role)
    return budget.reason
