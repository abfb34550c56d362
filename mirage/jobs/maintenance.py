"""Housekeeping jobs run on a schedule by `mirage cron`: thin shells over one SQL call each."""

from __future__ import annotations

import logging

from mirage.db.connect import connect
from mirage.db.sessions import service_session

log = logging.getLogger(__name__)


def refresh_metrics() -> dict[str, int]:
    """Refresh the metrics materialized views concurrently (readers are never blocked); ms per view."""
    with connect() as conn, service_session(conn) as c:
        rows = c.execute("select view_name, duration_ms from public.refresh_metrics()").fetchall()
    timings = {str(r["view_name"]): int(str(r["duration_ms"])) for r in rows}
    log.info("metrics views refreshed", extra={"timings_ms": timings})
    return timings
