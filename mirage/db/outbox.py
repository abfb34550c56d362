"""SQL of the outbox (t_messages, direction `out`): queue a message once, claim it once, record what Evolution
said, settle `unknown` sends from the webhook, and count what left for quota rebuilds (ADR 0026).

Every rule that must hold at the instant of sending is in the claim's WHERE clause, with that instant and the
quiet-hours verdict passed in by the caller (computed by the pure core for the clock's `now`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mirage.db.evolution_sessions import LIVE_SESSION_COLUMNS, live_session_join
from mirage.engine.quotas import COUNTED_STATUSES

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

_ENQUEUE = """
insert into t_messages (tenant_id, conversation_id, round_id, from_number_id, to_number_id, to_jid, direction,
                        body, meta, status, idempotency_key, created_at, updated_at)
values (%(tenant)s, %(conversation)s, %(round)s, %(sender)s, %(receiver)s, %(to_jid)s, 'out', %(body)s, %(meta)s,
        'queued', %(key)s, %(now)s, %(now)s)
on conflict (idempotency_key) do nothing
returning id::text
"""


def enqueue(
    conn: Conn,
    *,
    tenant_id: str,
    conversation_id: str | None,
    round_id: str,
    sender: str,
    receiver: str,
    to_jid: str,
    body: str,
    meta: dict[str, Any],
    key: str,
    now: datetime,
) -> tuple[str, bool]:
    """Queue one outgoing message under its idempotency key; (its id, whether this call created it)."""
    params = {
        "tenant": tenant_id,
        "conversation": conversation_id,
        "round": round_id,
        "sender": sender,
        "receiver": receiver,
        "to_jid": to_jid,
        "body": body,
        "meta": Jsonb(meta),
        "key": key,
        "now": now,
    }
    row = conn.execute(_ENQUEUE, params).fetchone()
    if row is not None:
        return str(row["id"]), True
    existing = conn.execute("select id::text from t_messages where idempotency_key = %s", (key,)).fetchone()
    if existing is None:  # pragma: no cover - the conflict row exists by definition
        raise RuntimeError(f"outbox row {key} vanished")
    return str(existing["id"]), False


_SEND_CONTEXT = """
select m.id::text, m.status::text, m.body, m.meta, m.round_id::text, m.from_number_id::text,
       m.to_number_id::text, m.tenant_id::text, m.conversation_id::text,
       t.timezone, s.quiet_hours, s.min_delay_ms, s.max_delay_ms, s.hourly_burst_limit, s.daily_limit,
       s.humanize, s.allow_bot_to_bot,
       cs.min_delay_ms as c_min_delay_ms, cs.max_delay_ms as c_max_delay_ms,
       cs.hourly_burst_limit as c_hourly_burst_limit, cs.humanize as c_humanize,
       cs.allow_bot_to_bot as c_allow_bot_to_bot, coalesce(cs.guard_no_echo, true) as c_guard_no_echo,
       fn.key as sender_key, fn.warmup_started_on, coalesce(tn.wa_number, ct.wa_number) as receiver_wa,
       m.contact_id::text{columns}
  from t_messages m
  join t_tenants t on t.id = m.tenant_id
  join t_settings_tenant s on s.tenant_id = m.tenant_id
  left join t_settings_conversation cs on cs.conversation_id = m.conversation_id
  left join t_numbers fn on fn.id = m.from_number_id
  left join t_numbers tn on tn.id = m.to_number_id
  left join t_contacts ct on ct.id = m.contact_id and m.to_number_id is null{joins}
 where m.id = %s
"""
_CONTEXT = _SEND_CONTEXT.format(columns="", joins="")
# Step 1 also reads the sender's live session and the inbound message this one answers (to mark it read).
_CONTEXT_WITH_CHROME = _SEND_CONTEXT.format(
    columns=f""",
       {LIVE_SESSION_COLUMNS}, ai.wa_msg_id as answering_wa_msg_id, ai.from_jid as answering_from_jid""",
    joins=f"""
  {live_session_join("m.from_number_id")}
  left join lateral (
    select i.wa_msg_id, i.from_jid from t_messages i
     where i.direction = 'in' and i.round_id = m.round_id and (i.meta->>'step')::int = (m.meta->>'step')::int - 1
     order by i.created_at desc limit 1
  ) ai on (m.meta->>'step')::int > 0""",
)


def send_context(conn: Conn, message_id: str, *, chrome: bool = False) -> Row | None:
    """One outgoing message with all its send needs in one query: its row, the tenant's and conversation's
    settings, sender and receiver. With `chrome` (step 1), also the sender's live session (`send_access` reads
    it) and the wa id / JID of the round's inbound message it answers (`answering_*`, null at step 0)."""
    row: Row | None = conn.execute(_CONTEXT_WITH_CHROME if chrome else _CONTEXT, (message_id,)).fetchone()
    return row


