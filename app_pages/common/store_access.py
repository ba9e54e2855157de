"""The panel's one store (and engine), opened once per URL and shared by every session."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import streamlit as st

from tokenlimit_core import Engine, Policy, Settings, SettingsError, open_store, redact_url
from tokenlimit_core.store import Store, StoreError


@dataclass(frozen=True)
class PolicyState:
    """The store's policy as the panel sees it: parsed, with its revision (0 = none saved yet)."""

    policy: Policy
    revision: int
    actor: str = ""
    updated_at: float = 0.0


def store_url() -> str:
    """The store URL from TOKEN_LIMIT_STORE_URL (or the default store); raises SettingsError naming a bad variable."""
    return Settings.load().resolved_store_url()


@st.cache_resource(show_spinner=False)
def _open(url: str) -> tuple[Store, Engine]:
    store = open_store(url)
    return store, Engine(store)


def get_store() -> Store:
    """The store in use (opened once per URL); raises StoreError / SettingsError with the store's message."""
    return _open(store_url())[0]


def get_engine() -> Engine:
    """An engine on the store in use, for Explain (budgets and counters now)."""
    return _open(store_url())[1]


def reconnect() -> None:
    """Drop the opened store so the next page run opens it afresh (after fixing the store)."""
    try:
        store, _ = _open(store_url())
        store.close()
    except (StoreError, SettingsError, OSError):
        pass
    _open.clear()


def shown_url() -> str:
    """The store URL with any password redacted, for the sidebar."""
    try:
        return redact_url(store_url())
    except SettingsError as exc:
        return str(exc)


def policy_state(store: Store) -> PolicyState:
    """The store's policy (defaults when none was saved); raises StoreError when the stored one is invalid."""
    record = store.load_policy()
    if record is None:
        return PolicyState(Policy(), 0)
    try:
        policy = Policy.from_json(record.policy_json)
    except ValueError as exc:
        raise StoreError(f"the policy stored in {redact_url(store.url)} (revision {record.revision}) is invalid: "
                         f"{exc}") from exc
    return PolicyState(policy, record.revision, record.actor, record.updated_at)


def is_empty(store: Store) -> bool:
    """A store nobody has used yet: no policy, no users, no history."""
    if store.policy_revision() > 0 or store.users():
        return False
    info = store.info()
    return not info.get("events")


def save_policy(store: Store, policy: Policy, actor: str, action: str, detail: Optional[dict] = None) -> int:
    """Save a policy as `actor` and write an audit entry; returns the new revision."""
    revision = store.save_policy(policy.to_json(), actor)
    store.audit(actor, action, {"revision": revision, **(detail or {})})
    st.cache_data.clear()
    return revision
