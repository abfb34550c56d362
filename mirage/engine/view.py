"""The effective runtime view of a conversation: one pure function from stored rows to what the runtime obeys.

Precedence is the loader's (docs/configuration.md): tenant `defaults:` were merged into the conversation when
the YAML was loaded, so the rows already carry them; a conversation setting left null inherits the tenant's
(`effective_settings`, also what `mirage lint` uses, so the two can never disagree). A row the runtime cannot
make sense of (an enabled window without times, a pairing to a number that is not an active participant)
raises ViewError, and the tick skips that conversation with one log line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from typing import Any

from mirage.config.types import DAYPARTS, DOWS
from mirage.engine.calendar import is_valid_timezone
from mirage.errors import MirageError

Row = Mapping[str, Any]
INHERITED = ("min_delay_ms", "max_delay_ms", "hourly_burst_limit", "humanize", "allow_bot_to_bot")


class ViewError(MirageError):
    """A conversation's rows do not describe something the runtime can run."""

    def __init__(self, conversation: str, reason: str) -> None:
        self.conversation, self.reason = conversation, reason
        super().__init__(f"conversation {conversation}: {reason}")


@dataclass(frozen=True)
class Effective:
    """Cadence and limits after precedence: the conversation's value when set, else the tenant's."""

    min_delay_ms: int
    max_delay_ms: int
    hourly_burst_limit: int
    daily_limit: int
    humanize: bool
    allow_bot_to_bot: bool
    guard_no_echo: bool


def effective_settings(tenant: Row, conversation: Row | None) -> Effective:
    """The settings a conversation runs with: each of its non-null overrides beats the tenant's value."""
    conv = conversation or {}
    merged: dict[str, Any] = {k: conv.get(k) if conv.get(k) is not None else tenant[k] for k in INHERITED}
    low, high = int(merged["min_delay_ms"]), int(merged["max_delay_ms"])
    return _effective(
        low,
        max(low, high),  # an override of only the floor may pass the tenant's ceiling
        int(merged["hourly_burst_limit"]),
        int(tenant["daily_limit"]),
        bool(merged["humanize"]),
        bool(merged["allow_bot_to_bot"]),
        bool(conv.get("guard_no_echo", True)),
    )


@lru_cache(maxsize=4096)
def _effective(
    low: int, high: int, hourly: int, daily: int, humanize: bool, allow_bot_to_bot: bool, guard_no_echo: bool
) -> Effective:  # a fleet repeats a few combinations: the tick builds each once
    return Effective(low, high, hourly, daily, humanize, allow_bot_to_bot, guard_no_echo)


def parse_hhmm(value: Any) -> time:
    """`"07:30"` or a time -> time; ValueError otherwise."""
    if type(value) is str:
        return _parse_hhmm(value)
    if isinstance(value, time):
        return value
    raise ValueError(f"not a HH:MM time: {value!r}")


@lru_cache(maxsize=4096)
def _parse_hhmm(value: str) -> time:  # a fleet uses a few dozen distinct times: the tick parses each once
    if len(value) == 5 and value[2] == ":":
        return time(int(value[:2]), int(value[3:]))
    raise ValueError(f"not a HH:MM time: {value!r}")


@dataclass(frozen=True)
class Window:
    daypart: str
    start: time
    end: time


@dataclass(frozen=True)
class Day:
    """One weekday: its open windows in daypart order, the round cap per window and the pause range (minutes)."""

    windows: tuple[Window, ...]
    max_rounds_per_window: int
    pause_min: int
    pause_max: int


CLOSED_DAY = Day((), 0, 0, 0)


@dataclass(frozen=True)
class NumberView:
    id: str
    key: str
    wa_number: str
    status: str
    active: bool
    paused_reason: str | None
    warmup_started_on: date | None
    persona_id: str | None

    @property
    def can_send(self) -> bool:
        return self.active and self.status == "open" and self.paused_reason is None


@dataclass(frozen=True)
class Pair:
    """Two bot numbers that may hold a round, and who opens it: 'a', 'b' or 'either'."""

    a: str
    b: str
    starts: str
    pairing_id: str | None = None


@dataclass(frozen=True)
class Persona:
    id: str
    key: str
    name: str
    style: str
    greetings: Mapping[str, Sequence[str]]
    phrases: Mapping[str, Sequence[str]]
    emoji_rate: float


@dataclass(frozen=True)
class Topic:
    id: str
    key: str
    seed: str
    system_prompt: str
    active_from: date | None
    active_to: date | None
    weight: int

    def active_on(self, day: date) -> bool:
        return (self.active_from is None or self.active_from <= day) and (
            self.active_to is None or day <= self.active_to
        )


