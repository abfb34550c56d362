"""An opt-out against a message to that person that is queued, scheduled, or being claimed at that instant: after
the opt-out commits, none of them is sent (issue 13). Real Postgres and Redis; the real on_message and send jobs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from rq import Queue
from rq.registry import ScheduledJobRegistry

from mirage.db import outbox
from mirage.db.sessions import service_session
from mirage.jobs import queues
from mirage.jobs.optouts import check_inbound
from mirage.jobs.rounds import SEND_JOB, on_message
from mirage.jobs.send import send_message
from tests.optout.helpers import NOW, make_scene, person_says, queue_to_human, status_of

Conn = psycopg.Connection[Any]


@pytest.mark.parametrize(("says", "claimable"), [("SAIR", False), ("Bom dia!", True)])
def test_a_queued_message_is_cancelled_by_the_optout_and_its_send_job_sends_nothing(
    db: Conn, redis: Any, says: str, claimable: bool
) -> None:
    s = make_scene(db)
    message = queue_to_human(db, s)
    assert on_message(person_says(db, s, says)) == (
        "opt-out: 1 cancelled, 1 targets" if not claimable else "no opt-out"
    )
    assert status_of(db, message) == ("queued" if claimable else "cancelled")
    if not claimable:
        assert send_message(message) == "already cancelled"
    assert (outbox.claim(db, message, NOW, quiet=False) is not None) is claimable
    db.rollback()


def test_a_scheduled_message_is_cancelled_and_its_job_finds_nothing_to_send_when_its_time_comes(
    db: Conn, redis: Any
) -> None:
    s = make_scene(db)
    message = queue_to_human(db, s, planned_at=NOW + timedelta(minutes=5))
    at = datetime.now(UTC) + timedelta(minutes=5)
    assert queues.enqueue_unique(queues.MESSAGES, SEND_JOB, job_id=f"send:{message}", args=[message], at=at)
    assert on_message(person_says(db, s, "me tira dessa lista")).startswith("opt-out: 1 cancelled")
    assert status_of(db, message) == "cancelled"
    # The scheduled job is still in Redis (cancelling is by database state); when it runs it sends nothing.
    registry = ScheduledJobRegistry(queue=Queue(queues.MESSAGES, connection=redis))
    assert registry.get_job_ids() == [queues.job_key(f"send:{message}")]
    assert send_message(message) == "already cancelled"
    assert outbox.claim(db, message, NOW + timedelta(minutes=5), quiet=False) is None
    db.rollback()


def _claim_in_thread(url: str, message: str, out: dict[str, Any]) -> None:
    with psycopg.connect(url, row_factory=dict_row) as c:
        out["pid"] = c.info.backend_pid
        out["row"] = outbox.claim(c, message, NOW, quiet=False)
        c.commit()


def test_a_claim_racing_the_optout_waits_for_it_and_then_claims_nothing(db: Conn, database_url: str) -> None:
    s = make_scene(db)
    message = queue_to_human(db, s)
    said = person_says(db, s, "STOP")
    with psycopg.connect(database_url, row_factory=dict_row) as optout, service_session(optout):
        # The opt-out's transaction is open (the message row is locked, cancelled but not committed) ...
        assert check_inbound(optout, said, NOW).startswith("opt-out: 1 cancelled")
        out: dict[str, Any] = {}
        claimer = threading.Thread(target=_claim_in_thread, args=(database_url, message, out))
        claimer.start()
        # ... while the send job's claim runs: it must be waiting on that row lock, not deciding on its own.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = db.execute(
                "select wait_event_type from pg_stat_activity where pid = %s", (out.get("pid", 0),)
            ).fetchone()
            db.commit()
            if waiting and waiting["wait_event_type"] == "Lock":
                break
            time.sleep(0.01)
        else:
            pytest.fail("the claim never waited for the opt-out's lock")
    # The opt-out committed (end of the with block); the claim, woken up, finds the row cancelled.
    claimer.join(10)
    assert out["row"] is None
    assert status_of(db, message) == "cancelled"
