"""tokenlimit panel: `streamlit run app.py` (routes only; pages live in app_pages/)."""
import streamlit as st

from tokenlimit_core import open_store, redact_url
from tokenlimit_core.store import StoreError

st.set_page_config(page_title="tokenlimit", layout="wide")
st.title("tokenlimit")
try:
    store = open_store()
    st.write(f"Store: `{redact_url(store.url)}`", store.info())
except StoreError as exc:
    st.error(str(exc))
