"""Round jobs: the 60-second `conversation_tick`, `advance_round` (queue the next step's message) and
`on_message` (react to a stored message: settle our own sends, pass the turn, or ignore a bot out of turn).

Thin shells over mirage.engine.rounds: load rows, ask the pure core with the clock's `now`, write the decision in
one transaction, then schedule the next wake-up with RQ (ADR 0028).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from mirage.db import outbox
from mirage.db import rounds as db_rounds
from mirage.engine import cadence
from mirage.engine.rounds import (
    Abort,
    Accept,
    Finish,
    Ignore,
    RoundPlan,
    Send,
    Skip,
    in_quiet_hours,
    next_action,
    on_bot_message,
)
from mirage.engine.view import ConversationView
from mirage.errors import MirageError
from mirage.jobs import conversation_views, queues, runtime, viewcache
from mirage.jobs.args import permanent_failures_stop_retries, uuid_arg
from mirage.jobs.optouts import check_inbound
from mirage.jobs.runtime import (
    Conn,
    counter,
    db,
    round_state,
    schedule,
    since_for_snapshot,
    tx,
)
from mirage.jobs.text import Written, prepare_text, write_text
from mirage.jobs.wrapper import job

log = logging.getLogger(__name__)

ADVANCE_JOB = "mirage.jobs.rounds.advance_round"
SEND_JOB = "mirage.jobs.send.send_message"


class NoFreshText(MirageError):
    """Every candidate text repeated one the conversation sent in the last 7 days (or echoed the last one)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"no fresh text for the {kind} step")


# --- the tick --------------------------------------------------------------------------------------------------


@job
def conversation_tick() -> dict[str, int]:
    """Plan rounds for every active conversation of every tenant (a fixed number of queries), insert them with
    their deterministic identity and schedule each new round's first step. Effective views come from the cron
    process's cache, rebuilt per tenant when its configuration or numbers changed (ADR 0045)."""
    now = runtime.clock().now()
    rng = runtime.rng()
    with db() as conn:
        with tx(conn) as c:
            _health(c, now)
            loaded = viewcache.CACHE.load(c, since_for_snapshot(now))
        for slug, key, reason in loaded.skipped:
            log.warning("conversation skipped: %s/%s: %s", slug, key, reason, extra={"tenant": slug, "reason": reason})
        decisions = viewcache.plan_tick(loaded, now, rng, counter().used)
        plans = [d for d in decisions if isinstance(d, RoundPlan)]
        with tx(conn) as c:
            created = db_rounds.insert_rounds(c, [_round_row(p, now) for p in plans])
    for row in created:
        queues.enqueue_unique(queues.ROUNDS, ADVANCE_JOB, job_id=f"advance:{row['id']}:0", args=[row["id"]])
    result = {
        "conversations": len(loaded.views) + len(loaded.skipped),
        "skipped": len(loaded.skipped),
        "planned": len(plans),
        "created": len(created),
        "waiting": sum(1 for d in decisions if isinstance(d, Skip)),
        "views_rebuilt_tenants": loaded.rebuilt,
    }
    log.info("conversation tick", extra={"tick": result})  # `created` is a LogRecord attribute
    return result


def _round_row(p: RoundPlan, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": p.tenant_id,
        "conversation_id": p.conversation_id,
        "pairing_id": p.pairing_id,
        "daypart": p.daypart,
        "window_date": p.window_date.isoformat(),
        "seq": p.seq,
        "exchanges": p.exchanges,
        "starter": p.starter,
        "responder": p.responder,
        "topic_id": p.topic_id,
        "script": list(p.script),
        "deadline_at": p.deadline_at.isoformat(),
        "created_at": now.isoformat(),
    }


def _health(c: Conn, now: datetime) -> None:
    """Pause numbers that closed with a ban-like reason; abort live rounds of numbers that cannot send, and
    rounds past their deadline."""
    for n in db_rounds.pause_banned_numbers(c, now):
        log.warning("number paused: %s", n["paused_reason"], extra={"number": n["key"], "tenant_id": n["tenant_id"]})
    for round_id, reason in db_rounds.rounds_of_unhealthy_numbers(c).items():
        db_rounds.abort_rounds(c, [round_id], reason, now)
    overdue = db_rounds.overdue_rounds(c, now)
    db_rounds.abort_rounds(c, overdue, "deadline passed", now)


# --- one step of a round ---------------------------------------------------------------------------------------