@dataclass(frozen=True)
class ConversationView:
    """Everything the runtime needs to plan and run one conversation's rounds."""

    tenant_id: str
    tenant_slug: str
    timezone: str
    quiet: tuple[time, time]
    id: str
    key: str
    mode: str
    exchanges_min: int
    exchanges_max: int
    topic_strategy: str
    topic_refresh_minutes: int
    settings: Effective
    week: Mapping[str, Day]
    pairs: tuple[Pair, ...]  # in configuration order (start_order for participants)
    numbers: Mapping[str, NumberView]  # the participating bot numbers by id
    personas: Mapping[str, Persona]  # by id
    topics: tuple[Topic, ...]

    def day(self, dow: str) -> Day:
        return self.week.get(dow, CLOSED_DAY)


_PARTS = tuple((part, f"{part}_enabled", f"{part}_window") for part in DAYPARTS)
_DAYS: dict[tuple[Any, ...], Day] = {}  # schedule rows already read, by what they say (a fleet repeats a few)


def _day(conversation: str, row: Row) -> Day:
    key: list[Any] = [row.get("max_rounds_per_window"), row.get("pause_between_rounds_min")]
    key.append(row.get("pause_between_rounds_max"))
    for _, enabled, window in _PARTS:
        if not row.get(enabled):
            key.append(False)
            continue
        span = row.get(window)
        if type(span) is not dict:
            return _read_day(conversation, row)
        key.append((span.get("start"), span.get("end")))
    try:
        got = _DAYS.get(tuple(key))
    except TypeError:  # an unhashable value: read it the long way
        return _read_day(conversation, row)
    if got is None:
        got = _read_day(conversation, row)  # raises ViewError for a bad row: only good ones are kept
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        _DAYS[tuple(key)] = got
    return got


def _read_day(conversation: str, row: Row) -> Day:
    windows = []
    for part, enabled, window in _PARTS:
        if not row.get(enabled):
            continue
        span = row.get(window)
        # dict first: the ABC check of Mapping is slow, and the tick reads thousands of rows
        if (
            not (type(span) is dict or isinstance(span, Mapping))
            or span.get("start") is None
            or span.get("end") is None
        ):
            raise ViewError(conversation, f"{row.get('day')} {part} window is enabled but has no start/end")
        try:
            start, end = parse_hhmm(span["start"]), parse_hhmm(span["end"])
        except ValueError as e:
            raise ViewError(conversation, f"{row.get('day')} {part} window: {e}") from None
        if end <= start:
            raise ViewError(conversation, f"{row.get('day')} {part} window ends before it starts")
        windows.append(_window(part, start, end))
    low, high = int(row["pause_between_rounds_min"]), int(row["pause_between_rounds_max"])
    return _interned_day(tuple(windows), int(row["max_rounds_per_window"]), low, max(low, high))


@lru_cache(maxsize=4096)
def _interned_day(windows: tuple[Window, ...], max_rounds: int, low: int, high: int) -> Day:
    # A fleet repeats a few schedules: equal days are one object, so the tick finds each one's window once.
    return Day(windows, max_rounds, low, high)


@lru_cache(maxsize=4096)
def _window(part: str, start: time, end: time) -> Window:
    return Window(part, start, end)


def number_view(row: Row | NumberView) -> NumberView:
    if isinstance(row, NumberView):
        return row
    return NumberView(
        id=str(row["id"]),
        key=str(row["key"]),
        wa_number=str(row["wa_number"]),
        status=str(row["status"]),
        active=bool(row["active"]),
        paused_reason=row.get("paused_reason"),
        warmup_started_on=row.get("warmup_started_on"),
        persona_id=str(row["persona_id"]) if row.get("persona_id") else None,
    )


def persona_view(row: Row | Persona) -> Persona:
    if isinstance(row, Persona):
        return row
    phrases = row.get("phrases") or {}
    return Persona(
        id=str(row["id"]),
        key=str(row["key"]),
        name=str(row["name"]),
        style=str(row.get("style") or ""),
        greetings={p: tuple(row.get(f"greeting_{p}") or ()) for p in DAYPARTS},
        phrases={str(k): tuple(v) for k, v in phrases.items() if isinstance(v, list)},
        emoji_rate=float(row.get("emoji_rate") or 0),
    )


def _persona_views(personas: Mapping[str, Row | Persona]) -> Mapping[str, Persona]:
    """The personas as views; a mapping of views already (one per tenant, built by the caller) is shared as is."""
    if all(isinstance(p, Persona) for p in personas.values()):
        return personas  # type: ignore[return-value]
    return {str(i): persona_view(r) for i, r in personas.items()}


