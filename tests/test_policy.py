"""Policy validation and resolution: how limits combine (DESIGN.md "How limits combine")."""
import pytest
from pydantic import ValidationError

from tokenlimit_core.policy import (Policy, Price, SharedBudget, Tier, UserOverride, best_match, is_metered,
                                    resolve)


def budgets_by_kind(budgets):
    return {b.kind: b for b in budgets if b.kind != "shared"}


@pytest.fixture
def policy():
    return Policy(
        roles={"user": 1000, "admin": -1, "pending": 0},
        tiers={"premium": Tier(daily_limit=5000, models={"gpt-4*": 2000}),
               "staff": Tier(daily_limit=3000, models={"gpt-4*": 2500}),
               "students": Tier(daily_limit=800)},
        group_tiers={"teachers": "staff", "class-7b": "students"},
        model_limits={"gpt-4*": 300, "gpt-4o-mini": 900, "llama3:*": -1, "*": 5000},
        users={"alice": UserOverride(daily_limit=20000, models={"gpt-4": 5000}),
               "bob": UserOverride(tiers=["premium"]),
               "carol": UserOverride(models={"gpt-4*": 0})},
        shared=[SharedBudget(name="school-gpt4o", limit=2_000_000, models="gpt-4o"),
                SharedBudget(name="7b", limit=10_000, group="class-7b")],
    )


def test_user_own_total_beats_tier_and_role(policy):
    total = budgets_by_kind(resolve(policy, "alice", "user", "gpt-4"))["total"]
    assert total.limit == 20000 and "alice's own" in total.reason


def test_user_own_model_limit_beats_global(policy):
    model = budgets_by_kind(resolve(policy, "alice", "user", "gpt-4"))["model"]
    assert model.limit == 5000 and model.scope == "user:alice:model:gpt-4"


def test_tier_total_and_model_limits(policy):
    b = budgets_by_kind(resolve(policy, "bob", "user", "gpt-4-turbo"))
    assert b["total"].limit == 5000 and "premium" in b["total"].reason
    assert b["model"].limit == 2000 and "premium" in b["model"].reason


def test_largest_tier_wins_when_several_apply(policy):
    policy.users["bob"] = UserOverride(tiers=["premium"])
    b = budgets_by_kind(resolve(policy, "bob", "user", "gpt-4o", groups=["teachers"]))
    assert b["total"].limit == 5000  # premium 5000 > staff 3000
    assert b["model"].limit == 2500  # staff 2500 > premium 2000 for gpt-4*


def test_group_maps_to_tier(policy):
    b = budgets_by_kind(resolve(policy, "dave", "user", "qwen3:14b", groups=["teachers"]))
    assert b["total"].limit == 3000 and "staff" in b["total"].reason


def test_role_limit_then_user_role_fallback(policy):
    assert budgets_by_kind(resolve(policy, "erin", "user", "x"))["total"].limit == 1000
    assert budgets_by_kind(resolve(policy, "erin", "pending", "x"))["total"].limit == 0
    fallback = budgets_by_kind(resolve(policy, "erin", "moderator", "x"))["total"]
    assert fallback.limit == 1000 and "'user' role" in fallback.reason


def test_admins_unlimited_unless_set(policy):
    admin = resolve(policy, "root", "admin", "gpt-4o")
    assert [b.kind for b in admin] == ["total"] and admin[0].unlimited
    del policy.roles["admin"]
    assert resolve(policy, "root", "admin", "gpt-4o")[0].unlimited
    policy.roles["admin"] = 50
    limited = budgets_by_kind(resolve(policy, "root", "admin", "gpt-4o"))
    assert limited["total"].limit == 50 and limited["model"].limit == 300


def test_most_specific_model_pattern_wins(policy):
    assert budgets_by_kind(resolve(policy, "erin", "user", "gpt-4o-mini"))["model"].limit == 900
    assert budgets_by_kind(resolve(policy, "erin", "user", "gpt-4o"))["model"].limit == 300
    assert budgets_by_kind(resolve(policy, "erin", "user", "mistral"))["model"].limit == 5000
    assert budgets_by_kind(resolve(policy, "erin", "user", "llama3:8b"))["model"].unlimited


def test_custom_model_matched_by_base_model(policy):
    policy.model_limits.pop("*")
    b = budgets_by_kind(resolve(policy, "erin", "user", "my-tutor", base_model="gpt-4o-mini"))
    assert b["model"].limit == 900
    assert b["model"].scope == "user:erin:model:my-tutor"
    assert "model" not in budgets_by_kind(resolve(policy, "erin", "user", "my-tutor"))


def test_zero_blocks_a_model_for_one_user(policy):
    assert budgets_by_kind(resolve(policy, "carol", "user", "gpt-4o"))["model"].limit == 0


def test_shared_budgets_for_everyone_and_for_a_group(policy):
    shared = [b for b in resolve(policy, "erin", "user", "gpt-4o") if b.kind == "shared"]
    assert [b.scope for b in shared] == ["shared:school-gpt4o"]
    in_group = [b.scope for b in resolve(policy, "erin", "user", "qwen3", groups=["class-7b"]) if b.kind == "shared"]
    assert in_group == ["shared:7b"]


def test_every_budget_has_a_reason_and_rule(policy):
    for b in resolve(policy, "bob", "user", "gpt-4o", groups=["class-7b"]):
        assert b.reason and b.rule


def test_target_models(policy):
    policy.target_models = ["gpt-*"]
    assert is_metered(policy, ["gpt-4o"])
    assert not is_metered(policy, ["llama3:8b"])
    assert is_metered(policy, ["my-tutor", "gpt-4o"])


def test_best_match_prefers_exact_then_longer():
    assert best_match(["*", "gpt-*", "gpt-4*", "gpt-4o"], ["gpt-4o"]) == "gpt-4o"
    assert best_match(["*", "gpt-*", "gpt-4*"], ["gpt-4o"]) == "gpt-4*"
    assert best_match(["claude*"], ["gpt-4o"]) is None


def test_json_round_trip_with_prices(policy):
    policy.prices = {"gpt-4o": Price(input=2.5, output=10, cached_input=1.25)}
    again = Policy.from_json(policy.to_json())
    assert again == policy


@pytest.mark.parametrize("bad, needle", [
    ({"roles": {"user": -5}}, "-1 for unlimited"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"group_tiers": {"g": "nope"}}, "unknown tier 'nope'"),
    ({"users": {"u": {"tiers": ["ghost"]}}}, "unknown tier 'ghost'"),
    ({"reset_hour": 24}, "reset_hour"),
    ({"window": "year"}, "window"),
    ({"shared": [{"name": "a", "limit": 1}, {"name": "a", "limit": 2}]}, "unique"),
    ({"rolez": {}}, "rolez"),
])
def test_invalid_policies_name_the_problem(bad, needle):
    with pytest.raises(ValidationError) as info:
        Policy.model_validate(bad)
    assert needle in str(info.value)
