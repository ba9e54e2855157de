"""Simulated Open WebUI traffic for the panel, notebooks, benchmarks and `python -m tokenlimit_core demo`.

`generate` runs every request through the real `Engine.check` / `Engine.settle`:
days before the current one on a scratch memory store whose ledger and daily
rollups are then bulk-loaded (`Store.put_history`), the current day on the
target store itself, so its counters, decisions and ledger are real.
`generate_history` is the fast bulk path: daily rows only, for benchmarks.
"""
from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Optional

from .engine import Engine
from .periods import usage_day
from .policy import Policy, Price, SharedBudget, Tier, UserOverride
from .demo_people import (HOURLY, MODELS, NO_USAGE_SHARE, UNSETTLED_SHARE, WEEKDAY, DemoUser, make_users,
                          message_pool, reply_pool)
from .store import Store, UserInfo, open_store
from .usage import Usage

@dataclass(frozen=True)
class DemoSummary:
    """What `generate` wrote: counts of users, requests and outcomes."""

    users: int
    days: int
    requests: int
    denied: int
    warned: int
    unsettled: int
    tokens: int
    daily_rows: int
    events: int

    def describe(self, language: str = "en") -> str:
        """A short report for the terminal, in English or Chinese."""
        if language == "zh":
            return (f"已生成 {self.users} 个用户 {self.days} 天的模拟流量：{self.requests} 个请求"
                    f"（拒绝 {self.denied}，警告 {self.warned}，未结算 {self.unsettled}），共 {self.tokens:,} 个令牌；"
                    f"每日汇总 {self.daily_rows} 行。")
        return (f"Simulated {self.days} days of traffic by {self.users} users: {self.requests} requests "
                f"({self.denied} refused, {self.warned} warned, {self.unsettled} never settled), "
                f"{self.tokens:,} tokens; {self.daily_rows} daily rows.")


def demo_policy(users: int = 60) -> Policy:
    """The demo's policy: roles, tiers, groups, model globs, an override, shared budgets, prices."""
    return Policy(
        roles={"user": 40_000, "admin": -1, "pending": 0},
        tiers={"premium": Tier(daily_limit=200_000, models={"gpt-4o": 80_000}),
               "staff": Tier(daily_limit=100_000)},
        group_tiers={"research": "premium", "teachers": "staff"},
        model_limits={"gpt-4o": 20_000, "gpt-4*": 60_000, "qwen3:*": 50_000},
        users={"demo-override": UserOverride(daily_limit=150_000, models={"gpt-4o": 50_000})},
        shared=[SharedBudget(name="campus-gpt-4o", limit=max(20_000, 3_000 * users), models="gpt-4o"),
                SharedBudget(name="students-qwen3", limit=max(10_000, 1_800 * users), models="qwen3:*",
                             group="students")],
        timezone="UTC",
        warning_threshold=0.8,
        prices={"gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
                "gpt-4o-mini": Price(input=0.15, output=0.6, cached_input=0.075)},
    )


def generate(store: Store, *, users: int = 60, days: int = 30, seed: int = 0, now: Optional[datetime] = None,
             progress: bool = False) -> DemoSummary:
    """Fill a store with `days` days of simulated traffic by `users` users (deterministic per seed and now)."""
    if users < 1 or days < 1:
        raise ValueError(f"demo needs at least one user and one day (users={users}, days={days})")
    from tqdm import tqdm

    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    rng = random.Random(seed)
    people = make_users(rng, users)
    policy = demo_policy(users)
    policy = policy.model_copy(update={"users": {people[0].id: policy.users["demo-override"]}})
    stored = store.load_policy()
    if stored is None or Policy.from_json(stored.policy_json) != policy:
        store.save_policy(policy.to_json(), "demo")
    sim = _Simulation(rng, people, seed)
    today = date.fromisoformat(usage_day(policy.window_spec(), now))
    first = today - timedelta(days=days - 1)
    scratch = open_store("memory://")
    past = Engine(scratch, seed=policy)
    live = Engine(store, seed=policy)
    counts = _Counts()
    for offset in tqdm(range(days), desc="demo days", unit="day", disable=not progress):
        day = first + timedelta(days=offset)
        engine = live if day == today else past
        for request in sim.day_requests(day, until=now if day == today else None):
            counts.add(sim.run(engine, request, now))
    history_end = datetime.combine(today, datetime.min.time(), timezone.utc).timestamp()
    daily = scratch.daily_usage(first.isoformat(), (today - timedelta(days=1)).isoformat())
    events = scratch.ledger(0, history_end)
    store.put_history(daily, events)
    for person in people:
        last = sim.last_seen.get(person.id)
        if last is not None and last < history_end:
            store.touch_user(UserInfo(person.id, person.name, person.email, person.role, person.groups, last))
    today_rows = store.daily_usage(today.isoformat(), today.isoformat())
    return DemoSummary(users=len(people), days=days, requests=counts.requests, denied=counts.denied,
                       warned=counts.warned, unsettled=counts.unsettled, tokens=counts.tokens,
                       daily_rows=len(daily) + len(today_rows), events=counts.requests)


