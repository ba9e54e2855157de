"""The quota engine: `check` charges an estimate at the inlet, `settle` replaces it at the outlet.

Like `limits` separates `test` from `hit`, a request is charged once when it
is checked (atomically across all its budgets, as *pending*) and settled once
with the actual usage. A request never settled keeps its estimate.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional

from . import messages
from .estimate import Estimate, Estimator, Features, calibration_for
from .periods import utcnow, usage_day, window_bounds, window_label
from .policy import Budget, Policy, best_match, is_metered, resolve
from .store import (BudgetCharge, ChargeRequest, Counter, CounterKey, LedgerEvent, Settlement, Store,
                    StoreError, UserInfo, redact_url)
from .usage import Usage, from_response, reply_text

log = logging.getLogger("tokenlimit.engine")


@dataclass(frozen=True)
class BudgetStatus:
    """One budget with its counter now: what the panel's Explain page and `usage_info` show."""

    budget: Budget
    counter: Counter
    reset_at: datetime

    @property
    def remaining(self) -> int:
        """Tokens left (-1 when unlimited)."""
        if self.budget.unlimited:
            return -1
        c = self.counter
        return self.budget.limit + c.granted - c.used - c.pending


@dataclass(frozen=True)
class Decision:
    """The outcome of `Engine.check`."""

    allowed: bool
    status: str  # allowed | warned | denied | shadow_denied | unmetered | unavailable
    request_id: str
    budget: Optional[Budget] = None  # the deciding budget
    used: int = 0
    pending: int = 0
    remaining: Optional[int] = None  # left in the deciding budget before this request; None if unlimited
    reset_at: Optional[datetime] = None
    estimate: Optional[Estimate] = None
    reason: Optional[str] = None  # too_large | used_up | unavailable
    budgets: tuple[BudgetStatus, ...] = ()

    @property
    def warned(self) -> bool:
        return self.status == "warned"


class QuotaExceeded(Exception):
    """Raised by adapters when a request is refused; the message is what the user reads."""

    def __init__(self, message: str, decision: Optional[Decision] = None):
        super().__init__(message)
        self.decision = decision


def cost_of(policy: Policy, model: str, prompt: int, completion: int, cached: int = 0) -> Optional[float]:
    """Spend for a request at the policy's prices (per million tokens), or None without a price."""
    pattern = best_match(policy.prices, [model])
    if pattern is None:
        return None
    price = policy.prices[pattern]
    cached_price = price.cached_input if price.cached_input is not None else price.input
    return round(((prompt - cached) * price.input + cached * cached_price + completion * price.output) / 1e6, 8)


