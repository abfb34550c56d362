"""`mirage plan` / `mirage apply` end to end: real YAML, real Postgres, real Redis, the CLI in process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reconcile.helpers import SECRETS, count, edit, items, mirage, snapshot, summary

Conn = psycopg.Connection[Any]


def _apply(fleet: Path, *extra: str) -> None:
    result = mirage("apply", fleet, "--yes", *extra)
    assert result.exit_code == 0, result.output


def test_plan_from_empty_shows_creates_and_exits_2(env: Conn, fleet: Path) -> None:
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert summary(result.stdout) == (29, 0, 0)
    assert "+ numbers.joao" in result.stdout and "+ conversations.bom-dia.schedule.mon" in result.stdout
    assert not items(result.stdout, "~") and not items(result.stdout, "-")
    assert count(env, "t_tenants") == 0  # plan writes nothing


def test_apply_then_plan_prints_no_changes_and_exits_0(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    assert count(env, "t_numbers") == 3 and count(env, "t_conversation_schedule") == 7
    assert count(env, "t_outreach_targets") == 2  # the `vip` tag expanded to both contacts
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "No changes. The database matches the YAML."


@pytest.mark.parametrize(
    ("file", "old", "new", "address", "field"),
    [
        ("numbers.yaml", "label: Tia Maria", "label: Tia Maria B.", "numbers.maria", "label"),
        ("personas.yaml", "emoji_rate: 0.3", "emoji_rate: 0.45", "personas.tiozao", "emoji_rate"),
        ("tenant.yaml", "daily_limit: 200", "daily_limit: 150", "settings", "daily_limit"),
        (
            "conversations/bom-dia.yaml",
            "{seed: O jogo de domingo, weight: 2}",
            "{seed: O jogo de domingo, weight: 3}",
            "conversations.bom-dia.topics.futebol",
            "weight",
        ),
        ("outreach.yaml", "hourly_limit: 5", "hourly_limit: 4", "outreach.vip", "hourly_limit"),
        (
            "outreach.yaml",
            "hourly_limit: 5\n",
            "hourly_limit: 5\n    reply_wait_hours: 48\n",
            "outreach.vip",
            "reply_wait_hours",
        ),
        ("contacts.yaml", "notes: cliente antigo", "notes: cliente novo", "contacts.+5511988887777", "notes"),
    ],
)
def test_changing_one_field_in_one_file_gives_exactly_one_update_with_that_field(
    env: Conn, fleet: Path, file: str, old: str, new: str, address: str, field: str
) -> None:
    _apply(fleet)
    edit(fleet / "padaria" / file, old, new)
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert summary(result.stdout) == (0, 1, 0)
    assert items(result.stdout, "~") == [f"~ {address}"]
    changed = [line.strip() for line in result.stdout.splitlines() if "→" in line]
    assert len(changed) == 1 and changed[0].startswith(f"{field}:")
    _apply(fleet)
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0


def _seed_history(conn: Conn) -> dict[str, Any]:
    """A live session on `zeca`, and messages tied to `zeca` and to the conversation."""
    conn.rollback()
    ids = {r["key"]: r for r in conn.execute("select id, key, tenant_id from t_numbers").fetchall()}
    zeca = ids["zeca"]
    conv = conn.execute("select id from t_conversations where key = 'bom-dia'").fetchone()
    session = conn.execute(
        "insert into t_sessions (tenant_id, number_id, instance_name, base_url, state)"
        " values (%s, %s, 'padaria-zeca', 'http://evolution.test:8080', 'open') returning id",
        [zeca["tenant_id"], zeca["id"]],
    ).fetchone()
    conn.execute("update t_numbers set session_id = %s, status = 'open' where id = %s", [session["id"], zeca["id"]])
    for body, number, conversation in (("oi zeca", zeca["id"], None), ("bom dia", ids["joao"]["id"], conv["id"])):
        conn.execute(
            "insert into t_messages (tenant_id, from_number_id, conversation_id, direction, body, status)"
            " values (%s, %s, %s, 'out', %s, 'sent')",
            [zeca["tenant_id"], number, conversation, body],
        )
    conn.commit()
    return {"zeca": str(zeca["id"]), "session": str(session["id"]), "conversation": str(conv["id"])}


def _remove_zeca(fleet: Path) -> None:
    edit(
        fleet / "padaria" / "numbers.yaml",
        '  zeca:\n    label: Zeca reserva\n    number: "+5511999990003"\n    active: true\n',
        "",
    )


def test_delete_without_allow_delete_exits_3_and_writes_nothing(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    _seed_history(env)
    _remove_zeca(fleet)
    before = snapshot(env)
    planned = mirage("plan", fleet, "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert items(planned.stdout, "-") == ["- numbers.zeca (blocked: needs --allow-delete)"]
    applied = mirage("apply", fleet, "--yes")
    assert applied.exit_code == 3, applied.output
    assert "--allow-delete" in applied.output
    assert snapshot(env) == before


@pytest.mark.parametrize("what", ["number", "conversation"])
def test_delete_with_allow_delete_removes_the_row_and_keeps_its_messages(env: Conn, fleet: Path, what: str) -> None:
    _apply(fleet)
    seeded = _seed_history(env)
    if what == "number":
        _remove_zeca(fleet)
    else:
        (fleet / "padaria" / "conversations" / "bom-dia.yaml").unlink()
    planned = mirage("plan", fleet, "--allow-delete", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    _apply(fleet, "--allow-delete")
    assert count(env, "t_messages") == 2
    if what == "number":
        assert count(env, "t_numbers", "key = 'zeca'") == 0
        assert count(env, "t_messages", "body = 'oi zeca' and from_number_id is null") == 1
        assert count(env, "t_sessions", "id = %s and number_id is null", seeded["session"]) == 1
    else:
        assert count(env, "t_conversations") == 0
        assert count(env, "t_conversation_schedule") == 0 and count(env, "t_topics") == 0
        assert count(env, "t_messages", "body = 'bom dia' and conversation_id is null") == 1
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0


def test_prune_true_in_the_tenant_allows_its_deletions(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    edit(fleet / "padaria" / "tenant.yaml", "prune: false", "prune: true")
    _apply(fleet)
    _remove_zeca(fleet)
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 2 and items(result.stdout, "-") == ["- numbers.zeca"]
    _apply(fleet)
    assert count(env, "t_numbers", "key = 'zeca'") == 0


def test_empty_tenant_folder_never_deletes_the_tenant(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    for p in sorted((fleet / "padaria").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    before = snapshot(env)
    result = mirage("apply", fleet, "--yes", "--allow-delete")
    assert result.exit_code == 0, result.output
    assert "empty folder, skipped" in result.stdout and "No changes." in result.stdout
    assert snapshot(env) == before


def test_removed_tenant_folder_archives_the_tenant_only_with_allow_delete(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    _seed_history(env)
    shutil.rmtree(fleet / "padaria")
    blocked = mirage("plan", fleet)
    assert blocked.exit_code == 3
    assert "- tenant (archived: history kept) (blocked: needs --allow-delete)" in blocked.stdout
    _apply(fleet, "--allow-delete")
    assert count(env, "t_tenants", "archived_at is not null") == 1
    assert count(env, "t_numbers") == 0 and count(env, "t_users") == 0
    assert count(env, "t_messages") == 2 and count(env, "t_applies") == 2
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0  # archived tenants are left alone


def test_a_tenant_folder_restored_after_archiving_unarchives_the_same_tenant(
    env: Conn, fleet: Path, tmp_path: Path
) -> None:
    _apply(fleet)
    tenant_id = env.execute("select id from t_tenants").fetchone()["id"]
    env.rollback()
    shutil.move(fleet / "padaria", tmp_path / "padaria")
    _apply(fleet, "--allow-delete")
    shutil.move(tmp_path / "padaria", fleet / "padaria")
    result = mirage("plan", fleet)
    assert "~ tenant" in result.stdout and "archived: true → false" in result.stdout
    _apply(fleet)
    assert count(env, "t_tenants", "id = %s and archived_at is null", tenant_id) == 1
    assert count(env, "t_numbers") == 3
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0


def test_manual_sql_update_appears_as_drift(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    env.execute("update t_numbers set label = 'edited by hand' where key = 'joao'")
    env.execute("update t_conversation_schedule set max_rounds_per_window = 9 where day = 'mon'")
    env.commit()
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 2
    assert items(result.stdout, "~") == [
        "~ numbers.joao (drift)",
        "~ conversations.bom-dia.schedule.mon (drift)",
    ]
    assert 'label: "edited by hand" → "Tio João"' in result.stdout
    assert "max_rounds_per_window: 9 → 2" in result.stdout
    _apply(fleet)
    assert count(env, "t_numbers", "label = 'Tio João'") == 1


def test_runtime_columns_are_never_compared(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    env.execute("update t_numbers set status = 'open', status_reason = 'x', connected_at = now()")
    env.execute("update t_outreach_targets set status = 'done', rounds_done = 3, last_contact_at = now()")
    env.execute("update t_contacts set lid = '123@lid'")
    env.commit()
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("file", "old", "new", "head", "change"),
    [
        (
            "numbers.yaml",
            "  joao:\n",
            "  tio-joao:\n    previous_keys: [joao]\n",
            "~ numbers.tio-joao (renamed from joao)",
            'key: "joao" → "tio-joao"',
        ),
        (
            "contacts.yaml",
            '{number: "+5511988887777",',
            '{number: "+5511977776666", previous_numbers: ["+5511988887777"],',
            "~ contacts.+5511977776666 (renamed from +5511988887777)",
            'wa_number: "+5511988887777" → "+5511977776666"',
        ),
        (
            "conversations/bom-dia.yaml",
            "  futebol: {seed",
            "  bola: {previous_keys: [futebol], seed",
            "~ conversations.bom-dia.topics.bola (renamed from futebol)",
            'key: "futebol" → "bola"',
        ),
    ],
)
def test_rename_with_a_previous_key_is_an_update(
    env: Conn, fleet: Path, file: str, old: str, new: str, head: str, change: str
) -> None:
    _apply(fleet)
    path = fleet / "padaria" / file
    edit(path, old, new)
    if file == "numbers.yaml":  # every reference to the number follows the rename
        for ref in ("conversations/bom-dia.yaml", "outreach.yaml"):
            text = (fleet / "padaria" / ref).read_text()
            (fleet / "padaria" / ref).write_text(text.replace("joao", "tio-joao"))
    if file == "contacts.yaml":
        pass  # targets come from the `vip` tag, so they follow the contact
    ids_before = {
        r["id"]
        for r in env.execute(
            "select id from t_numbers union all select id from t_contacts union all select id from t_topics"
        ).fetchall()
    }
    env.rollback()
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert summary(result.stdout) == (0, 1, 0), result.stdout
    assert items(result.stdout, "~") == [head]
    assert change in result.stdout
    _apply(fleet)
    ids_after = {
        r["id"]
        for r in env.execute(
            "select id from t_numbers union all select id from t_contacts union all select id from t_topics"
        ).fetchall()
    }
    assert ids_after == ids_before  # same rows: history attached to them stays attached
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 0


def test_renamed_conversation_keeps_its_children(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    convs = fleet / "padaria" / "conversations"
    (convs / "bom-dia.yaml").rename(convs / "manha.yaml")
    edit(convs / "manha.yaml", "name: Bom dia no grupo", "name: Bom dia no grupo\nprevious_keys: [bom-dia]")
    result = mirage("plan", fleet, "--detailed-exitcode")
    assert summary(result.stdout) == (0, 1, 0), result.stdout
    assert items(result.stdout, "~") == ["~ conversations.manha (renamed from bom-dia)"]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_known_secret_value_never_appears_in_any_output(
    env: Conn, fleet: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = mirage("plan", fleet, "--format", fmt)
    _apply(fleet)
    env_value = "evo-Rotated-S3cret-Value-0003"
    monkeypatch.setenv("PADARIA_EVOLUTION_API_KEY", env_value)
    changed = mirage("plan", fleet, "--format", fmt, "--detailed-exitcode")
    assert changed.exit_code == 2
    assert "secrets.evolution_api_key" in changed.stdout
    for out in (first.output, changed.output):
        for secret in (*SECRETS.values(), env_value):
            assert secret not in out
    if fmt == "json":
        doc = json.loads(changed.stdout)
        item = doc["tenants"][0]["items"][0]
        assert item["changes"] == [{"field": "fingerprint", "sensitive": True}]
    else:
        assert "(sensitive)" in changed.stdout


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_no_output_lets_anyone_confirm_a_guess_of_a_secret(env: Conn, fleet: Path, tmp_path: Path, fmt: str) -> None:
    """The plan shows the tenant id and the secret's name: an unkeyed hash of them and the value is a guess oracle."""
    from mirage.crypto import fingerprint

    saved = tmp_path / "plan.json"
    result = mirage("plan", fleet, "--format", fmt, "--out", saved)
    tenant_id = json.loads(saved.read_text())["tenants"][0]["id"]
    for name, var in (("evolution_api_key", "PADARIA_EVOLUTION_API_KEY"), ("openai_api_key", "PADARIA_OPENAI_API_KEY")):
        guess = fingerprint(tenant_id, name, SECRETS[var])
        assert guess not in result.output and guess not in saved.read_text()


