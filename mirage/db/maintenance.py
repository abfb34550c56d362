"""Housekeeping SQL: refresh the metrics views, link members to their sign-ins. One function per SQL call,
called by the cron jobs (mirage.jobs.maintenance) and by `mirage db refresh-metrics`."""

from __future__ import annotations

from typing import Any

import psycopg

from mirage.db.sessions import service_session
from mirage.errors import ServiceError


def refresh_metrics(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Refresh every metrics materialized view concurrently, as service_role; {view: ms}."""
    try:
        with service_session(conn) as c:
            rows = c.execute("select view_name, duration_ms from public.refresh_metrics()").fetchall()
    except psycopg.Error as e:
        raise ServiceError("postgres", f"refresh failed: {str(e).strip().splitlines()[0]}") from e
    return {str(r["view_name"]): int(str(r["duration_ms"])) for r in rows}


def link_auth_users(conn: psycopg.Connection[Any]) -> int:
    """Link members who signed up (confirmed e-mail) to their t_users rows; 0 on plain Postgres (no auth.users)."""
    with conn.transaction():
        row = conn.execute("select mirage_private.link_auth_users() as n").fetchone()
    return int(str(row["n"])) if row else 0
