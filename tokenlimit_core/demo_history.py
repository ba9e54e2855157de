"""A year of daily rows in seconds: the bulk demo history for benchmarks (no engine, no policy changes)."""
from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta, timezone
from typing import Iterator, Optional

from .demo import demo_policy
from .demo_people import MODELS, WEEKDAY, make_users
from .store import DailyUsage, LedgerEvent, Store, UserInfo


def generate_history(store: Store, *, users: int = 1000, days: int = 365, models: int = 3, seed: int = 0,
                     events_per_day: int = 0, end: Optional[date] = None, chunk: int = 50_000,
                     progress: bool = False) -> int:
    """Bulk-load one daily row per user, day and model, ending yesterday (no engine); returns rows written.

    Only `events_per_day` rows per day also get raw ledger events (their totals equal the row's),
    as in a store whose ledger retention kept less than its rollups. Users join the directory.
    """
    from tqdm import tqdm

    end = end or (datetime.now(timezone.utc).date() - timedelta(days=1))
    rng = random.Random(seed)
    people = make_users(random.Random(seed), users)
    last_seen = datetime.combine(end, datetime.min.time(), timezone.utc).timestamp() + 17 * 3600
    for u, person in enumerate(people):
        store.touch_user(UserInfo(f"user-{u:05d}", person.name, person.email, "user", person.groups, last_seen))
    written = 0
    batch_daily: list[DailyUsage] = []
    batch_events: list[LedgerEvent] = []
    with tqdm(total=users * days * models, desc="history rows", unit="row", unit_scale=True,
              disable=not progress) as bar:
        for daily, events in history_rows(rng, users, days, models, events_per_day, end):
            batch_daily.append(daily)
            batch_events.extend(events)
            if len(batch_daily) >= chunk:
                store.put_history(batch_daily, batch_events)
                written += len(batch_daily)
                bar.update(len(batch_daily))
                batch_daily, batch_events = [], []
        store.put_history(batch_daily, batch_events)
        bar.update(len(batch_daily))
    return written + len(batch_daily)


def history_rows(rng: random.Random, users: int, days: int, models: int, events_per_day: int,
                 end: date) -> Iterator[tuple[DailyUsage, list[LedgerEvent]]]:
    """Daily rows (day, user, model) with weekly rhythm; a few rows per day also as raw ledger events."""
    names = [MODELS[i] if i < len(MODELS) else f"model-{i}" for i in range(models)]
    prices = demo_policy(users).prices
    rates = [(prices[m].input, prices[m].output) if m in prices else None for m in names]
    levels = [rng.lognormvariate(math.log(6), 0.9) for _ in range(users)]
    shares = [[rng.random() ** 2 + 0.05 for _ in names] for _ in range(users)]
    ids = [f"user-{u:05d}" for u in range(users)]
    for offset in range(days):
        day = end - timedelta(days=days - 1 - offset)
        label, factor = day.isoformat(), WEEKDAY[day.weekday()]
        chosen = set(rng.sample(range(users * models), min(events_per_day, users * models)))
        midnight = datetime.combine(day, datetime.min.time(), timezone.utc).timestamp()
        for u in range(users):
            base = levels[u] * factor
            for m, model in enumerate(names):
                requests = max(1, int(base * shares[u][m] * rng.uniform(0.5, 1.5) + 0.5))
                prompt = requests * rng.randint(600, 3000)
                completion = requests * rng.randint(150, 600)
                cost = round((prompt * rates[m][0] + completion * rates[m][1]) / 1e6, 8) if rates[m] else 0.0
                row = DailyUsage(label, ids[u], model, prompt + completion, prompt, completion, requests, 0, cost)
                events = []
                if u * models + m in chosen:
                    events = _split_events(row, midnight, rates[m], f"hist-{label}-{u}-{m}")
                yield row, events


def _split_events(row: DailyUsage, midnight: float, rate, prefix: str) -> list[LedgerEvent]:
    """`row.requests` settled events whose tokens (and cost) add up exactly to the row's."""
    n, events = row.requests, []
    for j in range(n):
        prompt = row.prompt_tokens // n + (1 if j < row.prompt_tokens % n else 0)
        completion = row.completion_tokens // n + (1 if j < row.completion_tokens % n else 0)
        ts = midnight + 8 * 3600 + j * (10 * 3600 / n)
        cost = round((prompt * rate[0] + completion * rate[1]) / 1e6, 8) if rate else None
        events.append(LedgerEvent(request_id=f"{prefix}-{j}", ts=ts, day=row.day, user_id=row.user_id,
                                  model=row.model, source="webui", est_prompt=prompt, est_completion=completion,
                                  est_method="tiktoken:cl100k_base", charged=prompt + completion, status="settled",
                                  actual_prompt=prompt, actual_completion=completion, actual_source="openai",
                                  settled_at=ts + 10, cost=cost))
    return events
