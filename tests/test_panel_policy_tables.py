"""Policy ⇄ tables: a lossless round trip, errors that name the table, row and column, and the diff."""
from __future__ import annotations

import pandas as pd
import pytest

import panel_support  # noqa: F401  (puts the checkout on sys.path for app_pages)
from app_pages.common.policy_tables import (CellError, general_values, policy_diff, policy_to_tables,
                                            tables_to_policy)
from tokenlimit_core import Calibration, Policy
from tokenlimit_core.demo import demo_policy


@pytest.fixture
def policy():
    return demo_policy().model_copy(update={"calibration": {"gpt-4o": Calibration(tokens=0.97)},
                                            "messages": {"zh": {"warning": "注意 {percent}%"}}})


def edit(policy, **changes):
    tables = policy_to_tables(policy)
    general = general_values(policy)
    for name, change in changes.items():
        if name == "general":
            general.update(change)
        else:
            tables[name] = change(tables[name])
    return tables_to_policy(tables, general, policy)


def add(row):
    return lambda frame: pd.concat([frame, pd.DataFrame([row], columns=frame.columns)], ignore_index=True)


def test_round_trip_keeps_everything(policy):
    rebuilt, errors = edit(policy)
    assert errors == [] and rebuilt == policy


def test_edits_become_the_policy(policy):
    def raise_user(frame):
        frame.loc[frame["role"] == "user", "limit"] = 12345
        return frame

    new, errors = edit(policy, roles=raise_user, tiers=add(["gold", 999_999, "month"]),
                       user_tiers=add(["bob", "gold"]), user_models=add(["bob", "gpt-4*", 77]),
                       general={"timezone": "Asia/Shanghai", "target_models": "gpt-4*, qwen3:*", "shadow_mode": True})
    assert errors == []
    assert new.roles["user"] == 12345
    assert new.tiers["gold"].daily_limit == 999_999 and new.tiers["gold"].window == "month"
    assert new.users["bob"].tiers == ["gold"] and new.users["bob"].models == {"gpt-4*": 77}
    assert new.timezone == "Asia/Shanghai" and new.target_models == ["gpt-4*", "qwen3:*"] and new.shadow_mode
    assert new.calibration == policy.calibration and new.messages == policy.messages
    paths = {path for path, _, _ in policy_diff(policy, new)}
    assert {"roles.user", "tiers.gold.daily_limit", "users.bob.tiers", "timezone", "shadow_mode"} <= paths


def test_errors_name_the_cell(policy):
    _, errors = edit(policy, roles=add(["pending", "lots"]), model_limits=add(["", 5]),
                     tier_models=add(["gold", "gpt-4o", 1]), shared=add(["campus-gpt-4o", -3, "*", None, "year"]),
                     prices=add(["gpt-4o-mini", -1.0, None, None]), general={"timezone": "Mars/Olympus"})
    assert CellError("roles", 4, "role", "duplicate", "pending") in errors
    assert CellError("roles", 4, "limit", "not_int", "lots") in errors
    assert CellError("model_limits", 4, "model", "required", None) in errors
    assert CellError("tier_models", 2, "tier", "unknown_tier", "gold") in errors
    assert CellError("shared", 3, "limit", "below_min", -3) in errors
    assert CellError("shared", 3, "window", "bad_window", "year") in errors
    assert CellError("prices", 3, "input", "negative", -1.0) in errors
    assert CellError("prices", 3, "output", "required", None) in errors
    assert CellError("general", 0, "timezone", "bad_timezone", "Mars/Olympus") in errors


def test_empty_added_rows_are_ignored_and_blank_tier_limit_is_none(policy):
    new, errors = edit(policy, roles=add([None, None]), tiers=add(["models-only", None, None]))
    assert errors == [] and new.tiers["models-only"].daily_limit is None


def test_fractional_limits_are_refused_and_thousands_separators_accepted(policy):
    _, errors = edit(policy, model_limits=add(["x", 2.5]))
    assert CellError("model_limits", 4, "limit", "not_int", 2.5) in errors
    new, errors = edit(policy, model_limits=add(["x", "1,000"]))
    assert errors == [] and new.model_limits["x"] == 1000


def test_diff_of_equal_policies_is_empty_and_shared_budgets_are_named(policy):
    assert policy_diff(policy, policy) == []
    shared = [s.model_copy(update={"limit": 1}) if s.name == "students-qwen3" else s for s in policy.shared]
    diff = policy_diff(policy, policy.model_copy(update={"shared": shared}))
    assert [path for path, _, _ in diff] == ["shared[students-qwen3].limit"]


def test_default_policy_round_trips():
    rebuilt, errors = tables_to_policy(policy_to_tables(Policy()), general_values(Policy()), Policy())
    assert errors == [] and rebuilt == Policy()
