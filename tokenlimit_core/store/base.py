"""The store protocol every backend implements, and the records it keeps.

The engine decides *what* to charge; a store only keeps counters, the ledger,
the policy, the user directory and the audit trail, and makes `charge` and
`settle` atomic. Counters are identified by `CounterKey` = budget scope + window.
Message text never reaches a store: records hold counts and ids only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Optional, Protocol, runtime_checkable

SCHEMA_VERSION = 1


class StoreError(RuntimeError):
    """The store cannot be used (corrupt, unreachable, wrong version); the message says what to do."""


class StoreUnavailable(StoreError):
    """The store did not answer (network, lock timeout); the failure mode decides what happens."""


@dataclass(frozen=True)
class CounterKey:
    """A budget's counter in one window: scope ('user:alice:total') + window label ('2026-12-04')."""

    scope: str
    window: str

    def __str__(self) -> str:
        return f"{self.scope}@{self.window}"


@dataclass(frozen=True)
class Counter:
    """The state of one counter: settled use, pending charges, extra tokens granted."""

    key: CounterKey
    used: int = 0
    pending: int = 0
    granted: int = 0


@dataclass(frozen=True)
class BudgetCharge:
    """One budget a charge must fit: its counter, limit (-1 unlimited) and when the window ends (epoch s)."""

    key: CounterKey
    limit: int
    expires_at: float


@dataclass
class LedgerEvent:
    """One request's record: who, which model, estimate, actual, decision. Never message text."""

    request_id: str
    ts: float
    day: str
    user_id: str
    role: str = "user"
    model: str = ""
    base_model: Optional[str] = None
    source: str = "api"  # "webui" | "api" | "pipeline"
    task: Optional[str] = None
    est_prompt: int = 0
    est_completion: int = 0
    est_method: str = ""
    charged: int = 0
    status: str = "pending"  # pending | settled | refunded | denied
    decision: str = "allowed"  # allowed | warned | denied | shadow_denied
    deciding: Optional[str] = None
    reason: Optional[str] = None  # too_large | used_up, for refusals (and shadow refusals)
    actual_prompt: Optional[int] = None
    actual_completion: Optional[int] = None
    actual_source: Optional[str] = None
    settled_at: Optional[float] = None
    cost: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LedgerEvent":
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def tokens(self) -> int:
        """Tokens this request counts for now: actual once settled, the charge before."""
        if self.status == "settled":
            return (self.actual_prompt or 0) + (self.actual_completion or 0)
        if self.status in ("refunded", "denied"):
            return 0
        return self.charged


@dataclass(frozen=True)
class ChargeRequest:
    """Everything `Store.charge` needs: the budgets, the amount and the ledger event to write."""

    request_id: str
    amount: int
    budgets: tuple[BudgetCharge, ...]
    event: LedgerEvent
    enforce: bool = True  # False in shadow mode: record, never refuse
    warn_threshold: float = 0.8


@dataclass(frozen=True)
class Verdict:
    """The outcome of fitting a charge against counters (computed inside the atomic step)."""

    charge: bool
    decision: str  # allowed | warned | denied | shadow_denied
    deciding: Optional[int]  # index of the deciding budget, None when no finite budget applies
    reason: Optional[str] = None  # too_large | used_up, when the charge does not fit


def judge(budgets: tuple[BudgetCharge, ...], counters: tuple[Counter, ...], amount: int,
          enforce: bool = True, warn_threshold: float = 0.8) -> Verdict:
    """Decide one charge: it passes only if it fits every budget; the tightest budget decides."""
    finite = [(i, b.limit + c.granted - c.used - c.pending)
              for i, (b, c) in enumerate(zip(budgets, counters)) if b.limit >= 0]
    failing = [(i, left) for i, left in finite if amount > left]
    if failing:
        i, left = min(failing, key=lambda f: f[1])
        reason = "used_up" if left <= 0 else "too_large"
        return Verdict(not enforce, "denied" if enforce else "shadow_denied", i, reason)
    if not finite:
        return Verdict(True, "allowed", None)

    def after_share(item):
        i, left = item
        cap = budgets[i].limit + counters[i].granted
        return (cap - left + amount) / cap if cap > 0 else 1.0

    i, _ = max(finite, key=after_share)
    warned = after_share((i, _)) >= warn_threshold
    return Verdict(True, "warned" if warned else "allowed", i)


@dataclass(frozen=True)
class ChargeResult:
    """What the store saw, before this charge, and whether it charged."""

    charged: bool
    counters: tuple[Counter, ...]  # same order as the request's budgets, state *before* the charge
    verdict: Verdict
    duplicate: bool = False  # this request id was charged already; nothing changed


