"""The warm-up ramp: how much a WhatsApp number may send, and to how many new people, by its age in days.

WhatsApp publishes no limits for unofficial clients such as Evolution API (Baileys). These figures are Mirage's
conservative policy, not WhatsApp's; docs/adr/0018-warmup-ramp.md gives the reasoning and the sources
(Meta's Cloud API messaging tiers as the only published reference point, and the ban reports on Evolution API).
The lint rules `warmup-ramp` and `new-contacts-per-day` compare the configured volume with this table, and
the runtime quotas may later use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Step:
    """From day `from_day` of a number's life: at most `messages` sent and `new_contacts` first contacts a day."""

    from_day: int
    messages: int
    new_contacts: int


RAMP: tuple[Step, ...] = (
    Step(0, 20, 5),  # first days: a new phone talking to a few people
    Step(3, 40, 5),
    Step(7, 80, 10),
    Step(14, 150, 15),
    Step(21, 250, 20),
    Step(30, 400, 30),  # an established number; stays well under Meta's lowest Cloud API tier (250 people/day)
)
ESTABLISHED = RAMP[-1]


def age_in_days(started_on: date | None, today: date) -> int | None:
    """Days since the number started its warm-up (0 on the first day, and for a start in the future)."""
    if started_on is None:
        return None
    return max(0, (today - started_on).days)


def step_for(age: int | None) -> Step:
    """The ramp step for a number `age` days old; None (no warm-up date) means an established number."""
    if age is None:
        return ESTABLISHED
    current = RAMP[0]
    for step in RAMP:
        if age >= step.from_day:
            current = step
    return current


def daily_message_cap(started_on: date | None, today: date) -> int:
    """Most messages a day the ramp allows a number that started warming up on `started_on`."""
    return step_for(age_in_days(started_on, today)).messages


def new_contacts_cap(started_on: date | None, today: date) -> int:
    """Most first contacts with new people a day the ramp allows."""
    return step_for(age_in_days(started_on, today)).new_contacts
