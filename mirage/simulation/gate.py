"""When a conversation tick can start a round (pure): the driver skips the ticks the planner would certainly
answer with a Skip for every conversation (outside windows, a round running, pausing, the window's rounds all
run), so a virtual week costs the ticks that matter. Idle ticks still run every 15 virtual minutes, so a gate
that is wrong can only delay a round, never start one the planner would not (ADR 0038)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from mirage.engine.calendar import local_datetime
from mirage.engine.rounds import DOW_OF_WEEKDAY, RoundRecord, pause_minutes
from mirage.engine.view import ConversationView


def window_open(view: ConversationView, now: datetime) -> bool:
    local = local_datetime(now, view.timezone)
    return any(w.start <= local.time() < w.end for w in view.day(DOW_OF_WEEKDAY[local.weekday()]).windows)


def may_start(view: ConversationView, rounds: Sequence[RoundRecord], now: datetime) -> bool:
    """False only when plan_conversation would Skip for a reason that depends on time and rounds alone."""
    local = local_datetime(now, view.timezone)
    day = view.day(DOW_OF_WEEKDAY[local.weekday()])
    window = next((w for w in day.windows if w.start <= local.time() < w.end), None)
    if window is None:
        return False
    if any(r.status in ("planned", "active") for r in rounds):
        return False
    in_window = [r for r in rounds if r.window_date == local.date() and r.daypart == window.daypart]
    if len(in_window) >= day.max_rounds_per_window:
        return False
    last = max(rounds, key=lambda r: r.finished_at or r.created_at, default=None)
    if last is None:
        return True
    ended = last.finished_at or last.created_at
    return now >= ended + timedelta(minutes=pause_minutes(view, last, (day.pause_min, day.pause_max)))


def any_may_start(views: Iterable[ConversationView], rounds: dict[str, list[RoundRecord]], now: datetime) -> bool:
    return any(may_start(v, rounds.get(v.id, []), now) for v in views)