class Engine:
    """Check, settle and explain against one store, with the policy kept current from it."""

    def __init__(self, store: Store, *, seed: Optional[Policy] = None, failure_mode: str = "allow",
                 clock: Callable[[], datetime] = utcnow, estimator: Optional[Estimator] = None,
                 policy_ttl: float = 0.5, estimation: bool = True):
        if failure_mode not in ("allow", "block"):
            raise ValueError(f"failure_mode must be 'allow' or 'block', not {failure_mode!r}")
        self.store = store
        self.seed = seed
        self.failure_mode = failure_mode
        self.clock = clock
        self.estimator = estimator or Estimator()
        self.policy_ttl = policy_ttl
        # Off (TOKEN_LIMIT_ENABLE_ESTIMATION=false): admit while any quota is left, charge 1 token until settled.
        self.estimation = estimation
        self._policy: Optional[Policy] = None
        self._revision = -1
        self._checked_at = 0.0
        self._seen: dict[str, tuple[UserInfo, float]] = {}
        self._budgets: dict[tuple, list[Budget]] = {}  # resolve() per policy revision and request shape
        # Requests this process charged, so the outlet needs no extra store read (bounded, oldest dropped).
        self._charged: OrderedDict[str, LedgerEvent] = OrderedDict()
        self._outage = False
        self._lock = threading.Lock()

    # -- policy
    def policy(self) -> Policy:
        """The policy in force: the store's, re-read when it changes (at most every `policy_ttl` s)."""
        now = time.monotonic()
        if self._policy is not None and now - self._checked_at < self.policy_ttl:
            return self._policy
        with self._lock:
            revision = self.store.policy_revision()
            if revision == 0:
                seed = self.seed or Policy()
                self.store.save_policy(seed.to_json(), "seed")
                revision = self.store.policy_revision()
            if revision != self._revision:
                record = self.store.load_policy()
                self._policy = Policy.from_json(record.policy_json)
                self._revision = record.revision
                self._budgets = {}
                if self.seed is not None and self.seed != self._policy and record.actor != "seed":
                    self._report_seed_difference()
            self._checked_at = now
            return self._policy

    def _report_seed_difference(self):
        if getattr(self, "_seed_reported", False):
            return
        self._seed_reported = True
        log.warning("the filter's valves / TOKEN_LIMIT_* settings differ from the policy in %s; the store's "
                    "policy applies (import them from the panel's Limits page)", redact_url(self.store.url))
        try:
            self.store.audit("filter", "seed_differs", {"policy": self.seed.to_json()})
        except StoreError:
            pass

    # -- budgets
    def statuses(self, user: UserInfo, model: str, base_model: Optional[str] = None,
                 now: Optional[datetime] = None) -> list[BudgetStatus]:
        """Every budget that applies to this user and model, with its counter now (for Explain)."""
        policy, now = self.policy(), now or self.clock()
        budgets = self._resolve(policy, user, model, base_model)
        keys = [CounterKey(b.scope, window_label(b.window, now)) for b in budgets]
        counters = self.store.counters(keys)
        return [BudgetStatus(b, c, window_bounds(b.window, now)[1]) for b, c in zip(budgets, counters)]

    # -- inlet
    def check(self, user: UserInfo, model: str, body: Any, *, request_id: Optional[str] = None,
              base_model: Optional[str] = None, source: str = "api", task: Optional[str] = None,
              now: Optional[datetime] = None) -> Decision:
        """Estimate the request and charge it against every budget; a refusal charges nothing."""
        request_id = request_id or uuid.uuid4().hex
        now = now or self.clock()
        try:
            return self._check(user, model, body, request_id, base_model, source, task, now)
        except (StoreError, OSError, TimeoutError) as exc:
            return self._unavailable(request_id, exc)

    def _check(self, user, model, body, request_id, base_model, source, task, now) -> Decision:
        policy = self.policy()
        self._touch(user, now)
        if not is_metered(policy, [model, base_model]):
            return Decision(True, "unmetered", request_id)
        calibration = calibration_for(policy, model, base_model)
        if self.estimation:
            estimate = self.estimator.estimate(body, model, calibration, completion_cap=policy.completion_cap,
                                               webui=source == "webui")
        else:
            estimate = Estimate(1, 0, "disabled", Features())
        budgets = self._resolve(policy, user, model, base_model)
        bounds = [window_bounds(b.window, now) for b in budgets]
        charges = tuple(BudgetCharge(CounterKey(b.scope, window_label(b.window, now)), b.limit, end.timestamp())
                        for b, (_, end) in zip(budgets, bounds))
        event = LedgerEvent(request_id=request_id, ts=now.timestamp(), day=usage_day(policy.window_spec(), now),
                            user_id=user.id, role=user.role, model=model, base_model=base_model, source=source,
                            task=task, est_prompt=estimate.prompt, est_completion=estimate.completion,
                            est_method=estimate.method,
                            cost=cost_of(policy, model, estimate.prompt, estimate.completion))
        enforce = not policy.shadow_mode and not (task and not policy.refuse_tasks)
        result = self.store.charge(ChargeRequest(request_id, estimate.total, charges, event, enforce,
                                                 policy.warning_threshold))
        self._recovered()  # only after the store answered: a cached policy proves nothing
        verdict = result.verdict
        if result.charged and not result.duplicate:
            self._remember(event)
        statuses = tuple(BudgetStatus(b, c, end) for b, c, (_, end) in zip(budgets, result.counters, bounds))
        if verdict.deciding is None:
            return Decision(result.charged, verdict.decision, request_id, estimate=estimate, budgets=statuses)
        chosen = statuses[verdict.deciding]
        return Decision(result.charged and verdict.decision != "denied", verdict.decision, request_id,
                        chosen.budget, chosen.counter.used, chosen.counter.pending, chosen.remaining,
                        chosen.reset_at, estimate, verdict.reason, statuses)

    # -- outlet
    def settle(self, request_id: str, body: Any = None, *, usage: Optional[Usage] = None,
               now: Optional[datetime] = None) -> Optional[LedgerEvent]:
        """Replace a request's pending charge by its actual usage (once); None if nothing was pending."""
        now = now or self.clock()
        try:
            event = self._charged.pop(request_id, None) or self.store.get_event(request_id)
            if event is None or event.status != "pending":
                return None
            policy = self.policy()
            usage = usage or from_response(body)
            if usage is None:
                calibration = calibration_for(policy, event.model, event.base_model)
                completion = self.estimator.reply_tokens(reply_text(body), event.model, calibration)
                prompt = event.est_prompt
                if event.est_method == "disabled" and isinstance(body, dict) and isinstance(body.get("messages"), list):
                    prompt = self.estimator.estimate({"messages": body["messages"][:-1]}, event.model,
                                                     calibration, webui=event.source == "webui").prompt
                usage = Usage(prompt, completion, "estimate")
            cost = cost_of(policy, event.model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            settlement = Settlement(usage.prompt_tokens, usage.completion_tokens, usage.source, cost)
            settled = self.store.settle(request_id, settlement, now.timestamp())
            self._recovered()
            return settled
        except (StoreError, OSError, TimeoutError) as exc:
            self._unavailable(request_id, exc)
            return None

    def settle_oldest(self, user_id: str, model: str, body: Any = None, **kwargs) -> Optional[LedgerEvent]:
        """Settle the oldest pending request of a user and model (when no id pairs inlet and outlet)."""
        try:
            request_id = self.store.oldest_pending(user_id, model)
        except (StoreError, OSError, TimeoutError) as exc:
            self._unavailable("-", exc)
            return None
        return self.settle(request_id, body, **kwargs) if request_id else None

    def usage_info(self, user: UserInfo, model: str, current: int, base_model: Optional[str] = None) -> dict:
        """The original filter's `usage_info`: daily_limit, total_used, remaining (-1 unlimited), current_request."""
        try:
            statuses = self.statuses(user, model, base_model)
        except (StoreError, OSError, TimeoutError):
            return {"daily_limit": -1, "total_used": 0, "remaining": -1, "current_request": current}
        total = next((s for s in statuses if s.budget.kind == "total"), None)
        if total is None:
            return {"daily_limit": -1, "total_used": 0, "remaining": -1, "current_request": current}
        used = total.counter.used + total.counter.pending
        return {"daily_limit": total.budget.limit, "total_used": used,
                "remaining": -1 if total.budget.unlimited else max(total.remaining, 0), "current_request": current}

    # -- helpers
    def _resolve(self, policy: Policy, user: UserInfo, model: str, base_model: Optional[str]) -> list[Budget]:
        key = (self._revision, user.id, user.role, model, base_model, tuple(user.groups))
        budgets = self._budgets.get(key)
        if budgets is None:
            budgets = resolve(policy, user.id, user.role, model, base_model=base_model, groups=list(user.groups))
            if len(self._budgets) > 10_000:
                self._budgets = {}
            self._budgets[key] = budgets
        return budgets

    def _remember(self, event: LedgerEvent):
        with self._lock:
            self._charged[event.request_id] = event
            if len(self._charged) > 10_000:
                self._charged.popitem(last=False)

    def refusal_text(self, decision: Decision, language: str = "en") -> str:
        """The message a refused user reads, in their language."""
        policy = self._policy or Policy()
        if decision.reason == "unavailable":
            return messages.text("unavailable", language, policy.messages)
        return messages.refusal(decision, language, policy.messages, policy.timezone)

    def warning_text(self, decision: Decision, language: str = "en") -> str:
        """The near-limit warning for a decision."""
        policy = self._policy or Policy()
        return messages.warning(decision, language, policy.messages, policy.timezone)

    def _touch(self, user: UserInfo, now: datetime):
        seen = self._seen.get(user.id)
        stamp = now.timestamp()
        if seen and seen[0] == user and stamp - seen[1] < 300:
            return
        self.store.touch_user(UserInfo(user.id, user.name, user.email, user.role, tuple(user.groups), stamp))
        self._seen[user.id] = (user, stamp)

    def _unavailable(self, request_id: str, exc: Exception) -> Decision:
        if not self._outage:
            self._outage = True
            log.error("token store %s unavailable (%s); failure mode '%s' applies until it recovers",
                      redact_url(self.store.url), exc, self.failure_mode)
        if self.failure_mode == "allow":
            return Decision(True, "unmetered", request_id, reason="unavailable")
        return Decision(False, "unavailable", request_id, reason="unavailable")

    def _recovered(self):
        if self._outage:
            self._outage = False
            log.warning("token store %s is reachable again", redact_url(self.store.url))
