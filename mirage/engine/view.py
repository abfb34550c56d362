"""The effective runtime view of a conversation: one pure function from stored rows to what the runtime obeys.

Precedence is the loader's (docs/configuration.md): tenant `defaults:` were merged into the conversation when
the YAML was loaded, so the rows already carry them; a conversation setting left null inherits the tenant's
(`effective_settings`, also what `mirage lint` uses, so the two can never disagree). A row the runtime cannot
make sense of (an enabled window without times, a pairing to a number that is not an active participant)
raises ViewError, and the tick skips that conversation with one log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from operator import itemgetter
from typing import Any

from mirage.config.types import DAYPARTS, DOWS
from mirage.engine.calendar import is_valid_timezone
from mirage.engine.quickinit import quick_init
from mirage.errors import MirageError

Row = Mapping[str, Any]
INHERITED = ("min_delay_ms", "max_delay_ms", "hourly_burst_limit", "humanize", "allow_bot_to_bot")


class ViewError(MirageError):
    """A conversation's rows do not describe something the runtime can run."""

    def __init__(self, conversation: str, reason: str) -> None:
        self.conversation, self.reason = conversation, reason
        super().__init__(f"conversation {conversation}: {reason}")


@quick_init
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


@quick_init
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


@quick_init
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


@quick_init
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


@quick_init
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
Week = Mapping[str, Day]


def week_view(conversation: str, schedule: Sequence[Row] | str) -> Week:
    """A conversation's weekdays from its schedule rows (or the same rows as one JSON array, how
    mirage/db/rounds.py loads them); ViewError for a day the runtime cannot run."""
    rows = json.loads(schedule) if isinstance(schedule, str) else schedule
    week = {str(r["day"]): _read_day(conversation, r) for r in rows}
    unknown_days = set(week) - set(DOWS)
    if unknown_days:
        raise ViewError(conversation, f"schedule has unknown days {sorted(unknown_days)}")
    return week


def _read_day(conversation: str, row: Row) -> Day:
    windows = []
    for part, enabled, window in _PARTS:
        if not row.get(enabled):
            continue
        span = row.get(window)
        if not isinstance(span, Mapping) or span.get("start") is None or span.get("end") is None:
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


def _name(numbers: Mapping[str, Row], number_id: str) -> str:
    return str(numbers[number_id]["key"]) if number_id in numbers else "(deleted or inactive)"


def _is_bot(p: Row) -> bool:
    return p.get("participant_kind") == "bot" and p.get("number_id") is not None


def _pairs(
    conversation: str, participants: Sequence[Row], pairings: Sequence[Row], numbers: Mapping[str, Row]
) -> list[Pair]:
    if pairings:
        bot_ids = {str(p["number_id"]) for p in participants if _is_bot(p)}
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
    # The active bot participants by (responders last, start order, number key), ties in participant order.
    bots: list[tuple[bool, int, str, int, str, Any]] = []
    for p in participants:
        if p.get("participant_kind") == "bot" and (number_id := p.get("number_id")) is not None:
            number_id = str(number_id)
            if number_id in numbers:
                role = p.get("role")
                order = int(p.get("start_order") or 0)
                bots.append((role == "responder", order, str(numbers[number_id]["key"]), len(bots), number_id, role))
    bots.sort()
    out = []
    for i, first in enumerate(bots):
        for second in bots[i + 1 :]:
            if first[5] == "responder" and second[5] == "responder":
                continue
            starts = "either" if first[5] == second[5] == "any" else "a"
            out.append(Pair(first[4], second[4], starts))
    return out


def _topic_key(t: Row) -> str:
    return str(t["key"])


_SETTINGS_KEY = itemgetter(*INHERITED, "guard_no_echo")
_UNSHARED = object()


