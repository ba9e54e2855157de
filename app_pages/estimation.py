"""Estimation: estimate versus actual per model from the ledger, the calibration in force, applying new factors."""
from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from app_pages.common import charts, data
from app_pages.common.calibration_table import calibration_frame, frame_to_calibration
from app_pages.common.i18n import t
from app_pages.common.layout import context, flash, read_only_note
from app_pages.common.policy_tables import policy_diff
from app_pages.common.store_access import save_policy
from tokenlimit_core import Calibration
from tokenlimit_core.calibrate import apply as apply_calibration
from tokenlimit_core.calibrate import fit_from_ledger
from tokenlimit_core.estimate import calibration_for

SCATTER_POINTS = 3000  # more points only slow the browser; the summary uses every request

ctx = context()
policy, rev = ctx.state.policy, ctx.state.revision
st.title(t("est.title"))
st.caption(t("est.intro"))
now = datetime.now(timezone.utc)
days = st.radio(t("overview.window"), [1, 7, 30], index=1, key="est_days", horizontal=True)
start, end = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0).timestamp(), \
    data.minute_ceiling(now)
events = data.ledger(ctx.store, ctx.url, start, end)
measured = events[(events["status"] == "settled") & events["actual_source"].notna()
                  & (events["actual_source"] != "estimate") & (events["actual_prompt"].fillna(0) > 0)].copy()

if measured.empty:
    st.info(t("est.no_data"), icon=":material/info:")
else:
    measured["actual_prompt"] = measured["actual_prompt"].astype(float)
    measured["error_pct"] = 100 * (measured["est_prompt"] - measured["actual_prompt"]) / measured["actual_prompt"]
    summary = measured.groupby("model").agg(
        requests=("error_pct", "size"), median_error=("error_pct", "median"),
        p90_error=("error_pct", lambda e: e.abs().quantile(0.9))).round(1).reset_index()
    st.subheader(t("est.summary"))
    st.dataframe(summary, hide_index=True, width="stretch", key="est_summary", column_config={
        "model": t("col.model"), "requests": t("col.requests"), "median_error": t("col.median_error"),
        "p90_error": t("col.p90_error")})
    sample = measured.sample(min(len(measured), SCATTER_POINTS), random_state=0)
    left, right = st.columns(2)
    left.markdown(f"**{t('est.scatter')}**")
    left.plotly_chart(charts.estimate_scatter(sample), key="est_scatter", width="stretch")
    right.markdown(f"**{t('est.errors')}**")
    right.plotly_chart(charts.error_histogram(measured[measured["error_pct"].abs() <= 100]), key="est_hist",
                       width="stretch")
    if len(sample) < len(measured):
        st.caption(t("est.sample", n=f"{len(sample):,}", total=f"{len(measured):,}"))

st.subheader(t("est.factors"))
st.caption(t("est.factors_help"))
read_only_note(ctx.access)
if not policy.calibration:
    st.caption(t("est.no_factors"))
edited = st.data_editor(calibration_frame(policy), key=f"est_cal_{rev}", num_rows="dynamic", hide_index=True,
                        width="stretch", disabled=not ctx.access.can_write,
                        column_config={"model": st.column_config.TextColumn(t("col.model"), required=True)})
calibration, errors = frame_to_calibration(edited)
if errors:
    st.error(t("limits.errors"), icon=":material/edit:")
    for e in errors:
        st.markdown("- " + t("err.cell", table=t("est.factors"), row=e.row, column=e.column,
                             problem=t(f"err.{e.code}", value=e.value)))
candidate = policy.model_copy(update={"calibration": calibration if calibration is not None else policy.calibration})
diff = policy_diff(policy, candidate)
if diff and not errors:
    st.dataframe(pd.DataFrame([(p, "" if b is None else str(b), "" if a is None else str(a)) for p, b, a in diff],
                              columns=[t("diff.setting"), t("diff.before"), t("diff.after")]),
                 hide_index=True, width="stretch", key="est_diff")
    if st.button(t("est.apply"), key="est_apply", type="primary", disabled=not ctx.access.can_write):
        revision = save_policy(ctx.store, candidate, ctx.access.actor, "calibration_applied",
                               {"models": sorted(calibration)})
        flash(t("est.applied", revision=revision))

# -- fit new factors from the period's ledger: proposed, previewed, applied only on request
st.subheader(t("est.fit"))
st.caption(t("est.fit_help"))
if st.button(t("est.fit_button"), key="est_fit", disabled=measured.empty):
    raw = ctx.store.ledger(start, end)
    proposals = {}
    for model in sorted(measured["model"].unique()):
        fitted = fit_from_ledger(raw, calibration_for(policy, model), model=model)
        choice = fitted.get("webui") or fitted.get("api")
        if choice is not None:
            proposals[model] = choice.model_dump()
    st.session_state["est_proposals"] = proposals
    if not proposals:
        st.info(t("est.fit_none"), icon=":material/info:")
proposals = st.session_state.get("est_proposals") or {}
if proposals:
    fitted_policy = policy.model_copy(update={"calibration": {
        **policy.calibration, **{m: Calibration.model_validate(c) for m, c in proposals.items()}}})
    st.markdown(f"**{t('est.fitted')}**")
    st.dataframe(pd.DataFrame([(p, "" if b is None else str(b), "" if a is None else str(a))
                               for p, b, a in policy_diff(policy, fitted_policy)],
                              columns=[t("diff.setting"), t("diff.before"), t("diff.after")]),
                 hide_index=True, width="stretch", key="est_fit_diff")
    if st.button(t("est.apply_fitted"), key="est_apply_fitted", type="primary", disabled=not ctx.access.can_write):
        # calibrate.apply re-reads the policy and retries when another admin saved meanwhile, and audits each model.
        for model, values in proposals.items():
            revision = apply_calibration(ctx.store, model, Calibration.model_validate(values), ctx.access.actor)
        st.session_state.pop("est_proposals", None)
        flash(t("est.applied", revision=revision))
