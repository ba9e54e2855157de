"""Explain: every budget that applies to one user and model, where it comes from, and what is left."""
from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app_pages.common import data
from app_pages.common.i18n import budget_reason, t
from app_pages.common.layout import context
from app_pages.common.store_access import get_engine
from tokenlimit_core import UserInfo
from tokenlimit_core.messages import format_time
from tokenlimit_core.policy import OPEN_WEBUI_ROLES, is_metered

ctx = context()
policy = ctx.state.policy
st.title(t("explain.title"))
st.caption(t("explain.intro"))
if ctx.state.revision == 0:
    st.info(t("common.no_policy"), icon=":material/info:")
    st.stop()

now = datetime.now(timezone.utc)
directory = data.users(ctx.store, ctx.url)
known = directory.set_index("id")
user_ids = sorted(set(directory["id"]) | set(policy.users))
recent = data.daily(ctx.store, ctx.url, *data.day_range(data.today(policy, now), 30))
models = sorted(set(recent["model"]) | {m for m in policy.model_limits if not any(c in m for c in "*?[")})


def describe(uid: str) -> str:
    if uid in known.index and (known.at[uid, "name"] or known.at[uid, "email"]):
        return f"{known.at[uid, 'name']} <{known.at[uid, 'email']}> · {uid}"
    return uid


c1, c2, c3 = st.columns([2, 2, 1])
# Known ids to pick from, or any other id typed below them (a user not yet seen, a model not yet used).
user_id = c1.selectbox(t("explain.user"), user_ids, key="ex_user", format_func=describe,
                       index=0 if user_ids else None, placeholder=t("explain.user_placeholder"))
user_id = c1.text_input(t("explain.other_user"), key="ex_user_other").strip() or user_id
model = c2.selectbox(t("explain.model"), models, key="ex_model", index=0 if models else None,
                     placeholder=t("explain.model_placeholder"))
model = c2.text_input(t("explain.other_model"), key="ex_model_other").strip() or model
base_model = c3.text_input(t("explain.base_model"), key="ex_base", help=t("explain.base_model_help")).strip()
if not user_id or not model:
    st.stop()

row = known.loc[user_id] if user_id in known.index else None
default_role = row["role"] if row is not None and row["role"] in OPEN_WEBUI_ROLES else "user"
c1, c2 = st.columns([1, 3])
role = c1.selectbox(t("explain.role"), OPEN_WEBUI_ROLES, index=OPEN_WEBUI_ROLES.index(default_role),
                    key="ex_role")
groups_text = row["groups"] if row is not None else ""
groups = [g.strip() for g in c2.text_input(t("explain.groups"), value=groups_text, key="ex_groups",
                                           help=t("explain.groups_help")).split(",") if g.strip()]

user = UserInfo(user_id, role=role, groups=tuple(groups))
if not is_metered(policy, [model, base_model or None]):
    st.info(t("explain.unmetered", model=model, targets=", ".join(policy.target_models)), icon=":material/info:")
    st.stop()
statuses = get_engine().statuses(user, model, base_model or None, now=now)
if not statuses:
    st.success(t("explain.no_budgets"), icon=":material/check_circle:")
    st.stop()

rows = []
for s in statuses:
    c = s.counter
    rows.append({"kind": t(f"kind.{s.budget.kind}"), "reason": budget_reason(s.budget), "rule": s.budget.rule,
                 "limit": t("common.unlimited") if s.budget.unlimited else f"{s.budget.limit:,}",
                 "granted": c.granted, "used": c.used, "pending": c.pending,
                 "remaining": t("common.unlimited") if s.budget.unlimited else f"{s.remaining:,}",
                 "window": t(f"window.{s.budget.window.kind}"),
                 "reset": format_time(s.reset_at, policy.timezone)})
finite = [s for s in statuses if not s.budget.unlimited]
if finite:
    tightest = min(finite, key=lambda s: s.remaining)
    left = max(tightest.remaining, 0)
    say = st.error if left <= 0 else st.warning if left < 0.2 * max(tightest.budget.limit, 1) else st.success
    say(t("explain.summary", user=user_id, left=f"{left:,}", model=model, reason=budget_reason(tightest.budget),
          reset=format_time(tightest.reset_at, policy.timezone)))
else:
    st.success(t("explain.all_unlimited", user=user_id, model=model), icon=":material/check_circle:")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="ex_table", column_config={
    "kind": t("col.kind"), "reason": t("col.reason"), "rule": t("col.rule"), "limit": t("col.limit"),
    "granted": t("col.granted"), "used": t("col.used"), "pending": t("col.pending"),
    "remaining": t("col.remaining"), "window": t("col.window"), "reset": t("col.reset")})
st.caption(t("explain.how"))
