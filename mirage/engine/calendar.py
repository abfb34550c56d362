"""Wall-clock spans of a day (windows, quiet hours that may cross midnight) and time-zone helpers; all pure.

A span is half-open, [start, end): 22:00-07:00 holds 22:00 and 06:59 but not 07:00. A span whose end is not
after its start wraps past midnight; start == end is empty. Minutes of the day are 0..1439.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time
from functools import cache

DAY_MINUTES = 24 * 60

Interval = tuple[int, int]  # [a, b) in minutes of one day, 0 <= a < b <= 1440

# Where outreach dayparts fall (conversations set their own windows); quiet hours still win.
DAYPART_SPANS: dict[str, tuple[time, time]] = {
    "morning": (time(6, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(18, 0)),
    "evening": (time(18, 0), time(0, 0)),  # to midnight
}


def minute_of_day(t: time) -> int:
    """Minutes since midnight, seconds dropped."""
    return t.hour * 60 + t.minute


def crosses_midnight(start: time, end: time) -> bool:
    """True when the span wraps past midnight (end before start)."""
    return minute_of_day(end) < minute_of_day(start)


def intervals(start: time, end: time) -> list[Interval]:
    """The span as one or two non-wrapping intervals of the day ([] when empty)."""
    s, e = minute_of_day(start), minute_of_day(end)
    if s == e:
        return []
    if s < e:
        return [(s, e)]
    return [(s, DAY_MINUTES)] + ([(0, e)] if e > 0 else [])


def span_minutes(start: time, end: time) -> int:
    """Length of the span in minutes (22:00-07:00 -> 540)."""
    return sum(b - a for a, b in intervals(start, end))


def contains(start: time, end: time, t: time) -> bool:
    """Whether the wall-clock time `t` falls inside the span."""
    m = minute_of_day(t)
    return any(a <= m < b for a, b in intervals(start, end))


def overlap_minutes(a: tuple[time, time], b: tuple[time, time]) -> int:
    """How many minutes two spans share."""
    return sum(max(0, min(e1, e2) - max(s1, s2)) for s1, e1 in intervals(*a) for s2, e2 in intervals(*b))


def overlaps(a: tuple[time, time], b: tuple[time, time]) -> bool:
    """Whether two spans share at least one minute (touching ends do not overlap)."""
    return overlap_minutes(a, b) > 0


def inside(inner: tuple[time, time], outer: tuple[time, time]) -> bool:
    """Whether every minute of a non-empty `inner` span is also in `outer`."""
    length = span_minutes(*inner)
    return length > 0 and overlap_minutes(inner, outer) == length


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def is_valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA time zone known to this system (zoneinfo)."""
    return bool(name) and _zone(name) is not None


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The ZoneInfo for a valid IANA name; ValueError otherwise."""
    z = _zone(name)
    if z is None:
        raise ValueError(f"unknown time zone {name!r}")
    return z


FALLBACK_ZONE = "UTC"


def tenant_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone a tenant's days and hours are counted in: `name`, or UTC when this system does not know it.

    The same rule as SQL's `public.tenant_zones` view (ADR 0021), so a daily quota and the daily metrics
    count the same day. `mirage validate` refuses unknown zones; this covers rows edited by hand and tzdata
    that differs between Python and Postgres.
    """
    return _zone(name) or _zone(FALLBACK_ZONE) or zoneinfo.ZoneInfo(FALLBACK_ZONE)


def local_datetime(now: datetime, tz: str) -> datetime:
    """`now` (timezone-aware) as wall-clock time in the tenant zone `tz` (UTC when unknown: tenant_zone)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(tenant_zone(tz))


def local_date(now: datetime, tz: str) -> date:
    """The tenant's date at the instant `now` in the zone `tz` (UTC when unknown: tenant_zone)."""
    return local_datetime(now, tz).date()
