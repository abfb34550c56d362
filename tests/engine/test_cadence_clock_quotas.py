"""Cadence draws stay inside their bounds; clocks agree on time; quota buckets follow the tenant's day."""

from __future__ import annotations

import random
import time as systime
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage.engine.cadence import TYPING_MAX_MS, TYPING_MIN_MS, think_delay_ms, typing_ms
from mirage.engine.clock import ScaledClock, SettableClock, WallClock, clock_from_spec
from mirage.engine.quotas import buckets, daily_limit, headroom


@settings(max_examples=300, deadline=None)
@given(low=st.integers(0, 60_000), span=st.integers(0, 120_000), humanize=st.booleans(), seed=st.integers(0, 10**6))
def test_think_delay_is_always_inside_the_configured_bounds(low: int, span: int, humanize: bool, seed: int) -> None:
    value = think_delay_ms(low, low + span, humanize, random.Random(seed))
    assert low <= value <= low + span


def test_humanized_think_delays_cluster_and_uniform_ones_spread() -> None:
    rng = random.Random(5)
    human = sorted(think_delay_ms(4000, 25000, True, rng) for _ in range(2000))
    flat = sorted(think_delay_ms(4000, 25000, False, rng) for _ in range(2000))
    iqr = lambda xs: xs[1500] - xs[500]  # noqa: E731
    assert iqr(human) < iqr(flat)


@pytest.mark.parametrize(
    ("text", "expected"), [("", TYPING_MIN_MS), ("oi", TYPING_MIN_MS), ("a" * 50, 3000), ("a" * 900, TYPING_MAX_MS)]
)
def test_typing_time_grows_with_the_text_and_is_bounded(text: str, expected: int) -> None:
    assert typing_ms(text, True) == expected
    assert typing_ms(text, False) == 0


def test_clocks_wall_scaled_and_settable() -> None:
    assert abs((WallClock().now() - datetime.now(UTC)).total_seconds()) < 1
    origin = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    scaled = ScaledClock(origin, systime.time(), 600.0)
    assert origin <= scaled.now() < origin + timedelta(minutes=10)
    later = origin + timedelta(hours=1)
    assert abs((scaled.wall_time(later) - datetime.fromtimestamp(scaled.wall_origin, UTC)).total_seconds() - 6) < 1e-6
    again = clock_from_spec(scaled.spec)
    assert isinstance(again, ScaledClock) and again == scaled
    s = SettableClock(origin)
    s.advance(timedelta(minutes=5))
    assert s.now() == origin + timedelta(minutes=5)
    assert isinstance(clock_from_spec(""), WallClock)
    with pytest.raises(ValueError, match="scaled:"):
        clock_from_spec("fast")


def test_quota_day_is_the_tenant_local_day_and_the_ramp_caps_it() -> None:
    late_evening = datetime(2026, 12, 8, 2, 30, tzinfo=UTC)  # 23:30 on the 7th in São Paulo
    hour, day = buckets(
        "n1",
        late_evening,
        "America/Sao_Paulo",
        hourly_limit=30,
        tenant_daily_limit=200,
        warmup_started_on=date(2026, 12, 6),
    )
    assert day.key.endswith(":d:20261207") and day.limit == 20  # day 1 of the ramp
    assert day.start == datetime(2026, 12, 7, 3, 0, tzinfo=UTC) and day.end - day.start == timedelta(days=1)
    assert hour.key.endswith(":h:2026120802") and hour.limit == 30
    assert daily_limit(200, None, date(2026, 12, 7)) == 200
    assert headroom((28, 10), (30, 20)) == 2
