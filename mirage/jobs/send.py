"""The outbox's one sender (ADR 0026), in two scheduled steps (ADR 0041). `send_message`, at the planned instant,
marks the message it answers as read and shows "typing…" (presence `composing`, no blocking delay), then schedules
`send_typed` the typing time later; that step claims the row (queued -> sending) after taking quota and sends the
text with no Evolution `delay`, then records `sent` with the WhatsApp id. No job holds a worker for the typing time.

Exactly-once-effective: RQ may run either step twice (a worker killed mid-job); only one run can claim the row.
A timeout or 5xx after the request left makes the row `unknown`: never re-sent, settled by the `send.message`
webhook (`mirage.jobs.rounds.on_message`). A request that certainly never left goes back to `queued` and the
job retries with backoff. Repeated failures pause the number.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

import httpx
import psycopg
from psycopg.pq import TransactionStatus

from mirage.db import outbox
from mirage.db import outreach as db_outreach
from mirage.db import rounds as db_rounds
from mirage.db.evolution_sessions import SendAccess, send_access
from mirage.engine import cadence
from mirage.engine.quotas import buckets
from mirage.engine.rounds import in_quiet_hours
from mirage.engine.view import effective_settings, parse_hhmm
from mirage.errors import TemporaryError
from mirage.integrations.evolution.client import EvolutionClient, RetryPolicy
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.jobs import queues, runtime
from mirage.jobs.args import permanent_failures_stop_retries, uuid_arg
from mirage.jobs.quota import DAY_FULL, HOUR_FULL, TAKEN
from mirage.jobs.runtime import Conn, counter, db, tx
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)

FAILURES_BEFORE_PAUSE = 3
SEND_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, total_time=10.0)
CHROME_RETRY = RetryPolicy(attempts=1, base_delay=0.2, max_delay=0.2, total_time=3.0)  # read receipt, presence
TYPED_JOB = "mirage.jobs.send.send_typed"


def _settings(ctx: dict[str, Any]) -> Any:
    conv = {k[2:]: v for k, v in ctx.items() if k.startswith("c_")}
    return effective_settings(ctx, conv)


@job
def send_message(message_id: str) -> str:
    """Step 1, at the planned instant: mark what it answers read, show "typing…", and schedule step 2
    (`send_typed`) the typing time later. No request waits for the typing time (ADR 0041): a worker is held for
    two short requests, never for seconds. Without a typing time (`humanize: false`) it sends at once."""
    with permanent_failures_stop_retries():
        message_id = uuid_arg("message_id", message_id)
    now = runtime.clock().now()
    with db() as conn:
        ctx, early = _load(conn, message_id, now, chrome=True)
        if ctx is None:
            return early
        settings = _settings(ctx)
        typing = cadence.typing_ms(str(ctx["body"]), settings.humanize)
        _read_and_type(ctx, composing=typing > 0)
        if typing <= 0:
            with tx(conn) as c:
                claimed, outcome, refund = _claim(c, ctx, settings, now)
            return outcome if claimed is None else _deliver(conn, ctx, claimed, now, refund)
    runtime.schedule(
        queues.MESSAGES,
        TYPED_JOB,
        job_id=typed_job_id(message_id),
        args=[message_id],
        when=now + timedelta(milliseconds=typing),
        now=now,
    )
    return f"typing {typing} ms"


@job
def send_typed(message_id: str) -> str:
    """Step 2, the typing time after step 1: claim the row with every rule re-checked at this instant and send the
    text (no Evolution `delay`); returns what happened. Also what the sweeper runs for a message whose job was lost."""
    with permanent_failures_stop_retries():
        message_id = uuid_arg("message_id", message_id)
    now = runtime.clock().now()
    with db() as conn:
        # One transaction reads the context, takes the quota (Redis) and claims (ADR 0057); the send is after it.
        with tx(conn) as c:
            ctx, early = _load(c, message_id, now)
            if ctx is None:
                return early
            claimed, outcome, refund = _claim(c, ctx, _settings(ctx), now)
        return outcome if claimed is None else _deliver(conn, ctx, claimed, now, refund)


def typed_job_id(message_id: str) -> str:
    """The deterministic id of a message's step 2: a re-run step 1 (or the sweeper) never schedules a second one."""
    return f"send:{message_id}:typed"


