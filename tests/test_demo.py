"""`mirage demo` runs the whole spine end to end against real Postgres and Redis and the Evolution simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from click.testing import CliRunner

from mirage.cli import cli
from mirage.crypto import generate_key
from mirage.demo import DemoOptions, run_demo
from mirage.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def secret_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", generate_key())
    get_settings.cache_clear()


def test_demo_applies_the_examples_connects_every_number_and_runs_a_simulated_day_of_the_runtime(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    options = DemoOptions(tenants_dir=ROOT / "tenants.d", port=0, sim_port=0, timeout_s=60)
    report = run_demo(options, lines.append)
    commands = "\n".join(lines)  # the demo narrates what each step (a CLI command's functions) printed
    assert report.tenants == 2
    assert report.numbers_total == report.numbers_open > 0
    # The messages come from the runtime's own jobs in a simulated day: rounds the tick planned, steps in order
    # (and the outreach campaign's openings to people, with their replies).
    talk = [m for m in report.transcript if m["conversation"]]
    assert report.rounds > 0 and talk and all(m["step"] is not None and m["from"] != m["to"] for m in talk)
    assert report.sent == sum(1 for m in report.transcript if m["kind"] != "person")
    assert {m["kind"] for m in talk} >= {"greeting", "goodbye"}
    assert report.violations == 0
    assert "Apply complete: 102 added" in commands and any("[8/8]" in line for line in lines)
    assert "$ mirage simulate" in commands and "Every check at zero." in commands
    # The real openai client, through the OpenAI-compatible simulator, writes a sample round with its tokens
    assert len(report.model_texts) == 8 and all(report.model_texts)
    assert len({line.split()[1] for line in lines if "(openai, " in line}) == 2  # two personas talk
    assert "$ mirage say" in commands and sum("(openai, " in line and " tokens)" in line for line in lines) == 8
    # A second run on another simulator port: the plan changes only the Evolution URL, every instance moves
    # to the new server, and every number connects again there.
    lines.clear()
    again = run_demo(options, lines.append)
    out = "\n".join(lines)
    assert "Plan: 0 to add, 2 to change, 0 to destroy." in out and "~ settings: evolution_base_url" in out
    assert again.numbers_open == report.numbers_open


def test_demo_fails_clearly_when_a_port_is_taken(db: psycopg.Connection[Any], redis: redis_lib.Redis) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["demo", "--port", str(port), "--sim-port", "0"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
