"""The policy as editable tables and back: validation that names the bad cell, and a diff before saving."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd
from pydantic import ValidationError

from tokenlimit_core import Policy, Price, SharedBudget, Tier, UserOverride
from tokenlimit_core.periods import WindowSpec

WINDOWS = ("day", "week", "month")
TABLES: dict[str, list[str]] = {
    "roles": ["role", "limit"],
    "tiers": ["tier", "limit", "window"],
    "tier_models": ["tier", "model", "limit"],
    "user_tiers": ["user", "tier"],
    "group_tiers": ["group", "tier"],
    "model_limits": ["model", "limit"],
    "user_limits": ["user", "limit"],
    "user_models": ["user", "model", "limit"],
    "shared": ["name", "limit", "models", "group", "window"],
    "prices": ["model", "input", "output", "cached_input"],
}
INT_COLUMNS = {"limit"}
FLOAT_COLUMNS = {"input", "output", "cached_input"}
GENERAL_FIELDS = ("window", "week_start", "reset_hour", "timezone", "warning_threshold", "target_models",
                  "shadow_mode", "refuse_tasks", "completion_cap")


@dataclass(frozen=True)
class CellError:
    """One invalid cell: table, 1-based row (0 for the general settings), column, what is wrong, the value."""

    table: str
    row: int
    column: str
    code: str  # required | not_int | below_min | not_number | negative | duplicate | unknown_tier | bad_window | invalid
    value: Any = None


class _Bad(Exception):
    def __init__(self, code: str):
        self.code = code


def _blank(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value).strip()


def _limit(value: Any, required: bool = True) -> Optional[int]:
    if _blank(value):
        if required:
            raise _Bad("required")
        return None
    try:
        number = float(str(value).replace(",", "").replace("_", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _Bad("not_int") from None
    if not number.is_integer():
        raise _Bad("not_int")
    if number < -1:
        raise _Bad("below_min")
    return int(number)


def _price(value: Any, required: bool = True) -> Optional[float]:
    if _blank(value):
        if required:
            raise _Bad("required")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad("not_number") from None
    if number < 0 or math.isnan(number):
        raise _Bad("negative")
    return number


def _window(value: Any) -> Optional[str]:
    text = _text(value).lower()
    if not text:
        return None
    if text not in WINDOWS:
        raise _Bad("bad_window")
    return text


def policy_to_tables(policy: Policy) -> dict[str, pd.DataFrame]:
    """The editable tables of a policy (one row per limit, assignment, budget or price)."""
    rows: dict[str, list[tuple]] = {name: [] for name in TABLES}
    rows["roles"] = list(policy.roles.items())
    for name, tier in policy.tiers.items():
        rows["tiers"].append((name, tier.daily_limit, tier.window))
        rows["tier_models"] += [(name, model, limit) for model, limit in tier.models.items()]
    rows["group_tiers"] = list(policy.group_tiers.items())
    rows["model_limits"] = list(policy.model_limits.items())
    for uid, override in policy.users.items():
        rows["user_tiers"] += [(uid, tier) for tier in override.tiers]
        if override.daily_limit is not None:
            rows["user_limits"].append((uid, override.daily_limit))
        rows["user_models"] += [(uid, model, limit) for model, limit in override.models.items()]
    rows["shared"] = [(s.name, s.limit, s.models, s.group, s.window) for s in policy.shared]
    rows["prices"] = [(m, p.input, p.output, p.cached_input) for m, p in policy.prices.items()]
    tables = {}
    for name, columns in TABLES.items():
        frame = pd.DataFrame.from_records(rows[name], columns=columns)
        for column in columns:
            if column in INT_COLUMNS:
                frame[column] = frame[column].astype("Int64")
            elif column in FLOAT_COLUMNS:
                frame[column] = frame[column].astype("float64")
            else:
                frame[column] = frame[column].astype("object")
        tables[name] = frame
    return tables


def general_values(policy: Policy) -> dict[str, Any]:
    """The policy's single-value settings (window, reset hour, zone, threshold, targets, modes)."""
    values = {field: getattr(policy, field) for field in GENERAL_FIELDS}
    values["target_models"] = ", ".join(policy.target_models)
    values["timezone"] = policy.timezone or ""
    return values


