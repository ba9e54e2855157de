"""Settings: the store's status (backend, size, health) and the messages users read, en / zh, with a preview."""
import json
from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app_pages.common.i18n import t
from app_pages.common.layout import context, flash, read_only_note
from app_pages.common.store_access import save_policy
from tokenlimit_core import Budget, Decision, Estimate, Features, redact_url, window_bounds
from tokenlimit_core import messages as texts

KEYS = ("used_up", "too_large", "warning", "usage_line", "unavailable")
FIELDS = "{limit_name} {limit} {used} {pending} {remaining} {estimate} {reset_at} {percent} {window} {current}"

ctx = context()
policy, rev = ctx.state.policy, ctx.state.revision
st.title(t("set.title"))

st.subheader(t("set.store"))
info = ctx.store.info()
healthy = bool(info.get("healthy", True))
c1, c2, c3 = st.columns(3)
c1.metric(t("set.backend"), str(info.get("backend", "?")))
c2.metric(t("set.schema"), str(info.get("schema_version", "?")))
c3.metric(t("set.health"), t("set.healthy") if healthy else t("set.unhealthy"))
st.caption(f"{t('set.url')}: `{redact_url(ctx.store.url)}`")
with st.expander(t("set.details")):
    st.dataframe(pd.DataFrame([(k, json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v))
                               for k, v in info.items() if k != "url"], columns=["key", "value"]),
                 hide_index=True, width="stretch", key="set_info")

st.subheader(t("set.messages"))
st.caption(t("set.messages_help", fields=FIELDS))
read_only_note(ctx.access)
now = datetime.now(timezone.utc)
spec = policy.window_spec()
sample_budget = Budget("user:alice:total", "total", 10_000, spec, "role 'user' limit", "roles.user")
sample = Decision(False, "denied", "preview", sample_budget, used=9_200, pending=300, remaining=500,
                  reset_at=window_bounds(spec, now)[1], estimate=Estimate(900, 400, "preview", Features()),
                  reason="too_large")
edited: dict[str, dict[str, str]] = {}
problems = []
for tab, lang in zip(st.tabs([t("set.language.en"), t("set.language.zh")]), ("en", "zh")):
    with tab:
        fields = {**texts.decision_fields(sample, lang, policy.timezone), "current": 412}
        for key in KEYS:
            current = policy.messages.get(lang, {}).get(key, "")
            value = st.text_area(t(f"msg.{key}"), current, key=f"set_msg_{lang}_{key}_{rev}", height=80,
                                 placeholder=texts.TEMPLATES[lang][key], disabled=not ctx.access.can_write)
            value = value.strip()
            if value:
                edited.setdefault(lang, {})[key] = value
            template = value or texts.TEMPLATES[lang][key]
            try:
                st.caption(f"{t('set.preview')}: " + template.format(**fields))
            except (KeyError, IndexError, ValueError) as exc:
                problems.append(t("set.broken", lang=lang, key=key, error=f"{type(exc).__name__}: {exc}"))
                st.error(problems[-1], icon=":material/edit:")

if edited != policy.messages and not problems:
    if st.button(t("set.save"), key="set_save", type="primary", disabled=not ctx.access.can_write):
        revision = save_policy(ctx.store, policy.model_copy(update={"messages": edited}), ctx.access.actor,
                               "messages_changed", {"languages": sorted(edited)})
        flash(t("set.saved", revision=revision))
