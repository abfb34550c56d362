"""Calendar spans across midnight and the warm-up ramp: checked against a minute-by-minute model."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirage.engine.calendar import (
    DAY_MINUTES,
    contains,
    crosses_midnight,
    inside,
    is_valid_timezone,
    local_date,
    overlap_minutes,
    overlaps,
    span_minutes,
)
from mirage.engine.ramp import RAMP, age_in_days, daily_message_cap, new_contacts_cap, step_for

times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
spans = st.tuples(times, times)


def minutes(start: time, end: time) -> set[int]:
    """The span as the set of minutes it covers: walk forward from start until end (the obvious model)."""
    s, e = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    out, m = set(), s
    while m != e:
        out.add(m)
        m = (m + 1) % DAY_MINUTES
    return out


@given(spans)
def test_span_length_matches_the_minutes_it_covers(span: tuple[time, time]) -> None:
    assert span_minutes(*span) == len(minutes(*span))


@given(spans, times)
def test_contains_matches_the_minute_model(span: tuple[time, time], t: time) -> None:
    assert contains(*span, t) == (t.hour * 60 + t.minute in minutes(*span))


@given(spans, spans)
def test_overlap_is_symmetric_and_matches_the_minute_model(a: tuple[time, time], b: tuple[time, time]) -> None:
    shared = len(minutes(*a) & minutes(*b))
    assert overlap_minutes(a, b) == overlap_minutes(b, a) == shared
    assert overlaps(a, b) == (shared > 0)


@given(spans, spans)
def test_inside_means_every_minute_is_covered(inner: tuple[time, time], outer: tuple[time, time]) -> None:
    m = minutes(*inner)
    assert inside(inner, outer) == (bool(m) and m <= minutes(*outer))


@given(spans)
def test_a_span_and_its_complement_share_nothing_and_fill_the_day(span: tuple[time, time]) -> None:
    start, end = span
    if start == end:
        return
    complement = (end, start)
    assert overlap_minutes(span, complement) == 0
    assert span_minutes(*span) + span_minutes(*complement) == DAY_MINUTES
    assert crosses_midnight(*span) != crosses_midnight(*complement)


@pytest.mark.parametrize(
    ("span", "t", "inside_"),
    [
        ((time(22), time(7)), time(23, 59), True),
        ((time(22), time(7)), time(0, 0), True),
        ((time(22), time(7)), time(6, 59), True),
        ((time(22), time(7)), time(7, 0), False),
        ((time(22), time(7)), time(21, 59), False),
        ((time(8), time(11, 30)), time(11, 30), False),
    ],
)
def test_quiet_hours_across_midnight(span: tuple[time, time], t: time, inside_: bool) -> None:
    assert contains(*span, t) is inside_


def test_local_date_follows_the_tenant_time_zone() -> None:
    instant = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # still November 30th in São Paulo (UTC-3)
    assert local_date(instant, "America/Sao_Paulo") == date(2026, 11, 30)
    assert local_date(instant, "Europe/Lisbon") == date(2026, 12, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2026, 12, 1), "UTC")


@pytest.mark.parametrize(
    ("name", "valid"),
    [("America/Sao_Paulo", True), ("UTC", True), ("America/Sao_Paolo", False), ("../etc/passwd", False), ("", False)],
)
def test_time_zones_are_checked_against_zoneinfo(name: str, valid: bool) -> None:
    assert is_valid_timezone(name) is valid


@given(st.integers(-30, 400), st.integers(0, 400))
def test_the_ramp_never_goes_down_with_age(start_offset: int, extra: int) -> None:
    today = date(2026, 6, 1)
    started = date.fromordinal(today.toordinal() - start_offset)
    older = date.fromordinal(started.toordinal() - extra)
    assert daily_message_cap(older, today) >= daily_message_cap(started, today)
    assert new_contacts_cap(older, today) >= new_contacts_cap(started, today)


def test_ramp_steps_and_unknown_age() -> None:
    assert [s.from_day for s in RAMP] == sorted(s.from_day for s in RAMP)
    assert step_for(0) == RAMP[0] and step_for(None) == RAMP[-1]
    assert age_in_days(date(2026, 7, 1), date(2026, 6, 1)) == 0  # a start in the future counts as day 0
    assert daily_message_cap(date(2026, 5, 25), date(2026, 6, 1)) == 80  # day 7
