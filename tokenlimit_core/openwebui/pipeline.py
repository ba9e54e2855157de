"""The Open WebUI Pipelines filter (`class Pipeline`, `type = "filter"`), for the Pipelines server.

It sees only `{id, email, name, role}` of the user (no groups) and the model id
Open WebUI routes to (no base model of custom models). It has no event
emitter: near the limit it appends a short usage line to the reply in the
outlet. Background tasks reach its inlet (never its outlet) and are settled
at their estimate at once. A refusal raises; Open WebUI 0.12.4 shows it only
as "Internal Server Error" (use the Function to show users the reason).
"""
from __future__ import annotations

import asyncio
import logging
from typing import List, Literal

from . import adapter_common as common

log = logging.getLogger("tokenlimit.openwebui.pipeline")


class Pipeline:
    """Charges at the inlet, settles at the outlet; one Pipelines-server filter for every model."""

    class Valves(common.CommonValves):
        pipelines: List[str] = ["*"]
        priority: int = 0
        usage_line: Literal["near_limit", "always", "never"] = "near_limit"

    def __init__(self):
        self.type = "filter"
        self.name = "Token Limit"
        # TOKEN_LIMIT_* are read now, into the valve defaults; the server calls self.Valves(**posted).
        self.Valves = common.valves_with_env_defaults(type(self).Valves)
        self.valves = self.Valves()
        self._engines = common.EngineCache()

    async def on_startup(self):
        """Open the store and load tokenizers early; never raises (an exception here stops the whole server)."""
        common.preload_tokenizers()
        await self._warm_up()

    async def on_shutdown(self):
        """Nothing to release: stores close with the process."""

    async def on_valves_updated(self):
        """Apply new valves now (the server replaced them all; omitted ones are back to defaults)."""
        await self._warm_up()

    async def _warm_up(self):
        valves = self.valves
        try:
            await asyncio.to_thread(common.engine_for, self._engines, valves)
        except Exception as exc:
            log.error("tokenlimit: %s", exc)

    async def inlet(self, body: dict, user: dict) -> dict:
        """Charge the request's estimate; raise with the reason when it does not fit."""
        valves = self.valves
        info = common.user_info(user)
        if info is None or not isinstance(body, dict):
            log.warning("tokenlimit: request without a user id passes unmetered")
            return body
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        model = common.model_id(body)
        task = common.task_of(metadata)
        source = common.source_of(metadata, "pipeline")

        engine, decision = await asyncio.to_thread(
            common.engine_and_decision, self._engines, valves, info, model, body,
            message_id=metadata.get("message_id"), base_model=None, source=source, task=task)
        if decision is None:
            return body
        refused = common.refusal(engine, decision, valves.language)
        if refused is not None:
            raise refused
        return body

    async def outlet(self, body: dict, user: dict) -> dict:
        """Settle with the actual usage (by message id, else the oldest pending request); add usage_info."""
        valves = self.valves
        info = common.user_info(user)
        if info is None or not isinstance(body, dict):
            return body
        model = common.model_id(body)

        def finish():
            try:
                engine = common.engine_for(self._engines, valves)
            except common.QuotaExceeded:
                return None, None
            if engine is None:
                return None, None
            settled = common.settle_unpaired(engine, info, model, body)
            current = settled.tokens if settled is not None else 0
            line = None
            if valves.usage_line == "always" or (valves.usage_line == "near_limit" and valves.show_warnings):
                line = common.usage_line(engine, info, model, None, current, valves.language,
                                         only_near_limit=valves.usage_line != "always",
                                         threshold=engine.policy().warning_threshold)
            usage = common.usage_info(engine, info, model, None, settled) if valves.include_usage_info else None
            return usage, line

        usage, line = await asyncio.to_thread(finish)
        if usage is not None:
            body["usage_info"] = usage
        if line:
            message = common.reply_message(body, body.get("id") if isinstance(body.get("id"), str) else None)
            if message is not None and isinstance(message.get("content"), str):
                message["content"] = message["content"].rstrip() + "\n\n---\n" + line
        return body