_CLAIM = """
update t_messages m set status = 'sending', sent_at = %(now)s, updated_at = %(now)s,
       session_id = n.session_id, meta = m.meta || jsonb_build_object('claimed_at', %(now)s::text)
  from t_rounds r, t_numbers n {session_join}
 where m.id = %(id)s and m.status = 'queued'
   and not %(quiet)s
   and r.id = m.round_id and r.status = 'active' and r.turn_number_id = m.from_number_id
   and r.exchanges_done = (m.meta->>'step')::int and (r.deadline_at is null or r.deadline_at > %(now)s)
   and n.id = m.from_number_id and n.status = 'open' and n.active and n.paused_at is null
   and n.session_id is not null
   -- Opt-out (ADR 0036): never to a human who opted out or whose possible opt-out awaits review. Re-checked here
   -- because an opt-out may commit after the message was queued; one committing while this UPDATE runs has
   -- cancelled the row first (same transaction as t_optouts), so the row no longer matches `status = 'queued'`.
   -- To one of the tenant's own numbers there is no one to opt out, and may_contact() would only plan its body
   -- (about a millisecond a call): an OR's arms are evaluated in order, the second only when the first is false.
   and (m.to_number_id is not null or public.may_contact(m.tenant_id, coalesce(
         (select c.wa_number from t_contacts c where c.id = m.contact_id),
         case when m.to_jid like '%%@s.whatsapp.net' then '+' || split_part(m.to_jid, '@', 1)
              when m.to_jid like '%%@lid' then m.to_jid end)))
returning m.id::text, m.session_id::text, {session_columns}
""".format(session_join=live_session_join("n.id"), session_columns=LIVE_SESSION_COLUMNS)


def claim(conn: Conn, message_id: str, now: datetime, quiet: bool) -> Row | None:
    """queued -> sending in ONE conditional UPDATE: not quiet hours, round active and this bot's turn for this
    step, before the deadline, number open / active / not paused with a live session, recipient not opted out.
    None: not claimable. The row also carries the number's live session as it is now (`send_access` reads it), so
    the send needs no query of its own."""
    row: Row | None = conn.execute(_CLAIM, {"id": message_id, "now": now, "quiet": quiet}).fetchone()
    return row


_LOAD = """
select m.id::text, m.tenant_id::text, m.conversation_id::text, m.round_id::text, m.from_number_id::text,
       m.to_number_id::text, m.to_jid, m.body, m.meta, m.status::text, m.idempotency_key, m.session_id::text,
       m.created_at, m.updated_at
  from t_messages m where m.id = %s
"""


def load(conn: Conn, message_id: str) -> Row | None:
    row: Row | None = conn.execute(_LOAD, (message_id,)).fetchone()
    return row


_MARK_SENT = """
with dup as (
  -- Evolution's `send.message` webhook stored first as a row of its own: fold it into this one
  delete from t_messages d
   where d.session_id = %(session)s::uuid and d.wa_msg_id = %(wa)s::text
     and d.idempotency_key is null and d.id <> %(id)s
  returning d.status, d.delivered_at, d.read_at
), sent as (
  update t_messages m
     set status = case when m.status not in ('sending', 'unknown') then m.status
                       when dup.status in ('delivered', 'read') then dup.status else 'sent' end,
         wa_msg_id = coalesce(m.wa_msg_id, %(wa)s::text), delivered_at = coalesce(m.delivered_at, dup.delivered_at),
         read_at = coalesce(m.read_at, dup.read_at), updated_at = %(now)s
    from (select 1) one left join dup on true
   where m.id = %(id)s
  returning m.from_number_id
)
update t_numbers n set send_failures = 0 from sent where n.id = sent.from_number_id and n.send_failures <> 0
"""


def mark_sent(conn: Conn, message_id: str, session_id: str | None, wa_msg_id: str | None, now: datetime) -> None:
    """Evolution accepted it, in one statement: its `send.message` webhook may have been stored first as a row of
    its own, which is folded into this one (its receipts kept); the number's failure streak ends. Statuses never
    go backwards."""
    conn.execute(_MARK_SENT, {"id": message_id, "session": session_id, "wa": wa_msg_id or None, "now": now})


