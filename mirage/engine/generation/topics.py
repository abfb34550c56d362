"""Which topic a conversation talks about now: active date ranges in the tenant's zone, refresh, four strategies.

    rotate    the next active topic in key order, every `topic_refresh_minutes`
    random    any other active topic, uniformly, every refresh
    weighted  any other active topic, in proportion to its `weight`, every refresh
    sticky    keep the current topic while it is active; when it ends, the next in key order

The runtime keeps the current pick (key and since when) and passes it back; the key goes on every message as
`meta.topic`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mirage.engine.calendar import local_date
from mirage.engine.generation.model import TopicLike


@dataclass(frozen=True, slots=True)
class TopicPick:
    """The topic in force: its key (None when no topic is active) and when it was chosen."""

    key: str | None
    since: datetime | None
    changed: bool = False


def active_keys(topics: Mapping[str, TopicLike], today: date) -> list[str]:
    """Keys of the topics whose active_from..active_to (inclusive, either open) holds `today`, sorted."""
    return sorted(
        k
        for k, t in topics.items()
        if (t.active_from is None or t.active_from <= today) and (t.active_to is None or today <= t.active_to)
    )


def choose_topic(
    topics: Mapping[str, TopicLike],
    strategy: str,
    current: TopicPick | None,
    now: datetime,
    tz: str,
    refresh_minutes: int,
    rng: random.Random,
    today: date | None = None,
) -> TopicPick:
    """The topic for a message at `now`: the current one while it is active and fresh, else a new pick.

    `strategy` is rotate | random | weighted | sticky (anything else rotates); `today`: the date at `now` in `tz`
    when the caller knows it already (the tick), else worked out here.
    """
    keys = active_keys(topics, local_date(now, tz) if today is None else today)
    held = current.key if current is not None and current.key in keys else None
    if not keys:
        return TopicPick(None, None, changed=current is not None and current.key is not None)
    if held is not None and current is not None and current.since is not None:
        fresh = now - current.since < timedelta(minutes=refresh_minutes)
        if fresh or strategy == "sticky":
            return current if not current.changed else TopicPick(current.key, current.since)
    previous = current.key if current is not None else None
    others = [k for k in keys if k != previous] or keys
    if strategy == "weighted":
        key = rng.choices(others, weights=[max(1, int(topics[k].weight)) for k in others])[0]
    elif strategy == "random":
        key = rng.choice(others)
    else:
        key = _next_after(keys, previous)
    return TopicPick(key, now, changed=key != previous)


def _next_after(keys: list[str], previous: str | None) -> str:
    if previous is None:
        return keys[0]
    return next((k for k in keys if k > previous), keys[0])
