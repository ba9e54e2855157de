"""What every page shares: the sidebar, the store's error or read-only notice, the seed banner, page context."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from tokenlimit_core import SettingsError
from tokenlimit_core.store import Store, StoreError

from . import auth, seed_banner
from .i18n import t
from .store_access import PolicyState, get_store, policy_state, reconnect, shown_url

CONTEXT_KEY = "panel_context"
FLASH_KEY = "panel_flash"


@dataclass(frozen=True)
class PageContext:
    """What a page works with: the store, its URL (for caches), the policy in force, who is signed in."""

    store: Store
    url: str
    state: PolicyState
    access: auth.Access


def sidebar(access: auth.Access | None) -> None:
    """The store in use, who is signed in, sign-out and reconnect."""
    if access is None:
        return  # nothing about the deployment before signing in
    bar = st.sidebar
    bar.caption(t("sidebar.store"))
    bar.code(shown_url(), language=None, wrap_lines=True)
    if access.via == "read-only":
        bar.info(t("sidebar.read_only", var=auth.PASSWORD_VAR), icon=":material/lock:")
    else:
        bar.caption(t("sidebar.signed_in", name=access.actor))
        if bar.button(t("sidebar.sign_out"), key="sign_out"):
            auth.sign_out()
            st.rerun()
    if bar.button(t("sidebar.refresh"), key="refresh", help=t("sidebar.refresh_help")):
        st.cache_data.clear()
        st.rerun()
    if bar.button(t("sidebar.reconnect"), key="reconnect", help=t("sidebar.reconnect_help")):
        reconnect()
        st.cache_data.clear()
        st.rerun()


def context() -> PageContext:
    """The current page's context (set by `run_page` before the page runs)."""
    return st.session_state[CONTEXT_KEY]


def run_page(page, access: auth.Access) -> None:
    """Open the store, show notices and banners, then run the page; a store error is shown, never a traceback."""
    try:
        store = get_store()
        state = policy_state(store)
    except (StoreError, SettingsError, OSError) as exc:
        st.error(t("store.error", error=str(exc)), icon=":material/block:")
        st.caption(t("store.error_hint"))
        return
    st.session_state[CONTEXT_KEY] = PageContext(store, store.url, state, access)
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        (st.success if message[1] else st.warning)(message[0])
    try:
        seed_banner.show(store, state, access)
        page.run()
    except (StoreError, OSError) as exc:
        st.error(t("store.error", error=str(exc)), icon=":material/block:")
        st.caption(t("store.error_hint"))


def flash(message: str, ok: bool = True) -> None:
    """Show `message` at the top of the page after re-running it with fresh data (after a change)."""
    st.session_state[FLASH_KEY] = (message, ok)
    st.cache_data.clear()
    st.rerun()


def read_only_note(access: auth.Access) -> None:
    """Say, where a page would change something, that this session cannot."""
    if not access.can_write:
        st.caption(t("common.read_only_note", var=auth.PASSWORD_VAR))
