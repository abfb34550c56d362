"""Quota arithmetic (ADR 0027): which counters a send touches, their limits and how long they live (pure).

Two counters per bot number: the clock hour (UTC; `hourly_burst_limit`) and the tenant-local day
(`daily_limit`, lowered by the warm-up ramp for young numbers). Redis holds them for speed; Postgres is the
truth they are rebuilt from (`t_messages` that left or may have left: sending, sent, unknown and later states).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from mirage.engine.calendar import local_datetime, tenant_zone
from mirage.engine.ramp import daily_message_cap

# Statuses of outgoing messages that count against a quota: anything that left, or may have left.
COUNTED_STATUSES = ("sending", "sent", "unknown", "delivered", "read")


@dataclass(frozen=True)
class Bucket:
    """One counter: its Redis key, the limit, the span of time it counts (UTC, half-open) and a TTL."""

    key: str
    limit: int
    start: datetime
    end: datetime

    @property
    def ttl_s(self) -> int:
        # Kept a little past its span so a late claim in the same span never sees a missing key.
        return int((self.end - self.start).total_seconds()) + 3600


def daily_limit(tenant_daily_limit: int, warmup_started_on: date | None, today: date) -> int:
    """Most messages a number may send on `today` (tenant-local): the tenant's limit, capped by the ramp."""
    return min(tenant_daily_limit, daily_message_cap(warmup_started_on, today))


@dataclass(frozen=True)
class QuotaClock:
    """The spans the counters of a send at one instant in one tenant zone count: the same for every number, so a
    caller asking for many numbers (the tick) works them out once."""

    hour_start: datetime  # UTC
    hour_tag: str
    day: date  # tenant-local
    day_tag: str
    day_start: datetime  # UTC
    day_end: datetime  # UTC


@lru_cache(maxsize=1024)
def quota_clock(now: datetime, tz: str) -> QuotaClock:
    """The (hour, day) spans at `now` in the zone `tz` (UTC when unknown: tenant_zone)."""
    hour_start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = local_datetime(now, tz)
    day_start_local = datetime.combine(local.date(), datetime.min.time(), tzinfo=tenant_zone(tz))
    day_end_local = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tenant_zone(tz))
    return QuotaClock(
        hour_start,
        f"{hour_start:%Y%m%d%H}",
        local.date(),
        f"{local.date():%Y%m%d}",
        day_start_local.astimezone(UTC),
        day_end_local.astimezone(UTC),
    )


def counter_keys(number_id: str, clock: QuotaClock) -> tuple[str, str]:
    """The Redis keys of a number's (hour, day) counters."""
    return f"mirage:quota:{number_id}:h:{clock.hour_tag}", f"mirage:quota:{number_id}:d:{clock.day_tag}"


def buckets(
    number_id: str,
    now: datetime,
    tz: str,
    *,
    hourly_limit: int,
    tenant_daily_limit: int,
    warmup_started_on: date | None,
) -> tuple[Bucket, Bucket]:
    """The (hour, day) counters a send from `number_id` at `now` goes into."""
    clock = quota_clock(now, tz)
    hour_key, day_key = counter_keys(number_id, clock)
    hour = Bucket(hour_key, hourly_limit, clock.hour_start, clock.hour_start + timedelta(hours=1))
    day = Bucket(
        day_key,
        daily_limit(tenant_daily_limit, warmup_started_on, clock.day),
        clock.day_start,
        clock.day_end,
    )
    return hour, day


def headroom(used: tuple[int, int], limits: tuple[int, int]) -> int:
    """How many more messages fit in both counters."""
    return max(0, min(limits[0] - used[0], limits[1] - used[1]))
