"""The weekly schedule of a conversation: the YAML shape (with day groups) and its expansion to seven days."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from mirage.config.types import DAY_GROUPS, DAYPARTS, DOWS, HHMM, Daypart, Dow, Int32, Model

DayKey = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat", "every_day", "weekdays", "weekend"]
# Inside one schedule later entries win: a group fills in, a named weekday overrides it.
EXPANSION_ORDER: tuple[DayKey, ...] = ("every_day", "weekdays", "weekend", *DOWS)
_OFF = (False, "off", "OFF", "Off")


def _off_or_model_schema(handler: GetJsonSchemaHandler, core_schema: CoreSchema) -> JsonSchemaValue:
    schema = handler(core_schema)
    return {"anyOf": [schema, {"enum": [False, "off"], "description": "`off` (or false): disabled."}]}


class WindowSpec(Model):
    """A daypart window: `{start: "08:00", end: "11:30"}`, or `off`."""

    enabled: bool = Field(True, description="Whether rounds may start in this window. Default true; `off` = false.")
    start: HHMM | None = Field(None, description='Opening time "HH:MM" (tenant time zone). Required when enabled.')
    end: HHMM | None = Field(
        None, description='Closing time "HH:MM", after start (windows never cross midnight). Required when enabled.'
    )

    @model_validator(mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return {"enabled": False} if value in _OFF else value

    @model_validator(mode="after")
    def _needs_times(self) -> WindowSpec:
        if self.enabled and (self.start is None or self.end is None):
            raise ValueError("an enabled window needs both start and end")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return _off_or_model_schema(handler, core_schema)


class PauseRange(Model):
    """Random pause between two rounds of the same window, in minutes."""

    min: Int32 = Field(20, ge=0, description="Shortest pause between rounds, minutes. Default 20.")
    max: Int32 = Field(60, ge=0, description="Longest pause between rounds, minutes (>= min). Default 60.")


class DaySpec(Model):
    """One weekday (or group of days): its three dayparts; unset dayparts come from a group or stay off."""

    morning: WindowSpec | None = Field(None, description="Morning window, or `off`. Default: from a group, else off.")
    afternoon: WindowSpec | None = Field(
        None, description="Afternoon window, or `off`. Default: from a group, else off."
    )
    evening: WindowSpec | None = Field(None, description="Evening window, or `off`. Default: from a group, else off.")
    max_rounds_per_window: Int32 | None = Field(
        None, ge=0, description="Overrides the schedule's max_rounds_per_window on these days. Default: inherit."
    )
    pause_between_rounds: PauseRange | None = Field(
        None, description="Overrides the schedule's pause_between_rounds on these days. Default: inherit."
    )

    @model_validator(mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return dict.fromkeys(DAYPARTS, False) if value in _OFF else value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return _off_or_model_schema(handler, core_schema)


class ScheduleSpec(Model):
    """The weekly calendar as written in YAML: defaults for every window plus `days` keyed by weekday or group."""

    max_rounds_per_window: Int32 = Field(1, ge=0, description="Most rounds started in one window. Default 1.")
    pause_between_rounds: PauseRange = Field(
        default_factory=PauseRange, description="Pause between rounds in one window. Default {min: 20, max: 60}."
    )
    days: dict[DayKey, DaySpec] = Field(
        default_factory=dict,
        description="Per weekday (sun..sat) or group (every_day, weekdays, weekend); a weekday overrides its "
        "groups daypart by daypart. Days not mentioned are off. Default {} (never runs).",
    )


class DaypartWindow(Model):
    """A resolved daypart window of one weekday (t_conversation_schedule.<daypart>_enabled / _window)."""

    enabled: bool = Field(False, description="Whether rounds may start in this window. Default false.")
    start: time | None = Field(None, description="Opening time in the tenant time zone, or None when unset.")
    end: time | None = Field(None, description="Closing time in the tenant time zone, or None when unset.")


_CLOSED = DaypartWindow()
_BUILTIN = ScheduleSpec()


class DaySchedule(Model):
    """One resolved weekday: three windows, the round cap per window and the pause range (one schedule row)."""

    morning: DaypartWindow = Field(_CLOSED, description="Morning window. Default closed.")
    afternoon: DaypartWindow = Field(_CLOSED, description="Afternoon window. Default closed.")
    evening: DaypartWindow = Field(_CLOSED, description="Evening window. Default closed.")
    max_rounds_per_window: Int32 = Field(1, ge=0, description="Most rounds started in one window. Default 1.")
    pause_min: Int32 = Field(20, ge=0, description="Shortest pause between rounds, minutes. Default 20.")
    pause_max: Int32 = Field(60, ge=0, description="Longest pause between rounds, minutes. Default 60.")

    def window(self, part: Daypart) -> DaypartWindow:
        """The window of `part` ('morning' | 'afternoon' | 'evening')."""
        w: DaypartWindow = getattr(self, part)
        return w


class WeekSchedule(Model):
    """The schedule after expanding day groups: `days` always holds all seven weekdays."""

    days: dict[Dow, DaySchedule] = Field(description="sun..sat -> that day's windows, round cap and pause.")


def covering_keys(day: str) -> list[str]:
    """The `days` keys that may set `day`, most specific first: the day, its group, every_day (a group: itself)."""
    return [k for k in reversed(EXPANSION_ORDER) if k == day or day in DAY_GROUPS.get(k, ())] or [day]


def day_sources(spec: ScheduleSpec, day: Dow) -> list[DayKey]:
    """The `days` keys of one schedule that shape `day`, least specific first: every_day, its group, the day."""
    return [k for k in EXPANSION_ORDER if k in spec.days and (k == day or day in DAY_GROUPS.get(k, ()))]


@lru_cache(maxsize=4096)
def _window(enabled: bool, start: time | None, end: time | None) -> DaypartWindow:
    # Resolved values are immutable, so equal ones are shared (fleets repeat the same few windows).
    return DaypartWindow(enabled=enabled, start=start, end=end)


@lru_cache(maxsize=4096)
def _day(
    morning: DaypartWindow, afternoon: DaypartWindow, evening: DaypartWindow, rounds: int, low: int, high: int
) -> DaySchedule:
    return DaySchedule(
        morning=morning,
        afternoon=afternoon,
        evening=evening,
        max_rounds_per_window=rounds,
        pause_min=low,
        pause_max=high,
    )


def expand_schedule(*sources: ScheduleSpec) -> WeekSchedule:
    """Seven resolved weekdays from `sources`, weakest first (tenant `defaults.schedule`, then the conversation's).

    A stronger source beats a weaker one whatever the specificity; inside one source the schedule-wide values
    come first, then every_day, then weekdays/weekend, then the named day. Resolved daypart by daypart (and
    max_rounds_per_window, pause_between_rounds one by one): what no source sets keeps the weaker value, and
    finally the built-in default (window closed, 1 round, pause 20-60 minutes).
    """
    days: dict[Dow, DaySchedule] = {}
    for day in DOWS:
        windows: dict[str, DaypartWindow] = {}
        rounds, pause = _BUILTIN.max_rounds_per_window, _BUILTIN.pause_between_rounds
        for spec in sources:
            # Only what the source wrote counts: its own unset fields hold defaults, which must not hide a weaker
            # source's value.
            if "max_rounds_per_window" in spec.model_fields_set:
                rounds = spec.max_rounds_per_window
            if "pause_between_rounds" in spec.model_fields_set:
                pause = spec.pause_between_rounds
            for key in day_sources(spec, day):
                d = spec.days[key]
                for part in DAYPARTS:
                    w: WindowSpec | None = getattr(d, part)
                    if w is not None:
                        windows[part] = _window(w.enabled, w.start, w.end)
                if d.max_rounds_per_window is not None:
                    rounds = d.max_rounds_per_window
                if d.pause_between_rounds is not None:
                    pause = d.pause_between_rounds
        days[day] = _day(
            windows.get("morning", _CLOSED),
            windows.get("afternoon", _CLOSED),
            windows.get("evening", _CLOSED),
            rounds,
            pause.min,
            pause.max,
        )
    return WeekSchedule(days=days)
