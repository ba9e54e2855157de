"""Property-based: arbitrary bodies, usages and policies never raise (only a quota refusal may)."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenlimit_core import Engine, Policy, UserInfo, open_store
from tokenlimit_core.estimate import Estimator
from tokenlimit_core.policy import Calibration, SharedBudget, Tier, UserOverride, resolve
from tokenlimit_core.usage import from_response, reply_text

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.sampled_from(["role", "content", "type", "text", "name", "usage",
                                                            "image_url", "tool_calls", "messages", "prompt_tokens",
                                                            "completion_tokens", "input_tokens", "eval_count",
                                                            "max_tokens", "options", "info", "x"]), inner,
                                            max_size=6), max_leaves=30)
bodies = st.dictionaries(st.sampled_from(["messages", "max_tokens", "tools", "system", "prompt", "options",
                                          "usage", "model"]), json_value, max_size=6) | json_value

ESTIMATOR = Estimator()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=bodies)
def test_estimate_never_raises(body):
    estimate = ESTIMATOR.estimate(body, "gpt-4o", Calibration())
    assert estimate.prompt >= 0 and estimate.completion >= 0


@settings(max_examples=300, deadline=None)
@given(body=bodies)
def test_usage_extraction_never_raises(body):
    usage = from_response(body)
    assert usage is None or (usage.prompt_tokens >= 0 and usage.completion_tokens >= 0)
    assert isinstance(reply_text(body), str)


limits = st.integers(min_value=-1, max_value=10_000)
names = st.sampled_from(["gpt-4o", "gpt-4*", "llama3:*", "*", "qwen3:14b", "gpt-4o-mini"])
policies = st.builds(
    Policy,
    roles=st.dictionaries(st.sampled_from(["user", "admin", "pending"]), limits, max_size=3),
    tiers=st.just({"t1": Tier(daily_limit=500, models={"gpt-4*": 100}), "t2": Tier(daily_limit=-1)}),
    group_tiers=st.dictionaries(st.sampled_from(["g1", "g2"]), st.sampled_from(["t1", "t2"]), max_size=2),
    model_limits=st.dictionaries(names, limits, max_size=4),
    users=st.dictionaries(st.sampled_from(["u1", "u2"]),
                          st.builds(UserOverride, daily_limit=st.none() | limits,
                                    models=st.dictionaries(names, limits, max_size=2),
                                    tiers=st.lists(st.sampled_from(["t1", "t2"]), max_size=2)), max_size=2),
    shared=st.lists(st.builds(SharedBudget, name=st.sampled_from(["a", "b", "c"]), limit=limits,
                              models=names, group=st.none() | st.just("g1")), max_size=2,
                    unique_by=lambda s: s.name),
)


@settings(max_examples=200, deadline=None)
@given(policy=policies, user=st.sampled_from(["u1", "u2", "u3"]), role=st.sampled_from(["user", "admin", "x"]),
       model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "llama3:8b", "custom"]),
       groups=st.lists(st.sampled_from(["g1", "g2"]), max_size=2))
def test_resolution_is_total_and_consistent(policy, user, role, model, groups):
    budgets = resolve(policy, user, role, model, base_model="gpt-4o", groups=groups)
    kinds = [b.kind for b in budgets]
    assert kinds.count("total") <= 1 and kinds.count("model") <= 1
    assert all(b.limit >= -1 and b.reason for b in budgets)
    if user in policy.users and policy.users[user].daily_limit is not None:
        assert budgets[0].limit == policy.users[user].daily_limit


@settings(max_examples=60, deadline=None)
@given(policy=policies, body=bodies, usage=bodies)
def test_engine_check_and_settle_never_raise(policy, body, usage):
    engine = Engine(open_store("memory://"), seed=policy)
    decision = engine.check(UserInfo("u1", role="user", groups=("g1",)), "gpt-4o", body, request_id="r")
    engine.refusal_text(decision, "zh")
    engine.settle("r", usage)
    assert engine.settle("r", usage) is None
