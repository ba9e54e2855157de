"""Windows across reset hours, week starts, months and daylight-saving changes."""
from datetime import datetime, timedelta, timezone

import pytest

from tokenlimit_core.periods import WindowSpec, usage_day, window_bounds, window_label


def utc(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_day_window_with_reset_hour_in_shanghai():
    spec = WindowSpec("day", reset_hour=6, timezone="Asia/Shanghai")
    # 05:59 local on Dec 5 (21:59 UTC Dec 4) still belongs to the window of Dec 4.
    start, end = window_bounds(spec, utc("2026-12-04T21:59"))
    assert (start, end) == (utc("2026-12-03T22:00"), utc("2026-12-04T22:00"))
    assert window_label(spec, utc("2026-12-04T21:59")) == "2026-12-04"
    assert window_label(spec, utc("2026-12-04T22:00")) == "2026-12-05"


@pytest.mark.parametrize("zone, day, hours", [
    ("America/New_York", "2026-03-08", 23),  # spring forward
    ("America/New_York", "2026-11-01", 25),  # fall back
    ("Europe/Berlin", "2026-03-29", 23),
    ("Europe/Berlin", "2026-10-25", 25),
    ("Asia/Shanghai", "2026-03-08", 24),  # no daylight saving
    ("Asia/Shanghai", "2026-11-01", 24),
])
def test_dst_days_are_23_or_25_hours(zone, day, hours):
    spec = WindowSpec("day", reset_hour=0, timezone=zone)
    noon_local = datetime.fromisoformat(day + "T12:00").replace(tzinfo=__import__("zoneinfo").ZoneInfo(zone))
    start, end = window_bounds(spec, noon_local)
    assert end - start == timedelta(hours=hours)
    assert window_label(spec, noon_local) == day


def test_reset_hour_inside_the_spring_forward_gap():
    # 02:00 does not exist in New York on 2026-03-08; the window starts at 03:00 EDT (07:00 UTC).
    spec = WindowSpec("day", reset_hour=2, timezone="America/New_York")
    assert window_bounds(spec, utc("2026-03-08T06:59"))[1] == utc("2026-03-08T07:00")
    assert window_label(spec, utc("2026-03-08T07:00")) == "2026-03-08"


def test_reset_hour_inside_the_fall_back_overlap():
    # 01:00 happens twice in New York on 2026-11-01; the window starts at the first one.
    spec = WindowSpec("day", reset_hour=1, timezone="America/New_York")
    assert window_bounds(spec, utc("2026-11-01T05:30"))[0] == utc("2026-11-01T05:00")


def test_consecutive_windows_tile_without_gaps():
    spec = WindowSpec("day", reset_hour=3, timezone="Europe/Berlin")
    moment = utc("2026-03-20T00:00")
    for _ in range(20):
        start, end = window_bounds(spec, moment)
        assert window_bounds(spec, end)[0] == end
        assert window_bounds(spec, end - timedelta(microseconds=1))[1] == end
        moment = end


def test_week_starts_monday_by_default_and_configurable():
    monday = WindowSpec("week", timezone="UTC")
    start, end = window_bounds(monday, utc("2026-12-04T10:00"))  # a Friday
    assert start == utc("2026-11-30T00:00") and end == utc("2026-12-07T00:00")
    sunday = WindowSpec("week", timezone="UTC", week_start=6)
    assert window_bounds(sunday, utc("2026-12-04T10:00"))[0] == utc("2026-11-29T00:00")


def test_month_window_with_reset_hour():
    spec = WindowSpec("month", reset_hour=8, timezone="UTC")
    assert window_bounds(spec, utc("2026-12-01T07:59")) == (utc("2026-11-01T08:00"), utc("2026-12-01T08:00"))
    assert window_label(spec, utc("2026-12-31T23:00")) == "2026-12-01"
    assert window_bounds(spec, utc("2026-12-15T00:00"))[1] == utc("2027-01-01T08:00")


def test_usage_day_follows_reset_hour():
    spec = WindowSpec("week", reset_hour=5, timezone="UTC")
    assert usage_day(spec, utc("2026-12-04T04:00")) == "2026-12-03"


def test_bad_specs_name_the_value():
    with pytest.raises(ValueError, match="Mars/Base"):
        WindowSpec(timezone="Mars/Base")
    with pytest.raises(ValueError, match="reset_hour"):
        WindowSpec(reset_hour=25)
    with pytest.raises(ValueError, match="fortnight"):
        WindowSpec(kind="fortnight")
    with pytest.raises(ValueError, match="aware"):
        window_bounds(WindowSpec(), datetime(2026, 1, 1))
