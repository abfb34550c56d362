"""Opt-out detection for people's messages, run by the follow-up job of every stored message (`on_message`).

Off the webhook's hot path (one round trip per event stays true); the verdict and everything it changes commit
in the follow-up's transaction (ADR 0036). The pure decision is `mirage.engine.optout.detect`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from mirage.db import optouts as db_optouts
from mirage.db.evolution_sessions import evolution_access, live_session
from mirage.engine.optout import detect
from mirage.errors import TemporaryError
from mirage.i18n import t
from mirage.integrations.evolution.client import EvolutionClient
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.evolution.events import parse_jid
from mirage.jobs import queues, runtime
from mirage.jobs.args import permanent_failures_stop_retries, uuid_arg
from mirage.jobs.runtime import Conn, db, tx
from mirage.jobs.wrapper import job
from mirage.settings import get_settings

log = logging.getLogger(__name__)

CONFIRM_JOB = "mirage.jobs.optouts.confirm_optout"


def check_inbound(c: Conn, message_id: str, now: datetime) -> str:
    """Detect an opt-out in a person's message and act on it in the caller's transaction; what happened."""
    m = db_optouts.take_inbound(c, message_id)
    if m is None:
        return "nothing to check"
    d = detect(m["body"], tuple(m["keywords"]))
    if d.verdict == "none":
        return "no opt-out"
    db_optouts.mark_scanned(c, message_id, d.verdict, d.phrase)
    address = m["wa_number"] or _lid(m["from_jid"])
    if address is None:  # neither a number nor a LID: nothing could ever match it
        log.warning("opt-out from a sender without an address", extra={"message_id": message_id})
        return f"{d.verdict} without an address"
    # An @lid sender whose phone we do not know yet: recorded against the LID, it holds for the contact as soon as
    # ingest learns that LID belongs to it (public.may_contact asks by the contact's LID too; ADR 0055).
    extra = {"message_id": message_id, "tenant_id": m["tenant_id"], "phrase": d.phrase, "by_lid": not m["wa_number"]}
    if d.verdict == "optout":
        s = db_optouts.record_optout(
            c, m["tenant_id"], address, now, keyword=d.phrase, source="keyword", message_id=message_id
        )
        log.info("opt-out recorded", extra={**extra, "cancelled": s.cancelled, "targets": s.targets})
        if s.created and get_settings().optout_confirmation:
            # Enqueued inside this transaction: the job waits (retries) until the opt-out is committed.
            queues.enqueue_unique(
                queues.MESSAGES, CONFIRM_JOB, job_id=f"optout-confirm:{message_id}", args=[message_id]
            )
        return f"opt-out: {s.cancelled} cancelled, {s.targets} targets"
    s = db_optouts.pause_for_review(c, m["tenant_id"], address, now, phrase=d.phrase or "", message_id=message_id)
    log.info("possible opt-out: contact paused for review", extra={**extra, "cancelled": s.cancelled})
    return f"paused for review: {s.cancelled} cancelled, {s.targets} targets"


def _lid(jid: str | None) -> str | None:
    parsed = parse_jid(jid)
    return parsed.normal if parsed is not None and parsed.kind == "lid" else None


class NotCommittedYet(TemporaryError):
    """The opt-out that asked for this confirmation is not committed yet: RQ retries the job."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"opt-out of message {message_id} not committed yet")


@job
def confirm_optout(message_id: str) -> str:
    """Send the one confirmation of an opt-out (MIRAGE_OPTOUT_CONFIRMATION), from the number the person wrote to.

    At most once per opt-out, ever: the right to send is taken (t_optouts.confirmation_sent_at) before sending, so
    a failure is not retried. It is not an outbox message (the contact may not be messaged any more: this is the
    one exception, an answer to their own message), so it takes no quota and waits for no round."""
    with permanent_failures_stop_retries():
        message_id = uuid_arg("message_id", message_id)
    now = runtime.clock().now()
    with db() as conn:
        with tx(conn) as c:
            verdict = db_optouts.verdict_of(c, message_id)
            claimed = db_optouts.claim_confirmation(c, message_id, now) if verdict == "optout" else None
        if verdict is None:
            raise NotCommittedYet(message_id)
        if claimed is None:
            return "nothing to confirm"
        with tx(conn) as c:
            session = live_session(c, uuid.UUID(claimed["number_id"])) if claimed["number_id"] else None
            access = evolution_access(c, uuid.UUID(claimed["tenant_id"])) if session else None
    if session is None or access is None or not session.token:
        log.warning("opt-out confirmation not sent: no live session", extra={"message_id": message_id})
        return "no live session"
    text = t("optouts.confirmation", locale=claimed["locale"])
    client = EvolutionClient.pooled(session.base_url, access.api_key)
    try:
        client.send_text(session.instance_name, claimed["wa_number"], text, token=session.token)
    except (EvolutionClientError, EvolutionServerError) as e:
        log.warning("opt-out confirmation not sent", extra={"message_id": message_id, "error": str(e)[:200]})
        return "failed"
    finally:
        client.close()
    return "confirmation sent"
