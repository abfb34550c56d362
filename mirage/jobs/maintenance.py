"""Housekeeping jobs run on a schedule by `mirage cron`: thin shells over one SQL call each."""

from __future__ import annotations

import logging

from mirage.db.connect import connect
from mirage.db.sessions import service_session
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)


@job
def refresh_metrics() -> dict[str, int]:
    """Refresh the metrics materialized views concurrently (readers are never blocked); ms per view."""
    with connect() as conn, service_session(conn) as c:
        rows = c.execute("select view_name, duration_ms from public.refresh_metrics()").fetchall()
    timings = {str(r["view_name"]): int(str(r["duration_ms"])) for r in rows}
    log.info("metrics views refreshed", extra={"timings_ms": timings})
    return timings


@job
def link_auth_users() -> int:
    """Link members who signed up since (confirmed e-mail) to their t_users rows, so their next token carries
    the tenant claim; 0 on plain Postgres, which has no auth.users."""
    with connect() as conn, conn.transaction():
        row = conn.execute("select mirage_private.link_auth_users() as n").fetchone()
    linked = int(str(row["n"])) if row else 0
    if linked:
        log.info("members linked to their sign-ins", extra={"linked": linked})
    return linked
