"""Limits: edit the policy in tables, see what changes, save it with the admin's name; the audit trail."""
import json
import zoneinfo
from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app_pages.common.i18n import has_text, t
from app_pages.common.layout import context, flash, read_only_note
from app_pages.common.policy_tables import WINDOWS, general_values, policy_diff, policy_to_tables, tables_to_policy
from app_pages.common.store_access import save_policy

ctx = context()
state, rev, can_write = ctx.state, ctx.state.revision, ctx.access.can_write
st.title(t("limits.title"))
st.caption(t("limits.intro"))
if rev:
    when = datetime.fromtimestamp(state.updated_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    st.caption(t("limits.revision", revision=rev, actor=state.actor or "?", when=when))
else:
    st.info(t("limits.no_revision"), icon=":material/info:")
read_only_note(ctx.access)


def pending_edits(value) -> bool:
    return isinstance(value, dict) and any(value.get(k) for k in ("edited_rows", "added_rows", "deleted_rows"))


# Editors are keyed by the revision they started from. When another admin saves meanwhile, the edits made
# against the old revision are dropped, and the admin is told so rather than losing them silently.
base = st.session_state.get("lim_base")
if base is not None and base != rev:
    old = [k for k in st.session_state if isinstance(k, str) and k.startswith("lim_") and k.endswith(f"_{base}")]
    if any(pending_edits(st.session_state[k]) for k in old):
        st.warning(t("limits.stale", revision=rev), icon=":material/warning:")
    for k in old:
        del st.session_state[k]
st.session_state["lim_base"] = rev

tables = policy_to_tables(state.policy)
edited: dict[str, pd.DataFrame] = {}


def key(name: str) -> str:
    """Widget keys carry the revision, so a newly saved policy starts with fresh editors."""
    return f"lim_{name}_{rev}"


def number(label: str, minimum=-1, **kwargs):
    return st.column_config.NumberColumn(label, min_value=minimum, step=1, format="%d", **kwargs)


def text(label: str, required: bool = True):
    return st.column_config.TextColumn(label, required=required)


def window_column():
    return st.column_config.SelectboxColumn(t("col.window"), options=list(WINDOWS))


def editor(name: str, config: dict, help_key: str | None = None) -> None:
    st.markdown(f"**{t(f'table.{name}')}**")
    if help_key:
        st.caption(t(help_key))
    edited[name] = st.data_editor(tables[name], key=key(name), num_rows="dynamic", hide_index=True,
                                  width="stretch", disabled=not can_write, column_config=config)


def tier_column():
    # Free text checked on save: a picker's options would change as tiers are edited, and a changed
    # column config makes Streamlit treat the editor as new, dropping its pending edits.
    return st.column_config.TextColumn(t("col.tier"), required=True)


tabs = st.tabs([t(f"limits.tab.{name}") for name in ("roles", "models", "users", "shared", "window", "prices",
                                                     "audit")])
with tabs[0]:
    left, right = st.columns(2)
    with left:
        editor("roles", {"role": text(t("col.role_name")), "limit": number(t("col.limit"), required=True)},
               "help.roles")
    with right:
        editor("tiers", {"tier": text(t("col.tier")), "limit": number(t("col.limit")), "window": window_column()},
               "help.tiers")
    left, right = st.columns(2)
    with left:
        editor("tier_models", {"tier": tier_column(), "model": text(t("col.model")),
                               "limit": number(t("col.limit"), required=True)})
    with right:
        editor("group_tiers", {"group": text(t("col.group")), "tier": tier_column()})
with tabs[1]:
    editor("model_limits", {"model": text(t("col.model")), "limit": number(t("col.limit"), required=True)},
           "help.model_limits")
with tabs[2]:
    editor("user_limits", {"user": text(t("col.user")), "limit": number(t("col.limit"), required=True)})
    editor("user_models", {"user": text(t("col.user")), "model": text(t("col.model")),
                           "limit": number(t("col.limit"), required=True)})
    editor("user_tiers", {"user": text(t("col.user")), "tier": tier_column()})
with tabs[3]:
    editor("shared", {"name": text(t("col.name")), "limit": number(t("col.limit"), required=True),
                      "models": text(t("col.models"), required=False), "group": text(t("col.group"), False),
                      "window": window_column()}, "help.shared")
with tabs[4]:
    values = general_values(state.policy)
    general = {}
    c1, c2, c3 = st.columns(3)
    general["window"] = c1.selectbox(t("gen.window"), WINDOWS, index=WINDOWS.index(values["window"]),
                                     key=key("window"), disabled=not can_write)
    general["week_start"] = c2.selectbox(t("gen.week_start"), range(7), index=values["week_start"],
                                         key=key("week_start"), disabled=not can_write,
                                         format_func=lambda d: "Mon/一 Tue/二 Wed/三 Thu/四 Fri/五 Sat/六 Sun/日".split()[d])
    general["reset_hour"] = c3.number_input(t("gen.reset_hour"), 0, 23, values["reset_hour"], 1,
                                            key=key("reset_hour"), disabled=not can_write)
    zones = [""] + sorted(zoneinfo.available_timezones())
    if values["timezone"] not in zones:
        zones.append(values["timezone"])
    general["timezone"] = c1.selectbox(t("gen.timezone"), zones, index=zones.index(values["timezone"]),
                                       key=key("timezone"), disabled=not can_write, help=t("gen.timezone_help"),
                                       format_func=lambda z: z or t("gen.server_zone"))
    general["warning_threshold"] = c2.slider(t("gen.warning_threshold"), 0.0, 1.0, float(values["warning_threshold"]),
                                             0.05, key=key("warning_threshold"), disabled=not can_write)
    general["completion_cap"] = c3.number_input(t("gen.completion_cap"), 1, 10**7, values["completion_cap"], 256,
                                                key=key("completion_cap"), disabled=not can_write)
    general["target_models"] = st.text_input(t("gen.target_models"), values["target_models"],
                                             key=key("target_models"), help=t("gen.target_help"),
                                             disabled=not can_write)
    general["shadow_mode"] = st.toggle(t("gen.shadow_mode"), values["shadow_mode"], key=key("shadow_mode"),
                                       help=t("gen.shadow_help"), disabled=not can_write)
    general["refuse_tasks"] = st.checkbox(t("gen.refuse_tasks"), values["refuse_tasks"], key=key("refuse_tasks"),
                                          disabled=not can_write)
with tabs[5]:
    price = st.column_config.NumberColumn
    editor("prices", {"model": text(t("col.model")), "input": price(t("col.input"), min_value=0.0, required=True),
                      "output": price(t("col.output"), min_value=0.0, required=True),
                      "cached_input": price(t("col.cached_input"), min_value=0.0)}, "help.prices")
with tabs[6]:
    st.markdown(f"**{t('audit.title')}**")
    entries = ctx.store.audit_log(200)
    if not entries:
        st.caption(t("audit.empty"))
    else:
        st.dataframe(pd.DataFrame([{t("col.time"): datetime.fromtimestamp(e.ts, timezone.utc),
                                    t("col.actor"): e.actor, t("col.action"): e.action,
                                    t("col.detail"): json.dumps(e.detail, ensure_ascii=False)[:500]}
                                   for e in entries]), hide_index=True, width="stretch", key="lim_audit")

# -- validate, preview, save
candidate, errors = tables_to_policy(edited, general, state.policy)
if errors:
    st.error(t("limits.errors"), icon=":material/edit:")
    for e in errors:
        problem = t(f"err.{e.code}", value=e.value)
        label = f"gen.{e.column}" if e.table == "general" else f"col.{'role_name' if e.column == 'role' else e.column}"
        where = dict(table=t(f"table.{e.table}"), row=e.row, column=t(label) if has_text(label) else e.column,
                     problem=problem)
        st.markdown("- " + (t("err.cell", **where) if e.row else t("err.field", **where)))
    st.stop()
diff = policy_diff(state.policy, candidate)
if not diff and rev:
    st.caption(t("limits.no_changes"))
    st.stop()
st.subheader(t("limits.changes", n=len(diff)))
st.dataframe(pd.DataFrame([(p, "" if b is None else str(b), "" if a is None else str(a)) for p, b, a in diff],
                          columns=[t("diff.setting"), t("diff.before"), t("diff.after")]),
             hide_index=True, width="stretch", key="lim_diff")
left, right = st.columns([1, 4])
if left.button(t("limits.save"), key="lim_save", type="primary", disabled=not can_write):
    latest = ctx.store.policy_revision()
    if latest != rev:
        flash(t("limits.stale", revision=latest), ok=False)
    revision = save_policy(ctx.store, candidate, ctx.access.actor, "limits_changed",
                           {"changes": [[p, b, a] for p, b, a in diff[:100]]})
    st.session_state["lim_base"] = revision
    flash(t("limits.saved", revision=revision))
if right.button(t("limits.discard"), key="lim_discard", disabled=not can_write):
    for name in list(st.session_state):
        if isinstance(name, str) and name.startswith("lim_") and name.endswith(f"_{rev}"):
            del st.session_state[name]
    st.rerun()
