"""One webhook delivery end to end: one short transaction on a pooled connection, a fallback that never loses it.

Inline is the normal path (ADR 0014): the writes are a handful of indexed rows in one statement, cheaper
than a Redis round trip. If normalising fails on this event's data (a constraint, a bug), the raw event is
still stored as `stored` and a job on the EVENTS queue normalises it later, so Evolution gets its 200.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from mirage.crypto import CryptoError, Keyring
from mirage.db.evolution_sessions import SessionAuth
from mirage.db.sessions import async_service_session
from mirage.errors import ServiceError
from mirage.ingest import store
from mirage.ingest.store import Outcome
from mirage.integrations.evolution.envelope import Envelope

log = logging.getLogger(__name__)

# Failures caused by this event (its data, or a bug in normalising it): keep the event, normalise it later.
EVENT_FAILURES = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.ProgrammingError,
    psycopg.InternalError,
    psycopg.NotSupportedError,
    CryptoError,
)
REPROCESS_JOB = "mirage.jobs.events.reprocess_event"
POOL_TIMEOUT_S = 5.0  # wait this long for a pooled connection, then give up (the webhook answers 503)


class StorageUnavailable(ServiceError):
    """Postgres cannot take the event now; the webhook answers 503 so Evolution retries it."""

    def __init__(self, reason: str) -> None:
        super().__init__("postgres", reason)


async def ingest_event(
    pool: AsyncConnectionPool[Any], auth: SessionAuth, env: Envelope, signature: str, ring: Keyring
) -> Outcome:
    """Store and normalise one authenticated event on its own; raises StorageUnavailable when nothing was stored.

    An outcome `stored` still needs `schedule_reprocess(outcome.event_id)`: the caller enqueues it, off the
    event loop, so a Redis that hangs never holds up other webhooks.
    """
    failure: Exception | None = None
    try:
        async with pool.connection(timeout=POOL_TIMEOUT_S) as conn:
            try:
                async with async_service_session(conn):
                    st = store.ingest_statement(auth, env, signature, ring)
                    cur = await conn.execute(st.sql, st.params)
                return store.outcome(await cur.fetchone())
            except EVENT_FAILURES as e:
                failure = e
            log.warning(
                "normalising %s failed; storing it for a retry",
                env.event,
                extra={"error": type(failure).__name__, "detail": first_line(failure)},
            )
            async with async_service_session(conn):
                st = store.store_only_statement(auth, env, signature, reason=f"deferred:{type(failure).__name__}")
                cur = await conn.execute(st.sql, st.params)
            return store.outcome(await cur.fetchone())
    except psycopg.Error as e:
        raise StorageUnavailable(first_line(e)) from e


def schedule_reprocess(event_id: UUID) -> bool:
    """Enqueue the job that normalises a stored event; a Redis outage leaves it `stored` for a later sweep."""
    from mirage.jobs.queues import EVENTS, enqueue_unique

    try:
        return enqueue_unique(EVENTS, REPROCESS_JOB, job_id=f"reprocess:{event_id}", args=[str(event_id)])
    except Exception as e:  # Redis down or misconfigured: the event is safe in Postgres either way
        log.warning("could not enqueue the reprocess job", extra={"event_id": str(event_id), "error": repr(e)[:200]})
        return False


def first_line(e: BaseException | None) -> str:
    """The first line of an error's message (Postgres errors run to several), bounded, for logs and 503 reasons."""
    text = str(e).strip() if e is not None else ""
    return text.splitlines()[0][:200] if text else type(e).__name__