def _load(conn: Conn, message_id: str, now: Any, *, chrome: bool = False) -> tuple[dict[str, Any] | None, str]:
    """The message's context if it is still `queued` with both ends present; else None and what happened. With
    `chrome` (step 1) it also holds the sender's live session and what this message answers: one query."""
    with _tx(conn) as c:
        ctx = outbox.send_context(c, message_id, chrome=chrome)
    if ctx is None:
        return None, "gone"
    if ctx["status"] != "queued":
        return None, f"already {ctx['status']}"  # a second run (RQ at-least-once): the first one owns it
    if ctx["from_number_id"] is None or ctx["receiver_wa"] is None:
        return None, _give_up(conn, ctx, "number deleted", now)
    return ctx, ""


def _read_and_type(ctx: dict[str, Any], *, composing: bool) -> None:
    """Mark the message this one answers as read, then (`composing`) show "typing…" to the receiver, as people do.
    Presence with no blocking `delay` (contract §3.2: Evolution would hold the request that long). Best effort: a
    failed receipt or presence never blocks the answer, and the claim in step 2 decides whether it is sent."""
    access = send_access(ctx)
    if access is None or not access.token:
        return  # step 2's claim sees the missing session and handles it
    client = _client(access, CHROME_RETRY)
    try:
        if ctx["answering_wa_msg_id"] and ctx["answering_from_jid"]:
            client.mark_read(
                access.instance_name,
                [{"remoteJid": ctx["answering_from_jid"], "fromMe": False, "id": ctx["answering_wa_msg_id"]}],
                token=access.token,
            )
        if composing:
            client.send_presence(access.instance_name, str(ctx["receiver_wa"]), "composing", 0, token=access.token)
    except (EvolutionClientError, EvolutionServerError) as e:
        log.info("read receipt or presence failed", extra={"message_id": ctx["id"], "error": str(e)[:200]})


def _client(access: SendAccess, retry: RetryPolicy) -> EvolutionClient:
    """A client on this process's kept-alive connections to the session's server; the token goes per request."""
    return EvolutionClient.pooled(access.base_url, None, retry=retry)


def _tx(conn: Conn) -> contextlib.AbstractContextManager[Conn]:
    """The transaction `conn` is in (step 2 runs read, quota and claim in one), else a new one."""
    if conn.info.transaction_status == TransactionStatus.INTRANS:
        return contextlib.nullcontext(conn)
    return tx(conn)


def _claim(conn: Conn, ctx: dict[str, Any], settings: Any, now: Any) -> tuple[dict[str, Any] | None, str, Any]:
    """Take quota, then claim (queued -> sending) re-checking every rule at this instant: (the claimed row with the
    live session, "", how to give the quota back), or (None, what happened instead, None)."""
    message_id = ctx["id"]
    quiet = in_quiet_hours(
        (parse_hhmm(ctx["quiet_hours"]["start"]), parse_hhmm(ctx["quiet_hours"]["end"])), now, ctx["timezone"]
    )
    if quiet:
        return None, _give_up(conn, ctx, "quiet hours", now), None
    hour, day = buckets(
        ctx["from_number_id"],
        now,
        ctx["timezone"],
        hourly_limit=settings.hourly_burst_limit,
        tenant_daily_limit=settings.daily_limit,
        warmup_started_on=ctx["warmup_started_on"],
    )
    quotas = counter()

    def truth(start: Any, end: Any) -> int:  # only when Redis lost the counters
        with _tx(conn) as oc:
            return outbox.counted_since(oc, ctx["from_number_id"], start, end)

    taken = quotas.take(ctx["from_number_id"], hour, day, truth)
    if taken != TAKEN:
        which = {HOUR_FULL: "hourly_burst_limit", DAY_FULL: "daily_limit"}.get(taken, "quota")
        return None, _give_up(conn, ctx, f"{which} reached for number {ctx['sender_key']}", now), None
    with _tx(conn) as c:
        # Outreach (ADR 0037): the policy's caps and the person's rules, re-checked holding policy and target.
        reach = db_outreach.claim_context(ctx["meta"])
        refused, policy = db_outreach.claim_refusal(c, reach, now) if reach else (None, None)
        claimed = None if refused else outbox.claim(c, message_id, now, quiet)
        if claimed is not None and reach and policy:
            db_outreach.record_claim(c, reach, policy, now)
    if refused:
        quotas.give_back(hour, day)
        return None, _give_up(conn, ctx, refused, now), None
    if claimed is None:
        quotas.give_back(hour, day)
        return None, _not_claimed(conn, ctx, now), None
    return claimed, "", lambda: quotas.give_back(hour, day)


