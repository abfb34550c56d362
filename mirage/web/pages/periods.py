"""The period filter of every page (`?period=today|7d|30d|custom&from=&to=`), resolved against the tenant's time
zone and a given `now`. Pure: no clock, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mirage.engine.calendar import tenant_zone

PERIODS = ("today", "7d", "30d", "custom")
DEFAULT = "7d"
MAX_DAYS = 92  # the views keep 92 days


@dataclass(frozen=True)
class Period:
    name: str  # today | 7d | 30d | custom
    since: date  # first local day, inclusive
    until: date  # last local day, inclusive
    today: date
    zone: str

    @property
    def days(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    def start(self) -> datetime:
        """The instant the first day begins (tenant time zone), tz-aware."""
        return datetime.combine(self.since, time(), ZoneInfo(self.zone))

    def end(self) -> datetime:
        """The instant after the last day ends."""
        return datetime.combine(self.until + timedelta(days=1), time(), ZoneInfo(self.zone))

    def today_start(self) -> datetime:
        return datetime.combine(self.today, time(), ZoneInfo(self.zone))

    @property
    def includes_today(self) -> bool:
        return self.since <= self.today <= self.until

    def query(self) -> dict[str, str]:
        """The URL parameters that select this period again."""
        if self.name == "custom":
            return {"period": "custom", "from": self.since.isoformat(), "to": self.until.isoformat()}
        return {"period": self.name}


def zone_name(name: str | None) -> str:
    """The tenant's zone when Python knows it, else UTC: the one rule of a tenant's day (ADR 0021)."""
    return tenant_zone(name or "").key


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def resolve(params: Mapping[str, str], zone: str, now: datetime) -> Period:
    """The period `params` ask for; anything malformed falls back to the default, a custom range is clamped
    to the 92 days the views keep and to today."""
    today = now.astimezone(ZoneInfo(zone)).date()
    name = params.get("period", DEFAULT)
    if name == "today":
        return Period("today", today, today, today, zone)
    if name == "30d":
        return Period("30d", today - timedelta(days=29), today, today, zone)
    if name == "custom":
        since, until = _day(params.get("from")), _day(params.get("to"))
        if since is not None and until is not None:
            until = min(until, today)
            since = max(min(since, until), today - timedelta(days=MAX_DAYS - 1))
            until = max(until, since)
            return Period("custom", since, until, today, zone)
    return Period("7d", today - timedelta(days=6), today, today, zone)
