"""The pure outreach rules: when a policy may send, what a target owes, when it ends, what the claim refuses."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from mirage.config.outreach import OutreachPolicySpec
from mirage.engine.outreach import (
    MAX_UNANSWERED,
    REPLY_WAIT_HOURS,
    Answered,
    Check,
    End,
    PolicyState,
    Queue,
    Reply,
    Start,
    TargetState,
    allowed_at,
    answer_at,
    claim_refusal,
    plan_policy,
)

SP = "America/Sao_Paulo"
MON_0900 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo
POLICY = PolicyState(
    id="p1",
    tenant_id="t1",
    key="campanha",
    number_id="n1",
    number_key="bot1",
    number_can_send=True,
    number_paused=None,
    warmup_started_on=None,
    timezone=SP,
    quiet=(time(22, 0), time(7, 0)),
    dayparts=("morning", "evening"),
    allow_days=("mon", "tue", "wed", "thu", "fri"),
    daily_limit=20,
    hourly_limit=6,
    max_rounds=3,
    min_gap_minutes=30,
    keywords=("chega",),
)


def target(status: str = "pending", **kw: object) -> TargetState:
    base = TargetState(id="t1", policy_id="p1", contact_id="c1", status=status, priority=0, created_at=MON_0900)
    return replace(base, **kw)  # type: ignore[arg-type]


def local(hour: int, minute: int = 0, day: int = 7) -> datetime:
    return (
        datetime(2026, 12, day, hour + 3, minute, tzinfo=UTC)
        if hour + 3 < 24
        else datetime(2026, 12, day + 1, hour + 3 - 24, minute, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (local(9), None),
        (local(6, 30), "quiet hours"),  # morning daypart, but quiet until 07:00
        (local(7), None),
        (local(12), "outside the dayparts"),  # afternoon is not allowed
        (local(17, 59), "outside the dayparts"),
        (local(18), None),  # evening
        (local(21, 59), None),
        (local(22), "quiet hours"),
        (local(10, day=12), "sat is not an allowed day"),
        (local(10, day=13), "sun is not an allowed day"),
    ],
)
def test_outreach_sends_only_on_allowed_days_in_dayparts_outside_quiet_hours(when: datetime, why: str | None) -> None:
    got = allowed_at(when, SP, POLICY.quiet, POLICY.dayparts, POLICY.allow_days)
    assert (got is None) if why is None else (got is not None and why in got)


def test_a_policy_starts_the_highest_priority_then_oldest_pending_target_once_per_tick() -> None:
    old = target(id="old", created_at=MON_0900 - timedelta(days=2))
    new_high = target(id="vip", priority=5, created_at=MON_0900)
    older_low = target(id="low", priority=-1, created_at=MON_0900 - timedelta(days=9))
    decisions = plan_policy(POLICY, [old, older_low, new_high], MON_0900, random.Random(1))
    assert decisions == [Start("vip")]


@pytest.mark.parametrize(
    ("change", "starts"),
    [
        ({}, True),
        ({"used_hour": 5}, False),  # the check and the opening both need room in the hour
        ({"used_day": 19}, False),
        ({"new_today": 5, "warmup_started_on": MON_0900.date()}, False),  # the ramp: 5 new contacts on day 0
        ({"new_today": 4, "warmup_started_on": MON_0900.date()}, True),
        ({"last_start_at": MON_0900 - timedelta(minutes=5)}, False),  # 60 / hourly_limit = 10 minutes apart
        ({"last_start_at": MON_0900 - timedelta(minutes=10)}, True),
        ({"number_can_send": False}, False),
        ({"runs": False}, False),  # another policy runs this number
    ],
)
def test_a_start_needs_budget_new_contact_room_spacing_and_a_number_that_can_send(
    change: dict[str, object], starts: bool
) -> None:
    p = replace(POLICY, **change)  # type: ignore[arg-type]
    assert (plan_policy(p, [target()], MON_0900, random.Random(1)) == [Start("t1")]) is starts


def test_pending_targets_of_opted_out_or_taken_contacts_end_without_a_message() -> None:
    decisions = plan_policy(
        POLICY,
        [target(id="a", opted_out=True), target(id="b", taken_by="outra"), target(id="c")],
        MON_0900,
        random.Random(1),
    )
    assert decisions == [
        End("a", "optout", "opted out before the first contact"),
        End("b", "done", "contacted under policy outra"),
        Start("c"),
    ]


def test_a_started_target_without_its_check_asks_again_and_a_checked_one_queues_its_opening() -> None:
    unchecked = target("in_progress", id="u", next_kind="opening", next_action_at=MON_0900)
    checked = target("in_progress", id="k", next_kind="opening", checked_at=MON_0900, next_action_at=MON_0900)
    in_flight = target("in_progress", id="f", next_kind="opening", checked_at=MON_0900, live_message=True)
    got = plan_policy(POLICY, [unchecked, checked, in_flight], MON_0900, random.Random(1))
    assert Check("u") in got and Queue("k", "opening", 0) in got and all(d.target != "f" for d in got)


@pytest.mark.parametrize(
    ("rounds_done", "kind"),
    [(1, "reply"), (2, "reply"), (3, "goodbye")],
)
def test_an_answer_earns_another_exchange_until_max_rounds_then_a_goodbye(rounds_done: int, kind: str) -> None:
    last = MON_0900 - timedelta(minutes=5)
    t = target("in_progress", rounds_done=rounds_done, unanswered=1, last_contact_at=last, replies=(Reply("m1", "oi"),))
    [d] = plan_policy(POLICY, [t], MON_0900, random.Random(3))
    assert isinstance(d, Answered) and d.next_kind == kind and d.messages == ("m1",)
    gap = timedelta(minutes=POLICY.min_gap_minutes)
    assert last + gap <= d.next_action_at <= last + gap * 1.25 + timedelta(minutes=4)


@pytest.mark.parametrize("text", ["SAIR", "por favor, não quero mais", "Chega!", "stop"])
def test_a_reply_with_an_opt_out_word_ends_the_target_as_optout(text: str) -> None:
    t = target("in_progress", rounds_done=1, unanswered=1, last_contact_at=MON_0900, replies=(Reply("m1", text),))
    [d] = plan_policy(POLICY, [t], MON_0900, random.Random(1))
    assert isinstance(d, End) and d.status == "optout" and d.keyword and d.message == "m1"


@pytest.mark.parametrize("hours", [REPLY_WAIT_HOURS, 2, 72])
@pytest.mark.parametrize(
    ("past", "ends"), [(timedelta(minutes=-1), False), (timedelta(0), True), (timedelta(hours=1), True)]
)
def test_no_answer_within_the_policy_wait_ends_the_target_done_and_not_before(
    hours: int, past: timedelta, ends: bool
) -> None:
    policy = replace(POLICY, reply_wait_hours=hours)
    t = target("in_progress", rounds_done=1, unanswered=1, last_contact_at=MON_0900 - timedelta(hours=hours) - past)
    got = plan_policy(policy, [t], MON_0900, random.Random(1))
    assert got == ([End("t1", "done", "no answer")] if ends else [])


def test_a_policy_that_leaves_the_wait_out_waits_24_hours_in_yaml_and_in_the_engine() -> None:
    assert OutreachPolicySpec(number="bot1").reply_wait_hours == POLICY.reply_wait_hours == REPLY_WAIT_HOURS == 24


def test_owed_messages_wait_for_the_gap_the_daypart_and_the_budget() -> None:
    owed = target(
        "in_progress",
        rounds_done=1,
        next_kind="reply",
        next_action_at=MON_0900,
        last_contact_at=MON_0900 - timedelta(hours=1),
    )
    assert plan_policy(POLICY, [owed], MON_0900, random.Random(1)) == [Queue("t1", "reply", 1)]
    assert plan_policy(POLICY, [owed], local(13), random.Random(1)) == []  # afternoon not allowed
    assert plan_policy(replace(POLICY, used_hour=6), [owed], MON_0900, random.Random(1)) == []
    early = replace(owed, next_action_at=MON_0900 + timedelta(minutes=1))
    assert plan_policy(POLICY, [early], MON_0900, random.Random(1)) == []


def test_a_paused_number_pauses_its_live_targets() -> None:
    t = target("in_progress", rounds_done=1, unanswered=1, last_contact_at=MON_0900)
    got = plan_policy(replace(POLICY, number_paused="connection close (401)"), [t], MON_0900, random.Random(1))
    assert got == [End("t1", "paused", "number bot1 paused: connection close (401)")]


@pytest.mark.parametrize(
    ("policy", "t", "kind", "why"),
    [
        (POLICY, target("in_progress", next_kind="opening"), "opening", None),
        (POLICY, target("done", next_kind="opening"), "opening", "target done"),
        (POLICY, target("in_progress", next_kind="opening", opted_out=True), "opening", "opted out"),
        (replace(POLICY, used_hour=6), target("in_progress", next_kind="opening"), "opening", "hourly_limit"),
        (replace(POLICY, used_day=20), target("in_progress", next_kind="opening"), "opening", "daily_limit"),
        (
            replace(POLICY, new_today=5, warmup_started_on=MON_0900.date()),
            target("in_progress", next_kind="opening"),
            "opening",
            "new contacts",
        ),
        (
            POLICY,
            target("in_progress", next_kind="reply", rounds_done=1, unanswered=MAX_UNANSWERED),
            "reply",
            "unanswered",
        ),
        (
            POLICY,
            target("in_progress", next_kind="reply", rounds_done=1, last_contact_at=MON_0900 - timedelta(minutes=29)),
            "reply",
            "min_gap_minutes",
        ),
        (POLICY, target("in_progress", next_kind="goodbye", rounds_done=3), "reply", "no longer owed"),
    ],
)
def test_the_claim_refuses_what_breaks_a_rule_at_the_instant_of_sending(
    policy: PolicyState, t: TargetState, kind: str, why: str | None
) -> None:
    got = claim_refusal(policy, t, kind, t.rounds_done, MON_0900)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_the_claim_refuses_outside_dayparts_even_when_the_tick_queued_inside() -> None:
    t = target("in_progress", next_kind="opening")
    assert claim_refusal(POLICY, t, "opening", 0, local(12, 0)) is not None


def test_an_answer_never_leaves_before_a_reading_pause_even_when_the_gap_is_over() -> None:
    p = replace(POLICY, min_gap_minutes=0)
    for seed in range(50):
        when = answer_at(p, MON_0900 - timedelta(hours=3), MON_0900, random.Random(seed))
        assert MON_0900 + timedelta(seconds=40) <= when <= MON_0900 + timedelta(minutes=4)


def test_a_contact_under_opt_out_review_is_neither_started_nor_answered() -> None:
    pending = target(id="p", blocked=True)
    live = target("in_progress", id="l", rounds_done=1, blocked=True, replies=(Reply("m", "não"),))
    assert plan_policy(POLICY, [pending, live], MON_0900, random.Random(1)) == []
    owed = target("in_progress", next_kind="reply", rounds_done=1, blocked=True)
    assert claim_refusal(POLICY, owed, "reply", 1, MON_0900) == "contact opted out or under review"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply("m", "não"), None),  # might be an opt-out: no answer (the ingest pauses the contact for review)
        (Reply("m", "para com isso kkk"), None),
        (Reply("m", "tudo bem, e você?", verdict="optout"), "optout"),  # the ingest's verdict wins
        (Reply("m", "SAIR", verdict="none"), "answered"),  # scanned: not an opt-out (say, a keyword edited away)
        (Reply("m", "tudo ótimo por aqui"), "answered"),
    ],
)
def test_a_reply_is_answered_only_when_it_is_surely_not_an_opt_out(reply: Reply, status: str | None) -> None:
    t = target("in_progress", rounds_done=1, unanswered=1, last_contact_at=MON_0900, replies=(reply,))
    got = plan_policy(POLICY, [t], MON_0900, random.Random(1))
    if status is None:
        assert got == []
    elif status == "answered":
        assert len(got) == 1 and isinstance(got[0], Answered)
    else:
        assert len(got) == 1 and isinstance(got[0], End) and got[0].status == status