def _deliver(conn: Conn, ctx: dict[str, Any], claimed: dict[str, Any], now: Any, refund: Any) -> str:
    """Send the claimed row with the live session the claim read, and record what Evolution said."""
    message_id, session_id = ctx["id"], claimed["session_id"]
    access = send_access(claimed)
    if access is None or not access.token:
        with tx(conn) as c:
            outbox.mark(c, message_id, "queued", "no live session", now, only_from=("sending",))
        refund()
        raise TemporaryError(f"number {ctx['sender_key']} has no live session")
    client = _client(access, SEND_RETRY)
    try:
        # The typing time has already passed (step 1 showed "typing…"): no `delay`, the request returns at once.
        sent = client.send_text(access.instance_name, str(ctx["receiver_wa"]), str(ctx["body"]), token=access.token)
    except EvolutionServerError as e:
        never_left = isinstance(e.__cause__, httpx.ConnectError | httpx.ConnectTimeout)
        with tx(conn) as c:
            if never_left:
                outbox.mark(c, message_id, "queued", f"not sent: {e}", now, only_from=("sending",))
            else:
                outbox.mark(c, message_id, "unknown", f"unknown: {e}", now, only_from=("sending",))
            _count_failure(c, ctx, str(e), now)
        if never_left:
            refund()
            raise TemporaryError(f"Evolution unreachable for {ctx['sender_key']}: {e}") from e
        log.warning("send outcome unknown", extra={"message_id": message_id, "error": str(e)[:200]})
        return "unknown"
    except EvolutionClientError as e:
        with tx(conn) as c:
            outbox.mark(c, message_id, "failed", str(e), now, only_from=("sending",))
            db_rounds.abort_rounds(c, [ctx["round_id"]], f"send failed: {e}"[:300], now)
            _count_failure(c, ctx, str(e), now)
        return "failed"
    for attempt in range(3):
        try:
            with tx(conn) as c:
                outbox.mark_sent(c, message_id, session_id, sent.id or None, runtime.clock().now())
            break
        except psycopg.errors.UniqueViolation:
            # The `send.message` webhook's own row was committed between our fold and our update: fold again.
            if attempt == 2:
                raise
    log.info("message sent", extra={"message_id": message_id, "typing_ms": (ctx["meta"] or {}).get("typing_ms")})
    return "sent"


def _count_failure(c: Conn, ctx: dict[str, Any], reason: str, now: Any) -> None:
    failures = outbox.count_failure(c, ctx["from_number_id"])
    if failures >= FAILURES_BEFORE_PAUSE and db_rounds.pause_number(
        c, ctx["from_number_id"], f"{failures} send failures in a row: {reason}"[:300], now
    ):
        log.warning("number paused after send failures", extra={"number": ctx["sender_key"], "failures": failures})
        for round_id, why in db_rounds.rounds_of_unhealthy_numbers(c).items():
            db_rounds.abort_rounds(c, [round_id], why, now)


def _give_up(conn: Conn, ctx: dict[str, Any], reason: str, now: Any) -> str:
    """The rules forbid this send now: cancel it with the reason and end its round (a round never half-runs)."""
    with _tx(conn) as c:
        outbox.mark(c, ctx["id"], "cancelled", reason, now, only_from=("queued",))
        if ctx["round_id"]:
            db_rounds.abort_rounds(c, [ctx["round_id"]], reason, now)
    log.info("message cancelled: %s", reason, extra={"message_id": ctx["id"]})
    return f"cancelled: {reason}"


def _not_claimed(conn: Conn, ctx: dict[str, Any], now: Any) -> str:
    """The claim failed: someone else has it, or a rule (round, turn, number) no longer holds."""
    with _tx(conn) as c:
        row = c.execute(
            "select m.status::text, r.status::text as round_status, r.turn_number_id::text as turn, "
            "r.exchanges_done, r.deadline_at, n.status::text as number_status, n.paused_reason, n.active, "
            "n.session_id from t_messages m left join t_rounds r on r.id = m.round_id "
            "left join t_numbers n on n.id = m.from_number_id where m.id = %s",
            (ctx["id"],),
        ).fetchone()
    if row is None or row["status"] != "queued":
        return f"already {row['status'] if row else 'gone'}"
    if row["round_status"] != "active":
        reason = f"round {row['round_status']}"
    elif row["paused_reason"]:
        reason = f"number {ctx['sender_key']} paused: {row['paused_reason']}"
    elif row["number_status"] != "open" or not row["active"] or row["session_id"] is None:
        reason = f"number {ctx['sender_key']} is {row['number_status']}"
    elif row["deadline_at"] is not None and row["deadline_at"] <= now:
        reason = "deadline passed"
    else:
        reason = "not this bot's turn"
    return _give_up(conn, ctx, reason, now)
