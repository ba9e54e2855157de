"""The limit model: who may spend how many tokens on what, per window.

A `Policy` is plain data (pydantic, JSON round-trip); `resolve()` turns it
into the list of `Budget`s that apply to one request, each with a reason.
"""
from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .periods import WindowSpec

UNLIMITED = -1
OPEN_WEBUI_ROLES = ("user", "admin", "pending")
Window = Literal["day", "week", "month"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Model):
    """Prices per million tokens, in the admin's currency."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: Optional[float] = Field(default=None, ge=0)


class Calibration(_Model):
    """How raw counts become the provider's count for one model (applied by `estimate`).

    prompt = overhead (+ webui_overhead for web-UI traffic) + Σ coefficient × feature.
    Features: cl100k tokens, han / kana_hangul / cyrillic characters, messages,
    names, images; and, for `calibrate.fit`, tokens carrying han / other
    non-ASCII bytes, CJK punctuation / hangul / accented Latin / non-ASCII /
    digit characters and ideographs after a space (their coefficients default
    to 0). Defaults reproduce OpenAI's published counting rule. A calibration
    for `pattern` may have a twin fitted on cl100k_base under
    `pattern@cl100k_base`, used where its own encoding cannot be counted.
    """

    overhead: float = 3.0
    webui_overhead: float = 0.0
    tokens: float = 1.0
    han: float = 0.0
    kana_hangul: float = 0.0
    cyrillic: float = 0.0
    per_message: float = 3.0
    per_name: float = 1.0
    per_image: float = 85.0
    han_tokens: float = 0.0
    other_tokens: float = 0.0
    cjk_punct: float = 0.0
    hangul: float = 0.0
    latin_ext: float = 0.0
    non_ascii: float = 0.0
    digits: float = 0.0
    space_han: float = 0.0
    completion_scale: float = 1.0
    completion_expected: Optional[int] = Field(default=None, ge=0)
    fitted_on: Optional[str] = None
    # The encoding the coefficients were fitted with ("qwen3", "o200k_base", "cl100k_base"); estimates for the
    # model count with it. None: the model's usual encoding (or the one `fitted_on` names).
    encoding: Optional[str] = Field(default=None, max_length=100)


class Tier(_Model):
    """A named limit set (e.g. `premium`) assigned to users or groups."""

    daily_limit: Optional[int] = Field(default=None, ge=UNLIMITED)
    models: dict[str, int] = Field(default_factory=dict)
    window: Optional[Window] = None


class UserOverride(_Model):
    """One user's own limits; `daily_limit` is the total per window despite its legacy name."""

    daily_limit: Optional[int] = Field(default=None, ge=UNLIMITED)
    models: dict[str, int] = Field(default_factory=dict)
    tiers: list[str] = Field(default_factory=list)


class SharedBudget(_Model):
    """One cap spent by everyone together (or by one group together)."""

    name: str = Field(min_length=1)
    limit: int = Field(ge=UNLIMITED)
    models: str = "*"
    group: Optional[str] = None
    window: Optional[Window] = None


