"""Calibration from live traffic, and applying a calibration to the stored policy.

The ledger keeps, per settled request, our prompt estimate, the provider's
actual prompt count and where the request came from. Web-UI requests grow
after the filter's inlet (Open WebUI adds tool definitions, RAG context and
model system prompts), so web-UI and API traffic are fitted apart: API traffic
gives the scale and overhead, web-UI traffic on top of that its extra overhead.
Nothing here changes a calibration by itself: `apply` does, when an admin says so.
"""
from __future__ import annotations

import fnmatch
import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

import numpy as np

from .calibrate_solve import line_fit
from .policy import Calibration, Policy
from .store.base import LedgerEvent, Store

log = logging.getLogger("tokenlimit.calibrate")

# Every prompt coefficient that a scale multiplies (the web-UI overhead is fitted on its own).
SCALED = ("tokens", "han", "kana_hangul", "cyrillic", "per_message", "per_name", "per_image", "han_tokens",
          "other_tokens", "cjk_punct", "hangul", "latin_ext", "non_ascii", "digits", "space_han")
MIN_EVENTS = 20


def fit_from_ledger(events: Iterable[LedgerEvent], current: Calibration, *, model: Optional[str] = None,
                    min_events: int = MIN_EVENTS) -> dict[str, Calibration]:
    """Calibrations fitted to settled requests: {"api": ..., "webui": ...} for each source with enough events.

    actual ≈ a + b·estimate is fitted by relative least squares. "api" is
    `current` scaled by b with a added to its overhead. "webui" builds on the
    API fit when there is one and sets `webui_overhead` to the median extra
    tokens of web-UI requests; without API traffic it takes its own scale and
    puts the intercept into `webui_overhead`. Pass events estimated with
    `current` (i.e. since it was applied) and, with `model`, only that model's
    (a glob, also matched against the base model).
    """
    groups: dict[str, list[LedgerEvent]] = {"api": [], "webui": []}
    for event in events:
        if not _usable(event, model):
            continue
        groups["webui" if event.source == "webui" else "api"].append(event)
    out: dict[str, Calibration] = {}
    base: Optional[tuple[float, float]] = None
    api = groups["api"]
    if len(api) >= min_events:
        estimate, actual = _pairs(api, current, webui=False)
        base = line_fit(estimate, actual)
        out["api"] = _scaled(current, *base, webui_overhead=current.webui_overhead,
                             note=_note("api", api))
    webui = groups["webui"]
    if len(webui) >= min_events:
        estimate, actual = _pairs(webui, current, webui=True)
        if base is not None:
            a, b = base
            extra = float(np.median(actual - (a + b * estimate)))
        else:
            extra, b = line_fit(estimate, actual)
            a = 0.0
        if extra < 0:
            log.info("web-UI requests used %.0f tokens fewer than API requests of the same estimate; "
                     "keeping webui_overhead at 0", -extra)
        out["webui"] = _scaled(current, a, b, webui_overhead=max(0.0, extra), note=_note("webui", webui))
    return out


def _usable(event: LedgerEvent, model: Optional[str]) -> bool:
    if event.status != "settled" or not event.actual_prompt or event.actual_prompt <= 0 or event.est_prompt <= 0:
        return False
    if model is None:
        return True
    return any(fnmatch.fnmatchcase(m, model) for m in (event.model, event.base_model) if m)


def _pairs(events: list[LedgerEvent], current: Calibration, *, webui: bool) -> tuple[np.ndarray, np.ndarray]:
    """(estimate without the web-UI overhead, actual) per event."""
    shift = current.webui_overhead if webui else 0.0
    estimate = np.array([e.est_prompt - shift for e in events], dtype=float)
    return estimate, np.array([e.actual_prompt for e in events], dtype=float)


def _scaled(current: Calibration, a: float, b: float, *, webui_overhead: float, note: str) -> Calibration:
    update: dict[str, Any] = {name: round(getattr(current, name) * b, 6) for name in SCALED}
    update["overhead"] = round(current.overhead * b + a, 6)
    update["webui_overhead"] = round(webui_overhead, 3)
    update["fitted_on"] = note
    return current.model_copy(update=update)


def _note(source: str, events: list[LedgerEvent]) -> str:
    first, last = min(e.ts for e in events), max(e.ts for e in events)
    days = f"{datetime.fromtimestamp(first, timezone.utc):%Y-%m-%d}–{datetime.fromtimestamp(last, timezone.utc):%Y-%m-%d}"
    return f"ledger: {len(events)} settled {source} requests, {days}"


def apply(store: Store, model_pattern: str, calibration: Calibration, actor: str,
          twin: Optional[Calibration] = None) -> int:
    """Write `calibration` for `model_pattern` into the store's policy and audit it; returns the new revision.

    `twin` (from `calibrate.fit_family`) goes under "<model_pattern>@<its encoding>"; without
    one, a twin stored earlier stays: it still maps cl100k_base counts to the provider's.
    """
    if not isinstance(model_pattern, str) or not model_pattern.strip() or "@" in model_pattern:
        raise ValueError("model_pattern must name a model id or glob without '@', e.g. 'gpt-4o*'")
    if not actor:
        raise ValueError("actor must say who applies the calibration (it goes to the audit log)")
    calibration = Calibration.model_validate(calibration.model_dump())
    entries = {model_pattern: calibration}
    if twin is not None:
        if not twin.encoding or twin.encoding == calibration.encoding:
            raise ValueError("the twin calibration must be fitted on another encoding than the calibration")
        entries[f"{model_pattern}@{twin.encoding}"] = Calibration.model_validate(twin.model_dump())
    for _attempt in range(3):
        record = store.load_policy()
        if record is None:
            raise ValueError(f"store {store.url} has no policy yet: start the filter or the panel once so it "
                             "writes one, then apply the calibration")
        policy = Policy.from_json(record.policy_json)
        before = policy.calibration.get(model_pattern)
        updated = policy.model_copy(update={"calibration": {**policy.calibration, **entries}})
        text = Policy.from_json(updated.to_json()).to_json()
        if store.policy_revision() != record.revision:
            continue  # someone saved in between: start again from their policy
        revision = store.save_policy(text, actor)
        store.audit(actor, "calibration", {"model": model_pattern, "revision": revision,
                                           "fitted_on": calibration.fitted_on,
                                           "before": before.model_dump() if before else None,
                                           "after": calibration.model_dump(),
                                           "twin": twin.model_dump() if twin is not None else None})
        return revision
    raise RuntimeError(f"the policy in {store.url} kept changing while applying the calibration; try again")
