"""Users: find anyone by name or email; their history, recent requests, and grant / reset / refund."""
from datetime import datetime, timedelta, timezone

import streamlit as st

from app_pages.common import charts, data
from app_pages.common.i18n import budget_reason, t
from app_pages.common.layout import context, flash, read_only_note
from app_pages.common.store_access import get_engine
from tokenlimit_core import CounterKey, UserInfo, window_label
from tokenlimit_core.messages import format_time

EVENT_DAYS = 7

ctx = context()
policy = ctx.state.policy
st.title(t("users.title"))
directory = data.users(ctx.store, ctx.url)
if directory.empty:
    st.info(t("users.empty"), icon=":material/info:")
    st.stop()

query = st.text_input(t("users.search"), key="us_search", placeholder=t("users.search_placeholder")).strip().lower()
matches = directory
if query:
    hay = (directory["id"] + " " + directory["name"] + " " + directory["email"]).str.lower()
    matches = directory[hay.str.contains(query, regex=False)]
st.caption(t("users.matches", n=len(matches), total=len(directory)))
if matches.empty:
    st.stop()
labels = {r.id: f"{r.name or r.id} <{r.email}> · {r.id}" if r.email else (r.name or r.id)
          for r in matches.itertuples(index=False)}
user_id = st.selectbox(t("users.pick"), list(labels), format_func=labels.get, key="us_pick")
row = directory.set_index("id").loc[user_id]
now = datetime.now(timezone.utc)
c1, c2, c3, c4 = st.columns(4)
c1.metric(t("col.role"), row["role"])
c2.metric(t("col.groups"), row["groups"] or "–")
seen = row["last_seen"]
c3.metric(t("col.last_seen"), seen.strftime("%Y-%m-%d") if seen.value else "–")
if seen.value:
    c3.caption(seen.strftime("%H:%M UTC"))
tier_names = policy.users[user_id].tiers if user_id in policy.users else []
c4.metric(t("col.tiers"), ", ".join(tier_names) or "–")

days = st.radio(t("overview.window"), [30, 90, 365], key="us_days", horizontal=True)
history = data.daily(ctx.store, ctx.url, *data.day_range(data.today(policy, now), days), user_id)
limit = data.user_limits(policy, directory[directory["id"] == user_id]).get(user_id, -1)
st.subheader(t("users.history"))
if history.empty:
    st.caption(t("overview.no_usage"))
else:
    st.plotly_chart(charts.user_daily(history, limit), key="us_chart", width="stretch")

# -- budgets in force now (total and every model used lately), for the actions
user = UserInfo(user_id, row["name"], row["email"], row["role"], tuple(g for g in row["groups"].split(", ") if g))
recent_models = sorted(set(history[history["day"] >= data.day_range(data.today(policy, now), 7)[0]]["model"]))
budgets = {}
if ctx.state.revision:
    for model in recent_models or ["*"]:
        for status in get_engine().statuses(user, model, now=now):
            budgets.setdefault(status.budget.scope, status)
finite = {scope: s for scope, s in budgets.items() if not s.budget.unlimited}
st.subheader(t("users.budgets"))
if budgets:
    st.dataframe([{t("col.reason"): budget_reason(s.budget), t("col.limit"): s.budget.limit,
                   t("col.granted"): s.counter.granted, t("col.used"): s.counter.used,
                   t("col.pending"): s.counter.pending,
                   t("col.remaining"): s.remaining if not s.budget.unlimited else t("common.unlimited"),
                   t("col.reset"): format_time(s.reset_at, policy.timezone)} for s in budgets.values()],
                 hide_index=True, width="stretch", key="us_budgets")
else:
    st.caption(t("users.no_budgets"))

st.subheader(t("users.events", n=EVENT_DAYS))
events = data.ledger(ctx.store, ctx.url, (now - timedelta(days=EVENT_DAYS)).timestamp(), data.minute_ceiling(now),
                     user_id)
events = events.sort_values("ts", ascending=False)
if events.empty:
    st.caption(t("overview.no_events"))
else:
    columns = ["time", "model", "source", "task", "est_prompt", "est_completion", "actual_prompt",
               "actual_completion", "status", "decision", "cost", "request_id"]
    st.dataframe(events[columns].head(200), hide_index=True, width="stretch", key="us_events",
                 column_config={c: t(f"col.{c}") for c in columns})

st.subheader(t("users.actions"))
read_only_note(ctx.access)
grant_tab, reset_tab, refund_tab = st.tabs([t("users.grant"), t("users.reset"), t("users.refund")])
options = list(finite)
with grant_tab:
    scope = st.selectbox(t("users.budget"), options, key="us_grant_budget",
                         format_func=lambda s: budget_reason(finite[s].budget))
    tokens = st.number_input(t("users.tokens"), min_value=1, max_value=10**12, value=10_000, step=1000,
                             key="us_grant_tokens")
    st.caption(t("users.grant_help"))
    if st.button(t("users.grant_button"), key="us_grant", type="primary",
                 disabled=not (ctx.access.can_write and scope)):
        status = finite[scope]
        counter = ctx.store.grant(CounterKey(scope, window_label(status.budget.window, now)), int(tokens),
                                  status.reset_at.timestamp(), ctx.access.actor)
        flash(t("users.granted", tokens=f"{int(tokens):,}", total=f"{counter.granted:,}"))
with reset_tab:
    scope = st.selectbox(t("users.budget"), options, key="us_reset_budget",
                         format_func=lambda s: budget_reason(finite[s].budget))
    sure = st.checkbox(t("users.reset_confirm"), key="us_reset_sure")
    if st.button(t("users.reset_button"), key="us_reset", disabled=not (ctx.access.can_write and scope and sure)):
        status = finite[scope]
        ctx.store.reset(CounterKey(scope, window_label(status.budget.window, now)), ctx.access.actor)
        flash(t("users.was_reset"))
with refund_tab:
    refundable = events[events["status"].isin(["pending", "settled"])] if not events.empty else events
    rid_labels = {r.request_id: f"{r.time:%m-%d %H:%M} · {r.model} · {r.request_id[:8]}"
                  for r in refundable.itertuples(index=False)}
    rid = st.selectbox(t("users.request"), list(rid_labels), key="us_refund_request", format_func=rid_labels.get)
    if st.button(t("users.refund_button"), key="us_refund", disabled=not (ctx.access.can_write and rid)):
        refunded = ctx.store.refund(rid, ctx.access.actor)
        flash(t("users.refunded", request=rid) if refunded else t("users.refund_none"), ok=refunded is not None)