class Policy(_Model):
    """Everything an admin decides; stored in the store, edited by the panel."""

    roles: dict[str, int] = Field(default_factory=lambda: {"user": 10000, "admin": UNLIMITED})
    tiers: dict[str, Tier] = Field(default_factory=dict)
    group_tiers: dict[str, str] = Field(default_factory=dict)
    model_limits: dict[str, int] = Field(default_factory=dict)
    users: dict[str, UserOverride] = Field(default_factory=dict)
    shared: list[SharedBudget] = Field(default_factory=list)
    target_models: list[str] = Field(default_factory=lambda: ["*"])
    window: Window = "day"
    week_start: int = Field(default=0, ge=0, le=6)
    reset_hour: int = Field(default=0, ge=0, le=23)
    timezone: Optional[str] = None
    warning_threshold: float = Field(default=0.8, ge=0, le=1)
    shadow_mode: bool = False
    refuse_tasks: bool = False
    completion_cap: int = Field(default=4096, ge=1)
    image_tokens: int = Field(default=85, ge=0)
    prices: dict[str, Price] = Field(default_factory=dict)
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    messages: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("roles", "model_limits")
    @classmethod
    def _limits_valid(cls, value: dict[str, int]) -> dict[str, int]:
        for key, limit in value.items():
            if limit < UNLIMITED:
                raise ValueError(f"limit for {key!r} is {limit}; use -1 for unlimited, 0 to block")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_valid(cls, value: Optional[str]) -> Optional[str]:
        if value:
            WindowSpec(timezone=value)  # raises a clear error for unknown zones
        return value or None

    @model_validator(mode="after")
    def _references_exist(self) -> "Policy":
        for group, tier in self.group_tiers.items():
            if tier not in self.tiers:
                raise ValueError(f"group {group!r} maps to unknown tier {tier!r}")
        for uid, override in self.users.items():
            for tier in override.tiers:
                if tier not in self.tiers:
                    raise ValueError(f"user {uid!r} is assigned unknown tier {tier!r}")
        names = [s.name for s in self.shared]
        if len(names) != len(set(names)):
            raise ValueError("shared budget names must be unique")
        return self

    def to_json(self) -> str:
        """Serialise to the JSON the stores keep."""
        return self.model_dump_json(exclude_none=False)

    @classmethod
    def from_json(cls, text: str | bytes | dict) -> "Policy":
        """Parse and validate a stored policy."""
        data = json.loads(text) if isinstance(text, (str, bytes)) else text
        return cls.model_validate(data)

    def window_spec(self, window: Optional[str] = None) -> WindowSpec:
        """The window (kind, reset hour, zone) a limit with this override uses."""
        return WindowSpec(
            kind=window or self.window,
            reset_hour=self.reset_hour,
            timezone=self.timezone,
            week_start=self.week_start,
        )


@dataclass(frozen=True)
class Budget:
    """One limit that applies to a request, and the counter it is spent from."""

    scope: str  # counter identity without the window, e.g. "user:alice:model:gpt-4"
    kind: Literal["total", "model", "shared"]
    limit: int
    window: WindowSpec
    reason: str  # human-readable origin ("tier 'premium' limit for gpt-4*")
    rule: str  # machine-readable origin ("tiers.premium.models.gpt-4*")

    @property
    def unlimited(self) -> bool:
        return self.limit == UNLIMITED


