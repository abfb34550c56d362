"""Store a webhook event once and normalise it, in ONE SQL statement per event (the imperative shell).

The statement is `with ev as (insert into t_webhook_events ... on conflict do nothing returning ...)`
followed by data-modifying CTEs gated on `ev`: a duplicate delivery inserts nothing, so it changes nothing.
The same normalising CTEs run from a job (`mirage.jobs.events`) over an event already stored, with `ev`
being an update of that row instead of an insert.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from mirage.crypto import Keyring
from mirage.db.evolution_sessions import SessionAuth
from mirage.integrations.evolution import events as ev
from mirage.integrations.evolution.envelope import Envelope
from mirage.integrations.evolution.events import Event

STALE_WINDOW = "30 minutes"  # Evolution's retries of one event span ~20 minutes (contract §6.1)
_PROCESSED = "exists (select 1 from ev where ev.status = 'processed')"


def _rank(expr: str) -> str:
    order = ",".join(ev.STATUS_ORDER)
    return f"coalesce(array_position('{{{order}}}'::msg_status[], {expr}), 0)"


_INSERT_EVENT = """
ev as (
  insert into t_webhook_events (tenant_id, session_id, instance_name, event_type, idem_key, payload, signature,
                                status, ignored_reason, wa_ts, processed_at)
  values (%(tenant)s, %(session)s, %(instance)s, %(event)s, %(idem)s, %(payload)s, %(signature)s,
          {status}, {reason}, %(wa_ts)s, case when {status} = 'stored' then null else now() end)
  on conflict (tenant_id, idem_key) do nothing
  returning id, status, ignored_reason
)"""

_UPDATE_EVENT = """
ev as (
  update t_webhook_events set status = {status}, ignored_reason = {reason}, processed_at = now()
   where id = %(event_id)s and status in ('stored', 'failed')
  returning id, status, ignored_reason
)"""

# A state event older (by Evolution's clock, clamped to the receipt time) than one already applied for the session
# is a late retry; one for a session that was deprovisioned changes nothing either (`gone`).
_STALE = f"""
stale as (
  select exists (
    select 1 from t_webhook_events w
     where w.session_id = %(session)s and w.received_at > now() - interval '{STALE_WINDOW}'
       and w.event_type = any(%(state_events)s::text[]) and w.status = 'processed' and w.wa_ts > %(wa_ts)s
  ) as yes,
  not exists (select 1 from t_sessions s where s.id = %(session)s and s.deprovisioned_at is null) as gone
)"""

_PEER = """
peer_number as (
  select id from t_numbers where tenant_id = %(tenant)s and wa_number = any(%(phones)s::text[]) limit 1
),
peer_contact as (
  select id, lid from t_contacts
   where tenant_id = %(tenant)s and (wa_number = any(%(phones)s::text[]) or lid = %(lid)s::text)
   order by (wa_number = any(%(phones)s::text[])) desc limit 1
)"""

_MESSAGE = f"""
learn_lid as (
  update t_contacts c set lid = %(lid)s::text from peer_contact p
   where c.id = p.id and %(lid)s::text is not null and p.lid is distinct from %(lid)s::text and {_PROCESSED}
  returning c.id
),
msg as (
  insert into t_messages as m (tenant_id, session_id, from_number_id, to_number_id, contact_id, from_jid, to_jid,
                               wa_msg_id, quoted_wa_msg_id, direction, message_type, body, meta, status, wa_ts,
                               sent_at)
  select %(tenant)s, %(session)s,
         case when %(out)s then %(own)s::uuid else (select id from peer_number) end,
         case when %(out)s then (select id from peer_number) else %(own)s::uuid end,
         (select id from peer_contact),
         %(from_jid)s, %(to_jid)s, %(wa_msg_id)s, %(quoted)s, %(direction)s::msg_direction, %(type)s, %(body)s,
         %(meta)s, %(mstatus)s::msg_status, %(msg_ts)s, case when %(out)s then coalesce(%(msg_ts)s, now()) end
    from ev where ev.status = 'processed'
  on conflict (session_id, wa_msg_id) do update set
    from_number_id = coalesce(m.from_number_id, excluded.from_number_id),
    to_number_id = coalesce(m.to_number_id, excluded.to_number_id),
    contact_id = coalesce(m.contact_id, excluded.contact_id),
    from_jid = coalesce(m.from_jid, excluded.from_jid),
    to_jid = coalesce(m.to_jid, excluded.to_jid),
    quoted_wa_msg_id = coalesce(m.quoted_wa_msg_id, excluded.quoted_wa_msg_id),
    message_type = case when m.message_type = 'unknown' then excluded.message_type else m.message_type end,
    direction = case when m.meta ? 'placeholder' then excluded.direction else m.direction end,
    body = coalesce(m.body, excluded.body),
    meta = (excluded.meta || m.meta) - 'placeholder',
    status = case when {_rank("excluded.status")} > {_rank("m.status")} then excluded.status else m.status end,
    wa_ts = coalesce(m.wa_ts, excluded.wa_ts),
    sent_at = coalesce(m.sent_at, excluded.sent_at),
    updated_at = now()
  returning id, m.idempotency_key is not null as ours
)"""

# A receipt may arrive before its message (contract §6.1): it then creates a placeholder the message fills in.
_RECEIPT = f"""
msg as (
  insert into t_messages as m (tenant_id, session_id, from_number_id, to_number_id, contact_id, from_jid, to_jid,
                               wa_msg_id, direction, message_type, meta, status, error, delivered_at, read_at)
  select %(tenant)s, %(session)s,
         case when %(out)s then %(own)s::uuid else (select id from peer_number) end,
         case when %(out)s then (select id from peer_number) else %(own)s::uuid end,
         (select id from peer_contact),
         %(from_jid)s, %(to_jid)s, %(wa_msg_id)s, %(direction)s::msg_direction, 'unknown', '{{"placeholder": true}}',
         %(mstatus)s::msg_status, case when %(failed)s then 'ERROR' end,
         case when %(delivered)s then now() end, case when %(read)s then now() end
    from ev where ev.status = 'processed'
  on conflict (session_id, wa_msg_id) do update set
    status = case when {_rank("excluded.status")} > {_rank("m.status")} then excluded.status else m.status end,
    error = case when %(failed)s then coalesce(m.error, 'ERROR') else m.error end,
    delivered_at = case when %(delivered)s then coalesce(m.delivered_at, now()) else m.delivered_at end,
    read_at = case when %(read)s then coalesce(m.read_at, now()) else m.read_at end,
    updated_at = now()
  returning id, m.idempotency_key is not null as ours
)"""

# A delete may arrive before its message too: it then leaves a tombstone (a placeholder marked deleted) that the
# message fills in, so whatever the order the message ends deleted.
_DELETE = """
msg as (
  insert into t_messages as m (tenant_id, session_id, from_number_id, to_number_id, contact_id, from_jid, to_jid,
                               wa_msg_id, direction, message_type, meta, status)
  select %(tenant)s, %(session)s,
         case when %(out)s then %(own)s::uuid else (select id from peer_number) end,
         case when %(out)s then (select id from peer_number) else %(own)s::uuid end,
         (select id from peer_contact),
         %(from_jid)s, %(to_jid)s, %(wa_msg_id)s, %(direction)s::msg_direction, 'unknown',
         jsonb_build_object('placeholder', true, 'deleted', true, 'deleted_at', now()), %(mstatus)s::msg_status
    from ev where ev.status = 'processed'
  on conflict (session_id, wa_msg_id) do update set
    meta = m.meta || jsonb_build_object('deleted', true,
                                        'deleted_at', coalesce(m.meta -> 'deleted_at', to_jsonb(now()))),
    updated_at = now()
  returning id, m.idempotency_key is not null as ours
)"""

# Runtime columns only: t_numbers is configuration, and a number that moved to a newer session is left alone.
_NUMBER = f"""
num as (
  update t_numbers n
     set status = case when %(nstatus)s = 'close' and n.status in ('logged_out', 'removed') then n.status
                       else %(nstatus)s::number_status end,
         status_reason = {{reason}},
         connected_at = case when %(nstatus)s = 'open' and n.status <> 'open' then now() else n.connected_at end
   where n.tenant_id = %(tenant)s and n.id = %(number)s and (n.session_id = %(session)s or n.session_id is null)
     and %(nstatus)s::text is not null and {_PROCESSED}
     and exists (select 1 from t_sessions s where s.id = %(session)s and s.deprovisioned_at is null)
  returning n.id
)"""

_SESSION = f"""
sess as (
  update t_sessions s set {{sets}}, last_seen = now(), updated_at = now()
   where s.id = %(session)s and s.deprovisioned_at is null and {_PROCESSED}
  returning s.id
)"""

_CONNECTION_NUMBER_STATUS = {"open": "open", "connecting": "connecting", "close": "close", "refused": "refused"}


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery: `processed`, `ignored`, `stored` (deferred) or `duplicate`."""

    status: str
    event_id: UUID | None = None
    reason: str | None = None
    message_id: UUID | None = None
    ours: bool = False  # the message row is one of our outbox rows (it has an idempotency key)


