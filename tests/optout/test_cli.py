"""`mirage optouts review / export / add` and `mirage contacts forget` (LGPD) against real Postgres."""

from __future__ import annotations

import csv
import io
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from mirage.cli import cli
from mirage.db import optouts
from mirage.jobs.rounds import on_message
from tests.optout.helpers import HUMAN, make_scene, person_says, queue_to_human, status_of

Conn = psycopg.Connection[Any]


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--lang", "en", *args], catch_exceptions=False)


def test_review_lists_a_paused_reply_and_clear_resumes_the_contact(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    on_message(person_says(db, s, "para com isso kkk"))
    listed = run("optouts", "review", s.graph.slug)
    assert listed.exit_code == 0
    assert HUMAN in listed.output and "'para com isso'" in listed.output and "para com isso kkk" in listed.output
    review_id = listed.output.split()[0]
    cleared = run("optouts", "review", s.graph.slug, "--clear", review_id)
    assert cleared.exit_code == 0, cleared.output
    assert "1 target(s) resumed" in cleared.output
    assert optouts.may_contact(db, s.tenant, HUMAN)
    assert "No reply" in run("optouts", "review", s.graph.slug).output
    db.commit()


def test_review_confirm_records_the_optout(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    on_message(person_says(db, s, "Não"))
    review_id = run("optouts", "review", s.graph.slug).output.split()[0]
    assert run("optouts", "review", s.graph.slug, "--confirm", review_id).exit_code == 0
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    again = CliRunner().invoke(cli, ["optouts", "review", s.graph.slug, "--confirm", review_id])
    assert again.exit_code == 1 and "no pending review" in again.output
    db.commit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optouts", "review", "nobody"], "no tenant 'nobody'"),
        (["optouts", "export", "nobody"], "no tenant 'nobody'"),
        (["optouts", "add", "{slug}", "5511"], "is not an E.164 number"),
        (["contacts", "forget", "{slug}", "11 98888-0001", "--yes"], "is not an E.164 number"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(db: Conn, args: list[str], message: str) -> None:
    s = make_scene(db)
    result = CliRunner().invoke(cli, [a.format(slug=s.graph.slug) for a in args])
    assert result.exit_code != 0 and message in result.output
    assert db.execute("select count(*) as n from t_optouts where tenant_id = %s", (s.tenant,)).fetchone()["n"] == 1
    db.commit()


def test_add_records_a_manual_optout_and_export_lists_it(db: Conn) -> None:
    s = make_scene(db)
    queued = queue_to_human(db, s)
    added = run("optouts", "add", s.graph.slug, "+55 11 98888-0001")
    assert added.exit_code == 0 and "1 queued message(s) cancelled" in added.output
    assert status_of(db, queued) == "cancelled"
    rows = list(csv.DictReader(io.StringIO(run("optouts", "export", s.graph.slug).output)))
    assert {(r["wa_number"], r["source"]) for r in rows} == {(HUMAN, "manual"), ("+5511977770001", "keyword")}
    db.commit()


def test_forget_erases_the_contact_and_keeps_the_optout_by_hash(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    said = person_says(db, s, "SAIR")
    on_message(said)
    db.execute(
        "insert into t_webhook_events (tenant_id, instance_name, event_type, idem_key, payload) "
        "values (%s, 'x', 'messages.upsert', 'forget-test', %s)",
        (
            s.tenant,
            psycopg.types.json.Jsonb(
                {
                    "event": "messages.upsert",
                    "data": {"key": {"remoteJid": "5511988880001@s.whatsapp.net"}, "message": {"conversation": "SAIR"}},
                }
            ),
        ),
    )
    db.commit()
    result = run("contacts", "forget", s.graph.slug, HUMAN, "--yes")
    assert result.exit_code == 0, result.output
    # Nothing of the person is left: the number, bodies, addresses, raw payloads, the contact row.
    dump = db.execute(
        "select (select json_agg(m) from t_messages m where m.tenant_id = %(t)s)::text || "
        "(select json_agg(o) from t_optouts o where o.tenant_id = %(t)s)::text || "
        "(select json_agg(w) from t_webhook_events w where w.tenant_id = %(t)s)::text || "
        "coalesce((select json_agg(c) from t_contacts c where c.tenant_id = %(t)s)::text, '') as everything",
        {"t": s.tenant},
    ).fetchone()["everything"]
    assert "5511988880001" not in dump and "SAIR" not in dump and "Maria" not in dump
    # ... yet the opt-out holds: re-adding the contact (the next apply from YAML) does not make it reachable.
    db.execute("insert into t_contacts (tenant_id, wa_number) values (%s, %s)", (s.tenant, HUMAN))
    db.commit()
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    exported = list(csv.DictReader(io.StringIO(run("optouts", "export", s.graph.slug).output)))
    forgotten = [r for r in exported if r["forgotten_at"]]
    assert len(forgotten) == 1 and forgotten[0]["wa_number"] == "" and forgotten[0]["keyword"] == ""
    db.commit()


def test_forgetting_a_contact_who_never_opted_out_records_the_optout(db: Conn) -> None:
    s = make_scene(db)
    result = run("contacts", "forget", s.graph.slug, HUMAN, "--yes")
    assert "the opt-out was recorded" in result.output
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    db.commit()
