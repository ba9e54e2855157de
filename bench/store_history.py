"""Synthetic usage history for the store benchmark: daily rollups, ledger events, the original file.

Deterministic (seeded) so two runs build the same stores.
"""
from __future__ import annotations

import json
import os
import random
from datetime import date, timedelta
from typing import Iterator

from tokenlimit_core.store import DailyUsage, LedgerEvent

MODELS = ("gpt-4o", "llama3:8b", "qwen3:14b")


def days_before(today: date, days: int) -> list[str]:
    """The `days` calendar days ending yesterday, oldest first."""
    return [(today - timedelta(days=days - i)).isoformat() for i in range(days)]


def daily_rows(users: int, days: list[str], seed: int = 1) -> Iterator[DailyUsage]:
    """One rollup row per day, user and model."""
    rng = random.Random(seed)
    for day in days:
        for u in range(users):
            for model in MODELS:
                prompt, completion = rng.randint(200, 8000), rng.randint(50, 3000)
                yield DailyUsage(day, f"user{u:04d}", model, prompt + completion, prompt, completion,
                                 rng.randint(1, 30), 0, 0.0)


def ledger_events(users: int, days: list[str], seed: int = 2) -> Iterator[LedgerEvent]:
    """One settled ledger event per day and user (the rollups stand for the rest)."""
    rng = random.Random(seed)
    for day in days:
        base = date.fromisoformat(day)
        ts0 = (base - date(1970, 1, 1)).days * 86400
        for u in range(users):
            prompt, completion = rng.randint(200, 8000), rng.randint(50, 3000)
            yield LedgerEvent(request_id=f"h-{day}-{u}", ts=ts0 + rng.randint(0, 86399), day=day,
                              user_id=f"user{u:04d}", model=MODELS[u % 3], est_prompt=prompt,
                              est_completion=completion // 2, charged=prompt + completion // 2, status="settled",
                              actual_prompt=prompt, actual_completion=completion, actual_source="openai",
                              settled_at=ts0 + 86399)


def original_usage(users: int, days: list[str], seed: int = 1) -> dict:
    """The original filter's usage file: {user_id: {"YYYY-MM-DD": {"total_tokens": N, "models": {m: N}}}}."""
    data: dict = {}
    for row in daily_rows(users, days, seed):
        entry = data.setdefault(row.user_id, {}).setdefault(row.day, {"total_tokens": 0, "models": {}})
        entry["total_tokens"] += row.tokens
        entry["models"][row.model] = row.tokens
    return data


class OriginalFileStore:
    """The original design, for the baseline: all history in one dict, the whole file rewritten per response."""

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data
        self.save()

    def record(self, user_id: str, day: str, model: str, tokens: int) -> None:
        """What the original outlet did for each response: add the tokens, then save everything."""
        entry = self.data.setdefault(user_id, {}).setdefault(day, {"total_tokens": 0, "models": {}})
        entry["total_tokens"] += tokens
        entry["models"][model] = entry["models"].get(model, 0) + tokens
        self.save()

    def save(self) -> None:
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle)

    def size(self) -> int:
        return os.path.getsize(self.path)