@dataclass(frozen=True)
class _Plan:
    ctes: list[str]
    params: dict[str, Any]
    ordered: bool = False  # a state event: apply only if no newer one was applied
    has_msg: bool = False  # defines a `msg` CTE returning the t_messages id


def decide(event: Event) -> tuple[str, str | None]:
    """The event's status before any SQL: `ignored` with a reason, or `processed`."""
    reason = event.ignored
    return ("ignored", reason) if reason else ("processed", None)


@dataclass(frozen=True)
class Statement:
    """One event's whole write: SQL text and parameters (run it, then `outcome()` of its single row)."""

    sql: str
    params: dict[str, Any]


def ingest_statement(session: SessionAuth, env: Envelope, signature: str, ring: Keyring) -> Statement:
    """Insert the event (once: a duplicate changes nothing) and normalise it."""
    event = ev.classify(env)
    status, _ = decide(event)
    plan = _plan(session, env, event, ring, status)
    head = _INSERT_EVENT.format(**_status_exprs(plan.ordered))
    return Statement(_statement(head, plan), {**plan.params, **_event_params(session, env, event, signature, status)})


def store_only_statement(session: SessionAuth, env: Envelope, signature: str, reason: str) -> Statement:
    """Insert the event as `stored` (normalised later by a job); used when normalising inline failed."""
    event = ev.classify(env)
    params = {**_event_params(session, env, event, signature, "stored"), "reason": reason}
    head = _INSERT_EVENT.format(status="%(status)s", reason="%(reason)s")
    return Statement(_statement(head, _Plan([], {})), params)


