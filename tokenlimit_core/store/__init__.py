"""Stores by URL: `memory://`, `tinydb:///dir`, `redis://host:port/db`.

Backends register in `BACKENDS` (scheme -> "module:Class"); a backend's
optional dependency is imported only when a store of that scheme is opened.
"""
from __future__ import annotations

import importlib
import os
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from .base import (SCHEMA_VERSION, AuditEntry, BudgetCharge, ChargeRequest, ChargeResult, Counter,
                   CounterKey, DailyUsage, LedgerEvent, PolicyRecord, Settlement, Store, StoreError,
                   StoreUnavailable, UserInfo, Verdict, judge)

BACKENDS: dict[str, str] = {
    "memory": "tokenlimit_core.store.memory:MemoryStore",
    "tinydb": "tokenlimit_core.store.tinydb_store:TinyDBStore",
    "redis": "tokenlimit_core.store.redis_store:RedisStore",
    "rediss": "tokenlimit_core.store.redis_store:RedisStore",
}


def default_store_url() -> str:
    """`TOKEN_LIMIT_STORE_URL`, else tinydb in `$DATA_DIR/tokenlimit`, else `./tokenlimit-data`."""
    url = os.environ.get("TOKEN_LIMIT_STORE_URL", "").strip()
    if url:
        return url
    data_dir = os.environ.get("DATA_DIR", "").strip()
    folder = os.path.join(data_dir, "tokenlimit") if data_dir else os.path.abspath("tokenlimit-data")
    return "tinydb://" + folder


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and the panel."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable store URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def open_store(url: Optional[str] = None, **options) -> Store:
    """Open the store a URL names (default: `default_store_url()`)."""
    url = url or default_store_url()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in BACKENDS:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise StoreError(f"store URL {redact_url(url)!r}: unknown scheme; use one of {known} "
                         "(set with TOKEN_LIMIT_STORE_URL, the filter's store_url valve, or --store)")
    module_name, class_name = BACKENDS[scheme].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = "redis" if scheme.startswith("redis") else scheme
        raise StoreError(f"the {scheme}:// store needs an optional dependency ({exc.name}): "
                         f"pip install 'tokenlimit[{extra}]'") from exc
    return getattr(module, class_name).from_url(url, **options)


__all__ = [
    "AuditEntry", "BACKENDS", "BudgetCharge", "ChargeRequest", "ChargeResult", "Counter", "CounterKey",
    "DailyUsage", "LedgerEvent", "PolicyRecord", "SCHEMA_VERSION", "Settlement", "Store", "StoreError",
    "StoreUnavailable", "UserInfo", "Verdict", "default_store_url", "judge", "open_store", "redact_url",
]
