"""One clock for every run-time decision (ADR 0025): the wall clock in production, a scaled or settable one elsewhere.

A clock answers two questions: what time it is for the rules (`now`), and when, on the wall, a moment of that
time comes (`wall_time`), so that a job scheduled for a rule's instant runs at the right real moment. Nothing in
the runtime calls `datetime.now()` or SQL `now()` to decide: it asks the clock it was given.

Spec strings (`MIRAGE_CLOCK`) let every process of a deployment or a test share one clock:
  * `wall` (or empty): real time;
  * `scaled:<origin ISO-8601>@<wall epoch seconds>x<factor>`: time starts at `origin` at that wall instant and
    runs `factor` times faster (tests go through a weekday in minutes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where `now` comes from."""

    def now(self) -> datetime:
        """The current instant (timezone-aware UTC)."""
        ...

    def wall_time(self, when: datetime) -> datetime:
        """The real instant at which this clock reads `when` (what RQ's scheduler is given)."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wall_time(self, when: datetime) -> datetime:
        return when

    def __repr__(self) -> str:
        return "WallClock()"


@dataclass(frozen=True)
class ScaledClock:
    """Time that reads `origin` at the wall instant `wall_origin` (epoch seconds) and runs `factor` times faster."""

    origin: datetime
    wall_origin: float
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        if self.factor <= 0:
            raise ValueError("factor must be positive")

    def now(self) -> datetime:
        return self.at_wall(time.time())

    def at_wall(self, wall: float) -> datetime:
        """What this clock reads at the wall instant `wall` (epoch seconds)."""
        return (self.origin + timedelta(seconds=(wall - self.wall_origin) * self.factor)).astimezone(UTC)

    def wall_time(self, when: datetime) -> datetime:
        seconds = (when - self.origin).total_seconds() / self.factor
        return datetime.fromtimestamp(self.wall_origin + seconds, UTC)

    def scale(self, delta: timedelta) -> timedelta:
        """How long `delta` of this clock lasts on the wall."""
        return delta / self.factor

    @property
    def spec(self) -> str:
        return f"scaled:{self.origin.isoformat()}@{self.wall_origin!r}x{self.factor!r}"


@dataclass
class SettableClock:
    """A clock that moves only when told (tests, and the virtual time of `mirage simulate`)."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")

    def now(self) -> datetime:
        return self.current

    def wall_time(self, when: datetime) -> datetime:
        return when

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self.current = when

    def advance(self, delta: timedelta) -> datetime:
        self.current = self.current + delta
        return self.current


def clock_from_spec(spec: str | None) -> Clock:
    """The clock a `MIRAGE_CLOCK` value describes; ValueError naming the problem otherwise."""
    text = (spec or "").strip()
    if text in ("", "wall"):
        return WallClock()
    if text.startswith("scaled:"):
        body = text.removeprefix("scaled:")
        try:
            origin_text, rest = body.rsplit("@", 1)
            wall_text, factor_text = rest.split("x", 1)
            origin = datetime.fromisoformat(origin_text)
            return ScaledClock(origin, float(wall_text), float(factor_text))
        except ValueError as e:
            raise ValueError(f"clock {text!r}: expected scaled:<ISO time>@<epoch seconds>x<factor> ({e})") from None
    raise ValueError(f"clock {text!r}: use wall or scaled:<ISO time>@<epoch seconds>x<factor>")
