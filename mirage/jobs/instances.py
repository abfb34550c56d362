"""RQ jobs for Evolution instances: thin shells over mirage.jobs.lifecycle.

Enqueued by `mirage apply` (after commit) with ids as strings, e.g.
`enqueue_unique(INSTANCES, "mirage.jobs.instances.provision_number", job_id=f"provision:{number_id}", args=[id])`.
Each wears `mirage.jobs.wrapper.job`: TemporaryError (Evolution 5xx / timeouts, a busy lock) lets RQ retry with
its backoff; PermanentError (4xx, no Evolution URL) fails the job at once, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mirage.db.connect import connect
from mirage.db.evolution_sessions import Conn
from mirage.jobs import lifecycle
from mirage.jobs.args import uuid_arg
from mirage.jobs.wrapper import job
from mirage.logs import log_context

log = logging.getLogger(__name__)


def _run(name: str, step: Callable[[Conn], lifecycle.Outcome], **fields: str) -> dict[str, str | None]:
    for key, value in fields.items():
        uuid_arg(key, value)
    with log_context(**fields):
        conn = connect()
        try:
            outcome = step(conn)
        finally:
            conn.close()
        log.info("job done", extra={"job": name, **outcome.as_dict()})
    return outcome.as_dict()


@job
def provision_number(number_id: str) -> dict[str, str | None]:
    """Create (or adopt, or check) the number's Evolution instance with Mirage's webhook, and store the session."""
    return _run("provision_number", lambda conn: lifecycle.provision(conn, number_id), number_id=number_id)


@job
def deprovision_session(session_id: str) -> dict[str, str | None]:
    """Log the session's instance out, delete it in Evolution and mark the session deprovisioned."""
    return _run("deprovision_session", lambda conn: lifecycle.deprovision(conn, session_id), session_id=session_id)


@job
def refresh_session(session_id: str) -> dict[str, str | None]:
    """Store the session's connection state (and current QR) as Evolution reports it."""
    return _run("refresh_session", lambda conn: lifecycle.refresh(conn, session_id), session_id=session_id)


@job
def reprovision_number(number_id: str, session_id: str) -> dict[str, str | None]:
    """The number is another WhatsApp account now: retire its old session, then provision a new one, in order.

    One job instead of two, so that with several workers the provision can never run before the
    deprovision (it would find the old session live and keep it).
    """

    def step(conn: Conn) -> lifecycle.Outcome:
        lifecycle.deprovision(conn, session_id)
        return lifecycle.provision(conn, number_id)

    return _run("reprovision_number", step, number_id=number_id, session_id=session_id)
