"""Tenant `defaults.schedule` under the conversation's schedule: the conversation wins, then specificity decides.

Each case writes tenant.yaml `defaults: {schedule: ...}` and conversations/chat.yaml `schedule: ...`, loads the
tenant, and reads the resolved week (`"sat.morning"` -> "HH:MM-HH:MM" or "off", `"sat.rounds"`, `"sat.pause"`)
and where `Fleet.locate` says each value was written ("file:line:col", relative to the tenant folder).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mirage.config import Fleet, load_fleet
from mirage.config.schedule import ScheduleSpec, expand_schedule
from tests.config.helpers import BASE, write_tenant

BASE_T = textwrap.dedent(BASE["tenant.yaml"])  # 12 lines: `defaults:` is line 13, `schedule:` line 14
CONV = "name: Chat\nparticipants: [{number: tio}, {number: tia}]\n"  # `schedule:` is line 3, `days:` line 4


def load(tmp_path: Path, defaults: str | None, schedule: str | None) -> Fleet:
    tenant = BASE_T + (
        "defaults:\n  schedule:\n" + textwrap.indent(textwrap.dedent(defaults), "    ") if defaults else ""
    )
    conv = CONV + ("schedule:\n" + textwrap.indent(textwrap.dedent(schedule), "  ") if schedule else "")
    return load_fleet(write_tenant(tmp_path, {"tenant.yaml": tenant, "conversations/chat.yaml": conv}), environ={})


def resolved(fleet: Fleet, what: str) -> str:
    """'sat.morning' -> '08:00-11:00' | 'off'; 'sat.rounds' -> '2'; 'sat.pause' -> '25-70'."""
    week = fleet.tenants["acme"].conversations["chat"].schedule
    assert week is not None
    day, field = what.split(".")
    d = week.days[day]  # type: ignore[index]
    if field == "rounds":
        return str(d.max_rounds_per_window)
    if field == "pause":
        return f"{d.pause_min}-{d.pause_max}"
    w = d.window(field)  # type: ignore[arg-type]
    return f"{w.start:%H:%M}-{w.end:%H:%M}" if w.enabled and w.start and w.end else "off"


def located(fleet: Fleet, what: str) -> str:
    day, field = what.split(".")
    name = {"rounds": "max_rounds_per_window", "pause": "pause_between_rounds"}.get(field, field)
    file, line, col = fleet.locate("acme", "conversations", "chat", "schedule", "days", day, name)
    return f"{Path(file).relative_to(fleet.root / 'acme').as_posix()}:{line}:{col}"


CASES = [
    pytest.param(
        """\
        days:
          weekdays:
            morning: {start: "09:00", end: "12:00"}
          weekend: off
        """,
        """\
        days:
          every_day:
            morning: {start: "08:00", end: "11:00"}
        """,
        {
            "sat.morning": "08:00-11:00",
            "sun.morning": "08:00-11:00",
            "mon.morning": "08:00-11:00",
            "sat.afternoon": "off",
        },
        {
            "sat.morning": "conversations/chat.yaml:6:16",
            "mon.morning": "conversations/chat.yaml:6:16",
            "sat.afternoon": "tenant.yaml:18:16",
        },
        id="conversation-every-day-beats-default-weekend-off",
    ),
    pytest.param(
        """\
        days:
          sat:
            morning: {start: "09:00", end: "12:00"}
            afternoon: {start: "14:00", end: "16:00"}
        """,
        """\
        days:
          weekend:
            morning: {start: "07:00", end: "10:00"}
        """,
        {
            "sat.morning": "07:00-10:00",
            "sat.afternoon": "14:00-16:00",
            "sun.morning": "07:00-10:00",
            "sun.afternoon": "off",
        },
        {
            "sat.morning": "conversations/chat.yaml:6:16",
            "sat.afternoon": "tenant.yaml:18:20",
            "sun.morning": "conversations/chat.yaml:6:16",
        },
        id="conversation-group-beats-default-named-day-daypart-by-daypart",
    ),
    pytest.param(
        """\
        days:
          weekdays:
            morning: {start: "08:00", end: "11:00"}
            afternoon: {start: "14:00", end: "17:00"}
        """,
        """\
        days:
          weekdays: {afternoon: off}
          fri:
            morning: {start: "09:00", end: "10:00"}
        """,
        {
            "mon.morning": "08:00-11:00",
            "mon.afternoon": "off",
            "fri.morning": "09:00-10:00",
            "fri.afternoon": "off",
            "sat.morning": "off",
        },
        {
            "mon.morning": "tenant.yaml:17:18",
            "mon.afternoon": "conversations/chat.yaml:5:27",
            "fri.morning": "conversations/chat.yaml:7:16",
        },
        id="conversation-turns-one-default-window-off-and-keeps-the-rest",
    ),
    pytest.param(
        None,
        """\
        days:
          every_day:
            morning: {start: "08:00", end: "11:00"}
          weekend:
            morning: {start: "09:00", end: "12:00"}
          sun: off
        """,
        {"mon.morning": "08:00-11:00", "sat.morning": "09:00-12:00", "sun.morning": "off"},
        {
            "mon.morning": "conversations/chat.yaml:6:16",
            "sat.morning": "conversations/chat.yaml:8:16",
            "sun.morning": "conversations/chat.yaml:9:10",
        },
        id="inside-one-schedule-the-named-day-beats-its-group-beats-every-day",
    ),
    pytest.param(
        """\
        max_rounds_per_window: 2
        pause_between_rounds: {min: 25, max: 70}
        days:
          every_day:
            morning: {start: "08:00", end: "11:00"}
          sat: {max_rounds_per_window: 4, pause_between_rounds: {min: 5, max: 10}}
        """,
        """\
        max_rounds_per_window: 1
        """,
        {"mon.rounds": "1", "sat.rounds": "1", "mon.pause": "25-70", "sat.pause": "5-10"},
        {
            "sat.rounds": "conversations/chat.yaml:4:26",
            "sat.pause": "tenant.yaml:20:61",
            "mon.pause": "tenant.yaml:16:27",
        },
        id="conversation-round-cap-beats-a-default-day-override",
    ),
    pytest.param(
        """\
        max_rounds_per_window: 2
        pause_between_rounds: {min: 25, max: 70}
        days:
          every_day:
            morning: {start: "08:00", end: "11:00"}
          sat: {max_rounds_per_window: 4, pause_between_rounds: {min: 5, max: 10}}
        """,
        """\
        days:
          sun: off
        """,
        {"mon.rounds": "2", "sat.rounds": "4", "sat.pause": "5-10", "sun.morning": "off", "mon.morning": "08:00-11:00"},
        {
            "sat.rounds": "tenant.yaml:20:36",
            "mon.rounds": "tenant.yaml:15:28",
            "sun.morning": "conversations/chat.yaml:5:10",
        },
        id="defaults-keep-their-own-specificity-where-the-conversation-is-silent",
    ),
    pytest.param(
        """\
        days:
          weekdays:
            morning: {start: "08:00", end: "11:00"}
        """,
        None,
        {"mon.morning": "08:00-11:00", "sat.morning": "off"},
        {"mon.morning": "tenant.yaml:17:18"},
        id="a-conversation-without-schedule-takes-the-defaults",
    ),
]


@pytest.mark.parametrize(("defaults", "schedule", "values", "where"), CASES)
def test_conversation_schedule_wins_over_defaults_then_specificity_decides(
    tmp_path: Path, defaults: str | None, schedule: str | None, values: dict[str, str], where: dict[str, str]
) -> None:
    fleet = load(tmp_path, defaults, schedule)
    assert {k: resolved(fleet, k) for k in values} == values
    assert {k: located(fleet, k) for k in where} == where


def test_schedule_null_in_a_conversation_means_never_runs_despite_defaults(tmp_path: Path) -> None:
    tenant = BASE_T + 'defaults: {schedule: {days: {every_day: {morning: {start: "08:00", end: "11:00"}}}}}\n'
    conv = CONV + "schedule: null\n"
    fleet = load_fleet(write_tenant(tmp_path, {"tenant.yaml": tenant, "conversations/chat.yaml": conv}), environ={})
    assert fleet.tenants["acme"].conversations["chat"].schedule is None


def test_one_schedule_expands_as_before_when_there_are_no_defaults() -> None:
    spec = ScheduleSpec.model_validate(
        {
            "max_rounds_per_window": 3,
            "days": {"weekdays": {"morning": {"start": "08:00", "end": "11:00"}}, "fri": {"morning": "off"}},
        }
    )
    week = expand_schedule(spec)
    assert week.days["mon"].morning.enabled and not week.days["fri"].morning.enabled
    assert {d.max_rounds_per_window for d in week.days.values()} == {3}
    assert expand_schedule(ScheduleSpec(), spec) == week  # an empty weaker source changes nothing
