"""Export: usage, ledger or audit trail for a chosen period, as CSV or JSON Lines."""
from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from app_pages.common import data
from app_pages.common.export_files import KINDS, file_name, render, rows_for
from app_pages.common.i18n import t
from app_pages.common.layout import context

ctx = context()
st.title(t("exp.title"))
st.caption(t("exp.intro"))
today = data.today(ctx.state.policy, datetime.now(timezone.utc))
c1, c2 = st.columns([2, 1])
kind = c1.radio(t("exp.what"), KINDS, key="exp_kind", format_func=lambda k: t(f"exp.kind.{k}"))
fmt = c2.radio(t("exp.format"), ["csv", "jsonl"], key="exp_format",
               format_func=lambda f: {"csv": "CSV", "jsonl": "JSON Lines"}[f])
c1, c2 = st.columns([2, 1])
period = c1.date_input(t("exp.period"), (today - timedelta(days=29), today), key="exp_period")
user_id = c2.text_input(t("exp.user"), key="exp_user").strip()
if not isinstance(period, (tuple, list)) or len(period) != 2:
    st.info(t("exp.bad_period"))
    st.stop()
first, last = (d.isoformat() for d in period)
rows = rows_for(ctx.store, kind, first, last, user_id)
name = file_name(kind, fmt, first, last)
st.caption(t("exp.rows", n=f"{len(rows):,}"))
st.download_button(t("exp.download", name=name), data=lambda: render(rows, kind, fmt), file_name=name,
                   mime="text/csv" if fmt == "csv" else "application/x-ndjson", key="exp_download", type="primary",
                   disabled=not rows)
if rows:
    st.markdown(f"**{t('exp.preview')}**")
    st.dataframe(pd.DataFrame(rows[:20]), hide_index=True, width="stretch", key="exp_preview")
