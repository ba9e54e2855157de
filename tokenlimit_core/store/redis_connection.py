"""Connecting to Redis for the store: URL options, short timeouts, errors that never show a password.

Store options may be given in the URL's query (`redis://host:6379/0?prefix=tl:&stream_maxlen=50000`)
or as keyword arguments to `open_store`; every other query parameter goes to redis-py as usual
(`socket_timeout`, `ssl_ca_certs`, `ssl_cert_reqs`, ...).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import redact_url
from .base import StoreError, StoreUnavailable


@dataclass(frozen=True)
class RedisOptions:
    """How the store uses its Redis: key prefix, stream cap, retention, timeouts."""

    prefix: str = "tokenlimit:"
    stream_maxlen: int = 100_000  # ledger stream entries kept (approximately); 0 = no stream
    ledger_days: int = 0  # drop ledger events this many days after they happened; 0 = keep all
    counter_grace: int = 86_400  # seconds a counter outlives its window (late settles still count)
    socket_timeout: float = 1.0  # seconds; an answer slower than this is an outage
    connect_timeout: float = 1.0

    def __post_init__(self):
        checks = {"stream_maxlen": self.stream_maxlen >= 0, "ledger_days": self.ledger_days >= 0,
                  "counter_grace": self.counter_grace >= 0, "socket_timeout": self.socket_timeout > 0,
                  "connect_timeout": self.connect_timeout > 0, "prefix": bool(self.prefix)}
        for name, ok in checks.items():
            if not ok:
                raise StoreError(f"Redis store option {name}={getattr(self, name)!r} is out of range "
                                 f"(TOKEN_LIMIT_STORE_URL query or open_store option)")


OPTION_TYPES = {"prefix": str, "stream_maxlen": int, "ledger_days": int, "counter_grace": int,
                "socket_timeout": float, "connect_timeout": float}


def split_options(url: str, overrides: dict[str, Any]) -> tuple[str, RedisOptions]:
    """The URL without the store's own query options, and those options (keyword arguments win)."""
    parts = urlsplit(url)
    ours: dict[str, Any] = {}
    theirs = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in OPTION_TYPES:
            ours[name] = value
        else:
            theirs.append((name, value))
    ours.update({k: v for k, v in overrides.items() if k in OPTION_TYPES})
    unknown = sorted(set(overrides) - set(OPTION_TYPES))
    if unknown:
        raise StoreError(f"unknown Redis store option(s) {', '.join(unknown)}; known: {', '.join(OPTION_TYPES)}")
    typed = {}
    for name, value in ours.items():
        try:
            typed[name] = OPTION_TYPES[name](value)
        except (TypeError, ValueError):
            raise StoreError(f"Redis store option {name}={value!r} in {display_url(url)!r} must be "
                             f"a {OPTION_TYPES[name].__name__}") from None
    return urlunsplit(parts._replace(query=urlencode(theirs))), RedisOptions(**typed)


def connect(url: str, options: RedisOptions) -> redis.Redis:
    """A client with short timeouts and one immediate reconnect attempt (no backoff: outages fail fast)."""
    try:
        return redis.Redis.from_url(
            url, socket_timeout=options.socket_timeout, socket_connect_timeout=options.connect_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            decode_responses=False)
    except ValueError as exc:
        raise StoreError(f"bad Redis store URL {display_url(url)!r}: {exc}") from None


def secrets_of(url: str) -> list[str]:
    """The passwords in a URL (user info, or `password=` / `ssl_password=` query parameters)."""
    try:
        parts = urlsplit(url)
        found = [unquote(parts.password or "")]
    except ValueError:
        return []
    found += [value for name, value in parse_qsl(parts.query) if "password" in name.lower()]
    return [s for s in found if s]


def display_url(url: str) -> str:
    """The URL as logs, errors and the panel may show it: every password replaced by ***."""
    shown = redact_url(url)
    parts = urlsplit(shown)
    if "password" not in parts.query.lower():
        return shown
    query = [(n, "***" if "password" in n.lower() else v) for n, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*:/")))


class ErrorMapper:
    """Turns redis-py errors into StoreUnavailable / StoreError messages that name the store, never its password."""

    def __init__(self, url: str):
        self.shown = display_url(url)
        self._secrets = secrets_of(url)

    def scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    @contextlib.contextmanager
    def mapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
            raise StoreError(f"Redis store {self.shown} refused access ({self.scrub(str(exc))}) while trying to "
                             f"{what}: check the user and password in TOKEN_LIMIT_STORE_URL, and that the Redis "
                             f"user's ACL allows the store's key prefix") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ReadOnlyError, OSError) as exc:
            raise StoreUnavailable(f"Redis store {self.shown} is unreachable while trying to {what}: "
                                   f"{self.scrub(str(exc)) or type(exc).__name__}") from None
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis store {self.shown} failed to {what}: {self.scrub(str(exc))}") from None


SCRIPT_NAMES = ("charge", "settle", "refund", "grant", "reset", "policy", "put_event", "oldest", "events", "put_daily")


def load_scripts(client: redis.Redis) -> dict[str, Any]:
    """The store's Lua scripts, each with the shared helpers in front; they run by EVALSHA (reloaded on NOSCRIPT)."""
    folder = resources.files("tokenlimit_core.store")
    lib = (folder / "redis_lib.lua").read_text(encoding="utf-8")
    return {name: client.register_script(lib + "\n" + (folder / f"redis_{name}.lua").read_text(encoding="utf-8"))
            for name in SCRIPT_NAMES}
