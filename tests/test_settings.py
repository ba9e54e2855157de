"""TOKEN_LIMIT_* variables and the original filter's JSON shapes build a policy unchanged."""
import pytest

from tokenlimit_core.policy import resolve
from tokenlimit_core.settings import Settings, SettingsError

ORIGINAL_ENV = {
    "TOKEN_LIMIT_DAILY_LIMITS": '{"user": 10000, "premium": 50000, "admin": -1}',
    "TOKEN_LIMIT_MODEL_LIMITS": '{"gpt-4": 5000, "llama3:*": 20000}',
    "TOKEN_LIMIT_USER_SPECIFIC": '{"user123": {"daily_limit": 20000, "models": {"gpt-4": 5000}}}',
    "TOKEN_LIMIT_ENABLE_ESTIMATION": "false",
    "TOKEN_LIMIT_WARNING_THRESHOLD": "0.9",
    "TOKEN_LIMIT_DATA_PATH": "/tmp/legacy/token_usage.json",
    "TOKEN_LIMIT_INCLUDE_USAGE_INFO": "false",
    "TOKEN_LIMIT_RESET_HOUR": "6",
    "TOKEN_LIMIT_TARGET_MODELS": "gpt-4, llama3:*",
}


def test_original_variables_build_the_same_policy():
    settings = Settings.load(environ=ORIGINAL_ENV)
    assert settings.enable_token_estimation is False and settings.include_usage_info is False
    assert settings.warning_threshold == 0.9 and settings.reset_hour == 6
    assert settings.target_models == ["gpt-4", "llama3:*"]
    policy = settings.seed_policy()
    assert policy.roles == {"user": 10000, "admin": -1}
    assert policy.tiers["premium"].daily_limit == 50000
    assert policy.model_limits == {"gpt-4": 5000, "llama3:*": 20000}
    assert policy.reset_hour == 6 and policy.warning_threshold == 0.9
    budgets = {b.kind: b.limit for b in resolve(policy, "user123", "user", "gpt-4")}
    assert budgets == {"total": 20000, "model": 5000}


def test_valves_override_environment():
    settings = Settings.load({"reset_hour": 3, "target_models": "*"}, environ=ORIGINAL_ENV)
    assert settings.reset_hour == 3 and settings.target_models == ["*"]


def test_defaults_without_environment():
    settings = Settings.load(environ={})
    assert settings.daily_token_limits == {"user": 10000, "premium": 50000, "admin": -1}
    assert settings.warning_threshold == 0.8 and settings.include_usage_info and settings.enable_token_estimation
    assert settings.failure_mode == "allow" and settings.language == "en"


def test_store_url_beside_the_original_data_path(monkeypatch):
    monkeypatch.delenv("TOKEN_LIMIT_STORE_URL", raising=False)
    settings = Settings.load(environ={"TOKEN_LIMIT_DATA_PATH": "/srv/owui/token_usage.json"})
    assert settings.resolved_store_url() == "tinydb:///srv/owui/tokenlimit"
    assert Settings.load({"store_url": "memory://x"}, environ={}).resolved_store_url() == "memory://x"


@pytest.mark.parametrize("env, needle", [
    ({"TOKEN_LIMIT_DAILY_LIMITS": "{user: 1}"}, "TOKEN_LIMIT_DAILY_LIMITS is not valid JSON"),
    ({"TOKEN_LIMIT_DAILY_LIMITS": "[1, 2]"}, "TOKEN_LIMIT_DAILY_LIMITS must be a JSON object"),
    ({"TOKEN_LIMIT_DAILY_LIMITS": '{"user": "lots"}'}, "TOKEN_LIMIT_DAILY_LIMITS [user]"),
    ({"TOKEN_LIMIT_MODEL_LIMITS": '{"gpt-4": -7}'}, "TOKEN_LIMIT_MODEL_LIMITS"),
    ({"TOKEN_LIMIT_USER_SPECIFIC": '{"u": {"daily_limit": "x"}}'}, "TOKEN_LIMIT_USER_SPECIFIC [u.daily_limit]"),
    ({"TOKEN_LIMIT_ENABLE_ESTIMATION": "maybe"}, "TOKEN_LIMIT_ENABLE_ESTIMATION='maybe'"),
    ({"TOKEN_LIMIT_WARNING_THRESHOLD": "1.5"}, "TOKEN_LIMIT_WARNING_THRESHOLD"),
    ({"TOKEN_LIMIT_RESET_HOUR": "25"}, "TOKEN_LIMIT_RESET_HOUR"),
    ({"TOKEN_LIMIT_FAILURE_MODE": "sometimes"}, "TOKEN_LIMIT_FAILURE_MODE"),
])
def test_bad_values_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as info:
        Settings.load(environ=env)
    assert needle in str(info.value)


def test_bad_valve_names_the_valve():
    with pytest.raises(SettingsError, match="valve reset_hour"):
        Settings.load({"reset_hour": 99}, environ={})


def test_bad_timezone_names_the_setting():
    with pytest.raises(SettingsError, match="TOKEN_LIMIT_TIMEZONE.*Moon/Base"):
        Settings.load(environ={"TOKEN_LIMIT_TIMEZONE": "Moon/Base"})