def test_unset_secret_is_known_after_apply_and_apply_names_the_variable(
    env: Conn, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PADARIA_OPENAI_API_KEY")
    planned = mirage("plan", fleet)
    assert "(sensitive, known after apply)" in planned.stdout
    before = snapshot(env)
    applied = mirage("apply", fleet, "--yes")
    assert applied.exit_code == 1
    assert "PADARIA_OPENAI_API_KEY is unset" in applied.output
    assert snapshot(env)["t_tenants"] == before["t_tenants"] == []


def test_secrets_are_stored_encrypted_with_a_fingerprint(env: Conn, fleet: Path) -> None:
    from mirage.crypto import fingerprint, keyring

    _apply(fleet)
    row = env.execute(
        "select s.id, s.tenant_id, s.value_enc, s.fingerprint from t_tenant_secrets s where name = 'evolution_api_key'"
    ).fetchone()
    env.rollback()
    value = SECRETS["PADARIA_EVOLUTION_API_KEY"]
    assert value.encode() not in bytes(row["value_enc"])
    assert keyring().decrypt(row["value_enc"], table="t_tenant_secrets", row_id=row["id"], field="value") == value
    assert row["fingerprint"] == fingerprint(row["tenant_id"], "evolution_api_key", value)


def test_apply_without_a_terminal_and_without_yes_refuses(env: Conn, fleet: Path) -> None:
    result = mirage("apply", fleet)
    assert result.exit_code == 1
    assert "--yes" in result.output and count(env, "t_tenants") == 0


def test_apply_asks_and_only_yes_applies(env: Conn, fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mirage.cli.plan.stdin_is_tty", lambda: True)
    no = mirage("apply", fleet, input="no\n")
    assert no.exit_code == 1 and "Apply cancelled" in no.output and count(env, "t_tenants") == 0
    yes = mirage("apply", fleet, input="yes\n")
    assert yes.exit_code == 0, yes.output
    assert count(env, "t_tenants") == 1


def test_apply_records_who_applied_what_once_per_tenant(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    row = env.execute("select actor, plan_hash, summary, changes from t_applies").fetchone()
    env.rollback()
    assert row["actor"] == "test-runner"
    assert row["summary"] == {"add": 29, "change": 0, "destroy": 0}
    assert len(row["changes"]) == 29 and row["plan_hash"].startswith("sha256:")
    assert not any(s in json.dumps(row["changes"]) for s in SECRETS.values())


def test_lint_findings_block_plan_and_apply_under_strict(env: Conn, fleet: Path) -> None:
    edit(fleet / "padaria" / "tenant.yaml", "min_delay_ms: 4000", "min_delay_ms: 500")
    assert mirage("plan", fleet, "--detailed-exitcode").exit_code == 2  # a warning only, by default
    planned = mirage("plan", fleet, "--strict")
    assert planned.exit_code == 3
    assert "tenant.yaml:" in planned.stderr and "human-delay-floor" in planned.stderr
    assert "Plan: 29 to add" in planned.stdout  # the plan is still shown
    applied = mirage("apply", fleet, "--yes", "--strict")
    assert applied.exit_code == 3 and "lint finding(s) under --strict" in applied.output
    assert count(env, "t_tenants") == 0


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("outreach.yaml", "daily_limit: 20", "daily_limit: 3000000000", "daily_limit: 3000000000 is above 2147483647"),
        ("numbers.yaml", "label: Tia Maria", 'label: "Tia\\0Maria"', "text contains a NUL character"),
    ],
)
def test_a_value_the_database_could_not_store_is_refused_at_validation_located(
    env: Conn, fleet: Path, file: str, old: str, new: str, message: str
) -> None:
    edit(fleet / "padaria" / file, old, new)
    result = mirage("apply", fleet, "--yes")
    assert result.exit_code == 1
    assert f"padaria/{file}:" in result.stderr and message in result.stderr
    assert count(env, "t_tenants") == 0


def test_a_value_the_database_refuses_is_a_clear_error_and_nothing_is_written(env: Conn, fleet: Path) -> None:
    # A rule only the database knows (here a check constraint added for the test) refuses a valid plan.
    env.execute("alter table t_numbers add constraint test_no_tia check (label <> 'Tia Maria')")
    env.commit()
    try:
        result = mirage("apply", fleet, "--yes")  # no traceback: catch_exceptions=False would raise it here
        assert result.exit_code == 1
        assert "the database refused this plan, nothing was written" in result.stderr
        assert "test_no_tia" in result.stderr
        assert count(env, "t_tenants") == 0
    finally:
        env.rollback()
        env.execute("alter table t_numbers drop constraint test_no_tia")
        env.commit()