def pattern_specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact ids beat globs; longer literal parts beat shorter ones."""
    wild = sum(pattern.count(c) for c in "*?[")
    return (0 if wild else 1, len(pattern) - wild)


def best_match(patterns, model_ids: list[str]) -> Optional[str]:
    """The most specific pattern matching any of the model ids, or None."""
    return _best_match(tuple(patterns), tuple(m for m in model_ids if m))


@functools.lru_cache(maxsize=8192)
def _best_match(patterns: tuple[str, ...], model_ids: tuple[str, ...]) -> Optional[str]:
    hits = [p for p in patterns if any(fnmatch.fnmatchcase(m, p) for m in model_ids)]
    return max(hits, key=pattern_specificity) if hits else None


def is_metered(policy: Policy, model_ids: list[str]) -> bool:
    """Whether `target_models` covers this model (or its base model)."""
    return best_match(policy.target_models, model_ids) is not None


def user_tiers(policy: Policy, user_id: str, groups: list[str]) -> list[str]:
    """Tiers that apply to a user: assigned directly, or through a group."""
    direct = list(policy.users.get(user_id, UserOverride()).tiers)
    via_groups = [policy.group_tiers[g] for g in groups if g in policy.group_tiers]
    return list(dict.fromkeys(direct + via_groups))


def _largest(values: list[tuple[int, str]]) -> tuple[int, str]:
    return max(values, key=lambda v: float("inf") if v[0] == UNLIMITED else v[0])


def resolve(policy: Policy, user_id: str, role: str, model: str, *,
            base_model: Optional[str] = None, groups: Optional[list[str]] = None) -> list[Budget]:
    """Every budget that applies to (user, role, groups, model), each with its reason."""
    groups = list(groups or [])
    ids = [m for m in (model, base_model) if m]
    # Admins without an explicit (finite) admin limit skip global and shared limits.
    admin_exempt = role == "admin" and policy.roles.get("admin", UNLIMITED) == UNLIMITED
    override = policy.users.get(user_id)
    tiers = user_tiers(policy, user_id, groups)
    budgets: list[Budget] = []

    # The total budget: user's own, else tier (largest), else role, else the user role.
    total: Optional[tuple[int, str, str, Optional[str]]] = None
    if override and override.daily_limit is not None:
        total = (override.daily_limit, f"user {user_id}'s own limit", f"users.{user_id}.daily_limit", None)
    if total is None:
        tier_totals = [(policy.tiers[t].daily_limit, t) for t in tiers if policy.tiers[t].daily_limit is not None]
        if tier_totals:
            limit, tier = _largest(tier_totals)
            total = (limit, f"tier '{tier}' limit", f"tiers.{tier}.daily_limit", policy.tiers[tier].window)
    if total is None and role in policy.roles:
        total = (policy.roles[role], f"role '{role}' limit", f"roles.{role}", None)
    if total is None and role == "admin":
        total = (UNLIMITED, "admins are unlimited unless a limit for 'admin' is set", "default.admin", None)
    if total is None and "user" in policy.roles:
        total = (policy.roles["user"], f"role '{role}' has no limit; the 'user' role's limit applies", "roles.user", None)
    if total is not None:
        limit, reason, rule, window = total
        budgets.append(Budget(f"user:{user_id}:total", "total", limit, policy.window_spec(window), reason, rule))

    # The model budget: user's own for the model, else tier's, else global.
    model_budget: Optional[tuple[int, str, str, Optional[str]]] = None
    if override:
        pattern = best_match(override.models, ids)
        if pattern is not None:
            model_budget = (override.models[pattern], f"user {user_id}'s own limit for {pattern}",
                            f"users.{user_id}.models.{pattern}", None)
    if model_budget is None:
        tier_hits = []
        for t in tiers:
            pattern = best_match(policy.tiers[t].models, ids)
            if pattern is not None:
                tier_hits.append((policy.tiers[t].models[pattern], f"{t}\0{pattern}"))
        if tier_hits:
            limit, key = _largest(tier_hits)
            tier, pattern = key.split("\0")
            model_budget = (limit, f"tier '{tier}' limit for {pattern}", f"tiers.{tier}.models.{pattern}",
                            policy.tiers[tier].window)
    if model_budget is None and not admin_exempt:
        pattern = best_match(policy.model_limits, ids)
        if pattern is not None:
            model_budget = (policy.model_limits[pattern], f"model limit for {pattern}",
                            f"model_limits.{pattern}", None)
    if model_budget is not None:
        limit, reason, rule, window = model_budget
        budgets.append(Budget(f"user:{user_id}:model:{model}", "model", limit,
                              policy.window_spec(window), reason, rule))

    # Shared budgets covering this model (and, for group budgets, the user's group).
    for shared in [] if admin_exempt else policy.shared:
        if not any(fnmatch.fnmatchcase(m, shared.models) for m in ids):
            continue
        if shared.group is not None and shared.group not in groups:
            continue
        who = f"group '{shared.group}'" if shared.group else "everyone"
        budgets.append(Budget(f"shared:{shared.name}", "shared", shared.limit, policy.window_spec(shared.window),
                              f"shared budget '{shared.name}' for {who} on {shared.models}",
                              f"shared.{shared.name}"))
    return budgets
