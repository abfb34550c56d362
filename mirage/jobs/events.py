"""RQ job functions (EVENTS queue) for the ingest: normalise events that were stored but not yet normalised.

Thin: the SQL is in `mirage.ingest.store` (t_webhook_events) and `mirage.db.evolution_sessions` (the session).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import psycopg

from mirage.crypto import keyring
from mirage.db.connect import connect
from mirage.db.evolution_sessions import load_auth
from mirage.db.sessions import service_session
from mirage.ingest import store
from mirage.integrations.evolution.envelope import EnvelopeError, envelope_from_document
from mirage.jobs.args import uuid_arg
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)


@job
def reprocess_event(event_id: str) -> str:
    """Normalise one stored event from its (redacted) payload; returns its new status.

    The QR of a stored `qrcode.updated` is redacted, so such an event ends `ignored` (`no_qr`): Evolution
    sends a new QR every 45 s anyway. A failure marks the event `failed` and re-raises, so RQ retries it with backoff.
    """
    event_id = uuid_arg("event_id", event_id)
    with connect() as conn:
        with service_session(conn):
            row = store.load_event(conn, UUID(event_id))
        if row is None or row["status"] not in ("stored", "failed"):
            return "gone" if row is None else str(row["status"])
        return _reprocess_row(conn, row)


def _reprocess_row(conn: psycopg.Connection[Any], row: dict[str, Any]) -> str:
    ring = keyring()
    with service_session(conn):
        auth = load_auth(conn, row["instance_name"], ring)
    try:
        env = envelope_from_document(row["payload"], body_sha256="")
    except EnvelopeError as e:
        auth = None
        log.warning("stored event is not an envelope", extra={"event_id": str(row["id"]), "reason": e.reason})
    if auth is None or auth.session_id != row["session_id"]:
        _mark_failed(conn, row["id"], "session_gone")
        return "failed"
    try:
        with service_session(conn):
            outcome = store.reprocess(conn, row["id"], auth, env, ring, row["received_at"])
    except psycopg.Error as e:
        _mark_failed(conn, row["id"], f"failed:{type(e).__name__}")
        raise
    log.info("reprocessed %s", env.event, extra={"event_id": str(row["id"]), "status": outcome.status})
    return outcome.status


def _mark_failed(conn: psycopg.Connection[Any], event_id: UUID, reason: str) -> None:
    with service_session(conn):
        store.mark_failed(conn, event_id, reason)


@job
def reprocess_pending(older_than_s: float = 60.0, limit: int = 500) -> int:
    """Enqueue a reprocess job for every event left `stored` (e.g. Redis was down when it arrived)."""
    from mirage.ingest.pipeline import schedule_reprocess

    with connect() as conn, service_session(conn):
        ids = store.pending_event_ids(conn, older_than_s, limit)
    return sum(schedule_reprocess(i) for i in ids)
