"""The banner shown when the filter's valves or TOKEN_LIMIT_* variables differ from the store's policy."""
from __future__ import annotations

import hashlib
import os
from typing import Optional

import pandas as pd
import streamlit as st

from tokenlimit_core import Policy, Settings, SettingsError
from tokenlimit_core.settings import ENV_NAMES
from tokenlimit_core.store import Store

from .auth import Access
from .i18n import t
from .policy_tables import policy_diff
from .store_access import PolicyState, save_policy

MERGED_FIELDS = ("roles", "tiers", "model_limits", "users")  # dicts: the seed's entries update the store's
REPLACED_FIELDS = ("target_models", "reset_hour", "timezone", "warning_threshold", "window", "shadow_mode")
POLICY_VARS = ("daily_token_limits", "model_token_limits", "user_specific_limits", "warning_threshold",
               "reset_hour", "target_models", "timezone", "window", "shadow_mode")


def merge_seed(current: Policy, seed: Policy) -> Policy:
    """The store's policy with the settings a seed defines taken over (prices, calibration, messages kept)."""
    data = current.model_dump()
    seed_data = seed.model_dump()
    for field in MERGED_FIELDS:
        data[field] = {**data[field], **seed_data[field]}
    for field in REPLACED_FIELDS:
        data[field] = seed_data[field]
    return Policy.model_validate(data)


def seed_fingerprint(seed: Policy) -> str:
    """A short id of a seed, so 'keep the store's policy' hides the banner for this seed only."""
    return hashlib.sha256(seed.to_json().encode()).hexdigest()[:16]


def env_seed(environ=None) -> Optional[Policy]:
    """The policy the panel's own TOKEN_LIMIT_* variables describe, or None when none of them is set."""
    environ = os.environ if environ is None else environ
    if not any(environ.get(ENV_NAMES[name], "").strip() for name in POLICY_VARS):
        return None
    return Settings.load(environ=environ).seed_policy()


def pending_seeds(store: Store, state: PolicyState) -> list[tuple[str, Policy]]:
    """Seeds that differ from the store's policy and were not imported or kept since: (source, policy)."""
    seeds: list[tuple[str, Policy]] = []
    entries = store.audit_log(200)
    kept = {e.detail.get("fingerprint") for e in entries if e.action in ("seed_kept", "seed_imported")}
    reported = next((e for e in entries if e.action == "seed_differs"), None)
    if reported is not None and reported.detail.get("policy"):
        try:
            seeds.append(("filter", Policy.from_json(reported.detail["policy"])))
        except ValueError:
            pass  # a seed from another version the panel cannot read: nothing to offer
    seed = env_seed()
    if seed is not None:
        seeds.append(("env", seed))
    return [(source, seed) for source, seed in seeds
            if merge_seed(state.policy, seed) != state.policy and seed_fingerprint(seed) not in kept]


def show(store: Store, state: PolicyState, access: Access) -> None:
    """Render the banner (with a preview, import and keep buttons) for every differing seed."""
    if state.revision == 0:
        return
    try:
        seeds = pending_seeds(store, state)
    except SettingsError as exc:
        st.error(t("seed.bad_settings", error=exc), icon=":material/warning:")
        return
    for source, seed in seeds:
        merged = merge_seed(state.policy, seed)
        fingerprint = seed_fingerprint(seed)
        st.warning(t(f"seed.differs_{source}"), icon=":material/warning:")
        with st.expander(t("seed.preview")):
            diff = policy_diff(state.policy, merged)
            st.dataframe(pd.DataFrame([(p, str(b), str(a)) for p, b, a in diff],
                                      columns=[t("diff.setting"), t("diff.store"), t("diff.seed")]),
                         hide_index=True, width="stretch", key=f"seed_diff_{source}")
            left, right = st.columns(2)
            if left.button(t("seed.import"), key=f"seed_import_{source}", disabled=not access.can_write,
                           type="primary"):
                save_policy(store, merged, access.actor, "seed_imported",
                            {"source": source, "fingerprint": fingerprint})
                st.rerun()
            if right.button(t("seed.keep"), key=f"seed_keep_{source}", disabled=not access.can_write):
                store.audit(access.actor, "seed_kept", {"source": source, "fingerprint": fingerprint})
                st.rerun()
