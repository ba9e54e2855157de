"""Reading actual token usage from any response shape seen in practice.

OpenAI `usage` (prompt/completion, with `prompt_tokens_details`), Ollama
`prompt_eval_count`/`eval_count`, Open WebUI's per-message `usage` on the
assistant message of an outlet body, Anthropic-style `input_tokens`/`output_tokens`,
and Gemini-style `usageMetadata`. Unknown shapes give None, never an exception.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Usage:
    """Actual tokens of one request, and where the numbers came from."""

    prompt_tokens: int
    completion_tokens: int
    source: str
    cached_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value == value and value != float("inf"):
        return int(value)
    return None


def from_usage_dict(usage: Any, source: str = "openai") -> Optional[Usage]:
    """A usage dict in any known shape, or None."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    kind = source
    # Open WebUI adds input/output_tokens; after tool-call rounds those are the summed ones.
    if _int(usage.get("input_tokens")) is not None or _int(usage.get("output_tokens")) is not None:
        prompt, completion = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        kind = "anthropic" if source == "openai" and "prompt_tokens" not in usage else source
    if prompt is None and completion is None:
        prompt, completion = _int(usage.get("prompt_eval_count")), _int(usage.get("eval_count"))
        kind = "ollama"
    if prompt is None and completion is None:
        prompt = _int(usage.get("promptTokenCount"))
        completion = _int(usage.get("candidatesTokenCount"))
        kind = "gemini"
    if prompt is None and completion is None:
        total = _int(usage.get("total_tokens"))
        if total is None:
            return None
        return Usage(0, total, source + ":total")
    cached = 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens")) or 0
    cached = cached or _int(usage.get("cache_read_input_tokens")) or 0
    return Usage(prompt or 0, completion or 0, kind, cached)


def from_response(body: Any) -> Optional[Usage]:
    """Usage in a provider response, a stream chunk, or an Open WebUI outlet body; None when absent."""
    try:
        return _from_response(body)
    except (RecursionError, AttributeError, TypeError, ValueError):
        return None


def _from_response(body: Any) -> Optional[Usage]:
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            found = from_usage_dict(last.get("usage"), "openwebui")
            if found is None and isinstance(last.get("info"), dict):
                found = from_usage_dict(last["info"].get("usage"), "openwebui")
            if found is not None:
                return found
    found = from_usage_dict(body.get("usage"), "openai")
    if found is not None:
        return found
    if _int(body.get("prompt_eval_count")) is not None or _int(body.get("eval_count")) is not None:
        return Usage(_int(body.get("prompt_eval_count")) or 0, _int(body.get("eval_count")) or 0, "ollama")
    found = from_usage_dict(body.get("usageMetadata"), "gemini")
    if found is not None:
        return found
    info = body.get("info")
    if isinstance(info, dict):
        return from_usage_dict(info.get("usage"), "openwebui")
    return None


def reply_text(body: Any) -> str:
    """The text of the reply in an outlet body or response (last assistant message), else ''."""
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        last = messages[-1]
        if last.get("role") == "assistant":
            return _as_text(last.get("content"))
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message") or choices[0].get("delta") or {}
        if isinstance(message, dict):
            return _as_text(message.get("content"))
    message = body.get("message")
    if isinstance(message, dict):
        return _as_text(message.get("content"))
    return ""


def _as_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) and isinstance(p.get("text"), str)
                       else p if isinstance(p, str) else "" for p in content)
    return ""
