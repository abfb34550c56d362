"""Housekeeping jobs run on a schedule by `mirage cron`: thin shells over mirage.db.maintenance."""

from __future__ import annotations

import logging

from mirage.db import maintenance as db
from mirage.db.connect import connect
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)


@job
def refresh_metrics() -> dict[str, int]:
    """Refresh the metrics materialized views concurrently (readers are never blocked); ms per view."""
    with connect() as conn:
        timings = db.refresh_metrics(conn)
    log.info("metrics views refreshed", extra={"timings_ms": timings})
    return timings


@job
def link_auth_users() -> int:
    """Link members who signed up since (confirmed e-mail) to their t_users rows, so their next token carries
    the tenant claim; 0 on plain Postgres, which has no auth.users."""
    with connect() as conn:
        linked = db.link_auth_users(conn)
    if linked:
        log.info("members linked to their sign-ins", extra={"linked": linked})
    return linked