def outcome(row: dict[str, Any] | None) -> Outcome:
    if row is None or row["event_id"] is None:
        return Outcome("duplicate")
    return Outcome(row["status"], row["event_id"], row["reason"], row["message_id"], bool(row.get("ours")))


def _event_params(session: SessionAuth, env: Envelope, event: Event, signature: str, status: str) -> dict[str, Any]:
    return {
        "tenant": session.tenant_id,
        "session": session.session_id,
        "instance": env.instance,
        "event": env.event,
        "idem": ev.idem_key(env, event),
        "payload": Jsonb(env.payload),
        "signature": signature,
        "status": status,
        "reason": event.ignored,
        "wa_ts": ev.event_time(env, event, datetime.now(UTC)),
    }


def reprocess(
    conn: psycopg.Connection[Any],
    event_id: UUID,
    session: SessionAuth,
    env: Envelope,
    ring: Keyring,
    received_at: datetime,
) -> Outcome:
    """Normalise an event stored earlier (status `stored` or `failed`); a no-op for one already processed."""
    event = ev.classify(env)
    status, reason = decide(event)
    plan = _plan(session, env, event, ring, status)
    params = {
        **plan.params,
        "event_id": event_id,
        "tenant": session.tenant_id,
        "session": session.session_id,
        "status": status,
        "reason": reason,
        "wa_ts": ev.event_time(env, event, received_at),
    }
    head = _UPDATE_EVENT.format(**_status_exprs(plan.ordered))
    return outcome(conn.execute(_statement(head, plan), params).fetchone())