@dataclass(frozen=True)
class Settlement:
    """The actual usage of a settled request."""

    prompt_tokens: int
    completion_tokens: int
    source: str  # "openai" | "ollama" | "openwebui" | "anthropic" | "estimate" | ...
    cost: Optional[float] = None

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class DailyUsage:
    """Tokens charged per (day, user, model); rolled up by the store as requests come and settle."""

    day: str
    user_id: str
    model: str
    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    denied: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class UserInfo:
    """A directory entry: who a user id is. Kept current by the filter."""

    id: str
    name: str = ""
    email: str = ""
    role: str = "user"
    groups: tuple[str, ...] = ()
    last_seen: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UserInfo":
        names = cls.__dataclass_fields__.keys()
        clean = {k: v for k, v in data.items() if k in names}
        clean["groups"] = tuple(clean.get("groups") or ())
        return cls(**clean)


@dataclass(frozen=True)
class PolicyRecord:
    """The stored policy (JSON text) and its revision, which grows by one per save."""

    policy_json: str
    revision: int
    updated_at: float
    actor: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """Who changed what, when (policy saves, grants, resets, refunds)."""

    ts: float
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """The operations filter, panel, notebooks and CLI share. All backends behave identically."""

    url: str  # for display: never contains a password

    # -- policy
    def load_policy(self) -> Optional[PolicyRecord]: ...
    def policy_revision(self) -> int: ...
    def save_policy(self, policy_json: str, actor: str) -> int: ...

    # -- quota (atomic)
    def charge(self, request: ChargeRequest) -> ChargeResult: ...
    def settle(self, request_id: str, settlement: Settlement, now: float) -> Optional[LedgerEvent]: ...
    def refund(self, request_id: str, actor: str) -> Optional[LedgerEvent]: ...
    def grant(self, key: CounterKey, tokens: int, expires_at: float, actor: str) -> Counter: ...
    def reset(self, key: CounterKey, actor: str) -> Counter: ...
    def counters(self, keys: Iterable[CounterKey]) -> list[Counter]: ...
    def oldest_pending(self, user_id: str, model: str) -> Optional[str]: ...

    # -- history
    def get_event(self, request_id: str) -> Optional[LedgerEvent]: ...
    def ledger(self, start: float, end: float, user_id: Optional[str] = None) -> list[LedgerEvent]: ...
    def daily_usage(self, first_day: str, last_day: str, user_id: Optional[str] = None) -> list[DailyUsage]: ...
    def monthly_usage(self, first_month: str, last_month: str, user_id: Optional[str] = None
                      ) -> list[DailyUsage]: ...

    # -- bulk (demo, import-seed, migrate): set semantics, so loading twice changes nothing
    def put_history(self, daily: Iterable[DailyUsage] = (), events: Iterable[LedgerEvent] = ()) -> None: ...
    def put_counters(self, counters: Iterable[tuple[Counter, float]]) -> None: ...
    def all_counters(self) -> list[tuple[Counter, float]]: ...

    # -- directory and audit
    def touch_user(self, user: UserInfo) -> None: ...
    def users(self) -> list[UserInfo]: ...
    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None: ...
    def audit_log(self, limit: int = 100) -> list[AuditEntry]: ...

    # -- housekeeping
    def info(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


def monthly_from_daily(rows: Iterable[DailyUsage]) -> list[DailyUsage]:
    """Daily rows summed per (month, user, model); the month 'YYYY-MM' goes in the `day` field."""
    months: dict[tuple[str, str, str], list] = {}
    for r in rows:
        acc = months.setdefault((r.day[:7], r.user_id, r.model), [0, 0, 0, 0, 0, 0.0])
        for i, value in enumerate((r.tokens, r.prompt_tokens, r.completion_tokens, r.requests, r.denied, r.cost)):
            acc[i] += value
    return [DailyUsage(month, user, model, *acc[:5], round(acc[5], 10))
            for (month, user, model), acc in sorted(months.items())]


def settled_event(event: LedgerEvent, settlement: Settlement, now: float) -> LedgerEvent:
    """The ledger event after settling (shared by all backends so they agree)."""
    return replace(event, status="settled", actual_prompt=settlement.prompt_tokens,
                   actual_completion=settlement.completion_tokens, actual_source=settlement.source,
                   settled_at=now, cost=settlement.cost if settlement.cost is not None else event.cost)


def rollup_delta(before: LedgerEvent, after: Optional[LedgerEvent]) -> DailyUsage:
    """How a ledger change moves the daily rollup of the event's (day, user, model)."""
    def parts(ev: Optional[LedgerEvent]) -> tuple[int, int, int, float]:
        if ev is None or ev.status in ("refunded", "denied"):
            return 0, 0, 0, 0.0
        if ev.status == "settled":
            return ev.tokens, ev.actual_prompt or 0, ev.actual_completion or 0, ev.cost or 0.0
        return ev.charged, ev.est_prompt, ev.charged - ev.est_prompt, ev.cost or 0.0

    b, a = parts(before), parts(after)
    return DailyUsage(before.day, before.user_id, before.model, a[0] - b[0], a[1] - b[1], a[2] - b[2],
                      0, 0, round(a[3] - b[3], 10))
