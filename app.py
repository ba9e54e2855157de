"""tokenlimit admin panel: `streamlit run app.py`. Routes and the shared sidebar; pages live in app_pages/."""
import streamlit as st

from app_pages.common import auth, layout
from app_pages.common.i18n import language_switch, t

st.set_page_config(page_title="tokenlimit", page_icon=":material/toll:", layout="wide")
language_switch()
access = auth.current_access()

if access is None:
    pages = [st.Page("app_pages/login.py", title=t("nav.login"), icon=":material/login:", url_path="login")]
else:
    pages = {
        t("nav.section.watch"): [
            st.Page("app_pages/overview.py", title=t("nav.overview"), icon=":material/dashboard:", url_path="overview", default=True),
            st.Page("app_pages/users.py", title=t("nav.users"), icon=":material/group:", url_path="users"),
            st.Page("app_pages/explain.py", title=t("nav.explain"), icon=":material/help:", url_path="explain"),
        ],
        t("nav.section.manage"): [
            st.Page("app_pages/limits.py", title=t("nav.limits"), icon=":material/tune:", url_path="limits"),
            st.Page("app_pages/estimation.py", title=t("nav.estimation"), icon=":material/target:", url_path="estimation"),
            st.Page("app_pages/export.py", title=t("nav.export"), icon=":material/download:", url_path="export"),
            st.Page("app_pages/settings.py", title=t("nav.settings"), icon=":material/settings:", url_path="settings"),
        ],
    }
page = st.navigation(pages)
layout.sidebar(access)
if access is not None:
    layout.run_page(page, access)
else:
    page.run()