@functools.cache
def _status_exprs(ordered: bool) -> dict[str, str]:
    if not ordered:
        return {"status": "%(status)s", "reason": "%(reason)s"}
    return {
        "status": "case when (select gone or yes from stale) then 'ignored' else %(status)s end",
        "reason": (
            "case when (select gone from stale) then 'session_inactive'"
            " when (select yes from stale) then 'stale' else %(reason)s end"
        ),
    }


def _statement(head: str, plan: _Plan) -> str:
    return _sql(head, tuple(plan.ctes), plan.ordered, plan.has_msg)


@functools.lru_cache(maxsize=64)  # a handful of shapes; the same str object lets psycopg's query cache hit fast
def _sql(head: str, ctes: tuple[str, ...], ordered: bool, has_msg: bool) -> str:
    ctes = ((_STALE,) if ordered else ()) + (head, *ctes)
    msg, ours = ("(select id from msg)", "(select ours from msg)") if has_msg else ("null::uuid", "false")
    return (
        "with " + ",".join(ctes) + f"\nselect (select id from ev) as event_id, (select status from ev) as status,"
        f" (select ignored_reason from ev) as reason, {msg} as message_id, {ours} as ours"
    )


def _plan(session: SessionAuth, env: Envelope, event: Event, ring: Keyring, status: str) -> _Plan:
    """The normalising CTEs and their parameters for one event (none when it is ignored)."""
    if status != "processed":
        return _Plan([], {})
    own_jid = _own_jid(session, env)
    if isinstance(event, ev.MessageEvent | ev.StatusEvent | ev.DeleteEvent):
        out = event.from_me
        peer_jid = event.peer.wire_jid
        params: dict[str, Any] = {
            "phones": list(ev.phone_candidates(event.peer.phone)),
            "lid": event.peer.lid,
            "out": out,
            "own": session.number_id,
            "direction": "out" if out else "in",
            "from_jid": own_jid if out else peer_jid,
            "to_jid": peer_jid if out else own_jid,
            "wa_msg_id": event.wa_msg_id,
            "mstatus": event.status,
        }
        if isinstance(event, ev.MessageEvent):
            params |= {
                "quoted": event.quoted_id,
                "type": event.message_type,
                "body": event.text,
                "meta": Jsonb(event.meta),
                "msg_ts": event.wa_ts,
            }
            return _Plan([_PEER, _MESSAGE], params, has_msg=True)
        if isinstance(event, ev.DeleteEvent):
            return _Plan([_PEER, _DELETE], params, has_msg=True)
        params |= {
            "failed": event.status == "failed",
            "delivered": event.wa_status == "DELIVERY_ACK",
            "read": event.wa_status in ("READ", "PLAYED"),
        }
        return _Plan([_PEER, _RECEIPT], params, has_msg=True)
    if isinstance(event, ev.ConnectionEvent):
        return _connection(session, event)
    if isinstance(event, ev.QrEvent):
        return _qr(session, event, ring)
    if isinstance(event, ev.LifecycleEvent):
        return _lifecycle(session, event)
    return _Plan([], {})


def _state_params(session: SessionAuth, nstatus: str | None, **extra: Any) -> dict[str, Any]:
    return {"number": session.number_id, "nstatus": nstatus, "state_events": list(ev.STATE_EVENTS), **extra}


def _connection(session: SessionAuth, event: ev.ConnectionEvent) -> _Plan:
    state = event.state or "close"
    nstatus = _CONNECTION_NUMBER_STATUS[state]
    sets = "state = %(state)s"
    if state != "connecting":  # a QR is only worth keeping while someone can scan it (docs/evolution.md)
        sets += ", last_qr_enc = null, pairing_code_enc = null, qr_count = 0"
    if state == "open":
        # Someone may scan the QR with another phone: say so rather than silently send from a different number.
        reason = (
            "case when %(wuid)s::text is not null and not (n.wa_number = any(%(wuid_candidates)s::text[]))"
            " then 'other_number:' || %(wuid)s::text end"
        )
    else:
        reason = "%(code)s::text"
    params = _state_params(
        session,
        nstatus,
        state=state,
        code=str(event.reason_code) if event.reason_code is not None else None,
        wuid=event.phone,
        wuid_candidates=list(ev.phone_candidates(event.phone)),
    )
    return _Plan([_SESSION.format(sets=sets), _NUMBER.format(reason=reason)], params, ordered=True)


