"""The pure round rules: windows, quiet hours, caps, pauses, pair choice, script order, anti-loop."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage.engine.rounds import (
    Abort,
    Accept,
    Finish,
    Ignore,
    PlanState,
    RoundPlan,
    RoundRecord,
    RoundState,
    Send,
    Skip,
    in_quiet_hours,
    minutes_until_quiet,
    next_action,
    on_bot_message,
    plan_conversation,
    plan_rounds,
    script,
    text_allowed,
)
from mirage.engine.view import ViewError
from tests.engine.helpers import day_row, number, view

MONDAY = date(2026, 12, 7)  # a Monday


def at(hhmm: str, day: date = MONDAY) -> datetime:
    """Local São Paulo wall time (UTC-3) as a UTC instant."""
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC) + timedelta(hours=3)


def rng() -> random.Random:
    return random.Random(7)


@pytest.mark.parametrize(
    ("hhmm", "starts"),
    [("09:00", True), ("07:59", False), ("11:15", True), ("12:30", False), ("14:00", True), ("22:30", False)],
)
def test_a_round_starts_only_inside_a_window(hhmm: str, starts: bool) -> None:
    decision = plan_conversation(view(), PlanState(), at(hhmm), rng())
    assert isinstance(decision, RoundPlan) is starts


def test_the_weekend_without_windows_never_starts_a_round() -> None:
    saturday = MONDAY - timedelta(days=2)
    assert isinstance(plan_conversation(view(), PlanState(), at("09:00", saturday), rng()), Skip)


def test_quiet_hours_win_over_a_window() -> None:
    v = view(settings={"quiet_hours": {"start": "08:30", "end": "07:00"}})
    decision = plan_conversation(v, PlanState(), at("09:00"), rng())
    assert isinstance(decision, Skip) and decision.reason == "quiet hours"


def test_a_round_never_starts_when_quiet_hours_begin_before_it_could_end() -> None:
    v = view(settings={"quiet_hours": {"start": "09:05", "end": "07:00"}})
    decision = plan_conversation(v, PlanState(), at("09:00"), rng())
    assert isinstance(decision, Skip) and "quiet hours begin" in decision.reason


def test_a_round_never_starts_too_late_in_its_window() -> None:
    decision = plan_conversation(view(), PlanState(), at("11:27"), rng())
    assert isinstance(decision, Skip) and "window left" in decision.reason


def test_max_rounds_per_window_is_a_cap() -> None:
    done = [RoundRecord(MONDAY, "morning", s, "done", at("08:00"), at("08:10")) for s in (1, 2)]
    decision = plan_conversation(view(), PlanState(rounds=done, total_rounds=2), at("10:30"), rng())
    assert isinstance(decision, Skip) and "already in this window" in decision.reason


def test_the_pause_since_the_last_round_must_pass_and_is_the_same_every_tick() -> None:
    last = RoundRecord(MONDAY, "morning", 1, "done", at("08:00"), at("08:10"))
    state = PlanState(rounds=[last], total_rounds=1)
    early = plan_conversation(view(), state, at("08:20"), rng())
    assert isinstance(early, Skip) and early.not_before is not None
    assert early.not_before == plan_conversation(view(), state, at("08:25"), random.Random(99)).not_before  # type: ignore[union-attr]
    assert at("08:30") <= early.not_before <= at("09:10")
    later = plan_conversation(view(), state, early.not_before, rng())
    assert isinstance(later, RoundPlan) and later.seq == 2 and later.daypart == "morning"


def test_one_round_at_a_time_per_conversation() -> None:
    running = RoundRecord(MONDAY, "morning", 1, "active", at("08:00"))
    assert isinstance(plan_conversation(view(), PlanState(rounds=[running]), at("10:00"), rng()), Skip)


@pytest.mark.parametrize("status", ["close", "qr", "connecting"])
def test_both_numbers_must_be_open(status: str) -> None:
    v = view(numbers=[number(1), number(2, status=status)])
    decision = plan_conversation(v, PlanState(), at("09:00"), rng())
    assert isinstance(decision, Skip) and "bot2" in decision.reason


def test_a_paused_number_does_not_start_rounds() -> None:
    v = view(numbers=[number(1, paused_reason="ban-like close: 401"), number(2)])
    decision = plan_conversation(v, PlanState(), at("09:00"), rng())
    assert isinstance(decision, Skip) and "paused" in decision.reason


def test_quota_headroom_must_hold_a_whole_round() -> None:
    state = PlanState(used={"n1": (29, 10)})  # hourly limit 30: one more message, a round needs >= 2
    decision = plan_conversation(view(), state, at("09:00"), rng())
    assert isinstance(decision, Skip) and "quota" in decision.reason


def test_the_warm_up_ramp_limits_through_the_daily_limit_given() -> None:
    state = PlanState(limits={"n1": (30, 20), "n2": (30, 200)}, used={"n1": (0, 19)})
    assert isinstance(plan_conversation(view(), state, at("09:00"), rng()), Skip)


def test_round_robin_rotates_pairs_and_random_picks_among_eligible() -> None:
    nums = [number(1), number(2), number(3)]
    v = view(mode="round_robin", numbers=nums)
    pairs = [plan_conversation(v, PlanState(total_rounds=k), at("09:00"), rng()) for k in range(3)]
    chosen = [frozenset((p.starter, p.responder)) for p in pairs if isinstance(p, RoundPlan)]
    assert len(set(chosen)) == 3
    r = view(mode="random", numbers=nums)
    busy = PlanState(busy_numbers=frozenset({"n1"}))
    for seed in range(10):
        p = plan_conversation(r, busy, at("09:00"), random.Random(seed))
        assert isinstance(p, RoundPlan) and {p.starter, p.responder} == {"n2", "n3"}


@pytest.mark.parametrize(("starts", "expected"), [("a", "n1"), ("b", "n2")])
def test_a_pairing_says_who_starts(starts: str, expected: str) -> None:
    v = view(pairings=[{"id": "p1", "number_a_id": "n1", "number_b_id": "n2", "starts": starts}])
    p = plan_conversation(v, PlanState(), at("09:00"), rng())
    assert isinstance(p, RoundPlan) and p.starter == expected and p.pairing_id == "p1"


def test_one_number_is_planned_into_one_round_per_tick() -> None:
    first, second = view(), view()
    object.__setattr__(second, "id", "c2")
    decisions = plan_rounds([first, second], {}, at("09:00"), rng())
    assert isinstance(decisions[0], RoundPlan)
    assert isinstance(decisions[1], Skip) and "another round" in decisions[1].reason


def test_the_round_identity_is_conversation_window_date_daypart_and_sequence() -> None:
    p = plan_conversation(view(), PlanState(), at("21:30", MONDAY) - timedelta(hours=2), rng())
    assert isinstance(p, RoundPlan)
    assert p.identity == "c1:2026-12-07:evening:1"
    assert p.deadline_at > p.start_at


@pytest.mark.parametrize("exchanges", [1, 2, 3, 4, 5])
def test_scripts_run_greeting_comment_question_answer_goodbye_in_order(exchanges: int) -> None:
    steps = script(exchanges)
    assert len(steps) == 2 * exchanges
    assert steps[0] == "greeting" and steps[-1] == "goodbye"
    # greeting(s) first, then at most one comment, then question/answer pairs, then goodbye
    body = list(steps[1:-1])
    while body and body[0] == "greeting":
        body.pop(0)
    if body and body[0] == "comment":
        body.pop(0)
    assert body == ["question", "answer"] * (len(body) // 2)
    for i, s in enumerate(steps):
        if s == "question":
            assert steps[i + 1] == "answer"


def running(done: int = 0, turn: str | None = "n1", deadline: datetime | None = None) -> RoundState:
    return RoundState("r1", "active", script(2), "n1", "n2", done, turn, deadline or at("10:00"))


def test_next_action_alternates_speakers_then_finishes() -> None:
    sends = [next_action(running(d, "n1" if d % 2 == 0 else "n2"), at("09:00"), False) for d in range(4)]
    assert [(s.sender, s.receiver, s.kind) for s in sends if isinstance(s, Send)] == [
        ("n1", "n2", "greeting"),
        ("n2", "n1", "question"),
        ("n1", "n2", "answer"),
        ("n2", "n1", "goodbye"),
    ]
    assert isinstance(next_action(running(4), at("09:00"), False), Finish)


def test_a_round_past_its_deadline_or_in_quiet_hours_aborts() -> None:
    assert next_action(running(), at("10:01"), False) == Abort("deadline passed")
    assert next_action(running(), at("09:00"), True) == Abort("quiet hours")


def test_a_bot_message_is_accepted_only_as_the_due_step_of_an_active_round() -> None:
    expected = {("r1", 0): "Bom dia!"}
    assert on_bot_message([running()], "n1", "n2", "bom dia", expected) == Accept("r1", 0)
    assert on_bot_message([running()], "n2", "n1", "oi", expected) == Ignore("not_its_turn")
    assert on_bot_message([running()], "n1", "n2", "outra coisa", expected) == Ignore("not_the_round_message")
    assert on_bot_message([], "n1", "n2", "bom dia", expected) == Ignore("no_active_round")
    assert on_bot_message([running(turn="n2")], "n1", "n2", "bom dia", expected) == Ignore("not_its_turn")


def test_text_guards_refuse_echoes_and_repeats() -> None:
    assert not text_allowed("Bom dia!", "bom dia", [], True)
    assert text_allowed("Bom dia!", "bom dia", [], False)
    assert not text_allowed("kkkk boa", None, ["KKKK, boa!"], True)
    assert text_allowed("e aí", "bom dia", ["oi"], True)


def test_bad_rows_raise_a_view_error_naming_the_conversation() -> None:
    broken = day_row("mon", morning=("08:00", "11:00"))
    broken["afternoon_enabled"] = True
    with pytest.raises(ViewError, match="chat: mon afternoon window is enabled but has no start/end"):
        view(schedule=[broken])
    with pytest.raises(ViewError, match="not an active participant"):
        view(pairings=[{"id": "p1", "number_a_id": "n1", "number_b_id": "n9", "starts": "a"}])


# --- quiet hours and windows, property-based -----------------------------------------------------------------

times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
zones = st.sampled_from(["America/Sao_Paulo", "Europe/Lisbon", "America/New_York", "Asia/Kolkata", "UTC"])


@settings(max_examples=300, deadline=None)
@given(start=times, end=times, now=instants, tz=zones)
def test_no_round_is_ever_planned_inside_quiet_hours(start: time, end: time, now: datetime, tz: str) -> None:
    v = view(
        settings={"quiet_hours": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}},
        schedule=[day_row(d, morning=("00:00", "23:59")) for d in ("sun", "mon", "tue", "wed", "thu", "fri", "sat")],
        timezone=tz,
    )
    decision = plan_conversation(v, PlanState(), now, random.Random(1))
    if isinstance(decision, RoundPlan):
        assert not in_quiet_hours(v.quiet, now, tz)
        # the whole round, to its deadline, ends before quiet hours begin
        assert decision.deadline_at - now <= timedelta(minutes=minutes_until_quiet(v.quiet, now.astimezone(v_zone(tz))))


def v_zone(tz: str):  # type: ignore[no-untyped-def]
    from mirage.engine.calendar import zone

    return zone(tz)


@settings(max_examples=300, deadline=None)
@given(start=times, end=times, t=times)
def test_minutes_until_quiet_is_zero_exactly_inside_quiet_hours(start: time, end: time, t: time) -> None:
    local = datetime(2026, 12, 7, t.hour, t.minute)
    left = minutes_until_quiet((start, end), local)
    inside = in_quiet_hours((start, end), local.replace(tzinfo=UTC), "UTC")
    assert (left == 0) == inside
    if not inside and start != end:
        assert 0 < left <= 24 * 60
    if not inside and start != end:
        later = local + timedelta(minutes=left)
        assert in_quiet_hours((start, end), later.replace(tzinfo=UTC), "UTC")


@settings(max_examples=200, deadline=None)
@given(now=instants, hhmm=st.sampled_from(["08:00", "09:15", "10:59", "14:30", "19:10"]))
def test_planned_rounds_start_inside_an_open_window_of_their_weekday(now: datetime, hhmm: str) -> None:
    decision = plan_conversation(view(), PlanState(), now, random.Random(3))
    if isinstance(decision, RoundPlan):
        local = now.astimezone(v_zone("America/Sao_Paulo"))
        assert local.weekday() < 5
        windows = {
            "morning": (time(8), time(11, 30)),
            "afternoon": (time(14), time(17)),
            "evening": (time(19), time(21)),
        }
        lo, hi = windows[decision.daypart]
        assert lo <= local.time() < hi