@dataclass
class _Counts:
    requests: int = 0
    denied: int = 0
    warned: int = 0
    unsettled: int = 0
    tokens: int = 0

    def add(self, outcome: tuple[str, bool, int]):
        status, settled, tokens = outcome
        self.requests += 1
        self.denied += status == "denied"
        self.warned += status == "warned"
        self.unsettled += status not in ("denied", "unmetered") and not settled
        self.tokens += tokens


@dataclass(frozen=True)
class _Request:
    user: DemoUser
    at: datetime
    model: str
    base_model: Optional[str]
    source: str
    task: Optional[str]
    body: dict
    request_id: str


class _Simulation:
    """Who sends what when, and what the provider reports back."""

    def __init__(self, rng: random.Random, people: list[DemoUser], seed: int):
        self.rng, self.people, self.seed = rng, people, seed
        self.messages = message_pool(rng)
        self.replies = reply_pool(rng)
        self.last_seen: dict[str, float] = {}
        self.serial = 0

    def day_requests(self, day: date, until: Optional[datetime]) -> list[_Request]:
        """Every request of one day, in time order (only those before `until` for the current day)."""
        rng, out = self.rng, []
        factor = WEEKDAY[day.weekday()]
        for person in self.people:
            count = _poisson(rng, person.activity * factor)
            for _ in range(count):
                hour = rng.choices(range(24), weights=HOURLY)[0]
                at = datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc) + timedelta(
                    seconds=rng.uniform(0, 3600))
                out.append(self._request(person, at))
                if out[-1].source == "webui" and rng.random() < 0.3:  # title / tags generation after a chat
                    out.append(self._task(person, at + timedelta(seconds=rng.uniform(3, 30))))
        out.sort(key=lambda r: r.at)
        return [r for r in out if until is None or r.at <= until]

    def _request(self, person: DemoUser, at: datetime) -> _Request:
        rng = self.rng
        model = rng.choices(MODELS, weights=person.model_weights)[0]
        base = "gpt-4o-mini" if model == "study-helper" else None
        source = "api" if rng.random() < person.api_share else "webui"
        turns = min(1 + int(rng.expovariate(1 / 4)), 24)
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": rng.choice(self.messages)}
                    for i in range(turns * 2 - 1)]
        if rng.random() < 0.3:
            messages.insert(0, {"role": "system", "content": rng.choice(self.messages[:20])})
        body = {"model": model, "messages": messages, "stream": source == "webui"}
        if source == "api" and rng.random() < 0.5:
            body["max_tokens"] = rng.choice([256, 512, 1024, 2048])
        return _Request(person, at, model, base, source, None, body, self._id())

    def _task(self, person: DemoUser, at: datetime) -> _Request:
        task = self.rng.choice(["title_generation", "tags_generation", "follow_up_generation"])
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": self.rng.choice(self.messages)}],
                "stream": False}
        return _Request(person, at, "gpt-4o-mini", None, "webui", task, body, self._id())

    def _id(self) -> str:
        self.serial += 1
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def run(self, engine: Engine, req: _Request, now: datetime) -> tuple[str, bool, int]:
        """Check one request, then settle it with what the provider would report; (status, settled, tokens)."""
        rng, person = self.rng, req.user
        info = UserInfo(person.id, person.name, person.email, person.role, person.groups)
        self.last_seen[person.id] = req.at.timestamp()
        decision = engine.check(info, req.model, req.body, request_id=req.request_id, base_model=req.base_model,
                                source=req.source, task=req.task, now=req.at)
        if not decision.allowed or decision.estimate is None:
            return decision.status, False, 0
        done = req.at + timedelta(seconds=rng.uniform(2, 45))
        if done > now or rng.random() < UNSETTLED_SHARE:
            return decision.status, False, decision.estimate.total
        prompt, completion, source = self._actual(req, decision.estimate.prompt, decision.estimate.completion)
        if req.source == "webui" and req.task is None and rng.random() < NO_USAGE_SHARE:
            reply = {"messages": req.body["messages"] + [{"role": "assistant", "content": rng.choice(self.replies)}]}
            event = engine.settle(req.request_id, reply, now=done)
        else:
            event = engine.settle(req.request_id, usage=Usage(prompt, completion, source), now=done)
        return decision.status, event is not None, event.tokens if event else 0

    def _actual(self, req: _Request, est_prompt: int, est_completion: int) -> tuple[int, int, str]:
        rng = self.rng
        scale = {"gpt-4o": 0.97, "gpt-4o-mini": 0.97, "llama3:8b": 1.03, "qwen3:14b": 0.92}.get(
            req.base_model or req.model, 1.0)
        prompt = est_prompt * scale * rng.gauss(1.0, 0.02)
        if req.source == "webui" and req.task is None:
            prompt += req.user.tool_overhead + (rng.uniform(300, 3000) if rng.random() < 0.2 else 0)
        if req.task is not None:
            completion = rng.randint(8, 60)
        else:
            completion = min(int(rng.lognormvariate(math.log(350), 0.7)), req.body.get("max_tokens", 8192))
        source = "ollama" if req.model.startswith(("llama3", "qwen3")) else "openai"
        return max(1, round(prompt)), max(1, completion), source


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


from .demo_history import generate_history, history_rows  # noqa: E402,F401  (re-exported; needs demo_policy)
