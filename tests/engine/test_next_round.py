"""`next_round_at`: the first instant the tick would start a round (what `mirage status` shows), found by asking
the very rule the tick asks, at the instants where its answer can change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mirage.engine.rounds import PlanState, RoundPlan, RoundRecord, next_round_at, plan_conversation
from tests.engine.helpers import number, view
from tests.engine.test_rounds import MONDAY, at, rng

FRIDAY = date(2026, 12, 11)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at("09:00"), at("09:00")),  # inside the morning window, idle: now
        (at("06:00"), at("08:00")),  # quiet hours end at 07:00, the window opens at 08:00
        (at("12:00"), at("14:00")),  # between windows: the afternoon one
        (at("21:30"), at("08:00", MONDAY + timedelta(days=1))),  # after the evening window: tomorrow morning
        (at("22:30", FRIDAY), at("08:00", MONDAY + timedelta(days=7))),  # the weekend has no window: Monday
    ],
)
def test_an_idle_conversation_starts_at_its_next_open_window(now: datetime, expected: datetime) -> None:
    assert next_round_at(view(), PlanState(), now) == expected


def test_after_a_round_the_next_one_waits_for_the_same_pause_the_tick_draws() -> None:
    last = RoundRecord(MONDAY, "morning", 1, "done", at("08:00"), at("08:10"))
    state = PlanState(rounds=[last], total_rounds=1)
    at_ = next_round_at(view(), state, at("08:20"))
    assert at_ is not None and at("08:30") <= at_ <= at("09:10")
    assert isinstance(plan_conversation(view(), state, at_, rng()), RoundPlan)
    assert not isinstance(plan_conversation(view(), state, at_ - timedelta(seconds=1), rng()), RoundPlan)


def test_a_running_round_is_assumed_to_end_and_a_full_window_moves_to_the_next() -> None:
    rounds = [RoundRecord(MONDAY, "morning", s, "done", at("08:00"), at("08:10")) for s in (1,)]
    rounds.append(RoundRecord(MONDAY, "morning", 2, "active", at("09:30")))
    assert next_round_at(view(), PlanState(rounds=rounds, total_rounds=2), at("09:40")) == at("14:00")


def test_a_conversation_whose_numbers_cannot_send_has_no_next_round() -> None:
    paused = view(numbers=[number(1, paused_reason="connection close (401)"), number(2)])
    assert next_round_at(paused, PlanState(), datetime(2026, 12, 7, 12, tzinfo=UTC)) is None
