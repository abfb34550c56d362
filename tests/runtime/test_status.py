"""`mirage status`: what it reports is what the database and the tick say, as tables and as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from click.testing import CliRunner

from mirage.cli import cli
from tests.runtime.conftest import Harness


def _status(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["status", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.output)
    return report


def test_status_reports_numbers_counts_quota_headroom_and_the_running_round(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(exchanges=(3, 3), hourly=30, daily=200)
    assert h.tick()["created"] == 1
    # run until two messages of the round went out, then look
    while h.count("select count(*) as n from t_messages where direction = 'out' and status <> 'queued'") < 2:
        h.settle()
        h.clock.set(max(h.clock.now(), h.next_scheduled() or h.clock.now() + timedelta(seconds=30)))
    h.settle()
    report = _status("acme")
    [tenant] = report["tenants"]  # type: ignore[misc]
    assert tenant["tenant"] == "acme" and tenant["timezone"] == "America/Sao_Paulo"
    numbers = {n["key"]: n for n in tenant["numbers"]}
    assert set(numbers) == {"bot1", "bot2"}
    for key, n in numbers.items():
        sent = h.count(
            "select count(*) as n from t_messages m join t_numbers f on f.id = m.from_number_id "
            "where m.direction = 'out' and f.key = %s and m.status in ('sent', 'delivered', 'read')",
            key,
        )
        received = h.count(
            "select count(*) as n from t_messages m join t_numbers f on f.id = m.to_number_id "
            "where m.direction = 'in' and f.key = %s",
            key,
        )
        assert n["state"] == "open" and not n["paused"]
        assert (n["sent_today"], n["received_today"]) == (sent, received)
        assert n["hour_limit"] == 30 and n["day_limit"] == 200
        assert n["headroom"] == min(30 - n["hour_used"], 200 - n["day_used"])
    assert sum(n["sent_today"] for n in numbers.values()) >= 2
    [live] = tenant["rounds"]
    assert live["conversation"] == "papo" and live["status"] == "active" and live["steps"] == 6
    assert live["step"] == h.rows("select exchanges_done from t_rounds")[0]["exchanges_done"]
    assert tenant["conversations"] == [
        {
            "conversation": "papo",
            "next_round_at": tenant["conversations"][0]["next_round_at"],
            "note": "a round is running",
        }
    ]
    assert tenant["paused"] == []

    text = CliRunner().invoke(cli, ["status", "acme"])
    assert text.exit_code == 0, text.output
    for heading in ("Numbers", "Active rounds", "Next rounds", "Paused numbers", "bot1", "bot2", "papo"):
        assert heading in text.output


def test_status_gives_the_next_round_of_an_idle_conversation_inside_its_next_window(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    h.clock.advance(timedelta(hours=4))  # 12:00 in São Paulo: between the morning and afternoon windows
    [tenant] = _status()["tenants"]  # type: ignore[misc]
    [conversation] = tenant["conversations"]
    assert conversation["next_round_at"] == "2026-12-07T17:00:00+00:00"  # 14:00 local, the afternoon window
    assert tenant["rounds"] == []


@pytest.mark.parametrize("args", [["nobody"], ["nobody", "--format", "json"]])
def test_status_of_an_unknown_tenant_is_a_clear_error(db: object, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["status", *args])
    assert result.exit_code == 1
    assert "unknown tenant 'nobody'" in result.output