class _Reader:
    """Walks a table's rows, collecting cell errors instead of stopping at the first."""

    def __init__(self, table: str, errors: list[CellError]):
        self.table, self.errors = table, errors

    def rows(self, frame: pd.DataFrame):
        for index, record in enumerate(frame.to_dict("records"), start=1):
            if all(_blank(v) for v in record.values()):
                continue  # an empty row added in the editor and left empty
            yield index, record

    def get(self, row: int, record: dict, column: str, parse, *args):
        try:
            return parse(record.get(column), *args)
        except _Bad as bad:
            self.errors.append(CellError(self.table, row, column, bad.code, record.get(column)))
            return None

    def need(self, row: int, record: dict, column: str) -> str:
        value = _text(record.get(column))
        if not value:
            self.errors.append(CellError(self.table, row, column, "required", None))
        return value

    def unique(self, row: int, column: str, key, seen: set, value: Any = None) -> bool:
        if key in seen:
            self.errors.append(CellError(self.table, row, column, "duplicate", value if value is not None else key))
            return False
        seen.add(key)
        return True


def tables_to_policy(tables: dict[str, pd.DataFrame], general: dict[str, Any],
                     base: Policy) -> tuple[Optional[Policy], list[CellError]]:
    """Build a policy from edited tables and settings; keeps `base`'s calibration and messages."""
    errors: list[CellError] = []
    empty = {name: pd.DataFrame(columns=columns) for name, columns in TABLES.items()}
    tables = {**empty, **tables}

    def reader(name):
        return _Reader(name, errors)

    roles, r, seen = {}, reader("roles"), set()
    for row, rec in r.rows(tables["roles"]):
        role, limit = r.need(row, rec, "role"), r.get(row, rec, "limit", _limit)
        if role and r.unique(row, "role", role, seen) and limit is not None:
            roles[role] = limit

    tiers: dict[str, dict] = {}
    r, seen = reader("tiers"), set()
    for row, rec in r.rows(tables["tiers"]):
        name = r.need(row, rec, "tier")
        limit, window = r.get(row, rec, "limit", _limit, False), r.get(row, rec, "window", _window)
        if name and r.unique(row, "tier", name, seen):
            tiers[name] = {"daily_limit": limit, "window": window, "models": {}}

    def tier_ref(r: _Reader, row: int, rec: dict) -> str:
        name = r.need(row, rec, "tier")
        if name and name not in tiers:
            errors.append(CellError(r.table, row, "tier", "unknown_tier", name))
            return ""
        return name

    r, seen = reader("tier_models"), set()
    for row, rec in r.rows(tables["tier_models"]):
        tier, model, limit = tier_ref(r, row, rec), r.need(row, rec, "model"), r.get(row, rec, "limit", _limit)
        if tier and model and r.unique(row, "model", (tier, model), seen, model) and limit is not None:
            tiers[tier]["models"][model] = limit

    users: dict[str, dict] = {}

    def user(uid: str) -> dict:
        return users.setdefault(uid, {"daily_limit": None, "models": {}, "tiers": []})

    r, seen = reader("user_tiers"), set()
    for row, rec in r.rows(tables["user_tiers"]):
        uid, tier = r.need(row, rec, "user"), tier_ref(r, row, rec)
        if uid and tier and r.unique(row, "tier", (uid, tier), seen, tier):
            user(uid)["tiers"].append(tier)

    group_tiers, r, seen = {}, reader("group_tiers"), set()
    for row, rec in r.rows(tables["group_tiers"]):
        group, tier = r.need(row, rec, "group"), tier_ref(r, row, rec)
        if group and r.unique(row, "group", group, seen) and tier:
            group_tiers[group] = tier

    model_limits, r, seen = {}, reader("model_limits"), set()
    for row, rec in r.rows(tables["model_limits"]):
        model, limit = r.need(row, rec, "model"), r.get(row, rec, "limit", _limit)
        if model and r.unique(row, "model", model, seen) and limit is not None:
            model_limits[model] = limit

    r, seen = reader("user_limits"), set()
    for row, rec in r.rows(tables["user_limits"]):
        uid, limit = r.need(row, rec, "user"), r.get(row, rec, "limit", _limit)
        if uid and r.unique(row, "user", uid, seen) and limit is not None:
            user(uid)["daily_limit"] = limit

    r, seen = reader("user_models"), set()
    for row, rec in r.rows(tables["user_models"]):
        uid, model, limit = r.need(row, rec, "user"), r.need(row, rec, "model"), r.get(row, rec, "limit", _limit)
        if uid and model and r.unique(row, "model", (uid, model), seen, model) and limit is not None:
            user(uid)["models"][model] = limit

    shared, r, seen = [], reader("shared"), set()
    for row, rec in r.rows(tables["shared"]):
        name, limit = r.need(row, rec, "name"), r.get(row, rec, "limit", _limit)
        window = r.get(row, rec, "window", _window)
        if name and r.unique(row, "name", name, seen) and limit is not None:
            shared.append(SharedBudget(name=name, limit=limit, models=_text(rec.get("models")) or "*",
                                       group=_text(rec.get("group")) or None, window=window))

    prices, r, seen = {}, reader("prices"), set()
    for row, rec in r.rows(tables["prices"]):
        model = r.need(row, rec, "model")
        values = [r.get(row, rec, c, _price, c != "cached_input") for c in ("input", "output", "cached_input")]
        if model and r.unique(row, "model", model, seen) and None not in values[:2]:
            prices[model] = Price(input=values[0], output=values[1], cached_input=values[2])

    settings = dict(general)
    zone = _text(settings.get("timezone"))
    if zone:
        try:
            WindowSpec(timezone=zone)
        except ValueError:
            errors.append(CellError("general", 0, "timezone", "bad_timezone", zone))
            zone = ""
    targets = [m.strip() for m in str(settings.get("target_models") or "").split(",") if m.strip()]
    if not targets:
        errors.append(CellError("general", 0, "target_models", "required", None))
    if errors:
        return None, errors
    data = base.model_dump()
    data.update({k: settings[k] for k in GENERAL_FIELDS if k in settings})
    data.update(roles=roles, group_tiers=group_tiers, model_limits=model_limits, shared=shared, prices=prices,
                timezone=zone or None, target_models=targets,
                tiers={n: Tier(**v) for n, v in tiers.items()},
                users={u: UserOverride(**v) for u, v in users.items()})
    try:
        return Policy.model_validate(data), []
    except ValidationError as exc:
        return None, [CellError("general", 0, ".".join(str(p) for p in e["loc"]) or "policy", "invalid", e["msg"])
                      for e in exc.errors()]


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
        if not value and prefix:
            out[prefix] = "{}"
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        for item in value:
            _flatten({k: v for k, v in item.items() if k != "name"}, f"{prefix}[{item['name']}]", out)
    elif isinstance(value, list):
        out[prefix] = ", ".join(map(str, value)) if all(isinstance(v, str) for v in value) else json.dumps(value)
    else:
        out[prefix] = value


def policy_diff(old: Policy, new: Policy) -> list[tuple[str, Any, Any]]:
    """What changes between two policies: (setting path, before, after); None means absent."""
    before, after = {}, {}
    _flatten(old.model_dump(mode="json"), "", before)
    _flatten(new.model_dump(mode="json"), "", after)
    return [(path, before.get(path), after.get(path)) for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)]
