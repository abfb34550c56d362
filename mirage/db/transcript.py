"""What a simulation report reads back: every message that left or arrived, the rounds, the refused sends
(`mirage simulate`, ADR 0039). Service role: the report covers every tenant of the scratch database."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

# Outgoing rows that left (or may have): what a transcript and the quota checks count.
LEFT = ("sending", "sent", "unknown", "delivered", "read")

_MESSAGES = """
select m.id::text, m.direction::text, m.status::text, m.body, m.meta, m.error,
       coalesce(m.sent_at, m.wa_ts, m.created_at) as at,
       t.slug as tenant, t.timezone,
       m.from_number_id::text, fn.key as from_key, m.to_number_id::text, tn.key as to_key,
       m.contact_id::text, m.from_jid, m.to_jid, m.round_id::text, m.conversation_id::text, c.key as conversation
  from t_messages m
  join t_tenants t on t.id = m.tenant_id
  left join t_numbers fn on fn.id = m.from_number_id
  left join t_numbers tn on tn.id = m.to_number_id
  left join t_conversations c on c.id = m.conversation_id
 where (m.direction = 'out' and m.status = any(%(left)s::msg_status[]))
    or (m.direction = 'in' and m.from_number_id is null)
 order by at, m.direction desc, t.slug, fn.key nulls last, tn.key nulls last, m.body
"""

_ROUNDS = """
select r.id::text, r.status::text, r.daypart, r.window_date, r.seq, r.created_at, r.started_at, r.finished_at,
       r.abort_reason, r.exchanges_planned, r.conversation_id::text, c.key as conversation, t.slug as tenant,
       r.target_id::text,
       a.key as number_a, b.key as number_b
  from t_rounds r
  join t_tenants t on t.id = r.tenant_id
  left join t_conversations c on c.id = r.conversation_id
  left join t_numbers a on a.id = r.number_a_id
  left join t_numbers b on b.id = r.number_b_id
 order by r.created_at, t.slug, c.key, r.seq
"""

_REFUSED = """
select m.id::text, m.error, m.body, m.meta, m.updated_at as at, t.slug as tenant, fn.key as from_key,
       tn.key as to_key, m.to_jid, c.key as conversation
  from t_messages m
  join t_tenants t on t.id = m.tenant_id
  left join t_numbers fn on fn.id = m.from_number_id
  left join t_numbers tn on tn.id = m.to_number_id
  left join t_conversations c on c.id = m.conversation_id
 where m.direction = 'out' and m.status in ('cancelled', 'failed')
 order by m.updated_at, t.slug, fn.key
"""

_IGNORED = """
select m.id::text, m.meta, m.wa_ts as at, t.slug as tenant, fn.key as from_key, tn.key as to_key, m.body
  from t_messages m
  join t_tenants t on t.id = m.tenant_id
  left join t_numbers fn on fn.id = m.from_number_id
  left join t_numbers tn on tn.id = m.to_number_id
 where m.direction = 'in' and m.from_number_id is not null and m.meta ? 'ignored_reason'
 order by m.wa_ts, t.slug
"""


def messages(conn: Conn) -> list[Row]:
    """Outgoing messages that left and incoming ones from people (a bot's copy of another bot's message is the
    same message: it is counted once, as the sender's), in time order."""
    return conn.execute(_MESSAGES, {"left": list(LEFT)}).fetchall()


def rounds(conn: Conn) -> list[Row]:
    return conn.execute(_ROUNDS).fetchall()


def refused(conn: Conn) -> list[Row]:
    """Outgoing messages the runtime cancelled or that failed, with the reason it stored."""
    return conn.execute(_REFUSED).fetchall()


def ignored(conn: Conn) -> list[Row]:
    """Messages from one bot to another that the runtime ignored (out of turn, no round), with the reason."""
    return conn.execute(_IGNORED).fetchall()


def recent_rounds(conn: Conn, since: Any) -> list[Row]:
    """Rounds created since `since`, as much as the planner's time rules need (the simulation's tick gate)."""
    return conn.execute(
        "select conversation_id::text, window_date, daypart, seq, status::text, created_at, finished_at "
        "from t_rounds where created_at >= %s and conversation_id is not null",
        (since,),
    ).fetchall()


def outreach_windows(conn: Conn) -> list[Row]:
    """Each active outreach policy's time rules (the simulation's outreach tick gate)."""
    return conn.execute(
        "select t.timezone, s.quiet_hours, p.dayparts, p.allow_days::text[] as allow_days "
        "from t_outreach_policies p join t_tenants t on t.id = p.tenant_id "
        "join t_settings_tenant s on s.tenant_id = p.tenant_id where p.active"
    ).fetchall()


def outreach_has_work(conn: Conn) -> bool:
    """Whether an active policy has a target still pending or in progress."""
    row = conn.execute(
        "select exists (select 1 from t_outreach_targets x join t_outreach_policies p on p.id = x.policy_id "
        "where p.active and x.status in ('pending', 'in_progress')) as busy"
    ).fetchone()
    return bool(row and row["busy"])
