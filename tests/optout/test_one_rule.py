"""The one rule for who may be contacted (issue 13 item 5) and the outbox claim that re-checks it, on real Postgres."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mirage.db import optouts, outbox
from tests.optout.helpers import HUMAN, NOW, make_scene, queue_to_human, status_of

Conn = psycopg.Connection[Any]


def test_a_contact_may_be_messaged_until_it_opts_out(db: Conn) -> None:
    s = make_scene(db)
    assert optouts.may_contact(db, s.tenant, HUMAN)
    optouts.record_optout(db, s.tenant, HUMAN, NOW, keyword="sair", message_id=None)
    db.commit()
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    assert optouts.blocked_numbers(db, s.tenant, [HUMAN, "+5511900000000"]) == {HUMAN}


def test_an_optout_holds_tenant_wide_and_only_in_that_tenant(db: Conn) -> None:
    a, b = make_scene(db), make_scene(db)
    optouts.record_optout(db, a.tenant, HUMAN, NOW, keyword="stop")
    db.commit()
    assert not optouts.may_contact(db, a.tenant, HUMAN)
    assert optouts.may_contact(db, b.tenant, HUMAN)


def test_a_pending_review_pauses_the_contact_and_clearing_it_resumes_the_targets(db: Conn) -> None:
    s = make_scene(db)
    stopped = optouts.pause_for_review(db, s.tenant, HUMAN, NOW, phrase="nao", message_id=None)
    db.commit()
    assert (stopped.created, stopped.targets) == (True, 1)
    assert not optouts.may_contact(db, s.tenant, HUMAN)
    [review] = optouts.pending_reviews(db, s.tenant)
    optouts.decide_review(db, s.tenant, review["id"], optout=False, by="ana", now=NOW)
    db.commit()
    assert optouts.may_contact(db, s.tenant, HUMAN)
    target = db.execute("select status::text from t_outreach_targets where tenant_id = %s", (s.tenant,)).fetchone()
    assert target is not None and target["status"] == "in_progress"


def test_confirming_a_review_records_the_optout(db: Conn) -> None:
    s = make_scene(db)
    optouts.pause_for_review(db, s.tenant, HUMAN, NOW, phrase="para com isso", message_id=None)
    [review] = optouts.pending_reviews(db, s.tenant)
    stopped = optouts.decide_review(db, s.tenant, review["id"], optout=True, by="ana", now=NOW)
    db.commit()
    assert stopped.created and not optouts.may_contact(db, s.tenant, HUMAN)
    row = db.execute("select source, keyword from t_optouts where tenant_id = %s and wa_number = %s", (s.tenant, HUMAN))
    assert row.fetchone() == {"source": "review", "keyword": "para com isso"}
    with pytest.raises(optouts.ReviewGone):
        optouts.decide_review(db, s.tenant, review["id"], optout=False, by="ana", now=NOW)


@pytest.mark.parametrize("by", ["contact", "jid"])
def test_the_claim_refuses_a_message_to_an_opted_out_contact_even_if_it_was_never_cancelled(db: Conn, by: str) -> None:
    s = make_scene(db)
    # The opt-out first, then a message queued by a sender that did not ask may_contact: the claim still refuses.
    optouts.record_optout(db, s.tenant, HUMAN, NOW, keyword="sair")
    db.commit()
    message = queue_to_human(db, s, by=by)
    assert outbox.claim(db, message, NOW, quiet=False) is None
    db.commit()
    assert status_of(db, message) == "queued"


@pytest.mark.parametrize("by", ["contact", "jid"])
def test_the_claim_takes_a_message_to_a_contact_who_may_be_messaged(db: Conn, by: str) -> None:
    s = make_scene(db)
    message = queue_to_human(db, s, by=by)
    assert outbox.claim(db, message, NOW, quiet=False) is not None
    db.commit()
    assert status_of(db, message) == "sending"
