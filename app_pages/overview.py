"""Overview: today's tokens and spend against capacity, requests, who is near a limit, usage over time."""
from datetime import datetime, timedelta, timezone

import streamlit as st

from app_pages.common import charts, data
from app_pages.common.i18n import t
from app_pages.common.layout import context, read_only_note
from app_pages.common.store_access import is_empty
from tokenlimit_core import WindowSpec, window_bounds
from tokenlimit_core.messages import format_time

WINDOWS = [7, 30, 90, 365]
DAILY_DAYS = 90  # longer views chart months, from the store's month rollups
HEAT_DAYS = 90
SIZE_DAYS = 7
MIN_SIZED = 100  # fewer requests today than this: show the last week's sizes instead

ctx = context()
policy = ctx.state.policy
st.title(t("overview.title"))

if is_empty(ctx.store):
    st.info(t("overview.empty"), icon=":material/waving_hand:")
    st.code("python -m tokenlimit_core demo", language="bash")
    read_only_note(ctx.access)
    if st.button(t("overview.load_demo"), key="load_demo", type="primary", disabled=not ctx.access.can_write):
        from tokenlimit_core.demo import generate

        with st.spinner(t("overview.loading_demo")):
            generate(ctx.store, users=60, days=30)
        ctx.store.audit(ctx.access.actor, "demo_loaded", {"users": 60, "days": 30})
        data.refresh()
        st.rerun()
    st.stop()

now = datetime.now(timezone.utc)
today = data.today(policy, now)
directory = data.users(ctx.store, ctx.url)
totals = data.window_totals(ctx.store, ctx.url, policy.to_json(), directory, now.replace(second=0).timestamp())
day_start = window_bounds(WindowSpec("day", policy.reset_hour, policy.timezone), now)[0]
events_today = data.ledger(ctx.store, ctx.url, day_start.timestamp(), data.minute_ceiling(now))
today_rows = data.daily(ctx.store, ctx.url, today.isoformat(), today.isoformat())

# -- headline numbers
finite = totals[totals["limit"] >= 0]
capacity = int((finite["limit"] + finite["granted"]).sum())
spent_window = int((finite["used"] + finite["pending"]).sum())
decisions = events_today["decision"].value_counts()
next_reset = window_bounds(policy.window_spec(), now)[1]
c1, c2, c3, c4 = st.columns(4)
spend = today_rows["cost"].sum()
c1.metric(t("overview.tokens_today"), f"{int(today_rows['tokens'].sum()):,}",
          help=t("overview.tokens_today_help"))
if spend:
    c1.caption(t("overview.spend_today", spend=f"{spend:,.2f}"))
c2.metric(t("overview.capacity", window=t(f"window.{policy.window}")),
          f"{spent_window / capacity:.0%}" if capacity else "–",
          help=t("overview.capacity_help"))
c2.caption(t("overview.capacity_detail", used=f"{spent_window:,}", capacity=f"{capacity:,}",
             unlimited=int((totals["limit"] < 0).sum())))
c3.metric(t("overview.requests_today"), f"{len(events_today):,}")
c3.caption(t("overview.requests_detail", allowed=int(decisions.get("allowed", 0)),
             warned=int(decisions.get("warned", 0)), refused=int(decisions.get("denied", 0)),
             shadow=int(decisions.get("shadow_denied", 0))))
reset_text = format_time(next_reset, policy.timezone)  # "2026-12-05 00:00 UTC"
c4.metric(t("overview.next_reset"), reset_text[11:])
c4.caption(t("overview.in_hours", day=reset_text[:10], hours=f"{(next_reset - now).total_seconds() / 3600:.1f}"))

# -- who is close to or over a limit
near = totals[(totals["share"] >= policy.warning_threshold) & (totals["limit"] > 0)].sort_values("share", ascending=False)
st.subheader(t("overview.near_limit", n=len(near), threshold=f"{policy.warning_threshold:.0%}"))
if near.empty:
    st.caption(t("overview.nobody_near"))
else:
    shown = near[["user_id", "name", "email", "limit", "granted", "used", "pending", "share"]].head(50).copy()
    shown["share"] = (100 * shown["share"]).round(1)
    st.dataframe(shown, hide_index=True, width="stretch", key="ov_near", column_config={
        "user_id": t("col.user"), "name": t("col.name"), "email": t("col.email"), "limit": t("col.limit"),
        "granted": t("col.granted"), "used": t("col.used"), "pending": t("col.pending"),
        "share": st.column_config.ProgressColumn(t("col.share"), format="%.0f%%", min_value=0, max_value=100)})

# -- consumption over time
days = st.radio(t("overview.window"), WINDOWS, index=1, key="ov_days", horizontal=True)
with st.spinner(t("overview.loading", n=days)):
    if days > DAILY_DAYS:  # a year of daily rows is a million rows: read the month rollups instead
        first_day, last_day = data.day_range(today, days)
        usage = data.monthly(ctx.store, ctx.url, first_day[:7], last_day[:7])
        heat_source = data.daily(ctx.store, ctx.url, *data.day_range(today, 30))  # usually cached already
    else:
        usage = heat_source = data.daily(ctx.store, ctx.url, *data.day_range(today, days))
st.subheader(t("overview.over_time_months", n=days) if days > DAILY_DAYS else t("overview.over_time", n=days))
if usage.empty:
    st.caption(t("overview.no_usage"))
    st.stop()
st.plotly_chart(charts.usage_over_time(usage), key="ov_chart_time", width="stretch")

left, right = st.columns(2)
names = dict(zip(directory["id"], directory["name"].where(directory["name"] != "", directory["id"])))
by_user = usage.groupby("user_id", as_index=False)["tokens"].sum()
by_user["user"] = by_user["user_id"].map(charts.display_names(by_user["user_id"], names))
left.markdown(f"**{t('overview.top_users')}**")
left.plotly_chart(charts.top_bar(by_user, "user"), key="ov_top_users", width="stretch")
right.markdown(f"**{t('overview.top_models')}**")
right.plotly_chart(charts.top_bar(usage.groupby("model", as_index=False)["tokens"].sum(), "model"),
                   key="ov_top_models", width="stretch")

st.subheader(t("overview.heatmap"))
st.caption(t("overview.heatmap_help"))
heat_days = heat_source[heat_source["day"] >= data.day_range(today, min(days, HEAT_DAYS))[0]]
st.plotly_chart(charts.utilization_heatmap(heat_days, data.user_limits(policy, directory), names),
                key="ov_heatmap", width="stretch")

# Request sizes come from raw ledger events: today's (already read), or the last week's early in the day.
sized = events_today
if len(sized) < MIN_SIZED:
    sized = data.ledger(ctx.store, ctx.url, (now - timedelta(days=SIZE_DAYS)).replace(minute=0, second=0,
                                                                                    microsecond=0).timestamp(),
                        data.minute_ceiling(now))
st.subheader(t("overview.sizes_today") if sized is events_today else t("overview.sizes", n=SIZE_DAYS))
if sized.empty:
    st.caption(t("overview.no_events"))
else:
    st.plotly_chart(charts.size_histogram(sized), key="ov_sizes", width="stretch")