@job
def advance_round(round_id: str) -> str:
    """Start the round if planned, then queue the message of the due step (or finish / abort it).

    With a model configured, the step's text is written between two transactions (ADR 0042): a model call may
    take seconds and must hold no row lock, so the step is decided, its text written with no transaction open,
    then the step is decided again on fresh rows and queued (unless another job moved the round on meanwhile).
    Offline text needs no I/O and is written in the one transaction."""
    with permanent_failures_stop_retries():
        round_id = uuid_arg("round_id", round_id)
    return _advance(round_id)


def _advance(round_id: str) -> str:
    """`advance_round`'s work, also done inline by `on_message` once it has passed the turn."""
    now = runtime.clock().now()
    with db() as conn:
        with tx(conn) as c:
            due = _due_step(c, round_id, now)
            if isinstance(due, str):
                return due
            # a retry of this job finds the step's message queued: no text to write then
            queued: tuple[str, datetime] | str | None = _queued(c, due[0], due[2], now)
            request = None if queued is not None else prepare_text(c, *due, now)
            if request is not None and request.llm is None:  # no model call: write and queue in this transaction
                queued = _queue_or_abort(c, *due, write_text(request), now, checked=True)
        if request is not None and request.llm is not None:
            written = write_text(request)  # no transaction open: a slow model holds no row lock (ADR 0042)
            now = runtime.clock().now()
            with tx(conn) as c:
                again = _due_step(c, round_id, now)
                if isinstance(again, str):
                    return again
                if again[2].step != due[2].step:
                    return f"step {due[2].step} already passed"
                queued = _queue_or_abort(c, *again, written, now)
    if isinstance(queued, str):
        return queued
    assert queued is not None  # queued by one of the two transactions, or found queued already
    message_id, when = queued
    schedule(queues.MESSAGES, SEND_JOB, job_id=f"send:{message_id}", args=[message_id], when=when, now=now)
    return f"step {due[2].step} queued"


def _due_step(c: Conn, round_id: str, now: datetime) -> tuple[dict[str, Any], ConversationView, Send] | str:
    """The round's row, view and due Send (the round locked and started if planned), or the outcome when no
    message is due (done, aborted, waiting)."""
    r = db_rounds.load_round(c, round_id, lock=True)
    if r is None:
        return "gone"
    if r["status"] not in ("planned", "active"):
        return str(r["status"])
    view = _view_of(c, r)
    if isinstance(view, str):
        db_rounds.abort_rounds(c, [round_id], view, now)
        return f"aborted: {view}"
    if r["status"] == "planned":
        db_rounds.start_round(c, round_id, now)
        r["status"] = "active"
    state = round_state(r)
    action = next_action(state, now, in_quiet_hours(view.quiet, now, view.timezone))
    if isinstance(action, Finish):
        db_rounds.finish_round(c, round_id, now)
        return "done"
    if isinstance(action, Abort):
        db_rounds.abort_rounds(c, [round_id], action.reason, now)
        return f"aborted: {action.reason}"
    if not isinstance(action, Send):
        return action.reason
    sender = view.numbers.get(action.sender)
    if sender is None or not sender.can_send:
        reason = f"number {sender.key if sender else action.sender} cannot send"
        db_rounds.abort_rounds(c, [round_id], reason, now)
        return f"aborted: {reason}"
    return r, view, action


def _queued(c: Conn, r: dict[str, Any], action: Send, now: datetime) -> tuple[str, datetime] | None:
    """The step's message and the instant its send was planned for, when it is queued already (a retry of this
    job: its send is scheduled again, deduplicated by its job id)."""
    key = f"round:{r['id']}:{action.step}"
    existing = c.execute("select id::text, meta from t_messages where idempotency_key = %s", (key,)).fetchone()
    if existing is None:
        return None
    planned = existing["meta"].get("planned_at")
    return existing["id"], datetime.fromisoformat(planned) if planned else now


def _queue_or_abort(
    c: Conn,
    r: dict[str, Any],
    view: ConversationView,
    action: Send,
    written: Written | None,
    now: datetime,
    *,
    checked: bool = False,
) -> tuple[str, datetime] | str:
    """Queue the step's message (`checked`: `_queued` said it is not, in this transaction, the round locked)."""
    try:
        if not checked and (queued := _queued(c, r, action, now)) is not None:
            return queued
        return _queue_step(c, r, view, action, written, now)
    except NoFreshText as e:
        db_rounds.abort_rounds(c, [r["id"]], str(e), now)
        return f"aborted: {e}"


def _view_of(c: Conn, r: dict[str, Any]) -> ConversationView | str:
    """The conversation's view, kept by this process while its tenant's configuration version, settings and
    numbers are those read now (one statement when they are; ADR 0056), or why it has none."""
    if r["conversation_id"] is None:
        return "conversation deleted"
    return conversation_views.VIEWS.view(c, r["tenant_id"], r["conversation_id"]).view


