"""What the Function and the Pipelines filter share: valves, users, pairing, charging and settling.

Both adapters are thin: they turn Open WebUI's arguments into a `UserInfo`, a
model id and a request id, call the `Engine` in a worker thread (so the host's
event loop is never held by tokenizing or by a file lock), and turn the
`Decision` into a refusal, a warning or `usage_info`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, Field, ValidationError, create_model

from ..engine import Decision, Engine, QuotaExceeded
from ..settings import ENV_NAMES, Settings, SettingsError, parse_env_value
from ..store import StoreError, UserInfo, open_store, redact_url
from ..usage import Usage, from_response, from_usage_dict

log = logging.getLogger("tokenlimit.openwebui")

# The key the inlet puts into Open WebUI's per-request `__metadata__` dict (same object at the outlet).
PAIRING_KEY = "tokenlimit"
JSON_VALVES = ("daily_token_limits", "model_token_limits", "user_specific_limits")


class CommonValves(BaseModel):
    """Valves of both filters; defaults come from `TOKEN_LIMIT_*` when the filter object is created."""

    daily_token_limits: str = Field(default='{"user": 10000, "premium": 50000, "admin": -1}',
                                    description="JSON: role or tier -> tokens per window (-1 unlimited, 0 blocks). "
                                                "Seeds an empty store only.")
    model_token_limits: str = Field(default="{}", description="JSON: model id or glob -> tokens per user per window. "
                                                             "Seeds an empty store only.")
    user_specific_limits: str = Field(default="{}", description='JSON: {"user id": {"daily_limit": N, "models": '
                                                               '{"gpt-4": N}}}. Seeds an empty store only.')
    enable_token_estimation: bool = Field(default=True, description="Charge an estimate at the inlet (off: admit "
                                                                    "while any quota is left; the outlet charges usage)")
    warning_threshold: float = Field(default=0.8, ge=0, le=1, description="Warn from this fraction of a limit")
    data_path: str = Field(default="", description="The original filter's usage file; the store goes beside it "
                                                   "unless store_url is set")
    include_usage_info: bool = Field(default=True, description="Add usage_info to the outlet body")
    reset_hour: int = Field(default=0, ge=0, le=23, description="Hour (0-23) at which windows reset")
    target_models: str = Field(default="*", description="Comma-separated model ids or globs to meter; * = all")
    store_url: str = Field(default="", description="tinydb:///dir or redis://host:port/db; empty = "
                                                   "$DATA_DIR/tokenlimit")
    timezone: str = Field(default="", description="IANA zone for resets, e.g. Asia/Shanghai; empty = server's")
    language: Literal["en", "zh"] = Field(default="en", description="Language of refusals and warnings")
    failure_mode: Literal["allow", "block"] = Field(default="allow", description="When the store is unreachable")
    show_warnings: bool = Field(default=True, description="Tell users when they pass the warning threshold")
    refuse_tasks: bool = Field(default=False, description="Refuse background tasks (titles, tags) over the limit "
                                                          "too. Seeds an empty store only.")


def valves_with_env_defaults(valves_class: type[BaseModel], environ: Optional[Mapping[str, str]] = None,
                             ) -> type[BaseModel]:
    """A subclass of `valves_class` whose defaults are the `TOKEN_LIMIT_*` variables that are set."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name, var in ENV_NAMES.items():
        if name not in valves_class.model_fields or environ.get(var, "").strip() == "":
            continue
        value = parse_env_value(name, var, environ[var])
        raw[name] = json.dumps(value) if name in JSON_VALVES else value
    if not raw:
        return valves_class
    try:
        checked = valves_class(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{ENV_NAMES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid setting: {problems}") from exc
    overrides = {name: (valves_class.model_fields[name].annotation,
                        Field(default=getattr(checked, name), description=valves_class.model_fields[name].description))
                 for name in raw}
    return create_model(valves_class.__name__, __base__=valves_class, **overrides)


def settings_from_valves(valves: BaseModel) -> Settings:
    """The `Settings` the valves describe; errors name the valve."""
    values = valves.model_dump()
    for name in JSON_VALVES:
        text = values.get(name)
        if isinstance(text, str):
            try:
                values[name] = json.loads(text) if text.strip() else {}
            except json.JSONDecodeError as exc:
                raise SettingsError(f"valve {name} is not valid JSON ({exc.msg} at character {exc.pos})") from exc
    return Settings.load({k: v for k, v in values.items() if k in Settings.model_fields}, environ={})


def preload_tokenizers() -> None:
    """Load the tokenizers in a background thread now, not on a user's first request (never raises)."""
    def load():
        try:
            from ..tokenizer import preload

            preload()
        except Exception as exc:  # a missing tokenizer only makes estimates coarser
            log.info("tokenlimit: tokenizer preload skipped (%s)", exc)

    threading.Thread(target=load, name="tokenlimit-preload", daemon=True).start()


class EngineCache:
    """One Engine per (store, failure mode, seed); rebuilt when the valves that shape it change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key: Optional[tuple] = None
        self._engine: Optional[Engine] = None

    def get(self, valves: BaseModel) -> Engine:
        """The engine for these valves (opens the store the first time; call it off the event loop)."""
        settings = settings_from_valves(valves)
        seed = settings.seed_policy().model_copy(update={"refuse_tasks": bool(getattr(valves, "refuse_tasks", False))})
        url = settings.resolved_store_url()
        key = (url, settings.failure_mode, settings.enable_token_estimation, seed.to_json())
        with self._lock:
            if self._key != key or self._engine is None:
                store = open_store(url)
                log.info("tokenlimit uses the store %s", redact_url(url))
                self._engine = Engine(store, seed=seed, failure_mode=settings.failure_mode,
                                      estimation=settings.enable_token_estimation)
                self._key = key
            return self._engine


def engine_for(cache: EngineCache, valves: BaseModel) -> Optional[Engine]:
    """The engine, or None when the valves or the store are broken and failure_mode is allow (logged)."""
    try:
        return cache.get(valves)
    except (SettingsError, StoreError, OSError, ValueError) as exc:
        log.error("tokenlimit cannot start (%s); failure_mode %r applies", exc, getattr(valves, "failure_mode", "allow"))
        if getattr(valves, "failure_mode", "allow") == "block":
            from .. import messages

            raise QuotaExceeded(messages.text("unavailable", getattr(valves, "language", "en"))) from exc
        return None


def user_info(user: Any, groups: tuple[str, ...] = ()) -> Optional[UserInfo]:
    """The user Open WebUI passed (`__user__` or the Pipelines `user`), or None without an id."""
    if not isinstance(user, Mapping):
        return None
    uid = user.get("id")
    if not isinstance(uid, str) or not uid:
        return None

    def text(key: str) -> str:
        value = user.get(key)
        return value if isinstance(value, str) else ""

    return UserInfo(uid, text("name"), text("email"), text("role") or "user", tuple(groups))


def source_of(metadata: Any, default: str) -> str:
    """'webui' when the request comes from a chat in the web UI, else `default` ('api' or 'pipeline')."""
    if isinstance(metadata, Mapping) and (metadata.get("chat_id") or metadata.get("session_id")):
        return "webui"
    return default


def task_of(metadata: Any) -> Optional[str]:
    """The background task name (title_generation, tags_generation, ...) or None."""
    task = metadata.get("task") if isinstance(metadata, Mapping) else None
    return task if isinstance(task, str) and task else None


def model_id(body: Any, fallback: Any = None) -> str:
    """The model id of a request body."""
    model = body.get("model") if isinstance(body, Mapping) else None
    if not isinstance(model, str) or not model:
        model = fallback.get("id") if isinstance(fallback, Mapping) else None
    return model if isinstance(model, str) else ""


def base_model_of(model: Any) -> Optional[str]:
    """A custom (workspace) model's base model id from Open WebUI's `__model__`."""
    info = model.get("info") if isinstance(model, Mapping) else None
    base = info.get("base_model_id") if isinstance(info, Mapping) else None
    return base if isinstance(base, str) and base else None


def new_request_id(message_id: Any, task: Optional[str], engine: Engine) -> str:
    """The id a request is charged under: the web UI's message id when unused, else a fresh one."""
    if isinstance(message_id, str) and message_id:
        candidate = f"{message_id}:{task}" if task else message_id
        if engine.store.get_event(candidate) is None:
            return candidate
        return f"{candidate}:{uuid.uuid4().hex[:8]}"  # "continue response" reuses the message id
    return uuid.uuid4().hex


def engine_and_decision(cache: EngineCache, valves: BaseModel, user: UserInfo, model: str, body: Any, **request
                        ) -> tuple[Optional[Engine], Optional[Decision]]:
    """The engine for these valves and its decision on one request; (None, None) when the store is unusable."""
    engine = engine_for(cache, valves)
    if engine is None:
        return None, None
    return engine, check(engine, user, model, body, **request)


def check(engine: Engine, user: UserInfo, model: str, body: Any, *, message_id: Any, base_model: Optional[str],
          source: str, task: Optional[str]) -> Decision:
    """Charge one request (blocking: run it in a worker thread)."""
    try:
        request_id = new_request_id(message_id, task, engine)
    except Exception as exc:  # the store's own errors are the engine's to report
        log.debug("request id lookup failed: %s", exc)
        request_id = uuid.uuid4().hex
    decision = engine.check(user, model, body, request_id=request_id, base_model=base_model, source=source,
                            task=task)
    if task and decision.allowed and decision.estimate is not None:
        # Background tasks never reach an outlet: their estimate is what they cost.
        estimate = decision.estimate
        engine.settle(decision.request_id, usage=Usage(estimate.prompt, estimate.completion, "estimate"))
    return decision


def refusal(engine: Engine, decision: Decision, language: str) -> Optional[QuotaExceeded]:
    """The exception that stops a refused request, or None when it may pass."""
    if decision.allowed:
        if decision.status == "shadow_denied":
            log.info("shadow mode: request %s would have been refused", decision.request_id)
        return None
    return QuotaExceeded(engine.refusal_text(decision, language), decision)


def reply_message(body: Any, message_id: Optional[str]) -> Optional[dict]:
    """The assistant message of this request in an outlet body (by id when given, else the last one)."""
    messages = body.get("messages") if isinstance(body, Mapping) else None
    if not isinstance(messages, list):
        return None
    if message_id:
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("id") == message_id and message.get("role") == "assistant":
                return message
    last = messages[-1] if messages else None
    return last if isinstance(last, dict) and last.get("role") == "assistant" else None


def stream_usage(event: Any) -> Optional[dict]:
    """The usage dict of a streamed chunk (the final `include_usage` chunk), or None."""
    if isinstance(event, Mapping) and isinstance(event.get("usage"), Mapping):
        usage = dict(event["usage"])
        return usage if from_usage_dict(usage, "openai") is not None else None
    return None


def settle(engine: Engine, request_id: str, body: Any, reply_id: Optional[str],
           streamed: Optional[dict] = None):
    """Settle one request with this reply's usage (message, then stream, then an estimate); once only."""
    message = reply_message(body, reply_id)
    reply_body = {"messages": [message]} if message is not None else {}
    usage = from_response(reply_body) if message is not None else None
    if usage is None and message is None:
        usage = from_response(body)
    usage = usage or (from_usage_dict(streamed, "openai") if streamed else None)
    return engine.settle(request_id, reply_body, usage=usage)


def settle_unpaired(engine: Engine, user: UserInfo, model: str, body: Any):
    """Settle by the outlet body's id when the inlet charged under it, else the user's oldest pending request."""
    reply_id = body.get("id") if isinstance(body, Mapping) else None
    if isinstance(reply_id, str) and reply_id:
        try:
            event = engine.store.get_event(reply_id)
        except Exception as exc:
            log.debug("event lookup failed: %s", exc)
            event = None
        if event is not None:
            return settle(engine, reply_id, body, reply_id)
    try:
        oldest = engine.store.oldest_pending(user.id, model)
    except Exception as exc:
        log.warning("cannot find the pending request of %s on %s: %s", user.id, model, exc)
        return None
    return settle(engine, oldest, body, reply_id) if oldest else None


def usage_info(engine: Engine, user: UserInfo, model: str, base_model: Optional[str], settled) -> dict:
    """The original filter's `usage_info` for the outlet body."""
    current = settled.tokens if settled is not None else 0
    return engine.usage_info(user, model, current, base_model)


def usage_line(engine: Engine, user: UserInfo, model: str, base_model: Optional[str], current: int,
               language: str, only_near_limit: bool, threshold: float) -> Optional[str]:
    """A short usage line for the reply (Pipelines filter), or None when not near the limit."""
    from .. import messages

    try:
        statuses = engine.statuses(user, model, base_model)
    except Exception as exc:
        log.debug("usage line skipped: %s", exc)
        return None
    limited = [s for s in statuses if not s.budget.unlimited and s.budget.limit > 0]
    if not limited:
        return None
    tightest = max(limited, key=lambda s: (s.counter.used + s.counter.pending) / (s.budget.limit + s.counter.granted))
    used = tightest.counter.used + tightest.counter.pending
    if only_near_limit and used < threshold * (tightest.budget.limit + tightest.counter.granted):
        return None
    zone = engine.policy().timezone
    return messages.text("usage_line", language, engine.policy().messages, current=current, used=used,
                         limit=tightest.budget.limit, window=messages.text(tightest.budget.window.kind, language),
                         reset_at=messages.format_time(tightest.reset_at, zone))
