"""round_robin takes a conversation's pairings in the order its YAML lists them (ADR 0060): apply writes each
pairing's place, the tick reads the pairs in that order, and `mirage import` writes them back in it."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from mirage.db import rounds as db_rounds
from mirage.engine.rounds import PlanState, RoundPlan, plan_conversation
from mirage.jobs.runtime import build_views
from tests.reconcile.helpers import items, mirage, summary

Conn = psycopg.Connection[Any]
MONDAY_9AM = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo, inside the morning window

ORDERS = [
    [("maria", "zeca"), ("joao", "maria"), ("joao", "zeca")],
    [("joao", "zeca"), ("maria", "zeca"), ("joao", "maria")],
    [("joao", "maria"), ("joao", "zeca"), ("maria", "zeca")],
]


def _write(fleet: Path, pairs: list[tuple[str, str]]) -> None:
    (fleet / "padaria" / "conversations" / "roda.yaml").write_text(
        "name: Roda\nmode: round_robin\nexchanges: {min: 2, max: 2}\n"
        "participants: [{number: joao}, {number: maria}, {number: zeca}]\n"
        f"pairings: [{', '.join(f'{{a: {a}, b: {b}}}' for a, b in pairs)}]\n"
        "topics: {tempo: {seed: O calor}}\n",
        encoding="utf-8",
    )


def _rotation(conn: Conn, rounds: int) -> list[tuple[str, str]]:
    """The (starter, responder) keys of the conversation's first `rounds` rounds, as the tick plans them."""
    conn.execute("update t_numbers set status = 'open'")
    snapshot = db_rounds.load_snapshot(conn, MONDAY_9AM.date())
    conn.rollback()
    view = next(v for v in build_views(snapshot)[0] if v.key == "roda")
    out = []
    for k in range(rounds):
        plan = plan_conversation(view, PlanState(total_rounds=k), MONDAY_9AM, random.Random(k))
        assert isinstance(plan, RoundPlan), plan
        out.append((view.numbers[plan.starter].key, view.numbers[plan.responder].key))
    return out


@pytest.mark.parametrize("pairs", ORDERS, ids=["-then-".join("".join(p) for p in o) for o in ORDERS])
def test_round_robin_follows_the_order_the_yaml_lists_the_pairings_in(
    env: Conn, fleet: Path, pairs: list[tuple[str, str]]
) -> None:
    _write(fleet, pairs)
    assert mirage("apply", fleet, "--yes").exit_code == 0
    assert _rotation(env, 2 * len(pairs)) == pairs + pairs


def test_reordering_the_pairings_is_a_planned_change_of_position_and_the_rotation_follows(
    env: Conn, fleet: Path
) -> None:
    _write(fleet, ORDERS[0])
    assert mirage("apply", fleet, "--yes").exit_code == 0
    _write(fleet, ORDERS[1])
    planned = mirage("plan", fleet)
    assert summary(planned.stdout) == (0, 3, 0), planned.stdout
    assert sorted(items(planned.stdout, "~")) == [
        "~ conversations.roda.pairings.joao~maria",
        "~ conversations.roda.pairings.joao~zeca",
        "~ conversations.roda.pairings.maria~zeca",
    ]
    assert "position: 1 → 2" in planned.stdout or "position: 1 -> 2" in planned.stdout, planned.stdout
    assert mirage("apply", fleet, "--yes").exit_code == 0
    assert _rotation(env, 3) == ORDERS[1]


@pytest.mark.parametrize("pairs", ORDERS, ids=["-then-".join("".join(p) for p in o) for o in ORDERS])
def test_import_writes_the_pairings_back_in_their_order_and_plans_no_changes(
    env: Conn, fleet: Path, tmp_path: Path, pairs: list[tuple[str, str]]
) -> None:
    _write(fleet, pairs)
    assert mirage("apply", fleet, "--yes").exit_code == 0
    out = tmp_path / "imported" / "padaria"
    assert mirage("import", "padaria", "--out", out).exit_code == 0
    doc = yaml.safe_load((out / "conversations" / "roda.yaml").read_text(encoding="utf-8"))
    assert [(p["a"], p["b"]) for p in doc["pairings"]] == pairs
    planned = mirage("plan", out.parent, "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.stdout


def test_a_pairing_without_a_position_comes_after_the_numbered_ones_and_the_next_plan_numbers_it(
    env: Conn, fleet: Path
) -> None:
    _write(fleet, ORDERS[2])
    assert mirage("apply", fleet, "--yes").exit_code == 0
    # As a row written by hand (or by a tool that predates the column) would be.
    env.execute(
        "update t_pairings set position = null where number_a_id = (select id from t_numbers where key = 'joao') "
        "and number_b_id = (select id from t_numbers where key = 'maria') "
        "and conversation_id = (select id from t_conversations where key = 'roda')"
    )
    env.commit()
    assert _rotation(env, 3) == [ORDERS[2][1], ORDERS[2][2], ORDERS[2][0]]
    planned = mirage("plan", fleet)
    assert summary(planned.stdout) == (0, 1, 0), planned.stdout
    assert items(planned.stdout, "~") == ["~ conversations.roda.pairings.joao~maria"]
    assert "drift" not in planned.stdout.lower()  # a place the database never had is not a hand edit
    assert mirage("apply", fleet, "--yes").exit_code == 0
    assert _rotation(env, 3) == ORDERS[2]
