"""Number health (ADR 0029): the operator's side. The runtime pauses a number (mirage.jobs.rounds `_health` on
a ban-like disconnect, mirage.jobs.send after failures in a row); only `resume` gives it back, and only when
its connection is `open` again."""

from __future__ import annotations

import logging

from mirage.db import rounds as db_rounds
from mirage.jobs.runtime import db, tx

log = logging.getLogger(__name__)


def resume(tenant_slug: str, key: str) -> str:
    """Clear the pause of a number: 'resumed', 'not paused', 'unknown', or 'still <status>' when not open."""
    with db() as conn, tx(conn) as c:
        row = db_rounds.number_by_key(c, tenant_slug, key)
        if row is None:
            return "unknown"
        if row["paused_at"] is None:
            return "not paused"
        after = db_rounds.resume_number(c, row["id"])
    if after is None or after["paused_reason"] is not None:
        return f"still {after['status'] if after else row['status']}"
    log.warning(
        "number resumed by an operator",
        extra={"tenant": tenant_slug, "number": key, "paused_reason": row["paused_reason"]},
    )
    return "resumed"
