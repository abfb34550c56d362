"""The view builder as it was before ADR 0058 (mirage/engine/view.py and build_views at commit b78d3f0, copied
as they were): the oracle tests/reconcile/test_views_as_before.py compares today's views with. Only the data
classes and the shared effective-settings and HH:MM functions come from the module under test. Do not edit."""

# ruff: noqa

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from mirage.config.types import DAYPARTS, DOWS
from mirage.engine.calendar import is_valid_timezone
from mirage.engine.view import (
    ConversationView,
    Day,
    NumberView,
    Pair,
    Persona,
    Topic,
    ViewError,
    Window,
    effective_settings,
    parse_hhmm,
)
from datetime import time

Row = Mapping[str, Any]


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


def build_views(snapshot: Any) -> tuple[list[ConversationView], list[tuple[str, str, str]]]:
    """Views of every conversation in the snapshot, and (tenant slug, conversation key, reason) of those skipped."""
    views, skipped = [], []
    personas: dict[str, dict[str, Persona]] = {}  # built once per tenant, shared by its conversations' views
    numbers: dict[str, dict[str, NumberView]] = {}  # the same
    for c in snapshot.conversations.values():
        t = snapshot.tenants[c.conversation["tenant_id"]]
        try:
            tenant_personas = personas.get(str(t.tenant["id"]))
            if tenant_personas is None:
                tenant_personas = personas[str(t.tenant["id"])] = {
                    str(i): persona_view(r) for i, r in t.personas.items()
                }
            tenant_numbers = numbers.get(str(t.tenant["id"]))
            if tenant_numbers is None:
                tenant_numbers = numbers[str(t.tenant["id"])] = {i: number_view(r) for i, r in t.numbers.items()}
            views.append(
                conversation_view(
                    t.tenant,
                    t.settings,
                    c.conversation,
                    c.settings,
                    c.schedule,
                    c.participants,
                    c.pairings,
                    c.topics,
                    t.numbers,
                    tenant_personas,
                    tenant_numbers,
                )
            )
        except ViewError as e:
            skipped.append((str(t.tenant.get("slug")), e.conversation, e.reason))
        except (KeyError, TypeError, ValueError) as e:  # a row the view could not even read
            skipped.append((str(t.tenant.get("slug")), str(c.conversation.get("key")), f"unreadable row: {e!r}"))
    return views, skipped