class TenantViews:
    """Builds the views of one tenant's conversations (`conversation_view` is this for one conversation: the
    runtime, `mirage status`, the simulation and the engine tests build views with this one code).

    What a tenant's conversations share is read once, not once per conversation: the time zone and quiet
    hours, the number and persona views, equal effective settings (one `Effective` per distinct override row).
    A schedule given as JSON text (how mirage/db/rounds.py loads it) is read once per distinct text in `weeks`,
    a dict the caller may share between the tenants of one build. `numbers` / `personas` are the tenant's
    active rows by id (personas may come already built; so may the numbers' views, `number_views`)."""

    def __init__(
        self,
        tenant: Row,
        tenant_settings: Row,
        numbers: Mapping[str, Row],
        personas: Mapping[str, Row | Persona],
        number_views: Mapping[str, NumberView] | None = None,
        weeks: dict[str, Week] | None = None,
    ) -> None:
        self._tenant, self._settings, self._numbers, self._persona_rows = tenant, tenant_settings, numbers, personas
        self._number_views: dict[str, NumberView] = dict(number_views or {})
        self._personas: Mapping[str, Persona] | None = None
        self._effective: dict[Any, Effective] = {}
        self._weeks: dict[str, Week] = {} if weeks is None else weeks
        self._zone: tuple[str, tuple[time, time]] | str | None = None  # (zone, quiet hours), or why unreadable
        self._ids: tuple[str, str] | None = None  # the tenant's id and slug

    def _read_zone(self) -> tuple[str, tuple[time, time]] | str:
        tz = str(self._tenant.get("timezone") or "America/Sao_Paulo")
        if not is_valid_timezone(tz):
            return f"unknown time zone {tz!r}"
        quiet_row = self._settings.get("quiet_hours") or {"start": "22:00", "end": "07:00"}
        try:
            return tz, (parse_hhmm(quiet_row["start"]), parse_hhmm(quiet_row["end"]))
        except (KeyError, ValueError, TypeError) as e:
            return f"tenant quiet hours unreadable: {e}"

    def _week(self, key: str, schedule: Sequence[Row] | str) -> Week:
        week = week_view(key, schedule)  # a bad schedule raises for each conversation, with its key
        if type(schedule) is str:
            self._weeks[schedule] = week
        return week

    def _effective_settings(self, key: Any, conversation_settings: Row | None) -> Effective:
        got = effective_settings(self._settings, conversation_settings)
        if key is not _UNSHARED:
            self._effective[key] = got
        return got

    def _number_view(self, number_id: str) -> NumberView:
        got = self._number_views.get(number_id)
        if got is None:
            got = self._number_views[number_id] = number_view(self._numbers[number_id])
        return got

    def _persona_views(self) -> Mapping[str, Persona]:
        if self._personas is None:
            rows = self._persona_rows
            if all(isinstance(p, Persona) for p in rows.values()):
                self._personas = rows  # type: ignore[assignment]
            else:
                self._personas = {str(i): persona_view(r) for i, r in rows.items()}
        return self._personas  # type: ignore[return-value]

    def view(
        self,
        conversation: Row,
        conversation_settings: Row | None,
        schedule: Sequence[Row] | str,
        participants: Sequence[Row],
        pairings: Sequence[Row],
        topics: Sequence[Row],
    ) -> ConversationView:
        """The effective view of one of the tenant's conversations; ViewError when its rows cannot run.
        (Written flat: it runs once per conversation of the fleet on the first tick; the checks and their order
        are the ones a single conversation's view always had.)"""
        key = str(conversation["key"])
        zone = self._zone
        if zone is None:
            zone = self._zone = self._read_zone()
        if isinstance(zone, str):
            raise ViewError(key, zone)
        tz, quiet = zone
        week = self._weeks.get(schedule) if type(schedule) is str else None
        if week is None:
            week = self._week(key, schedule)
        pairs = _pairs(key, participants, pairings, self._numbers)
        views = self._number_views
        numbers: dict[str, NumberView] = {}
        for i in sorted({n for p in pairs for n in (p.a, p.b)}):
            numbers[i] = views.get(i) or self._number_view(i)
        try:
            settings_key = None if conversation_settings is None else _SETTINGS_KEY(conversation_settings)
            settings = self._effective.get(settings_key)
        except (KeyError, TypeError):  # a row without every column, or an unhashable value: no sharing
            settings_key, settings = _UNSHARED, None
        ids = self._ids
        if ids is None:
            ids = self._ids = (str(self._tenant["id"]), str(self._tenant.get("slug") or ""))
        conversation_id = str(conversation["id"])
        low = int(conversation["exchanges_min"])
        get = conversation.get
        return ConversationView(
            ids[0],
            ids[1],
            tz,
            quiet,
            conversation_id,
            key,
            str(get("mode") or "pair"),
            low,
            max(low, int(conversation["exchanges_max"])),
            str(get("topic_strategy") or "rotate"),
            int(get("topic_refresh_minutes") or 180),
            settings or self._effective_settings(settings_key, conversation_settings),
            week,
            tuple(pairs),
            numbers,
            self._personas or self._persona_views(),
            tuple(
                [
                    Topic(
                        str(t["id"]),
                        str(t["key"]),
                        str(t["seed"]),
                        str(t.get("system_prompt") or ""),
                        t.get("active_from"),
                        t.get("active_to"),
                        int(t.get("weight") or 1),
                    )
                    for t in (sorted(topics, key=_topic_key) if len(topics) > 1 else topics)
                ]
            ),
        )


def conversation_view(
    tenant: Row,
    tenant_settings: Row,
    conversation: Row,
    conversation_settings: Row | None,
    schedule: Sequence[Row] | str,
    participants: Sequence[Row],
    pairings: Sequence[Row],
    topics: Sequence[Row],
    numbers: Mapping[str, Row],
    personas: Mapping[str, Row | Persona],
    number_views: Mapping[str, NumberView] | None = None,
) -> ConversationView:
    """The effective view of one conversation (TenantViews builds many of one tenant, sharing what they share)."""
    return TenantViews(tenant, tenant_settings, numbers, personas, number_views).view(
        conversation, conversation_settings, schedule, participants, pairings, topics
    )
