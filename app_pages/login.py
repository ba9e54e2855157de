"""Sign in: a name and the admin password, or an Open WebUI admin account."""
import streamlit as st

from app_pages.common import auth
from app_pages.common.i18n import t

st.title(t("login.title"))
st.caption(t("login.intro"))
methods = []
if auth.configured_password():
    methods.append("password")
if auth.openwebui_url():
    methods.append("openwebui")
method = methods[0]
if len(methods) > 1:
    method = st.radio(t("login.method"), methods, key="login_method", horizontal=True,
                      format_func=lambda m: t(f"login.method_{m}"))

form_column, _ = st.columns([2, 3])
with form_column.form("login_form"):
    if method == "password":
        name = st.text_input(t("login.name"), key="login_name", help=t("login.name_help"))
    else:
        name = st.text_input(t("login.email"), key="login_email", help=t("login.openwebui_help",
                                                                         url=auth.openwebui_url()))
    password = st.text_input(t("login.password"), type="password", key="login_password")
    submitted = st.form_submit_button(t("login.submit"), type="primary", key="login_submit")

if submitted:
    try:
        if method == "password":
            access = auth.check_password(name, password)
        else:
            access = auth.openwebui_signin(name, password)
    except auth.LoginError as exc:
        st.error(t(f"login.error.{exc.code}", **exc.fields), icon=":material/block:")
    else:
        auth.remember(access)
        st.rerun()
