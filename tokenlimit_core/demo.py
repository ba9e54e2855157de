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
from typing import Iterator, Optional

from .engine import Engine
from .periods import usage_day
from .policy import Policy, Price, SharedBudget, Tier, UserOverride
from .store import DailyUsage, LedgerEvent, Store, UserInfo, open_store
from .usage import Usage

# Share of requests per local hour on a weekday (working-hour peaks, a quieter evening).
HOURLY = [1, 1, 1, 1, 1, 2, 4, 10, 22, 30, 32, 28, 14, 20, 30, 32, 30, 24, 14, 12, 14, 12, 7, 3]
WEEKDAY = [1.0, 1.05, 1.0, 0.95, 0.85, 0.3, 0.2]  # Monday .. Sunday
UNSETTLED_SHARE = 0.01  # requests whose outlet never ran (closed tab, crashed worker)
NO_USAGE_SHARE = 0.15  # web-UI replies streamed without usage: settled by estimating the reply
MODELS = ["gpt-4o", "gpt-4o-mini", "llama3:8b", "qwen3:14b", "study-helper"]  # study-helper: on gpt-4o-mini
GROUPS = [("students",), ("teachers",), ("research",), ()]
GROUP_WEIGHTS = [55, 20, 10, 15]
FIRST_NAMES = ["Alice", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "James", "Kofi",
               "Lena", "Marco", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor"]
LAST_NAMES = ["Smith", "Garcia", "Müller", "Okafor", "Rossi", "Novak", "Silva", "Kim", "Brown", "Dubois"]
CHINESE_NAMES = [("王芳", "wang.fang"), ("李伟", "li.wei"), ("张敏", "zhang.min"), ("刘洋", "liu.yang"),
                 ("陈静", "chen.jing"), ("杨磊", "yang.lei"), ("赵丽", "zhao.li"), ("黄强", "huang.qiang"),
                 ("周杰", "zhou.jie"), ("吴婷", "wu.ting"), ("徐明", "xu.ming"), ("孙悦", "sun.yue")]
EN_SENTENCES = [
    "Can you summarise the attached meeting notes in five bullet points?",
    "The quarterly report shows revenue growth of twelve percent, mostly from the new region.",
    "Please rewrite this paragraph so that a first-year student can follow it.",
    "What are the main differences between supervised and unsupervised learning?",
    "Here is the error message I get when the build runs on the CI server.",
    "Explain why the second approach uses less memory than the first one.",
    "Draft a polite email asking the supplier to confirm the delivery date.",
    "List the assumptions behind this model and how we could test each of them.",
    "The experiment was repeated three times and the variance stayed below two percent.",
    "Translate the following abstract into plain English without losing the key results.",
]
ZH_SENTENCES = [
    "请帮我把这段会议记录总结成五个要点。", "这个季度的销售额比去年同期增长了百分之十二。",
    "请用简单的语言解释一下什么是机器学习。", "下面是我在运行程序时遇到的错误信息，请帮我分析原因。",
    "请把这篇摘要翻译成英文，保留主要结论。", "实验重复了三次，结果的方差保持在百分之二以下。",
    "帮我写一封邮件，请供应商确认交货日期。", "这两种方法在内存使用上有什么区别？",
]
CODE_LINES = [
    "def load(path):\n    with open(path) as fh:\n        return json.load(fh)\n",
    "for row in rows:\n    totals[row['user']] += row['tokens']\n",
    "SELECT user_id, SUM(tokens) FROM usage GROUP BY user_id ORDER BY 2 DESC;\n",
    "const res = await fetch(url, { method: 'POST', body: JSON.stringify(payload) });\n",
]


@dataclass(frozen=True)
class DemoUser:
    """A simulated Open WebUI user and their habits."""

    id: str
    name: str
    email: str
    role: str
    groups: tuple[str, ...]
    activity: float  # mean requests per weekday
    model_weights: tuple[float, ...]
    api_share: float
    tool_overhead: int  # tokens of tool definitions Open WebUI adds after the inlet


def make_users(rng: random.Random, count: int) -> list[DemoUser]:
    """`count` users: mostly role user, a few admins and pending, English and Chinese names."""
    people = []
    for i in range(count):
        if rng.random() < 0.3:
            name, handle = rng.choice(CHINESE_NAMES)
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name, handle = f"{first} {last}", f"{first}.{last}".lower().replace("ü", "ue")
        role = "admin" if i % 25 == 1 else "pending" if i % 30 == 4 else "user"
        activity = 30.0 if i == 0 else 0.3 if role == "pending" else min(rng.lognormvariate(math.log(6), 0.9), 80)
        weights = tuple(rng.random() ** 2 for _ in MODELS)
        people.append(DemoUser(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), name=name, email=f"{handle}{i}@example.edu",
            role=role, groups=rng.choices(GROUPS, weights=GROUP_WEIGHTS)[0], activity=activity,
            model_weights=weights, api_share=rng.uniform(0.5, 1) if rng.random() < 0.2 else rng.uniform(0, 0.1),
            tool_overhead=round(rng.uniform(1500, 4000)) if rng.random() < 0.4 else 0))
    return people


def message_pool(rng: random.Random, size: int = 240) -> list[str]:
    """Message texts of realistic lengths in English, Chinese, code and mixes (features are cached by text)."""
    pool = []
    for _ in range(size):
        kind = rng.choices(["en", "zh", "code", "mixed"], weights=[50, 25, 15, 10])[0]
        bank = {"en": EN_SENTENCES, "zh": ZH_SENTENCES, "code": CODE_LINES,
                "mixed": EN_SENTENCES + ZH_SENTENCES + CODE_LINES}[kind]
        length = max(1, min(int(rng.lognormvariate(math.log(4), 1.0)), 120))
        pool.append(" ".join(rng.choice(bank) for _ in range(length)))
    return pool


def reply_pool(rng: random.Random, size: int = 60) -> list[str]:
    """Assistant reply texts, longer than prompts on average."""
    return [" ".join(rng.choice(EN_SENTENCES + ZH_SENTENCES) for _ in range(rng.randint(3, 40)))
            for _ in range(size)]


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
