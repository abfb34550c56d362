"""`mirage simulate` end to end: the shipped examples for a week, reproducibility, configurations that break a
rule on purpose."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from tests.simulation.conftest import EXAMPLES, Outcome, aurora, padaria

CHECKS = ("quiet_hours", "hourly_limit", "daily_limit", "warmup", "after_optout", "out_of_turn", "repeated", "windows")


def test_the_shipped_examples_run_a_week_with_every_check_at_zero_and_rounds_in_every_window(
    simulate: Callable[..., Outcome],
) -> None:
    out = simulate(EXAMPLES, "--days", "7", "--start", "2026-12-07", "--seed", "42")
    report = out.report
    assert out.exit_code == 0, report["checks"]
    assert report["ok"] and report["violations"] == 0
    assert {name: c["count"] for name, c in report["checks"].items()} == dict.fromkeys(CHECKS, 0)
    windows = report["windows"]
    assert {w["conversation"] for w in windows} == {
        "agencia-aurora/papo-de-familia",
        "agencia-aurora/resenha-da-manha",
        "padaria-do-ze/balcao-e-forno",
    }
    empty = [w for w in windows if w["rounds"] == 0]
    assert empty == [], empty  # a round in each configured window of the week
    assert all(w["rounds"] <= w["max_rounds"] for w in windows)
    assert report["totals"]["rounds"] == sum(w["rounds"] for w in windows)  # and none outside them
    assert report["totals"]["rounds_done"] == report["totals"]["rounds"]
    assert report["transcript_sha256"] == hashlib.sha256(out.transcript).hexdigest()
    for conversation, d in report["delays"].items():
        if d["messages"]:
            assert d["within"], (conversation, d)
    days = {day for numbers in report["tenants"].values() for n in numbers.values() for day in n}
    assert days == {f"2026-12-{d:02d}" for d in range(7, 12)} | {"2026-12-12"}  # Mon-Sat (Sunday is off)


def test_the_same_seed_gives_the_same_transcript_and_another_seed_another(
    simulate: Callable[..., Outcome], tmp_path: Path
) -> None:
    root = padaria(tmp_path)
    runs = [simulate(root, "--days", "1", "--start", "2026-12-07", "--seed", seed) for seed in ("42", "42", "7")]
    hashes = [hashlib.sha256(r.transcript).hexdigest() for r in runs]
    assert runs[0].transcript  # rounds ran
    assert hashes[0] == hashes[1] == runs[0].report["transcript_sha256"]
    assert hashes[2] != hashes[0]


def _window_in_quiet_hours(folder: Path) -> None:
    path = folder / "conversations" / "balcao-e-forno.yaml"
    text = path.read_text()
    path.write_text(text.replace("      evening: off\n", '      evening: {start: "22:00", end: "23:00"}\n', 1))


def _daily_limit_3_with_5_rounds(folder: Path) -> None:
    tenant = folder / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("daily_limit: 60", "daily_limit: 3"))
    path = folder / "conversations" / "balcao-e-forno.yaml"
    text = path.read_text().replace("exchanges: {min: 2, max: 4}", "exchanges: {min: 1, max: 1}")
    text = text.replace("max_rounds_per_window: 1", "max_rounds_per_window: 5")
    path.write_text(text.replace("pause_between_rounds: {min: 30, max: 90}", "pause_between_rounds: {min: 5, max: 10}"))


@pytest.mark.parametrize(
    ("edit", "check"),
    [(_window_in_quiet_hours, "quiet_hours"), (_daily_limit_3_with_5_rounds, "daily_limit")],
    ids=["window-inside-quiet-hours", "daily-limit-3-with-5-rounds"],
)
def test_a_configuration_that_breaks_a_rule_fails_its_check_and_exits_1(
    simulate: Callable[..., Outcome], tmp_path: Path, edit: Callable[[Path], None], check: str
) -> None:
    out = simulate(padaria(tmp_path, edit), "--days", "1", "--start", "2026-12-07", "--seed", "42")
    assert out.exit_code == 1
    failing = {name for name, c in out.report["checks"].items() if c["count"]}
    assert failing == {check}, out.report["checks"]
    assert out.report["checks"][check]["findings"][0]["tenant"] == "padaria-do-ze"
    assert "violation" in out.stderr


def test_a_person_who_opts_out_on_the_second_message_gets_nothing_more_and_the_report_lists_the_opt_out(
    server_url: str,
) -> None:
    from mirage.integrations.evolution_sim.config import HumanConfig
    from mirage.simulation.session import SimulationOptions, report_of, simulation

    rosa = "5511987001234"  # Dona Rosa, the outreach policy's first target (agencia-aurora/outreach.yaml)
    human = HumanConfig(scripts={rosa: ["Oi! Tudo bem? Quem fala?", "SAIR"]})
    options = SimulationOptions(
        EXAMPLES, days=2, start=date(2026, 12, 7), seed=42, human=human, scope=("agencia-aurora",)
    )
    with simulation(options) as run:
        report = report_of(run)
    to_rosa = [m for m in report.transcript if m["to"] == rosa]
    from_rosa = [m for m in report.transcript if m["from"] == rosa]
    assert [m["text"] for m in from_rosa] == ["Oi! Tudo bem? Quem fala?", "SAIR"]
    assert len(to_rosa) == 2 and to_rosa[1]["at"] < from_rosa[1]["at"]  # she opted out on the second message
    assert [(o["person"], o["text"]) for o in report.optouts] == [(rosa, "SAIR")]
    assert report.checks["after_optout"].count == 0  # the runtime sent her nothing after it


ROSA = "+5511987001234"  # Dona Rosa, the first target of agencia-aurora's outreach policy


def _policy_knows(phrase: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "outreach.yaml"
        old = 'optout_keywords: [SAIR, PARAR, STOP, "não quero"]'
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, f'optout_keywords: [SAIR, PARAR, STOP, "não quero", "{phrase}"]'))

    return edit


@pytest.mark.parametrize(
    ("edit", "exit_code"),
    [(None, 1), (_policy_knows("me esquece"), 0)],
    ids=["policy-misses-her-words-exits-1", "policy-knows-her-words-exits-0"],
)
def test_a_person_who_opts_out_on_the_second_message_in_words_the_policy_misses_fails_the_optout_check(
    simulate: Callable[..., Outcome], tmp_path: Path, edit: Callable[[Path], None] | None, exit_code: int
) -> None:
    out = simulate(
        aurora(tmp_path, edit),
        *("--days", "1", "--start", "2026-12-07", "--seed", "42", "--optout-phrase", "me esquece"),
        *("--script", f"{ROSA}=Oi! Tudo bem? Quem fala?", "--script", f"{ROSA}=me esquece"),
    )
    rosa = ROSA.lstrip("+")
    transcript = [json.loads(line) for line in out.transcript.splitlines()]
    from_rosa = [m for m in transcript if m["from"] == rosa]
    assert [m["text"] for m in from_rosa][:2] == ["Oi! Tudo bem? Quem fala?", "me esquece"]
    assert [(o["person"], o["text"], o["recognised"]) for o in out.report["optouts"]] == [
        (rosa, "me esquece", exit_code == 0)
    ]
    after = [m for m in transcript if m["to"] == rosa and m["at"] > from_rosa[1]["at"]]
    assert out.exit_code == exit_code
    failing = {name for name, c in out.report["checks"].items() if c["count"]}
    assert failing == ({"after_optout"} if exit_code else set())
    if exit_code:  # the runtime went on (its policy does not know the phrase): every message after it is listed
        findings = out.report["checks"]["after_optout"]["findings"]
        assert after and len(findings) == len(after)
        assert "did not recognise it" in findings[0]["why"] and "optout_keywords" in findings[0]["why"]
        assert "violation" in out.stderr
    else:  # the policy knows it: the opt-out is recorded and nothing more goes to her
        assert after == []


@pytest.mark.parametrize(
    ("script", "why"),
    [("SAIR", "expected NUMBER=TEXT"), ("+55=SAIR", "expected NUMBER=TEXT"), (f"{ROSA}=  ", "expected NUMBER=TEXT")],
    ids=["no-number", "short-number", "no-text"],
)
def test_a_malformed_script_is_refused_before_anything_runs(tmp_path: Path, script: str, why: str) -> None:
    from click.testing import CliRunner

    from mirage.cli import cli

    transcript = tmp_path / "t.jsonl"
    result = CliRunner().invoke(
        cli, ["simulate", str(EXAMPLES), "--days", "1", "--script", script, "--transcript", str(transcript)]
    )
    assert result.exit_code == 2  # bad usage, not a violation
    assert "--script" in result.output and why in result.output and script.strip() in result.output
    assert not transcript.exists()  # nothing started, nothing written
