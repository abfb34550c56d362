"""Opt-out detection after ingest: the follow-up job of a stored message (`on_message`) checks people's messages,
never the tenant's own numbers', once, and acts in its transaction. Real Postgres and Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from mirage.db import optouts, outbox
from mirage.jobs.rounds import on_message
from mirage.jobs.sweep import _unfollowed_messages
from tests.optout.helpers import HUMAN, NOW, make_scene, person_says, queue_to_human, status_of

Conn = psycopg.Connection[Any]


def _target(db: Conn, tenant: str) -> str:
    row = db.execute("select status::text from t_outreach_targets where tenant_id = %s", (tenant,)).fetchone()
    db.commit()
    return str(row["status"]) if row else ""


@pytest.mark.parametrize(
    ("text", "outcome", "target", "may_contact"),
    [
        ("SAIR", "opt-out", "optout", False),
        ("Não quero mais receber, obrigado", "opt-out", "optout", False),
        ("para com isso kkk", "paused for review", "paused", False),
        ("Oi, tudo bem? Quem fala?", "no opt-out", "in_progress", True),
    ],
)
def test_a_persons_message_is_checked_and_acted_on(
    db: Conn, redis: Any, text: str, outcome: str, target: str, may_contact: bool
) -> None:
    s = make_scene(db)
    queued = queue_to_human(db, s)
    said = person_says(db, s, text)
    assert on_message(said).startswith(outcome)
    assert _target(db, s.tenant) == target
    assert optouts.may_contact(db, s.tenant, HUMAN) is may_contact
    assert status_of(db, queued) == ("queued" if may_contact else "cancelled")
    meta = db.execute("select meta from t_messages where id = %s", (said,)).fetchone()["meta"]
    db.commit()
    assert meta["optout"] == {"opt-out": "optout", "paused for review": "ambiguous"}.get(outcome, "none")


def test_the_policys_own_keyword_opts_out(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    db.execute("update t_outreach_policies set optout_keywords = '{encerrar}' where tenant_id = %s", (s.tenant,))
    db.commit()
    assert on_message(person_says(db, s, "ENCERRAR!")).startswith("opt-out")
    row = db.execute("select keyword, source from t_optouts where tenant_id = %s and wa_number = %s", (s.tenant, HUMAN))
    assert row.fetchone() == {"keyword": "encerrar", "source": "keyword"}
    db.commit()


def test_a_stranger_not_in_the_contacts_is_opted_out_by_number(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    stranger = "+5521977776666"
    assert on_message(person_says(db, s, "STOP", number=stranger)).startswith("opt-out")
    assert not optouts.may_contact(db, s.tenant, stranger)
    db.commit()


def test_a_message_from_one_of_the_tenants_own_numbers_is_never_an_optout(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    said = person_says(db, s, "SAIR")
    db.execute("update t_messages set from_number_id = to_number_id where id = %s", (said,))
    db.commit()
    assert not on_message(said).startswith("opt-out")
    assert optouts.may_contact(db, s.tenant, HUMAN)
    db.commit()


def test_a_retried_follow_up_checks_a_message_once(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    said = person_says(db, s, "não")
    assert on_message(said).startswith("paused for review")
    assert on_message(said) == "nothing to check"
    assert len(optouts.pending_reviews(db, s.tenant)) == 1
    db.commit()


def test_the_sweeper_hands_over_a_persons_message_whose_check_never_ran(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    said = person_says(db, s, "SAIR")
    db.execute("update t_messages set created_at = %s where id = %s", (NOW, said))
    db.commit()
    assert said in _unfollowed_messages(db, NOW + timedelta(minutes=2))
    on_message(said)
    assert said not in _unfollowed_messages(db, NOW + timedelta(minutes=2))
    db.commit()


@pytest.mark.parametrize("text", ["Não quero mais", "NAO QUERO MAIS", "não quero mais!!", "Nao Quero Mais 🙏"])
def test_optout_keyword_cancels_queued_messages(db: Conn, redis: Any, text: str) -> None:
    s = make_scene(db)
    queued = queue_to_human(db, s)
    assert on_message(person_says(db, s, text)) == "opt-out: 1 cancelled, 1 targets"
    assert status_of(db, queued) == "cancelled"
    assert _target(db, s.tenant) == "optout"


LID = "123456789012345@lid"


def _learn_lid(db: Conn, s: Any) -> None:
    """What ingest does when a later event carries the LID with the phone (remoteJidAlt): the contact holds it."""
    db.execute("update t_contacts set lid = %s where id = %s", (LID, s.contact))
    db.commit()


@pytest.mark.parametrize(
    ("text", "outcome"), [("SAIR", "opt-out"), ("para com isso kkk", "paused for review")], ids=["optout", "review"]
)
def test_an_optout_from_a_lid_without_a_phone_holds_for_the_contact_once_the_lid_is_known(
    db: Conn, redis: Any, text: str, outcome: str
) -> None:
    s = make_scene(db)
    said = person_says(db, s, text, lid=LID)
    assert on_message(said).startswith(outcome)
    assert not optouts.may_contact(db, s.tenant, LID)  # recorded against the LID
    assert optouts.may_contact(db, s.tenant, HUMAN)  # nobody knows yet whose LID it is
    queued = queue_to_human(db, s)  # a message to the contact, by its phone number
    _learn_lid(db, s)
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    assert outbox.claim(db, queued, NOW, quiet=False) is None  # the claim refuses it
    db.commit()
    assert status_of(db, queued) == "queued"


def test_a_reply_addressed_to_an_opted_out_lid_is_cancelled_and_never_claimed(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    db.execute("delete from t_contacts where id = %s", (s.contact,))  # a stranger known only by the LID
    db.commit()
    to_lid = queue_to_human(db, s, by="jid", number=LID)
    assert on_message(person_says(db, s, "STOP", lid=LID)).startswith("opt-out: 1 cancelled")
    assert status_of(db, to_lid) == "cancelled"
    late = queue_to_human(db, s, by="jid", number=LID)  # queued by a sender that did not ask may_contact
    assert outbox.claim(db, late, NOW, quiet=False) is None
    db.commit()


def test_a_lid_the_contact_holds_already_opts_out_its_number(db: Conn, redis: Any) -> None:
    s = make_scene(db)
    _learn_lid(db, s)
    said = person_says(db, s, "SAIR", lid=LID)
    assert on_message(said).startswith("opt-out")
    row = db.execute("select wa_number from t_optouts where message_id = %s", (said,)).fetchone()
    db.commit()
    assert row == {"wa_number": HUMAN}
