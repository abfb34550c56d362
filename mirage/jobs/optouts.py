"""Opt-out detection for people's messages, run by the follow-up job of every stored message (`on_message`).

Off the webhook's hot path (one round trip per event stays true); the verdict and everything it changes commit
in the follow-up's transaction (ADR 0036). The pure decision is `mirage.engine.optout.detect`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mirage.db import optouts as db_optouts
from mirage.engine.optout import detect
from mirage.jobs.runtime import Conn

log = logging.getLogger(__name__)


def check_inbound(c: Conn, message_id: str, now: datetime) -> str:
    """Detect an opt-out in a person's message and act on it in the caller's transaction; what happened."""
    m = db_optouts.take_inbound(c, message_id)
    if m is None:
        return "nothing to check"
    d = detect(m["body"], tuple(m["keywords"]))
    if d.verdict == "none":
        return "no opt-out"
    db_optouts.mark_scanned(c, message_id, d.verdict, d.phrase)
    if m["wa_number"] is None:  # an @lid sender we hold no number for: nothing of ours can reach them anyway
        log.warning("opt-out from a sender without a number", extra={"message_id": message_id, "verdict": d.verdict})
        return f"{d.verdict} without a number"
    extra = {"message_id": message_id, "tenant_id": m["tenant_id"], "phrase": d.phrase}
    if d.verdict == "optout":
        s = db_optouts.record_optout(
            c, m["tenant_id"], m["wa_number"], now, keyword=d.phrase, source="keyword", message_id=message_id
        )
        log.info("opt-out recorded", extra={**extra, "cancelled": s.cancelled, "targets": s.targets})
        return f"opt-out: {s.cancelled} cancelled, {s.targets} targets"
    s = db_optouts.pause_for_review(
        c, m["tenant_id"], m["wa_number"], now, phrase=d.phrase or "", message_id=message_id
    )
    log.info("possible opt-out: contact paused for review", extra={**extra, "cancelled": s.cancelled})
    return f"paused for review: {s.cancelled} cancelled, {s.targets} targets"