def _qr(session: SessionAuth, event: ev.QrEvent, ring: Keyring) -> _Plan:
    if event.limit_reached:
        sets = "last_qr_enc = null, pairing_code_enc = null, qr_count = 0, state = 'refused'"
        params = _state_params(session, "refused", code="qr_limit")
        return _Plan([_SESSION.format(sets=sets), _NUMBER.format(reason="%(code)s::text")], params, ordered=True)

    def enc(value: str | None, field: str) -> bytes | None:
        if value is None:
            return None
        return ring.encrypt(value, table="t_sessions", row_id=session.session_id, field=field)

    sets = (
        "last_qr_enc = %(qr_enc)s, pairing_code_enc = %(pc_enc)s, last_qr_at = now(),"
        " qr_count = s.qr_count + 1, state = 'connecting'"
    )
    params = _state_params(
        session, "qr", qr_enc=enc(event.code, "last_qr"), pc_enc=enc(event.pairing_code, "pairing_code")
    )
    return _Plan([_SESSION.format(sets=sets), _NUMBER.format(reason="null")], params, ordered=True)


def _lifecycle(session: SessionAuth, event: ev.LifecycleEvent) -> _Plan:
    if event.event in ("logout.instance", "remove.instance"):
        nstatus = "logged_out" if event.event == "logout.instance" else "removed"
        sets = "state = 'close', last_qr_enc = null, pairing_code_enc = null"
        params = _state_params(session, nstatus)
        return _Plan([_SESSION.format(sets=sets), _NUMBER.format(reason="n.status_reason")], params, ordered=True)
    if event.event == "instance.create":
        sets = "instance_id = coalesce(s.instance_id, %(instance_id)s)"
        return _Plan([_SESSION.format(sets=sets)], {"instance_id": event.instance_id})
    return _Plan([_SESSION.format(sets="state = s.state")], {})  # status.instance: the session is alive


def _own_jid(session: SessionAuth, env: Envelope) -> str | None:
    sender = ev.parse_jid(env.sender)
    if sender is not None and sender.kind == "pn":
        return sender.normal
    return f"{session.own_number[1:]}@s.whatsapp.net" if session.own_number else None


# --- events left `stored` (the reprocess jobs in mirage.jobs.events) -------------------------------------

_STORED_EVENT_SQL = """
select id, instance_name, session_id, payload, status, received_at from t_webhook_events where id = %s
"""
_PENDING_SQL = """
select id from t_webhook_events
 where status = 'stored' and received_at < now() - make_interval(secs => %s)
 order by received_at limit %s
"""


def load_event(conn: psycopg.Connection[Any], event_id: UUID) -> dict[str, Any] | None:
    """One stored event's row: id, instance_name, session_id, payload (redacted), status, received_at."""
    row: dict[str, Any] | None = conn.execute(_STORED_EVENT_SQL, (event_id,)).fetchone()
    return row


def mark_failed(conn: psycopg.Connection[Any], event_id: UUID, reason: str) -> None:
    """The event could not be normalised for good (`session_gone`) or this time (`failed:<error>`)."""
    conn.execute(
        "update t_webhook_events set status = 'failed', ignored_reason = %s, processed_at = now() where id = %s",
        (reason, event_id),
    )


def pending_event_ids(conn: psycopg.Connection[Any], older_than_s: float, limit: int) -> list[UUID]:
    """Events still `stored` after `older_than_s` seconds (Redis was down when they arrived), oldest first."""
    return [UUID(str(r["id"])) for r in conn.execute(_PENDING_SQL, (older_than_s, limit)).fetchall()]
