"""Import the original filter's usage file as daily rollups (usage only; no policy).

The file is `{user_id: {"YYYY-MM-DD": {"total_tokens": N, "models": {model: N}}}}`.
Tokens of a day that no model accounts for go to the model `(unknown)`. Rows the
store already holds are never overwritten: identical ones were imported before,
different ones are live usage the store keeps (both are reported), so importing
twice imports nothing twice and loses nothing.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Union

from .store import DailyUsage, Store

UNKNOWN_MODEL = "(unknown)"


class SeedFileError(ValueError):
    """The usage file cannot be imported; the message names the file and the offending key."""


@dataclass(frozen=True)
class SeedImport:
    """What an import did: rows written, and rows left alone because the store had them."""

    path: str
    users: int = 0
    days: int = 0
    rows: int = 0
    tokens: int = 0
    already_present: int = 0
    conflicts: int = 0  # the store holds different numbers for that day, user and model; kept the store's
    models_exceed_total: list[str] = field(default_factory=list)  # "user/day" where the models sum past total

    def describe(self, language: str = "en") -> str:
        """A short report for the terminal, in English or Chinese."""
        if language == "zh":
            text = (f"已从 {self.path} 导入 {self.users} 个用户、{self.days} 天、{self.rows} 行，共 {self.tokens:,} 个令牌。"
                    f"已存在（跳过）{self.already_present} 行；与存储中数据不同（保留存储中的）{self.conflicts} 行。")
            if self.models_exceed_total:
                text += f"\n各模型之和超过 total_tokens 的条目（按模型导入）：{', '.join(self.models_exceed_total[:10])}"
            return text
        text = (f"Imported {self.rows} rows ({self.users} users, {self.days} days, {self.tokens:,} tokens) "
                f"from {self.path}. Already present (skipped): {self.already_present}; "
                f"different in the store (kept the store's): {self.conflicts}.")
        if self.models_exceed_total:
            text += f"\nModels add up to more than total_tokens (imported per model): " \
                    f"{', '.join(self.models_exceed_total[:10])}"
        return text


def _count(value: Any, path: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise SeedFileError(f"{path}: {where} must be a whole number of tokens >= 0, not {value!r}")
    return int(value)


def _day(text: Any, path: str, user_id: str) -> str:
    try:
        if isinstance(text, str) and len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise SeedFileError(f"{path}: user {user_id!r}: key {text!r} is not a day (YYYY-MM-DD)")


def parse(data: Any, path: str) -> tuple[list[DailyUsage], list[str]]:
    """The daily rows a parsed usage file holds, and the 'user/day' entries whose models exceed the total."""
    if not isinstance(data, dict):
        raise SeedFileError(f"{path}: expected an object {{user_id: {{day: usage}}}}, not {type(data).__name__}")
    rows, exceeding = [], []
    for user_id, days in data.items():
        if not user_id.strip():
            raise SeedFileError(f"{path}: an empty user id ({user_id!r}) is not allowed")
        if not isinstance(days, dict):
            raise SeedFileError(f"{path}: user {user_id!r}: expected an object of days, not {type(days).__name__}")
        for key, usage in days.items():
            day = _day(key, path, user_id)
            where = f"user {user_id!r}, day {key!r}"
            if not isinstance(usage, dict):
                raise SeedFileError(f"{path}: {where}: expected {{\"total_tokens\": N, \"models\": {{...}}}}")
            total = _count(usage.get("total_tokens", 0), path, f"{where}: 'total_tokens'")
            models = usage.get("models") or {}
            if not isinstance(models, dict):
                raise SeedFileError(f"{path}: {where}: 'models' must be an object {{model: tokens}}")
            per_model = {str(m): _count(n, path, f"{where}: model {m!r}") for m, n in models.items()}
            rest = total - sum(per_model.values())
            if rest < 0:
                exceeding.append(f"{user_id}/{day}")
            elif rest > 0:
                per_model[UNKNOWN_MODEL] = per_model.get(UNKNOWN_MODEL, 0) + rest
            rows.extend(DailyUsage(day, user_id, model, tokens) for model, tokens in per_model.items() if tokens)
    return rows, exceeding


def read(path: Union[str, os.PathLike]) -> tuple[list[DailyUsage], list[str]]:
    """Read and check a usage file; nothing is imported from a file with any error."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise SeedFileError(f"{name}: cannot read the usage file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise SeedFileError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SeedFileError(f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return parse(data, name)


def import_seed(store: Store, path: Union[str, os.PathLike], actor: str = "cli") -> SeedImport:
    """Import a usage file into a store's daily rollups, skipping rows the store already has."""
    rows, exceeding = read(path)
    name = os.fspath(path)
    if not rows:
        return SeedImport(name, models_exceed_total=exceeding)
    first, last = min(r.day for r in rows), max(r.day for r in rows)
    present = {(r.day, r.user_id, r.model): r for r in store.daily_usage(first, last)}
    new, same, conflicts = [], 0, 0
    for row in rows:
        held = present.get((row.day, row.user_id, row.model))
        if held is None:
            new.append(row)
        elif held == row:
            same += 1
        else:
            conflicts += 1
    if new:
        store.put_history(daily=new)
    result = SeedImport(name, users=len({r.user_id for r in new}), days=len({r.day for r in new}), rows=len(new),
                        tokens=sum(r.tokens for r in new), already_present=same, conflicts=conflicts,
                        models_exceed_total=exceeding)
    if new:
        store.audit(actor, "import_seed", {"file": os.path.basename(name), "rows": result.rows,
                                           "users": result.users, "days": result.days, "tokens": result.tokens})
    return result
