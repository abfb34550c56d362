"""Number health: a ban-like disconnect pauses a number (its rounds abort, none start), and it comes back only
when it is `open` again AND an operator runs `mirage numbers resume`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from click.testing import CliRunner

from mirage.cli import cli
from tests.evolution.helpers import wait_until
from tests.runtime.conftest import PHONES, Harness


def _resume(target: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["numbers", "resume", target])
    return result.exit_code, result.output


def _paused(h: Harness, key: str) -> str | None:
    reason: str | None = h.rows("select paused_reason from t_numbers where key = %s", key)[0]["paused_reason"]
    return reason


@pytest.mark.parametrize("code", [403, 463])
def test_a_ban_like_close_pauses_the_number_until_it_is_open_and_an_operator_resumes_it(
    make_harness: Callable[..., Harness], code: int
) -> None:
    h = make_harness()
    assert h.tick()["created"] == 1
    h.sim.disconnect("mirage-acme-bot2", code)
    wait_until(lambda: h.count("select count(*) as n from t_numbers where status <> 'open'") == 1)
    h.clock.advance(timedelta(minutes=1))
    h.tick()
    assert str(code) in (_paused(h, "bot2") or "")
    r = h.rows("select status::text, abort_reason from t_rounds")[0]
    assert r["status"] == "aborted" and "bot2" in r["abort_reason"]

    exit_code, output = _resume("acme/bot2")  # still closed: refused, stays paused
    assert exit_code == 1 and "stays paused" in output, output
    assert _paused(h, "bot2")

    with h.sim.client() as client:  # the operator reconnects the phone
        client.connect("mirage-acme-bot2", token=h.sim.world.instances["mirage-acme-bot2"].token)
    h.sim.scan("mirage-acme-bot2", PHONES[1])
    wait_until(lambda: h.count("select count(*) as n from t_numbers where status = 'open'") == 2)
    h.clock.advance(timedelta(minutes=60))
    assert h.tick()["created"] == 0  # open again, but still paused: no round
    [tenant] = _status_json()["tenants"]
    [paused] = tenant["paused"]
    assert paused["key"] == "bot2" and str(code) in paused["reason"]

    exit_code, output = _resume("acme/bot2")
    assert exit_code == 0 and "acme/bot2 resumed: it takes part in rounds again from the next tick." in output
    assert _paused(h, "bot2") is None
    assert "acme/bot2 is not paused" in _resume("acme/bot2")[1]
    assert h.tick()["created"] == 1


def _status_json() -> dict[str, list[dict[str, list[dict[str, str]]]]]:
    import json

    result = CliRunner().invoke(cli, ["status", "--format", "json"])
    assert result.exit_code == 0, result.output
    out: dict[str, list[dict[str, list[dict[str, str]]]]] = json.loads(result.output)
    return out


@pytest.mark.parametrize(
    ("target", "message"),
    [("acme", "expected TENANT/NUMBER"), ("acme/nobody", "unknown number acme/nobody"), ("x/y/z", "expected")],
)
def test_numbers_resume_refuses_a_bad_target_clearly(db: object, target: str, message: str) -> None:
    exit_code, output = _resume(target)
    assert exit_code == 1 and message in output


def test_sends_failing_in_a_row_pause_the_number_abort_its_rounds_and_nothing_more_leaves_it(
    make_harness: Callable[..., Harness],
) -> None:
    from mirage.jobs.send import FAILURES_BEFORE_PAUSE

    h = make_harness(exchanges=(1, 1), delays=(1000, 2000), pause=(1, 2), max_rounds=20)
    h.sim.chaos(error_rate=1.0)  # Evolution answers every REST call 500: each send's outcome is unknown
    end = h.clock.now() + timedelta(hours=3)
    paused: list[dict[str, str]] = []
    while not paused and h.clock.now() < end:
        h.run_until(h.clock.now() + timedelta(minutes=5), tick_every=timedelta(minutes=1))
        paused = h.rows("select id::text, key, paused_reason from t_numbers where paused_at is not null")
    [number] = paused
    assert number["paused_reason"].startswith(f"{FAILURES_BEFORE_PAUSE} send failures in a row")
    tried = h.count(
        "select count(*) as n from t_messages where from_number_id = %s and status = 'unknown'", number["id"]
    )
    assert tried == FAILURES_BEFORE_PAUSE  # never re-sent, and none after the pause
    assert (
        h.count(
            "select count(*) as n from t_rounds where status in ('planned', 'active') "
            "and %s in (number_a_id, number_b_id)",
            number["id"],
        )
        == 0
    )
    h.sim.chaos(error_rate=0.0)
    h.run_until(h.clock.now() + timedelta(minutes=30), tick_every=timedelta(minutes=1))
    assert (
        h.count(
            "select count(*) as n from t_messages where from_number_id = %s and status <> 'unknown' "
            "and direction = 'out'",
            number["id"],
        )
        == 0
    )
    status = _status_json()["tenants"][0]["paused"]
    assert status == [{"key": number["key"], "reason": number["paused_reason"], "since": status[0]["since"]}]
