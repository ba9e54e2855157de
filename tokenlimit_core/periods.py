"""Windows: which day, week or month a moment belongs to, in the admin's time zone.

A window starts at `reset_hour` local time on its first day and ends at the
next start; both are computed in local wall time and converted through
zoneinfo, so days are 23 or 25 hours long across daylight-saving changes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from time import monotonic
from typing import Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Kind = Literal["day", "week", "month"]


_ZONE_MEMO: list = [-1.0, None]


def local_zone_name() -> Optional[str]:
    """The server's local IANA zone name when it can be told, else None (then UTC offsets are used)."""
    now = monotonic()
    if now - _ZONE_MEMO[0] < 1.0:  # asked for every window of every request: remember it for a second
        return _ZONE_MEMO[1]
    _ZONE_MEMO[:] = [now, _local_zone_name()]
    return _ZONE_MEMO[1]


def _local_zone_name() -> Optional[str]:
    import os

    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    try:
        link = _localtime_target(int(monotonic() // 60))
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def _localtime_target(_minute: int) -> str:
    """Where /etc/localtime points; looked up at most once a minute (realpath costs ~25 µs, per window)."""
    import os

    return os.path.realpath("/etc/localtime")


def get_zone(name: Optional[str]):
    """A tzinfo for an IANA name; None means the server's local zone."""
    name = name or local_zone_name()
    if not name:
        return datetime.now().astimezone().tzinfo
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Asia/Shanghai')") from exc


@dataclass(frozen=True)
class WindowSpec:
    """How a limit's windows are cut: kind, reset hour, zone, first day of the week (0 = Monday)."""

    kind: Kind = "day"
    reset_hour: int = 0
    timezone: Optional[str] = None
    week_start: int = 0

    def __post_init__(self):
        if self.kind not in ("day", "week", "month"):
            raise ValueError(f"window must be day, week or month, not {self.kind!r}")
        if not 0 <= self.reset_hour <= 23:
            raise ValueError(f"reset_hour must be 0-23, not {self.reset_hour}")
        get_zone(self.timezone)


def _at(day: date, hour: int, zone) -> datetime:
    """Local wall time `hour`:00 on `day`, as an aware UTC datetime (gaps resolve forward)."""
    local = datetime.combine(day, time(hour), tzinfo=zone)
    return local.astimezone(timezone.utc)


def _first_day(kind: Kind, day: date, week_start: int) -> date:
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=(day.weekday() - week_start) % 7)
    return day.replace(day=1)


def _next_first_day(kind: Kind, first: date) -> date:
    if kind == "day":
        return first + timedelta(days=1)
    if kind == "week":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _previous_first_day(kind: Kind, first: date, week_start: int) -> date:
    return _first_day(kind, first - timedelta(days=1), week_start)


def _window(spec: WindowSpec, now: datetime) -> tuple[date, datetime, datetime]:
    if now.tzinfo is None:
        raise ValueError("windows need an aware datetime")
    zone = get_zone(spec.timezone)
    first = _first_day(spec.kind, now.astimezone(zone).date(), spec.week_start)
    start = _at(first, spec.reset_hour, zone)
    if now < start:
        first = _previous_first_day(spec.kind, first, spec.week_start)
        start = _at(first, spec.reset_hour, zone)
    end = _at(_next_first_day(spec.kind, first), spec.reset_hour, zone)
    return first, start, end


_RECENT: dict[tuple, tuple[date, datetime, datetime]] = {}


def _cached_window(spec: WindowSpec, now: datetime) -> tuple[date, datetime, datetime]:
    """`_window`, remembered per spec while `now` stays inside the window (the hot path asks every request)."""
    if now.tzinfo is None:
        raise ValueError("windows need an aware datetime")
    key = (spec, spec.timezone or local_zone_name())
    hit = _RECENT.get(key)
    if hit is not None and hit[1] <= now < hit[2]:
        return hit
    found = _window(spec, now)
    if len(_RECENT) > 1024:
        _RECENT.clear()
    _RECENT[key] = found
    return found


def window_bounds(spec: WindowSpec, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the window containing `now` (an aware datetime)."""
    _, start, end = _cached_window(spec, now)
    return start, end


def window_label(spec: WindowSpec, now: datetime) -> str:
    """A stable id for the window containing `now`: its first local day, e.g. '2026-12-04'."""
    return _cached_window(spec, now)[0].isoformat()


def usage_day(spec: WindowSpec, now: datetime) -> str:
    """The accounting day (local date, shifted by reset hour) a moment belongs to."""
    return window_label(WindowSpec("day", spec.reset_hour, spec.timezone, spec.week_start), now)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)