def _queue_step(
    c: Conn, r: dict[str, Any], view: ConversationView, action: Send, written: Written | None, now: datetime
) -> tuple[str, datetime]:
    key = f"round:{r['id']}:{action.step}"
    if written is None:
        raise NoFreshText(action.kind)
    text = written.text
    rng = runtime.rng(key)
    topic = next((t for t in view.topics if t.id == r["topic_id"]), None)
    think = cadence.think_delay_ms(view.settings.min_delay_ms, view.settings.max_delay_ms, view.settings.humanize, rng)
    when = now + timedelta(milliseconds=think)
    receiver = view.numbers[action.receiver]
    meta = {
        "app_origin": "bot",
        "round_id": r["id"],
        "step": action.step,
        "kind": action.kind,
        "topic": topic.key if topic else None,
        "think_ms": think,
        "typing_ms": cadence.typing_ms(text, view.settings.humanize),
        "planned_at": when.isoformat(),
        **written.meta,
    }
    message_id, _ = outbox.enqueue(
        c,
        tenant_id=view.tenant_id,
        conversation_id=view.id,
        round_id=r["id"],
        sender=action.sender,
        receiver=action.receiver,
        to_jid=f"{receiver.wa_number.lstrip('+')}@s.whatsapp.net",
        body=text,
        meta=meta,
        key=key,
        now=now,
    )
    return message_id, when


# --- reacting to stored messages -------------------------------------------------------------------------------

_MESSAGE = """
select m.id::text, m.tenant_id::text, m.session_id::text, m.direction::text, m.body, m.status::text,
       m.from_number_id::text, m.to_number_id::text, m.idempotency_key, m.round_id::text, m.meta,
       fn.key as from_key
  from t_messages m left join t_numbers fn on fn.id = m.from_number_id
 where m.id = %s
"""


@job
def on_message(message_id: str) -> str:
    """After the ingest stored a message event: settle our own send it reports, or, for a message from one of the
    tenant's bots to another, pass the round's turn (and queue the answer) or store why it is ignored."""
    with permanent_failures_stop_retries():
        message_id = uuid_arg("message_id", message_id)
    now = runtime.clock().now()
    advance: str | None = None
    with db() as conn, tx(conn) as c:
        m = c.execute(_MESSAGE, (message_id,)).fetchone()
        if m is None:
            return "gone"
        if m["direction"] == "out":
            if m["idempotency_key"] is None and m["session_id"] and m["body"]:
                settled = outbox.settle_from_webhook(c, m["id"], m["session_id"], m["body"], now)
                return f"settled {settled}" if settled else "not ours"
            return "ours"
        if m["from_number_id"] is None:  # from a person: opt-out detection, in this transaction (ADR 0036)
            return check_inbound(c, m["id"], now)
        if m["to_number_id"] is None or m["round_id"] is not None:
            return "not a bot message"
        live = db_rounds.rounds_between(c, m["from_number_id"], m["to_number_id"])
        states = [round_state(r) for r in live]
        expected = {
            (r["id"], row["step"]): row["body"]
            for r in live
            for row in outbox.round_messages(c, r["id"])
            if row["body"] is not None
        }
        decision = on_bot_message(states, m["from_number_id"], m["to_number_id"], m["body"], expected)
        if isinstance(decision, Ignore):
            outbox.ignore_inbound(c, m["id"], decision.reason)
            log.info("bot message ignored: %s", decision.reason, extra={"message_id": m["id"]})
            return f"ignored: {decision.reason}"
        if not isinstance(decision, Accept):  # pragma: no cover - on_bot_message returns Accept or Ignore
            return "undecided"
        r = next(x for x in live if x["id"] == decision.round_id)
        state = round_state(r)
        if db_rounds.attach_and_pass_turn(
            c, m["id"], r["id"], r["conversation_id"], decision.step, state.listener(decision.step), now
        ):
            advance = r["id"]
            step = decision.step + 1
    if advance is None:
        return "already passed"
    # The next step is queued here rather than by one more job (a job less per message, ADR 0049). The turn is
    # committed already, so a failure must not be retried through this job (it would find the turn passed): it
    # hands the step to `advance_round`, whose retries and backoff are what they always were.
    try:
        outcome = _advance(advance)
    except Exception as e:
        log.warning("advancing inline failed, queued instead", extra={"round_id": advance, "error": repr(e)[:200]})
        queues.enqueue_unique(queues.ROUNDS, ADVANCE_JOB, job_id=f"advance:{advance}:{step}", args=[advance])
        return f"turn passed: step {step} (advance queued)"
    return f"turn passed: step {step}: {outcome}"