def _name(numbers: Mapping[str, Row], number_id: str) -> str:
    return str(numbers[number_id]["key"]) if number_id in numbers else "(deleted or inactive)"


def _pairs(
    conversation: str, participants: Sequence[Row], pairings: Sequence[Row], numbers: Mapping[str, Row]
) -> list[Pair]:
    bots = [p for p in participants if p.get("participant_kind") == "bot" and p.get("number_id") is not None]
    bot_ids = {str(p["number_id"]) for p in bots}
    if pairings:
        out = []
        for pr in pairings:
            if pr.get("number_b_id") is None:
                continue  # bot<->human belongs to outreach, not to conversation rounds
            a, b = str(pr["number_a_id"]), str(pr["number_b_id"])
            for side in (a, b):
                if side not in bot_ids or side not in numbers:
                    raise ViewError(
                        conversation,
                        f"pairing {_name(numbers, a)}-{_name(numbers, b)} names number {_name(numbers, side)}, "
                        "not an active participant",
                    )
            out.append(Pair(a, b, str(pr.get("starts") or "a"), str(pr["id"])))
        return out
    ordered = sorted(
        (p for p in bots if str(p["number_id"]) in numbers),
        key=lambda p: (
            p.get("role") == "responder",
            int(p.get("start_order") or 0),
            str(numbers[str(p["number_id"])]["key"]),
        ),
    )
    out = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            if first.get("role") == "responder" and second.get("role") == "responder":
                continue
            starts = "either" if first.get("role") == second.get("role") == "any" else "a"
            out.append(Pair(str(first["number_id"]), str(second["number_id"]), starts))
    return out


def conversation_view(
    tenant: Row,
    tenant_settings: Row,
    conversation: Row,
    conversation_settings: Row | None,
    schedule: Sequence[Row],
    participants: Sequence[Row],
    pairings: Sequence[Row],
    topics: Sequence[Row],
    numbers: Mapping[str, Row],
    personas: Mapping[str, Row | Persona],
    number_views: Mapping[str, NumberView] | None = None,
) -> ConversationView:
    """The effective view of one conversation; `numbers` / `personas` are the tenant's active rows by id
    (personas may come already built, once per tenant, by a caller building many views; so may the numbers'
    views, `number_views`, built from the same rows)."""
    key = str(conversation["key"])
    tz = str(tenant.get("timezone") or "America/Sao_Paulo")
    if not is_valid_timezone(tz):
        raise ViewError(key, f"unknown time zone {tz!r}")
    quiet_row = tenant_settings.get("quiet_hours") or {"start": "22:00", "end": "07:00"}
    try:
        quiet = (parse_hhmm(quiet_row["start"]), parse_hhmm(quiet_row["end"]))
    except (KeyError, ValueError, TypeError) as e:
        raise ViewError(key, f"tenant quiet hours unreadable: {e}") from None
    week = {str(r["day"]): _day(key, r) for r in schedule}
    unknown_days = set(week) - set(DOWS)
    if unknown_days:
        raise ViewError(key, f"schedule has unknown days {sorted(unknown_days)}")
    pairs = _pairs(key, participants, pairings, numbers)
    used = {n for p in pairs for n in (p.a, p.b)}
    return ConversationView(
        tenant_id=str(tenant["id"]),
        tenant_slug=str(tenant.get("slug") or ""),
        timezone=tz,
        quiet=quiet,
        id=str(conversation["id"]),
        key=key,
        mode=str(conversation.get("mode") or "pair"),
        exchanges_min=int(conversation["exchanges_min"]),
        exchanges_max=max(int(conversation["exchanges_min"]), int(conversation["exchanges_max"])),
        topic_strategy=str(conversation.get("topic_strategy") or "rotate"),
        topic_refresh_minutes=int(conversation.get("topic_refresh_minutes") or 180),
        settings=effective_settings(tenant_settings, conversation_settings),
        week=week,
        pairs=tuple(pairs),
        numbers={i: number_views[i] if number_views else number_view(numbers[i]) for i in sorted(used)},
        personas=_persona_views(personas),
        topics=tuple(
            Topic(
                id=str(t["id"]),
                key=str(t["key"]),
                seed=str(t["seed"]),
                system_prompt=str(t.get("system_prompt") or ""),
                active_from=t.get("active_from"),
                active_to=t.get("active_to"),
                weight=int(t.get("weight") or 1),
            )
            for t in sorted(topics, key=lambda t: str(t["key"]))
        ),
    )
