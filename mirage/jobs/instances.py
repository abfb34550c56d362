"""RQ jobs for Evolution instances: thin shells over mirage.jobs.lifecycle.

Enqueued by `mirage apply` (after commit) with ids as strings, e.g.
`enqueue_unique(INSTANCES, "mirage.jobs.instances.provision_number", job_id=f"provision:{number_id}", args=[id])`.
TemporaryError (Evolution 5xx / timeouts, a busy lock) lets RQ retry with its backoff; PermanentError (4xx, no
Evolution URL) fails the job at once, with the reason, instead of burning the retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rq import get_current_job

from mirage.db.connect import connect
from mirage.db.evolution_sessions import Conn
from mirage.jobs import lifecycle
from mirage.jobs.args import permanent_failures_stop_retries, uuid_arg
from mirage.logs import log_context

log = logging.getLogger(__name__)


@contextmanager
def _job(name: str, **fields: str) -> Iterator[Conn]:
    job = get_current_job()
    context = dict(job.meta.get("log_context") or {}) if job is not None else {}
    correlation_id = context.pop("correlation_id", None)
    bound = {**context, "job": name, "job_id": job.id if job is not None else None, **fields}
    with log_context(correlation_id, **bound), permanent_failures_stop_retries():
        for key, value in fields.items():
            uuid_arg(key, value)
        conn = connect()
        try:
            yield conn
        finally:
            conn.close()


def _run(name: str, step: Callable[[Conn], lifecycle.Outcome], **fields: str) -> dict[str, str | None]:
    with _job(name, **fields) as conn:
        outcome = step(conn)
    log.info("job done", extra={"job": name, **outcome.as_dict()})
    return outcome.as_dict()


def provision_number(number_id: str) -> dict[str, str | None]:
    """Create (or adopt, or check) the number's Evolution instance with Mirage's webhook, and store the session."""
    return _run("provision_number", lambda conn: lifecycle.provision(conn, number_id), number_id=number_id)


def deprovision_session(session_id: str) -> dict[str, str | None]:
    """Log the session's instance out, delete it in Evolution and mark the session deprovisioned."""
    return _run("deprovision_session", lambda conn: lifecycle.deprovision(conn, session_id), session_id=session_id)


def refresh_session(session_id: str) -> dict[str, str | None]:
    """Store the session's connection state (and current QR) as Evolution reports it."""
    return _run("refresh_session", lambda conn: lifecycle.refresh(conn, session_id), session_id=session_id)


def reprovision_number(number_id: str, session_id: str) -> dict[str, str | None]:
    """The number is another WhatsApp account now: retire its old session, then provision a new one, in order.

    One job instead of two, so that with several workers the provision can never run before the
    deprovision (it would find the old session live and keep it).
    """

    def step(conn: Conn) -> lifecycle.Outcome:
        lifecycle.deprovision(conn, session_id)
        return lifecycle.provision(conn, number_id)

    return _run("reprovision_number", step, number_id=number_id, session_id=session_id)
