"""What-if replay: how a proposed policy would have treated past requests.

The ledger events of a period are replayed in time order against fresh,
in-memory counters with the proposed `Policy`'s budgets and windows. Each
request is charged its recorded estimate at the moment it was checked and
settled with its actual tokens at the moment it was settled, through the very
`StoreState` rules the live stores follow — so replaying a ledger against the
policy that produced it gives back the recorded decisions.

Limits of what can be known: no message text is stored, so estimates are the
ones recorded at the time (a changed calibration is not re-applied); a request
refused at the time has no actual usage, so if the proposal would allow it, it
counts with its estimate; counters start empty at the first event, so replay
from the start of a window (a day, week or month boundary) for exact totals.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, Optional, Sequence

from .periods import WindowSpec, window_bounds, window_label
from .policy import Budget, Policy, is_metered, resolve, user_tiers
from .store.base import BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement, Store, UserInfo
from .store.memory import StoreState

NO_TIER = "(no tier)"
REFUSED = "denied"


@dataclass(frozen=True)
class ReplayedRequest:
    """One past request: what was decided then and what the proposed policy would decide."""

    request_id: str
    ts: float
    user_id: str
    role: str
    model: str
    tier: str  # the user's tiers under the proposed policy, joined by '+', or NO_TIER
    source: str
    task: Optional[str]
    was: str  # the recorded decision: allowed | warned | denied | shadow_denied
    would: str  # allowed | warned | denied | shadow_denied | unmetered
    rule: Optional[str]  # the deciding budget's rule under the proposal ("tiers.premium.models.gpt-4*")
    limit: Optional[int]  # that budget's limit
    reason: Optional[str]  # too_large | used_up when the proposal does not let it fit
    tokens_was: int  # tokens the request counted for in the ledger
    tokens_would: int  # tokens it would count for under the proposal (0 when refused)
    actual_known: bool  # False when tokens_would rests on the estimate (refused then, or never settled)

    @property
    def refused(self) -> bool:
        """The proposal would refuse this request."""
        return self.would == REFUSED

    @property
    def newly_refused(self) -> bool:
        """Refused under the proposal but let through at the time."""
        return self.would == REFUSED and self.was != REFUSED

    @property
    def saved(self) -> int:
        """Tokens the proposal would have saved on this request (negative: it would have cost more)."""
        return self.tokens_was - self.tokens_would

    def to_dict(self) -> dict:
        """A flat row for tables (pandas, CSV)."""
        row = dict(self.__dict__)
        row.update(refused=self.refused, newly_refused=self.newly_refused, saved=self.saved)
        return row


@dataclass(frozen=True)
class ReplayResult:
    """Every replayed request of one policy, with summaries."""

    policy: Policy
    requests: tuple[ReplayedRequest, ...]

    def totals(self) -> dict:
        """Counts and tokens over the whole replay."""
        return _summary(self.requests)

    def by(self, key: str) -> list[dict]:
        """The summary per value of a field (model, tier, user_id, role, source), largest saving first."""
        groups: dict[str, list[ReplayedRequest]] = {}
        for request in self.requests:
            groups.setdefault(str(getattr(request, key)), []).append(request)
        rows = [{key: value, **_summary(items)} for value, items in groups.items()]
        return sorted(rows, key=lambda r: (-r["tokens_saved"], r[key]))

    def refused_users(self) -> list[dict]:
        """Users the proposal would refuse at least once, with the rule that stopped them most often."""
        rows = []
        for row in self.by("user_id"):
            if row["refused"]:
                mine = [r for r in self.requests if r.user_id == row["user_id"] and r.refused]
                rules = [r.rule or "" for r in mine]
                row["first_refused_at"] = datetime.fromtimestamp(min(r.ts for r in mine), timezone.utc)
                row["rule"] = max(set(rules), key=rules.count)
                rows.append(row)
        return sorted(rows, key=lambda r: (-r["refused"], r["user_id"]))


def _summary(requests: Sequence[ReplayedRequest]) -> dict:
    return {
        "requests": len(requests),
        "refused": sum(r.refused for r in requests),
        "newly_refused": sum(r.newly_refused for r in requests),
        "warned": sum(r.would == "warned" for r in requests),
        "shadow_denied": sum(r.would == "shadow_denied" for r in requests),
        "was_refused": sum(r.was == REFUSED for r in requests),
        "tokens_was": sum(r.tokens_was for r in requests),
        "tokens_would": sum(r.tokens_would for r in requests),
        "tokens_saved": sum(r.saved for r in requests),
    }


def replay(events: Iterable[LedgerEvent], policy: Policy,
           users: Optional[Mapping[str, UserInfo]] = None) -> ReplayResult:
    """Replay past ledger events against a proposed policy (users give the groups tiers may map from)."""
    users = users or {}
    events = sorted(events, key=lambda e: e.ts)
    timeline = []  # (moment, 0 = check / 1 = settle, order, event)
    for order, event in enumerate(events):
        timeline.append((event.ts, 0, order, event))
        if event.status == "settled" and event.decision != REFUSED:
            timeline.append((max(event.settled_at or event.ts, event.ts), 1, order, event))
    timeline.sort(key=lambda item: item[:3])

    state = StoreState()
    budgets: dict[tuple, list[Budget]] = {}  # per (user, role, model, base model, groups)
    windows: dict[tuple, tuple[str, float]] = {}  # per (window spec, quarter hour)
    outcomes: dict[str, ReplayedRequest] = {}
    for moment, kind, order, event in timeline:
        rid = f"{order}:{event.request_id}"  # unique even if a ledger repeats an id
        if kind == 1:
            if rid in state.pending:
                state.settle(rid, Settlement(event.actual_prompt or 0, event.actual_completion or 0,
                                             event.actual_source or "replay"), moment)
            continue
        groups = list(users[event.user_id].groups) if event.user_id in users else []
        outcomes[rid] = _check(state, policy, event, rid, groups, budgets, windows)
        if outcomes[rid].would != REFUSED and event.status == "refunded":
            state.refund(rid, "replay", moment)
    return ReplayResult(policy, tuple(outcomes.values()))  # checks were made in event order


def _check(state: StoreState, policy: Policy, event: LedgerEvent, rid: str, groups: list[str],
           budgets_cache: dict[tuple, list[Budget]], windows: dict[tuple, tuple[str, float]]) -> ReplayedRequest:
    tiers = user_tiers(policy, event.user_id, groups)
    tier = "+".join(tiers) or NO_TIER
    was_refused = event.decision == REFUSED
    actual_known = event.status == "settled" and not was_refused
    estimate = event.est_prompt + event.est_completion
    counted = _tokens_if_allowed(event, estimate)
    base = dict(request_id=event.request_id, ts=event.ts, user_id=event.user_id, role=event.role,
                model=event.model, tier=tier, source=event.source, task=event.task, was=event.decision,
                tokens_was=event.tokens, actual_known=actual_known)
    if not is_metered(policy, [event.model, event.base_model]):
        return ReplayedRequest(**base, would="unmetered", rule=None, limit=None, reason=None, tokens_would=counted)
    key = (event.user_id, event.role, event.model, event.base_model, tuple(groups))
    if key not in budgets_cache:
        budgets_cache[key] = resolve(policy, event.user_id, event.role, event.model, base_model=event.base_model,
                                     groups=groups)
    budgets = budgets_cache[key]
    charges = []
    for b in budgets:
        label, expires_at = _window(windows, b.window, event.ts)
        charges.append(BudgetCharge(CounterKey(b.scope, label), b.limit, expires_at))
    enforce = not policy.shadow_mode and not (event.task and not policy.refuse_tasks)
    result = state.charge(ChargeRequest(rid, estimate, tuple(charges), event, enforce, policy.warning_threshold))
    verdict = result.verdict
    deciding = budgets[verdict.deciding] if verdict.deciding is not None else None
    return ReplayedRequest(**base, would=verdict.decision, rule=deciding.rule if deciding else None,
                           limit=deciding.limit if deciding else None, reason=verdict.reason,
                           tokens_would=counted if result.charged else 0)


def _window(cache: dict[tuple, tuple[str, float]], spec: WindowSpec, ts: float) -> tuple[str, float]:
    """(label, end) of the window containing ts; cached per 15 minutes, since windows start at a
    local full hour and every zone's UTC offset is a multiple of 15 minutes."""
    key = (spec, int(ts // 900))
    if key not in cache:
        now = datetime.fromtimestamp(ts, timezone.utc)
        cache[key] = (window_label(spec, now), window_bounds(spec, now)[1].timestamp())
    return cache[key]


def _tokens_if_allowed(event: LedgerEvent, estimate: int) -> int:
    if event.decision == REFUSED:
        return estimate
    return event.tokens


def replay_period(store: Store, policy: Policy, start: datetime, end: datetime) -> ReplayResult:
    """Replay the store's ledger between two moments against a proposed policy."""
    events = store.ledger(start.timestamp(), end.timestamp())
    return replay(events, policy, {u.id: u for u in store.users()})


def compare(results: Mapping[str, ReplayResult], by: Optional[str] = None) -> list[dict]:
    """Side by side: one row per policy (by=None) or per value of `by`, with each policy's figures."""
    if by is None:
        return [{"policy": name, **result.totals()} for name, result in results.items()]
    rows: dict[str, dict] = {}
    for name, result in results.items():
        for row in result.by(by):
            merged = rows.setdefault(row[by], {by: row[by]})
            for field in ("requests", "refused", "warned", "tokens_saved"):
                merged[f"{name}: {field}"] = row[field]
    for merged in rows.values():
        for name in results:
            for field in ("requests", "refused", "warned", "tokens_saved"):
                merged.setdefault(f"{name}: {field}", 0)
    return sorted(rows.values(), key=lambda r: r[by])
