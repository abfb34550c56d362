"""The compliance checks on rows made up for one rule each (pure: no runtime), so every check is shown to catch
what the runtime itself never lets happen: a send in quiet hours, an hourly or daily overrun, a message after an
opt-out, a reply out of turn, a repeated text, a round outside its window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from mirage.engine.view import ConversationView, Day, Effective, NumberView, Pair, Window
from mirage.simulation.checks import CHECKS, run_checks

MONDAY = date(2026, 12, 7)
A, B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
CONV = "00000000-0000-0000-0000-0000000000c0"


def view(*, hourly: int = 20, daily: int = 100, warmup: date | None = date(2026, 1, 1)) -> ConversationView:
    numbers = {
        n: NumberView(n, key, f"+55119000000{i}", "open", True, None, warmup, None)
        for i, (n, key) in enumerate(((A, "ana"), (B, "bia")))
    }
    day = Day((Window("morning", time(8), time(11)),), 2, 10, 20)
    return ConversationView(
        tenant_id="t",
        tenant_slug="acme",
        timezone="America/Sao_Paulo",
        quiet=(time(22), time(7)),
        id=CONV,
        key="papo",
        mode="pair",
        exchanges_min=1,
        exchanges_max=2,
        topic_strategy="rotate",
        topic_refresh_minutes=60,
        settings=Effective(4000, 20000, hourly, daily, True, True, True),
        week=dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), day),
        pairs=(Pair(A, B, "a"),),
        numbers=numbers,
        personas={},
        topics=(),
    )


def local(hh: int, mm: int = 0, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hh + 3, minutes=mm)  # UTC-3


def out(at: datetime, body: str, *, sender: str = A, step: int = 0, round_id: str | None = "r1") -> dict[str, Any]:
    receiver = B if sender == A else A
    return {
        "direction": "out",
        "at": at,
        "tenant": "acme",
        "timezone": "America/Sao_Paulo",
        "body": body,
        "meta": {"step": step, "think_ms": 5000, "typing_ms": 1000},
        "from_number_id": sender,
        "from_key": "ana" if sender == A else "bia",
        "to_number_id": receiver,
        "to_key": "bia" if sender == A else "ana",
        "from_jid": None,
        "to_jid": "5511900000001@s.whatsapp.net",
        "round_id": round_id,
        "conversation_id": CONV,
        "conversation": "papo",
    }


def human(at: datetime, body: str) -> dict[str, Any]:
    return {
        "direction": "in",
        "at": at,
        "tenant": "acme",
        "timezone": "America/Sao_Paulo",
        "body": body,
        "meta": {},
        "from_number_id": None,
        "from_key": None,
        "to_number_id": A,
        "to_key": "ana",
        "from_jid": "5511900000001@s.whatsapp.net",
        "to_jid": None,
        "round_id": None,
        "conversation_id": None,
        "conversation": None,
    }


def round_row(at: datetime, daypart: str = "morning") -> dict[str, Any]:
    return {
        "conversation_id": CONV,
        "conversation": "papo",
        "tenant": "acme",
        "window_date": local_date(at),
        "daypart": daypart,
        "seq": 1,
        "created_at": at,
        "status": "done",
        "number_a": "ana",
        "number_b": "bia",
    }


def local_date(at: datetime) -> date:
    return (at - timedelta(hours=3)).date()


def alternating(start: datetime, n: int) -> list[dict[str, Any]]:
    return [
        out(start + timedelta(minutes=i), f"texto {i}", sender=A if i % 2 == 0 else B, step=i, round_id=f"r{i // 2}")
        for i in range(n)
    ]


def spread(start: datetime, n: int, every: timedelta) -> list[dict[str, Any]]:
    """`n` messages from one number, each the opening of its own round."""
    return [out(start + i * every, f"oi {i}", round_id=f"s{i}") for i in range(n)]


CASES = {
    "quiet_hours": (view(), [out(local(23), "Boa noite!")], [round_row(local(9))]),
    "hourly_limit": (view(hourly=3), alternating(local(9), 8), [round_row(local(9))]),
    "daily_limit": (view(daily=2), alternating(local(9), 6), [round_row(local(9))]),
    "warmup": (view(warmup=MONDAY), spread(local(8), 21, timedelta(minutes=10)), [round_row(local(9))]),
    "after_optout": (
        view(),
        [out(local(9), "Oi!", round_id=None), human(local(9, 5), "SAIR"), out(local(10), "Oi de novo", round_id=None)],
        [round_row(local(9))],
    ),
    "out_of_turn": (
        view(),
        [out(local(9), "Oi", step=0), out(local(9, 1), "Oi de novo", step=1)],
        [round_row(local(9))],
    ),
    "repeated": (
        view(),
        [out(local(9), "Bom dia!", step=0), out(local(9, 1), "Bom dia!", sender=B, step=1, round_id="r2")],
        [round_row(local(9))],
    ),
    "windows": (view(), [], [round_row(local(9)), round_row(local(15))]),
}


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_catches_the_rule_it_names_and_only_that_one(check: str) -> None:
    v, messages, rounds = CASES[check]
    checks = run_checks([v], messages, rounds, refused=[], ignored=[], days=[MONDAY])
    assert {name: c.count > 0 for name, c in checks.items()} == {name: name == check for name in CHECKS}
    assert all(f.tenant == "acme" and f.why for f in checks[check].findings)


def test_a_clean_round_passes_every_check() -> None:
    checks = run_checks([view()], alternating(local(9), 4), [round_row(local(9))], [], [], [MONDAY])
    assert {name: c.count for name, c in checks.items()} == dict.fromkeys(CHECKS, 0)


@pytest.mark.parametrize(
    ("error", "check"),
    [
        ("quiet hours", "quiet_hours"),
        ("hourly_burst_limit reached for number ana", "hourly_limit"),
        ("daily_limit reached for number ana", "daily_limit"),
    ],
)
def test_a_send_the_runtime_refused_counts_against_the_rule_it_named(error: str, check: str) -> None:
    refused = [{**out(local(9), "Oi"), "error": error}]
    checks = run_checks([view()], [], [round_row(local(9))], refused, [], [MONDAY])
    assert checks[check].count == 1 and "refused" in checks[check].findings[0].why


@pytest.mark.parametrize(
    ("said", "runtime_verdict", "hint"),
    [
        ("me esquece", None, True),  # the person meant stop; the tenant's keywords did not know it
        ("SAIR", "optout", False),  # recognised, yet a message went out after it: the runtime's own slip
    ],
    ids=["unrecognised-phrase", "recognised-word"],
)
def test_a_message_after_what_the_person_meant_as_an_opt_out_is_found_and_says_whether_the_runtime_knew(
    said: str, runtime_verdict: str | None, hint: bool
) -> None:
    reply = human(local(9, 5), said)
    reply["meta"] = {"optout": runtime_verdict} if runtime_verdict else {}
    messages = [out(local(9), "Oi!", round_id=None), reply, out(local(10), "Tchau!", round_id=None)]
    people = {"me esquece", "sair"}
    checks = run_checks(
        [view()], messages, [round_row(local(9))], [], [], [MONDAY], opts_out=lambda t: t.lower() in people
    )
    [finding] = checks["after_optout"].findings
    assert said in finding.why and ("optout_keywords" in finding.why) is hint


def test_a_phrase_the_people_do_not_mean_as_an_opt_out_is_not_one() -> None:
    messages = [out(local(9), "Oi!", round_id=None), human(local(9, 5), "me esquece"), out(local(10), "Tchau!")]
    checks = run_checks([view()], messages, [round_row(local(9))], [], [], [MONDAY])  # the built-in rule
    assert checks["after_optout"].count == 0
