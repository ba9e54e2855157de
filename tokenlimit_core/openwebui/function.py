"""The Open WebUI Function filter (`class Filter`): token quotas inside Open WebUI itself.

Open WebUI injects parameters by name and replaces `self.valves` without any
hook, so every call re-reads the valves; the engine (and its store) is cached
per store URL and seed. Store work runs in a worker thread: the event loop is
never held by tokenizing a huge paste or by waiting on a file lock.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from . import adapter_common as common

log = logging.getLogger("tokenlimit.openwebui.function")


class Filter:
    """Charges each chat request at the inlet and settles it with the real usage at the outlet."""

    class Valves(common.CommonValves):
        priority: int = 0

    def __init__(self):
        # TOKEN_LIMIT_* are read now, into the valve defaults; Open WebUI calls self.Valves(**saved).
        self.Valves = common.valves_with_env_defaults(type(self).Valves)
        self.valves = self.Valves()
        self._engines = common.EngineCache()
        # Loading an encoding holds the interpreter ~0.5 s: do it when the Function loads, not mid-chat.
        common.preload_tokenizers()

    async def inlet(self, body: dict, __user__: Optional[dict] = None, __metadata__: Optional[dict] = None,
                    __event_emitter__: Any = None, __model__: Optional[dict] = None) -> dict:
        """Charge the request's estimate; raise with the user's reason when it does not fit."""
        valves = self.valves
        user = common.user_info(__user__)
        if user is None or not isinstance(body, dict):
            log.warning("tokenlimit: request without a user id passes unmetered")
            return body
        metadata = __metadata__ if isinstance(__metadata__, dict) else {}
        model = common.model_id(body, __model__)
        base_model = common.base_model_of(__model__)
        groups = await _groups_of(user.id)
        if groups:
            user = common.UserInfo(user.id, user.name, user.email, user.role, groups)
        task = common.task_of(metadata)
        source = common.source_of(metadata, "api")

        engine, decision = await asyncio.to_thread(
            common.engine_and_decision, self._engines, valves, user, model, body,
            message_id=metadata.get("message_id"), base_model=base_model, source=source, task=task)
        if decision is None:
            return body
        refused = common.refusal(engine, decision, valves.language)
        if refused is not None:
            raise refused
        if decision.status not in ("unmetered",) and not task:
            # JSON-safe: Open WebUI may serialise the metadata it passes around.
            metadata[common.PAIRING_KEY] = {"request_id": decision.request_id, "stream_usage": None,
                                            "settled": False}
        if body.get("stream") is True and decision.status != "unmetered":
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        if decision.warned and valves.show_warnings and callable(__event_emitter__):
            await _emit_warning(__event_emitter__, engine.warning_text(decision, valves.language))
        return body

    def stream(self, event: dict, __metadata__: Optional[dict] = None) -> dict:
        """Keep the final usage chunk of a streamed reply for the outlet."""
        pairing = __metadata__.get(common.PAIRING_KEY) if isinstance(__metadata__, dict) else None
        if isinstance(pairing, dict):
            usage = common.stream_usage(event)
            if usage is not None:
                pairing["stream_usage"] = usage
        return event

    async def outlet(self, body: dict, __user__: Optional[dict] = None, __metadata__: Optional[dict] = None,
                     __model__: Optional[dict] = None) -> dict:
        """Settle the request with its actual usage and add `usage_info` to the body."""
        valves = self.valves
        user = common.user_info(__user__)
        if user is None or not isinstance(body, dict):
            return body
        metadata = __metadata__ if isinstance(__metadata__, dict) else {}
        pairing = metadata.get(common.PAIRING_KEY)
        model = common.model_id(body, __model__)
        base_model = common.base_model_of(__model__)
        reply_id = body.get("id") if isinstance(body.get("id"), str) else None

        def finish():
            try:
                engine = common.engine_for(self._engines, valves)
            except common.QuotaExceeded:
                engine = None
            if engine is None:
                return None
            settled = None
            if isinstance(pairing, dict) and isinstance(pairing.get("request_id"), str):
                if not pairing.get("settled"):
                    pairing["settled"] = True
                    settled = common.settle(engine, pairing["request_id"], body, reply_id,
                                            pairing.get("stream_usage"))
            elif reply_id:  # an outlet whose inlet ran elsewhere (e.g. /api/chat/completed)
                settled = common.settle(engine, reply_id, body, reply_id)
            if not valves.include_usage_info:
                return None
            return common.usage_info(engine, user, model, base_model, settled)

        info = await asyncio.to_thread(finish)
        if info is not None:
            body["usage_info"] = info
        return body


async def _groups_of(user_id: str) -> tuple[str, ...]:
    """The user's Open WebUI group names, when this runs inside Open WebUI (else none)."""
    try:
        from open_webui.models.groups import Groups
    except Exception:
        return ()
    try:
        found = Groups.get_groups_by_member_id(user_id)
        if asyncio.iscoroutine(found):
            found = await asyncio.wait_for(found, timeout=2)
        return tuple(g.name for g in found or () if getattr(g, "name", None))
    except Exception as exc:
        log.debug("tokenlimit: groups of %s unavailable: %s", user_id, exc)
        return ()


async def _emit_warning(emitter: Any, text: str) -> None:
    try:
        await emitter({"type": "status", "data": {"description": text, "done": True}})
        await emitter({"type": "notification", "data": {"type": "warning", "content": text}})
    except Exception as exc:  # an emitter without a chat (API outlet) raises TypeError
        log.debug("tokenlimit: warning not shown: %s", exc)
