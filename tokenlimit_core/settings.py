"""Settings from `TOKEN_LIMIT_*` variables (and filter valves), validated once.

Keeps the original filter's variable names, JSON shapes and valve names; an
invalid value raises `SettingsError` naming the variable. `seed_policy()`
turns settings into the `Policy` that seeds an empty store.
"""
from __future__ import annotations

import json
import os
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, Field, ValidationError, field_validator

from .periods import get_zone
from .policy import OPEN_WEBUI_ROLES, Policy, Tier, UserOverride

PREFIX = "TOKEN_LIMIT_"
# valve / field name -> environment variable
ENV_NAMES = {
    "daily_token_limits": "TOKEN_LIMIT_DAILY_LIMITS",
    "model_token_limits": "TOKEN_LIMIT_MODEL_LIMITS",
    "user_specific_limits": "TOKEN_LIMIT_USER_SPECIFIC",
    "enable_token_estimation": "TOKEN_LIMIT_ENABLE_ESTIMATION",
    "warning_threshold": "TOKEN_LIMIT_WARNING_THRESHOLD",
    "data_path": "TOKEN_LIMIT_DATA_PATH",
    "include_usage_info": "TOKEN_LIMIT_INCLUDE_USAGE_INFO",
    "reset_hour": "TOKEN_LIMIT_RESET_HOUR",
    "target_models": "TOKEN_LIMIT_TARGET_MODELS",
    "store_url": "TOKEN_LIMIT_STORE_URL",
    "timezone": "TOKEN_LIMIT_TIMEZONE",
    "language": "TOKEN_LIMIT_LANGUAGE",
    "failure_mode": "TOKEN_LIMIT_FAILURE_MODE",
    "window": "TOKEN_LIMIT_WINDOW",
    "shadow_mode": "TOKEN_LIMIT_SHADOW_MODE",
    "file_group": "TOKEN_LIMIT_FILE_GROUP",
}
DEFAULT_ROLE_LIMITS = {"user": 10000, "premium": 50000, "admin": -1}


class SettingsError(ValueError):
    """A setting is invalid; the message names the variable or valve."""


class Settings(BaseModel):
    """Every setting of the filter, panel and CLI; field names are the filter's valve names."""

    daily_token_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_ROLE_LIMITS))
    model_token_limits: dict[str, int] = Field(default_factory=dict)
    user_specific_limits: dict[str, UserOverride] = Field(default_factory=dict)
    enable_token_estimation: bool = True
    warning_threshold: float = Field(default=0.8, ge=0, le=1)
    data_path: str = ""
    include_usage_info: bool = True
    reset_hour: int = Field(default=0, ge=0, le=23)
    target_models: list[str] = Field(default_factory=lambda: ["*"])
    store_url: str = ""
    timezone: str = ""
    language: Literal["en", "zh"] = "en"
    failure_mode: Literal["allow", "block"] = "allow"
    window: Literal["day", "week", "month"] = "day"
    shadow_mode: bool = False
    file_group: str = ""

    @field_validator("daily_token_limits", "model_token_limits")
    @classmethod
    def _no_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for key, limit in value.items():
            if limit < -1:
                raise ValueError(f"limit for {key!r} is {limit}; use -1 for unlimited, 0 to block")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        if value.strip():
            get_zone(value.strip())
        return value.strip()

    @field_validator("target_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()] or ["*"]
        return value

    @classmethod
    def load(cls, values: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None,
             ) -> "Settings":
        """Settings from explicit values (valves) over `TOKEN_LIMIT_*` variables over defaults."""
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name, var in ENV_NAMES.items():
            if environ.get(var, "").strip() != "":
                raw[name] = parse_env_value(name, var, environ[var])
        raw.update({k: v for k, v in (values or {}).items() if k in cls.model_fields})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, from_env={k for k in raw if k not in (values or {})})) from exc

    def resolved_store_url(self) -> str:
        """The store URL: explicit, else beside the original `data_path`, else the default."""
        from .store import default_store_url

        if self.store_url.strip():
            return self.store_url.strip()
        if self.data_path.strip() and not os.environ.get("TOKEN_LIMIT_STORE_URL"):
            folder = os.path.dirname(os.path.abspath(self.data_path.strip()))
            return "tinydb://" + os.path.join(folder, "tokenlimit")
        return default_store_url()

    def seed_policy(self) -> Policy:
        """The policy these settings describe (seeds an empty store; the store's policy wins later)."""
        roles = {k: v for k, v in self.daily_token_limits.items() if k in OPEN_WEBUI_ROLES}
        tiers = {k: Tier(daily_limit=v) for k, v in self.daily_token_limits.items() if k not in OPEN_WEBUI_ROLES}
        try:
            return Policy(roles=roles, tiers=tiers, model_limits=dict(self.model_token_limits),
                          users=dict(self.user_specific_limits), target_models=list(self.target_models),
                          reset_hour=self.reset_hour, timezone=self.timezone or None,
                          warning_threshold=self.warning_threshold, window=self.window,
                          shadow_mode=self.shadow_mode)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, from_env=set())) from exc


def parse_env_value(name: str, var: str, text: str) -> Any:
    """One TOKEN_LIMIT_* value as the setting `name` expects it (JSON, bool or text); errors name `var`."""
    field = Settings.model_fields[name]
    if field.annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{var}={text!r}: expected true or false")
    if name in ("daily_token_limits", "model_token_limits", "user_specific_limits"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{var} is not valid JSON ({exc.msg} at character {exc.pos}); "
                                f"expected e.g. {{\"user\": 10000, \"admin\": -1}}") from exc
        if not isinstance(value, dict):
            raise SettingsError(f"{var} must be a JSON object, not {type(value).__name__}")
        return value
    return text.strip()


def _explain(exc: ValidationError, from_env: set[str]) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        field = loc[0] if loc else "?"
        where = ENV_NAMES.get(field, field) if field in from_env else f"valve {field}"
        inner = ".".join(loc[1:])
        lines.append(f"{where}{' [' + inner + ']' if inner else ''}: {error['msg']}")
    return "invalid setting: " + "; ".join(lines)
