"""Outreach jobs (ADR 0037): the 60-second `outreach_tick` and `outreach_check` (one number's WhatsApp check, just
before its first contact). Thin shells over mirage.engine.outreach: load, decide with the clock's `now`, write
the decisions in one transaction, then schedule the sends (the outbox's `send_message`, which re-checks every
rule in its claim).
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from mirage.db import outbox
from mirage.db import outreach as db_outreach
from mirage.db.evolution_sessions import evolution_access, live_session
from mirage.engine.generation import Line, recent_set
from mirage.engine.outreach import (
    CHECK_UNITS,
    Answered,
    Check,
    Decision,
    End,
    Queue,
    Start,
    allowed_at,
    daypart_at,
    plan_policy,
    spans,
    step_kind,
)
from mirage.engine.quotas import buckets
from mirage.engine.view import persona_view
from mirage.errors import TemporaryError
from mirage.integrations.evolution.client import EvolutionClient
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.openai import compose
from mirage.jobs import queues, runtime
from mirage.jobs.args import permanent_failures_stop_retries, uuid_arg
from mirage.jobs.quota import TAKEN
from mirage.jobs.runtime import Conn, counter, db, schedule, tx
from mirage.jobs.status import add_section
from mirage.jobs.text import DEFAULT_VOICE
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)

SEND_JOB = "mirage.jobs.send.send_message"
CHECK_JOB = "mirage.jobs.outreach.outreach_check"
CHECK_LOCK_S = 300
SEND_PAUSE = (timedelta(seconds=5), timedelta(seconds=40))  # from queueing to sending: reading the screen


@job
def outreach_tick() -> dict[str, int]:
    """Every active policy: end targets that are over, notice answers, queue owed messages, start one target."""
    now = runtime.clock().now()
    rng = runtime.rng()
    counts = {"policies": 0, "started": 0, "queued": 0, "answered": 0, "ended": 0, "checks": 0}
    sends: list[tuple[str, datetime]] = []
    checks: list[str] = []
    with db() as conn, tx(conn) as c:
        if not db_outreach.try_tick_lock(c):
            return counts  # another tick is deciding right now
        db_outreach.finish_ended_rounds(c, now)
        for p in db_outreach.load_policies(c, now):
            counts["policies"] += 1
            for d in plan_policy(p.state, p.targets, now, rng):
                outcome = _apply(c, p, d, now, rng)
                if isinstance(outcome, tuple):
                    sends.append(outcome)
                    counts["queued"] += 1
                elif outcome:
                    counts[outcome] += 1
                if outcome in ("started", "checks"):
                    checks.append(d.target)
    for target_id in checks:
        queues.enqueue_unique(
            queues.ROUNDS, CHECK_JOB, job_id=f"outreach-check:{target_id}:{now:%Y%m%d%H%M}", args=[target_id]
        )
    for message_id, when in sends:
        schedule(queues.MESSAGES, SEND_JOB, job_id=f"send:{message_id}", args=[message_id], when=when, now=now)
    if any(v for k, v in counts.items() if k != "policies"):
        log.info("outreach tick", extra={"tick": counts})
    return counts


def _apply(c: Conn, p: db_outreach.PolicyRows, d: Decision, now: datetime, rng: random.Random) -> Any:
    target = p.by_id[d.target]
    if isinstance(d, End):
        ok = db_outreach.end(c, d.target, d.status, d.reason, now, keyword=d.keyword, message_id=d.message)
        if ok:
            log.info("outreach target %s: %s", d.status, d.reason, extra={"target_id": d.target})
        return "ended" if ok else None
    if isinstance(d, Start):
        return "started" if db_outreach.start(c, d.target, now) else None
    if isinstance(d, Check):
        return "checks"
    if isinstance(d, Answered):
        round_id = _round(c, p, target, now)
        db_outreach.answered(c, target, round_id, d.messages, d.next_kind, d.next_action_at, now)
        return "answered"
    if isinstance(d, Queue):
        return _queue(c, p.row, target, d.kind, d.step, now, rng)
    return None  # pragma: no cover - every decision is handled above


def _round(c: Conn, p: db_outreach.PolicyRows, target: dict[str, Any], now: datetime) -> str:
    _, _, today = spans(now, p.state.timezone)
    return db_outreach.live_round(c, target, p.state.number_id, daypart_at(now, p.state.timezone), today, now)


def _queue(
    c: Conn, policy: dict[str, Any], target: dict[str, Any], kind: str, step: int, now: datetime, rng: random.Random
) -> tuple[str, datetime]:
    """Write the owed message (persona, daypart, never a text this person already got) and when it leaves."""
    tz = policy["timezone"]
    _, _, today = spans(now, tz)
    daypart = daypart_at(now, tz)
    round_id = db_outreach.live_round(c, target, policy["number_id"], daypart, today, now)
    row = db_outreach.persona(c, policy["persona_id"]) if policy["persona_id"] else None
    persona = persona_view(row) if row else None
    history = db_outreach.sent_bodies(c, target["id"])
    # Offline text (the persona's banks and the built-in pt-BR ones): the tick holds a transaction, and a model
    # call never runs inside one (ADR 0042). Never a text this person already got.
    text = compose(
        step_kind(kind, step, rng),
        persona or DEFAULT_VOICE,
        None,
        [Line(b, mine=True) for b in history],
        daypart,
        rng,
        avoid=recent_set(history),
    ).text
    pause = SEND_PAUSE[0] + (SEND_PAUSE[1] - SEND_PAUSE[0]) * rng.random()
    when = now + pause
    message_id = db_outreach.queue_message(
        c, target=target, policy=policy, round_id=round_id, kind=kind, step=step, body=text, when=when, now=now
    )
    return message_id, when


@job
def outreach_check(target_id: str) -> str:
    """Ask Evolution whether ONE started target's number is on WhatsApp, right before its opening (bulk checks get
    numbers flagged); the check spends the policy's budget and the number's quota. Not on WhatsApp: done, never
    sent to. On WhatsApp: the opening is queued."""
    with permanent_failures_stop_retries():
        target_id = uuid_arg("target_id", target_id)
    # One check of a number at a time, whatever the duplicate jobs: the lock is taken before the target is read,
    # so a job that waited sees the first one's `checked_at`. A worker killed mid-check frees it on expiry.
    redis = queues.connection()
    lock = f"mirage:outreach:check:{target_id}"
    if not redis.set(lock, "1", nx=True, ex=CHECK_LOCK_S):
        return "checking elsewhere"
    try:
        return _check(target_id, runtime.clock().now(), runtime.rng())
    finally:
        redis.delete(lock)


def _check(target_id: str, now: datetime, rng: random.Random) -> str:
    with db() as conn:
        with tx(conn) as c:
            target = db_outreach.load_target(c, target_id)
            if target is None or target["status"] != "in_progress" or target["next_kind"] != "opening":
                return "not owed"
            if target["checked_at"] is not None:
                return "checked already"
            policy = db_outreach.load_policy(c, target["policy_id"])
            if policy is None:
                return "policy deleted"
            state = db_outreach.policy_state(c, policy, now)
            closed = allowed_at(now, state.timezone, state.quiet, state.dayparts, state.allow_days)
            if closed or not state.number_can_send or not state.runs:
                return f"not now: {closed or 'number cannot send'}"
            if (
                state.hourly_limit - state.used_hour < CHECK_UNITS + 1
                or state.daily_limit - state.used_day < CHECK_UNITS + 1
            ):
                return "not now: policy budget"
            session = live_session(c, uuid.UUID(policy["number_id"]))
            access = evolution_access(c, uuid.UUID(policy["tenant_id"])) if session else None
            settings = db_outreach.tenant_limits(c, policy["tenant_id"])
        if session is None or access is None or not session.token:
            raise TemporaryError(f"number {policy['number_key']} has no live session")
        hour, day = buckets(
            policy["number_id"],
            now,
            state.timezone,
            hourly_limit=int(settings["hourly_burst_limit"]),
            tenant_daily_limit=int(settings["daily_limit"]),
            warmup_started_on=state.warmup_started_on,
        )

        def truth(start: Any, end: Any) -> int:
            with db() as other, tx(other) as oc:
                return outbox.counted_since(oc, policy["number_id"], start, end)

        if counter().take(policy["number_id"], hour, day, truth) != TAKEN:
            return f"not now: number {policy['number_key']} quota"
        client = EvolutionClient.pooled(session.base_url, access.api_key)
        try:
            found = client.whatsapp_numbers(session.instance_name, [str(target["contact_wa"])], token=session.token)
        except EvolutionServerError as e:
            raise TemporaryError(f"whatsappNumbers failed for number {policy['number_key']}: {e}") from e
        except EvolutionClientError as e:
            found = []
            log.warning("whatsappNumbers refused", extra={"target_id": target_id, "error": str(e)[:200]})
            with tx(conn) as c:
                db_outreach.record_check(c, target_id, now)
                db_outreach.end(c, target_id, "paused", f"number check refused: {e}"[:300], now)
            return "paused"
        finally:
            client.close()
        exists = any(f.exists for f in found)
        send: tuple[str, datetime] | None = None
        with tx(conn) as c:
            db_outreach.record_check(c, target_id, now)
            if not exists:
                db_outreach.end(c, target_id, "done", "not on WhatsApp", now)
            else:
                target = db_outreach.load_target(c, target_id, lock=True)
                if target is not None and target["status"] == "in_progress" and target["next_kind"] == "opening":
                    send = _queue(c, policy, target, "opening", int(target["rounds_done"]), now, rng)
    if send is None:
        return "not on WhatsApp" if not exists else "not owed"
    schedule(queues.MESSAGES, SEND_JOB, job_id=f"send:{send[0]}", args=[send[0]], when=send[1], now=now)
    return "opening queued"


def outreach_status(conn: Conn, tenants: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """`mirage status --outreach`: per tenant, its policies (see mirage.db.outreach.status_rows)."""
    rows = db_outreach.status_rows(conn, [str(t["id"]) for t in tenants], now)
    out: dict[str, list[dict[str, Any]]] = {str(t["id"]): [] for t in tenants}
    for r in rows:
        out[r.pop("tenant_id")].append(r)
    return out


add_section("outreach", outreach_status)
