"""`mirage plan --out FILE` then `mirage apply --plan FILE`: exactly that plan, or nothing when it is stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reconcile.helpers import count, edit, mirage, snapshot

Conn = psycopg.Connection[Any]


def _save(fleet: Path, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "plan.json"
    result = mirage("plan", fleet, "--out", out, *extra)
    assert result.exit_code in (0, 2, 3), result.output
    assert "Plan saved to" in result.stderr
    return out


def test_saved_plan_applies_exactly_the_rows_and_ids_it_shows(env: Conn, fleet: Path, tmp_path: Path) -> None:
    out = _save(fleet, tmp_path)
    doc = json.loads(out.read_text())
    planned = {(i["table"], i["id"]) for t in doc["tenants"] for i in t["items"]}
    result = mirage("apply", fleet, "--plan", out)  # no --yes: a saved plan was reviewed when it was made
    assert result.exit_code == 0, result.output
    rows = set()
    for table in {t for t, _ in planned}:
        rows |= {(table, str(r["id"])) for r in env.execute(f"select id from {table}").fetchall()}
    env.rollback()
    assert rows == planned
    audit = env.execute("select plan_hash from t_applies").fetchone()
    assert audit["plan_hash"] == doc["plan_hash"]


@pytest.mark.parametrize("change", ["another apply", "manual sql", "tenant slug changed by hand"])
def test_stale_saved_plan_is_refused_when_the_database_changed(
    env: Conn, fleet: Path, tmp_path: Path, change: str
) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    edit(fleet / "padaria" / "numbers.yaml", "label: Tia Maria", "label: Tia Maria B.")
    out = _save(fleet, tmp_path)
    if change == "another apply":
        assert mirage("apply", fleet, "--yes").exit_code == 0
    elif change == "manual sql":
        env.execute("update t_personas set style = 'changed by hand'")
        env.commit()
    else:  # the plan's rows now belong to another tenant name: its slug is part of what the plan was made from
        env.execute("update t_tenants set slug = 'outra-padaria'")
        env.commit()
    before = snapshot(env)
    result = mirage("apply", fleet, "--plan", out)
    assert result.exit_code == 1
    assert "the database changed since the plan was made" in result.output
    assert snapshot(env) == before


def test_saved_plan_is_refused_when_the_yaml_changed(env: Conn, fleet: Path, tmp_path: Path) -> None:
    out = _save(fleet, tmp_path)
    edit(fleet / "padaria" / "numbers.yaml", "label: Tia Maria", "label: Tia Maria B.")
    result = mirage("apply", fleet, "--plan", out)
    assert result.exit_code == 1 and "the YAML changed since the plan was made" in result.output
    assert count(env, "t_tenants") == 0


def test_saved_plan_is_refused_when_a_secret_changed(
    env: Conn, fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _save(fleet, tmp_path)
    monkeypatch.setenv("PADARIA_EVOLUTION_API_KEY", "evo-a-different-value-0009")
    result = mirage("apply", fleet, "--plan", out)
    assert result.exit_code == 1 and "PADARIA_EVOLUTION_API_KEY" in result.output
    assert "changed since the plan was made" in result.output
    assert count(env, "t_tenants") == 0


def test_saved_plan_with_deletions_still_needs_allow_delete(env: Conn, fleet: Path, tmp_path: Path) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    (fleet / "padaria" / "conversations" / "bom-dia.yaml").unlink()
    out = _save(fleet, tmp_path)
    refused = mirage("apply", fleet, "--plan", out)
    assert refused.exit_code == 3 and count(env, "t_conversations") == 1
    allowed = mirage("apply", fleet, "--plan", out, "--allow-delete")
    assert allowed.exit_code == 0, allowed.output
    assert count(env, "t_conversations") == 0


def test_edited_plan_file_is_refused(env: Conn, fleet: Path, tmp_path: Path) -> None:
    out = _save(fleet, tmp_path)
    doc = json.loads(out.read_text())
    doc["tenants"][0]["items"][0]["changes"][0]["new"] = "Someone Else"
    out.write_text(json.dumps(doc))
    result = mirage("apply", fleet, "--plan", out)
    assert result.exit_code == 1 and "was edited" in result.output
    assert count(env, "t_tenants") == 0
