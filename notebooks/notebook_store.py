"""What every notebook does first: open the store it is pointed at, or stop with a clear message.

Opens `STORE_URL` (else `TOKEN_LIMIT_STORE_URL`, else the default store),
fills a store that is entirely empty with demo data (and says so), and turns
any `StoreError` into `NotebookStop`, which Jupyter shows as a short message
instead of a traceback and which stops "Run all" at that cell.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from pydantic import ValidationError

REPO = pathlib.Path(__file__).resolve().parent.parent
if importlib.util.find_spec("tokenlimit_core") is None:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from tokenlimit_core import Policy, Store, StoreError, default_store_url, open_store, redact_url  # noqa: E402


class NotebookStop(Exception):
    """Stops a notebook with a message for the reader; IPython shows it without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return ["⛔ " + line for line in str(self).splitlines()]


@dataclass(frozen=True)
class Opened:
    """The store a notebook works on, what it says about it, and the period under study."""

    store: Store
    url: str  # redacted: safe to print
    policy: Policy
    start: datetime
    end: datetime
    demo: bool  # the store was empty and now holds demo data

    @property
    def first_day(self) -> str:
        return self.start.date().isoformat()

    @property
    def last_day(self) -> str:
        return self.end.date().isoformat()


def open_for_notebook(url: Optional[str] = None, *, period_days: int = 30, demo_if_empty: bool = True,
                      demo_users: int = 60, demo_days: int = 30, need_usage: bool = True) -> Opened:
    """Open the store, fill it with demo data when it is empty, and check it has usage in the period."""
    if period_days < 1:
        raise NotebookStop(f"PERIOD_DAYS must be at least 1, not {period_days}")
    url = url or default_store_url()
    shown = redact_url(url)
    end = datetime.now(timezone.utc)
    start = end - timedelta(days=period_days)
    try:
        store = open_store(url)
        demo = False
        if _is_empty(store, start, end):
            if not demo_if_empty:
                raise NotebookStop(f"The store {shown} is empty (no policy, no users, no usage).\n"
                                   f"存储 {shown} 为空。Set DEMO_IF_EMPTY = True to fill it with demo data.")
            from tokenlimit_core.demo import generate

            summary = generate(store, users=demo_users, days=demo_days)
            demo = True
            print(f"The store {shown} was empty: it now holds demo data ({summary.users} users, "
                  f"{summary.days} days, {summary.requests:,} requests).\n"
                  f"存储 {shown} 原为空，已填入演示数据（{summary.users} 位用户，{summary.days} 天，"
                  f"{summary.requests:,} 个请求）。")
        policy = _stored_policy(store, shown)
        if need_usage and not store.daily_usage(start.date().isoformat(), end.date().isoformat()):
            raise NotebookStop(f"The store {shown} has no usage between {start:%Y-%m-%d} and {end:%Y-%m-%d}.\n"
                               f"存储 {shown} 在此期间没有用量。Raise PERIOD_DAYS in the parameters cell.")
    except StoreError as exc:
        raise NotebookStop(f"The store {shown} cannot be used: {exc}\n"
                           f"无法使用存储 {shown}。Check STORE_URL in the parameters cell or the "
                           f"TOKEN_LIMIT_STORE_URL variable; nothing was changed.") from None
    print(f"Store 存储: {shown} · period 期间: {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC")
    return Opened(store, shown, policy, start, end, demo)


def _stored_policy(store: Store, shown: str) -> Policy:
    record = store.load_policy()
    if record is None:
        return Policy()
    try:
        return Policy.from_json(record.policy_json)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}" for e in exc.errors())
    except ValueError as exc:  # not JSON at all
        detail = str(exc)
    raise NotebookStop(f"The policy stored in {shown} (revision {record.revision}) is invalid: {detail}\n"
                       f"存储 {shown} 中的策略无效；nothing was changed.")


def _is_empty(store: Store, start: datetime, end: datetime) -> bool:
    """No policy, no users and no usage in the period: nothing an admin would miss."""
    return (store.policy_revision() == 0 and not store.users()
            and not store.daily_usage(start.date().isoformat(), end.date().isoformat()))


def output_folder(name: str) -> pathlib.Path:
    """The folder findings are exported to (relative names are beside the notebooks); created if needed."""
    folder = pathlib.Path(name).expanduser()
    if not folder.is_absolute():
        folder = REPO / "notebooks" / folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotebookStop(f"OUT_DIR {str(folder)!r} cannot be created: {exc.strerror}") from None
    return folder


def stamp() -> str:
    """A timestamp for file names, e.g. '20261204-2015'."""
    return time.strftime("%Y%m%d-%H%M")
