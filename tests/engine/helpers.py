"""Row builders for the pure engine tests: the shapes `mirage.engine.view.conversation_view` reads from Postgres."""

from __future__ import annotations

from typing import Any

from mirage.config.types import DOWS
from mirage.engine.view import ConversationView, conversation_view

TENANT = {"id": "t1", "slug": "acme", "timezone": "America/Sao_Paulo"}
SETTINGS = {
    "min_delay_ms": 4000,
    "max_delay_ms": 25000,
    "hourly_burst_limit": 30,
    "daily_limit": 200,
    "quiet_hours": {"start": "22:00", "end": "07:00"},
    "humanize": True,
    "allow_bot_to_bot": True,
}


def day_row(day: str, **windows: tuple[str, str] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "day": day,
        "max_rounds_per_window": 2,
        "pause_between_rounds_min": 20,
        "pause_between_rounds_max": 60,
    }
    for part in ("morning", "afternoon", "evening"):
        span = windows.get(part)
        row[f"{part}_enabled"] = span is not None
        row[f"{part}_window"] = {"start": span[0], "end": span[1]} if span else None
    return row


WEEKDAY_WINDOWS = {"morning": ("08:00", "11:30"), "afternoon": ("14:00", "17:00"), "evening": ("19:00", "21:00")}


def number(i: int, status: str = "open", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"n{i}",
        "key": f"bot{i}",
        "wa_number": f"+55119000000{i:02d}",
        "status": status,
        "active": True,
        "paused_reason": None,
        "warmup_started_on": None,
        "persona_id": None,
        **extra,
    }


def view(
    *,
    mode: str = "pair",
    numbers: list[dict[str, Any]] | None = None,
    pairings: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    conversation_settings: dict[str, Any] | None = None,
    schedule: list[dict[str, Any]] | None = None,
    topics: list[dict[str, Any]] | None = None,
    exchanges: tuple[int, int] = (2, 4),
    timezone: str = "America/Sao_Paulo",
) -> ConversationView:
    nums = numbers if numbers is not None else [number(1), number(2)]
    participants = [
        {"participant_kind": "bot", "number_id": n["id"], "role": "any", "start_order": i} for i, n in enumerate(nums)
    ]
    return conversation_view(
        {**TENANT, "timezone": timezone},
        {**SETTINGS, **(settings or {})},
        {
            "id": "c1",
            "key": "chat",
            "mode": mode,
            "exchanges_min": exchanges[0],
            "exchanges_max": exchanges[1],
            "topic_strategy": "rotate",
            "topic_refresh_minutes": 180,
        },
        conversation_settings,
        schedule if schedule is not None else [day_row(d, **WEEKDAY_WINDOWS) for d in DOWS if d not in ("sat", "sun")],
        participants,
        pairings or [],
        topics or [],
        {n["id"]: n for n in nums},
        {},
    )
