"""Conversation jobs: `reschedule_conversation`, enqueued by `mirage apply` after a conversation changed.

The 60-second scheduler plans rounds from the applied configuration; when that configuration changes,
rounds it planned under the old one must not run. This job aborts them so the scheduler re-plans:
  * changed (still active): rounds not yet started (`planned`) are aborted; an `active` round finishes;
  * deactivated: planned and active rounds are aborted;
  * deleted: its rounds lost their conversation_id (ON DELETE SET NULL), so the job aborts the tenant's
    planned and active conversation rounds that no longer belong to any conversation.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from mirage.db import rounds as db_rounds
from mirage.db.connect import connect
from mirage.jobs import runtime
from mirage.jobs.args import uuid_arg
from mirage.jobs.wrapper import job
from mirage.logs import log_context

log = logging.getLogger(__name__)

_REASONS = {"active": "conversation changed", "inactive": "conversation deactivated", "deleted": "conversation deleted"}
_LIVE = """
select id::text from t_rounds where {where} and status = any(%(statuses)s::round_status[])
"""


def abort_rounds(
    conn: Any, conversation_id: str, tenant_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Abort the rounds a configuration change invalidates (with the reason, their queued messages cancelled), in
    the caller's transaction, at the runtime clock's `now`; returns what it did."""
    now = now or runtime.clock().now()
    row = conn.execute("select tenant_id, active from t_conversations where id = %s", [conversation_id]).fetchone()
    if row is None:
        if tenant_id is None:
            return {"conversation": "missing", "aborted": 0}
        where = "tenant_id = %(tenant)s and conversation_id is null and target_id is null"
        statuses = ["planned", "active"]
        state = "deleted"
    else:
        tenant_id = str(row["tenant_id"])
        where = "tenant_id = %(tenant)s and conversation_id = %(conversation)s"
        statuses = ["planned"] if row["active"] else ["planned", "active"]
        state = "active" if row["active"] else "inactive"
    ids = conn.execute(
        _LIVE.format(where=where), {"tenant": tenant_id, "conversation": conversation_id, "statuses": statuses}
    ).fetchall()
    aborted = db_rounds.abort_rounds(conn, [r["id"] for r in ids], _REASONS[state], now)
    return {"conversation": state, "aborted": len(aborted)}


@job
def reschedule_conversation(conversation_id: str, tenant_id: str | None = None) -> dict[str, Any]:
    """RQ job: abort the rounds of a changed, deactivated or deleted conversation (idempotent)."""
    conversation_id = uuid_arg("conversation_id", conversation_id)
    tenant_id = None if tenant_id is None else uuid_arg("tenant_id", tenant_id)
    with log_context(tenant=tenant_id, conversation_id=conversation_id), connect() as conn:
        result = abort_rounds(conn, conversation_id, tenant_id)
        conn.commit()
    log.info("conversation rescheduled", extra=result)
    return result
