"""`sweep_outbox`, every 60 s: finish what lost jobs left behind (ADR 0026).

* a `queued` message whose send job was lost (a worker killed, Redis flushed) is handed to the claiming step
  (`send_typed`, under its deterministic id) once its planned instant has passed; one queued for over an hour
  is cancelled as expired;
* a `sending` message older than `SENDING_STALE` belonged to a worker that died mid-send: it may have left,
  so it becomes `unknown` (never re-sent; the `send.message` webhook settles it);
* an active round whose due step has no message (its advance job was lost) is advanced again;
* bot messages whose follow-up never ran, and people's messages not yet checked for an opt-out, are handed to
  `on_message`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mirage.db import outbox
from mirage.db import rounds as db_rounds
from mirage.jobs import queues, runtime
from mirage.jobs.follow_ups import schedule_on_message
from mirage.jobs.rounds import ADVANCE_JOB
from mirage.jobs.runtime import db, tx
from mirage.jobs.send import TYPED_JOB, typed_job_id
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)

QUEUED_GRACE = timedelta(minutes=2)
QUEUED_EXPIRY = timedelta(hours=1)
SENDING_STALE = timedelta(minutes=5)
ADVANCE_GRACE = timedelta(minutes=2)


@job
def sweep_outbox() -> dict[str, int]:
    now = runtime.clock().now()
    requeued = expired = unknown = advanced = followed = 0
    with db() as conn:
        with tx(conn) as c:
            rows = outbox.stale_outbox(c, now - QUEUED_GRACE, now - SENDING_STALE)
            for r in rows:
                if r["status"] == "sending":
                    unknown += outbox.mark(c, r["id"], "unknown", "worker lost mid-send", now, only_from=("sending",))
                elif r["updated_at"] < now - QUEUED_EXPIRY:
                    expired += outbox.mark(c, r["id"], "cancelled", "expired in the outbox", now, only_from=("queued",))
                    if r["round_id"]:
                        db_rounds.abort_rounds(c, [r["round_id"]], "a message expired in the outbox", now)
            stalled = _stalled_rounds(c, now - ADVANCE_GRACE)
            orphans = _unfollowed_messages(c, now)
        for r in rows:
            if r["status"] == "queued" and r["updated_at"] >= now - QUEUED_EXPIRY:
                # Straight to the claiming step (its own id: the lost job's may linger in Redis, ADR 0041).
                requeued += queues.enqueue_unique(
                    queues.MESSAGES, TYPED_JOB, job_id=typed_job_id(r["id"]), args=[r["id"]]
                )
        for round_id, step in stalled:
            advanced += queues.enqueue_unique(
                queues.ROUNDS, ADVANCE_JOB, job_id=f"advance:{round_id}:{step}", args=[round_id]
            )
        for message_id in orphans:
            followed += schedule_on_message(message_id)
    result = {"requeued": requeued, "expired": expired, "unknown": unknown, "advanced": advanced, "followed": followed}
    if any(result.values()):
        log.info("outbox swept", extra=result)
    return result


def _stalled_rounds(c: db_rounds.Conn, before: datetime) -> list[tuple[str, int]]:
    rows = c.execute(
        """
        select r.id::text, r.exchanges_done from t_rounds r
         where r.status in ('planned', 'active') and r.updated_at < %s
           and r.target_id is null  -- outreach rounds are driven by outreach_tick, not advance_round (ADR 0037)
           and not exists (select 1 from t_messages m
                            where m.idempotency_key = 'round:' || r.id::text || ':' || r.exchanges_done::text)
        """,
        (before,),
    ).fetchall()
    return [(r["id"], int(r["exchanges_done"])) for r in rows]


def _unfollowed_messages(c: db_rounds.Conn, now: datetime) -> list[str]:
    rows = c.execute(
        """
        select id::text from t_messages
         where created_at > %s and created_at < %s and round_id is null and not meta ? 'ignored_reason'
           and ((direction = 'in' and from_number_id is not null and to_number_id is not null)
             or (direction = 'in' and from_number_id is null and not meta ? 'optout')  -- a person's: opt-out check
             or (direction = 'out' and idempotency_key is null and session_id is not null))
         limit 500
        """,
        (now - timedelta(hours=1), now - timedelta(minutes=1)),
    ).fetchall()
    return [r["id"] for r in rows]