def mark(conn: Conn, message_id: str, status: str, error: str, now: datetime, *, only_from: tuple[str, ...]) -> bool:
    cur = conn.execute(
        "update t_messages set status = %(status)s::msg_status, error = %(error)s, updated_at = %(now)s "
        "where id = %(id)s and status = any(%(from)s::msg_status[])",
        {"id": message_id, "status": status, "error": error[:500], "now": now, "from": list(only_from)},
    )
    return cur.rowcount == 1


def count_failure(conn: Conn, number_id: str) -> int:
    row = conn.execute(
        "update t_numbers set send_failures = send_failures + 1 where id = %s returning send_failures", (number_id,)
    ).fetchone()
    return int(row["send_failures"]) if row else 0


_COUNTED_SINCE = """
select (select count(*) from t_messages where direction = 'out' and from_number_id = %(number)s
           and status = any(%(statuses)s::msg_status[]) and sent_at >= %(start)s and sent_at < %(end)s)
     + (select count(*) from t_outreach_targets tg
          join t_outreach_policies p on p.id = tg.policy_id
         where p.number_id = %(number)s and tg.checked_at >= %(start)s and tg.checked_at < %(end)s) as n
"""


def counted_since(conn: Conn, number_id: str, start: datetime, end: datetime) -> int:
    """Quota units `number_id` spent in [start, end): messages that left (or may have), and the WhatsApp number
    checks of its outreach policy (one unit each, as `outreach_check` takes) — the truth quota counters rebuild from."""
    row = conn.execute(
        _COUNTED_SINCE,
        {
            "number": number_id,
            "statuses": list(COUNTED_STATUSES),
            "start": start,
            "end": end,
        },
    ).fetchone()
    return int(row["n"]) if row else 0


def round_messages(conn: Conn, round_id: str) -> list[Row]:
    return conn.execute(
        "select id::text, (meta->>'step')::int as step, from_number_id::text, to_number_id::text, body, "
        "status::text, wa_msg_id from t_messages where round_id = %s and direction = 'out' order by created_at",
        (round_id,),
    ).fetchall()


def answered_inbound(conn: Conn, round_id: str, step: int) -> Row | None:
    """The round's message of `step` as the receiver got it (to mark it read before answering it)."""
    row: Row | None = conn.execute(
        "select id::text, wa_msg_id, from_jid, body from t_messages where direction = 'in' and round_id = %s "
        "and (meta->>'step')::int = %s order by created_at desc limit 1",
        (round_id, step),
    ).fetchone()
    return row


def ignore_inbound(conn: Conn, message_id: str, reason: str) -> None:
    conn.execute(
        "update t_messages set meta = meta || jsonb_build_object('ignored_reason', %s::text) where id = %s",
        (reason, message_id),
    )


_SETTLE = """
with dup as (
  select id, wa_msg_id, status, delivered_at, read_at from t_messages
   where id = %(webhook_row)s and direction = 'out' and idempotency_key is null
), target as (
  select m.id from t_messages m, dup
   where m.session_id = %(session)s and m.direction = 'out' and m.status in ('sending', 'unknown')
     and m.wa_msg_id is null and m.body = %(body)s and m.id <> dup.id
   order by m.sent_at limit 1
), gone as (
  delete from t_messages d using target where d.id = (select id from dup) returning d.id
)
update t_messages m set status = case when dup.status in ('delivered', 'read') then dup.status else 'sent' end,
       wa_msg_id = dup.wa_msg_id, delivered_at = coalesce(m.delivered_at, dup.delivered_at),
       read_at = coalesce(m.read_at, dup.read_at), updated_at = %(now)s,
       meta = m.meta || jsonb_build_object('settled_by', 'webhook')
  from dup, target, gone
 where m.id = target.id
returning m.id::text
"""


def settle_from_webhook(conn: Conn, webhook_row: str, session_id: str, body: str, now: datetime) -> str | None:
    """Our own send came back as a webhook row (`send.message`, fromMe) while the outbox row is still `sending`
    or `unknown` (the worker died, or the answer was lost): fold the webhook row into the outbox row, `sent`."""
    row = conn.execute(
        _SETTLE, {"webhook_row": webhook_row, "session": session_id, "body": body, "now": now}
    ).fetchone()
    return str(row["id"]) if row else None


def stale_outbox(conn: Conn, queued_before: datetime, sending_before: datetime, limit: int = 1000) -> list[Row]:
    """Rows the sweeper looks at: queued for too long (job lost?) and sending for too long (worker died)."""
    return conn.execute(
        "select id::text, status::text, updated_at, round_id::text from t_messages where direction = 'out' and "
        "((status = 'queued' and updated_at < %s) or (status = 'sending' and updated_at < %s)) "
        "order by updated_at limit %s",
        (queued_before, sending_before, limit),
    ).fetchall()
