"""The metrics page's reads, every one inside the viewer's tenant session: role `authenticated` with the viewer's
claims, so row level security (and the tenant filter of public.page_facts()) decides what exists.

Figures older than today come from mv_page_facts (as of its last refresh); today's counters are counted live
from t_messages. Each function returns plain rows; mirage/web/pages/figures.py turns them into figures.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from mirage.db.sessions import tenant_claims
from mirage.db.viewers import Viewer

AConn = psycopg.AsyncConnection[Any]
Row = dict[str, Any]
POOL_TIMEOUT_S = 5.0

# Role and claims in one statement, both transaction-local (they end with the block's COMMIT or ROLLBACK).
_BECOME = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('request.jwt.claim', '', true), set_config('request.jwt.claim.sub', '', true),"
    " set_config('request.jwt.claim.role', '', true), set_config('request.jwt.claim.email', '', true)"
)


@asynccontextmanager
async def viewer_session(pool: AsyncConnectionPool[Any], viewer: Viewer) -> AsyncIterator[AConn]:
    """One read-only transaction as `viewer`: role authenticated, their tenant, role and aal in the claims."""
    claims = tenant_claims(viewer.tenant_id, viewer.sub, role=viewer.role, aal=viewer.aal)  # type: ignore[arg-type]
    async with pool.connection(timeout=POOL_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute(_BECOME, ("authenticated", json.dumps(claims, separators=(",", ":"))))
        yield conn


@asynccontextmanager
async def service_block(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AConn]:
    """One transaction as service_role, for sign-in only (sessions are looked up before the tenant is known)."""
    async with pool.connection(timeout=POOL_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute(_BECOME, ("service_role", '{"role":"service_role"}'))
        yield conn


async def _all(conn: AConn, query: str, params: Any = None) -> list[Row]:
    cur = await conn.execute(query, params)
    return [dict(r) for r in await cur.fetchall()]


async def tenant(conn: AConn) -> Row | None:
    """The viewer's tenant with its daily limit and when the figures were refreshed."""
    rows = await _all(
        conn,
        "select t.id, t.slug, t.name, t.timezone, t.locale, coalesce(s.daily_limit, 200) as daily_limit,"
        " public.page_refreshed_at() as refreshed_at, now() as now"
        " from t_tenants t left join t_settings_tenant s on s.tenant_id = t.id",
    )
    return rows[0] if rows else None


async def numbers(conn: AConn) -> list[Row]:
    return await _all(
        conn,
        "select id, key, label, wa_number, status::text as status, status_reason, active, warmup_started_on,"
        " connected_at from t_numbers order by label, key",
    )


async def conversations(conn: AConn) -> list[Row]:
    return await _all(conn, "select id, key, name, mode::text as mode, active from t_conversations order by name, key")


async def conversation_numbers(conn: AConn, conversation: UUID) -> list[UUID]:
    """Bot numbers taking part in a conversation (participants and pairings)."""
    rows = await _all(
        conn,
        "select number_id as id from t_conversation_participants"
        " where conversation_id = %(c)s and number_id is not null"
        " union select number_a_id from t_pairings where conversation_id = %(c)s"
        " union select number_b_id from t_pairings where conversation_id = %(c)s and number_b_id is not null",
        {"c": conversation},
    )
    return [r["id"] for r in rows]


# Aggregates over the facts of [since, until] (views for days before today, live rows for today), grouped
# every way the page draws them. `g` says which grouping a row belongs to.
_FACTS = """
with live as (
  select coalesce(case m.direction when 'out' then m.from_number_id else m.to_number_id end,
                  '00000000-0000-0000-0000-000000000000'::uuid) as number_id,
         coalesce(m.conversation_id, '00000000-0000-0000-0000-000000000000'::uuid) as conversation_id,
         m.direction, m.status,
         (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone %(zone)s) as local_at
    from public.t_messages m
   where %(live)s and m.created_at >= %(today_start)s - interval '1 day'
), live_hours as (
  select number_id, conversation_id, local_at::date as day, 'hour'::text as kind,
         extract(hour from local_at)::int::text as key,
         count(*) filter (where direction = 'out' and status in ('sent', 'delivered', 'read')) as sent,
         count(*) filter (where direction = 'in') as received,
         count(*) filter (where direction = 'out' and status in ('delivered', 'read')) as delivered,
         count(*) filter (where direction = 'out' and status = 'read') as read,
         count(*) filter (where direction = 'out' and status = 'failed') as failed,
         0::bigint as replies
    from live
   where local_at::date = %(today)s
     and (%(number)s::uuid is null or number_id = %(number)s::uuid)
     and (%(conversation)s::uuid is null or conversation_id = %(conversation)s::uuid)
   group by 1, 2, 3, 5
), facts as (
  select * from public.page_facts(%(since)s, %(until)s, %(number)s, %(conversation)s) f
   where not (%(live)s and f.kind = 'hour' and f.day = %(today)s)
  union all
  select * from live_hours
)
select case when grouping(kind, number_id) = 0 and grouping(day, key) = 3 then 'number'
            when grouping(kind, day) = 0 and grouping(number_id, key) = 3 then 'day'
            when grouping(kind, day, key) = 0 then 'day_key'
            when grouping(kind, key) = 0 then 'key'
            else 'total' end as g,
       kind, number_id, day, key,
       sum(sent)::bigint as sent, sum(received)::bigint as received, sum(delivered)::bigint as delivered,
       sum(read)::bigint as read, sum(failed)::bigint as failed, sum(replies)::bigint as replies
  from facts
 group by grouping sets ((kind, number_id), (kind, day), (kind, day, key), (kind, key), (kind))
"""


async def facts(
    conn: AConn,
    *,
    zone: str,
    since: date,
    until: date,
    today: date,
    today_start: datetime,
    number: UUID | None = None,
    conversation: UUID | None = None,
) -> list[Row]:
    """Grouped sums of the page's facts for days [since, until]; today's hours counted live."""
    params = {
        "zone": zone,
        "since": since,
        "until": until,
        "today": today,
        "today_start": today_start,
        "live": since <= today <= until,
        "number": number,
        "conversation": conversation,
    }
    return await _all(conn, _FACTS, params)


# Today's counters per number, live: what the quota counts (every send WhatsApp may have taken) and the rest.
_TODAY = """
select case m.direction when 'out' then m.from_number_id else m.to_number_id end as number_id,
       count(*) filter (where m.direction = 'out' and m.status in ('sent', 'delivered', 'read')) as sent,
       count(*) filter (where m.direction = 'in') as received,
       count(*) filter (where m.direction = 'out' and m.status in ('sending', 'sent', 'delivered', 'read', 'unknown'))
         as used
  from public.t_messages m
 where m.created_at >= %(today_start)s - interval '1 day'
   and (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone %(zone)s)::date = %(today)s
   and (%(conversation)s::uuid is null or m.conversation_id = %(conversation)s::uuid)
 group by 1
"""


async def today(
    conn: AConn, *, zone: str, today: date, today_start: datetime, conversation: UUID | None = None
) -> dict[UUID | None, Row]:
    rows = await _all(
        conn, _TODAY, {"zone": zone, "today": today, "today_start": today_start, "conversation": conversation}
    )
    return {r["number_id"]: r for r in rows}


_ROUNDS = """
select count(*) filter (where r.started_at is not null) as started,
       count(*) filter (where r.status = 'done') as finished,
       count(*) filter (where r.status = 'aborted') as aborted,
       coalesce(sum(r.exchanges_done) filter (where r.status = 'done'), 0) as exchanges
  from public.t_rounds r
 where coalesce(r.started_at, r.created_at) >= %(start)s and coalesce(r.started_at, r.created_at) < %(end)s
   and (%(conversation)s::uuid is null or r.conversation_id = %(conversation)s::uuid)
   and (%(number)s::uuid is null
        or exists (select 1 from public.t_pairings p
                    where p.tenant_id = r.tenant_id and p.id = r.pairing_id
                      and %(number)s::uuid in (p.number_a_id, p.number_b_id))
        or exists (select 1 from public.t_outreach_targets g
                     join public.t_outreach_policies o on o.tenant_id = g.tenant_id and o.id = g.policy_id
                    where g.tenant_id = r.tenant_id and g.id = r.target_id and o.number_id = %(number)s::uuid))
"""


async def rounds(
    conn: AConn, *, start: datetime, end: datetime, number: UUID | None = None, conversation: UUID | None = None
) -> Row:
    """Rounds begun in [start, end): started, finished (done), aborted, and exchanges of the finished ones."""
    rows = await _all(conn, _ROUNDS, {"start": start, "end": end, "number": number, "conversation": conversation})
    return rows[0]


# The last messages, newest first. Bodies only under aal2: the claim decides in SQL, so a template cannot
# show what the query never returned. Latency: for a reply (an outgoing message right after an incoming one
# in the thread of its number and peer), the time since that incoming message.
_MESSAGES = """
with last as (
  select m.id, m.direction::text as direction, m.status::text as status, m.message_type,
         case when (select mirage_private.has_aal2()) then m.body end as body,
         m.body is not null as has_body,
         nullif(m.meta ->> 'topic', '') as topic, m.conversation_id, m.from_number_id, m.to_number_id,
         m.contact_id, m.from_jid, m.to_jid, m.error, m.round_id,
         coalesce(m.wa_ts, m.sent_at, m.created_at) as at, m.created_at
    from public.t_messages m
   where (%(number)s::uuid is null or m.from_number_id = %(number)s::uuid or m.to_number_id = %(number)s::uuid)
     and (%(conversation)s::uuid is null or m.conversation_id = %(conversation)s::uuid)
     and m.created_at >= %(start)s and m.created_at < %(end)s
   order by m.created_at desc, m.id desc
   limit %(limit)s
)
select last.*, prev.direction as prev_direction,
       case when last.direction = 'out' and prev.direction = 'in' and last.status in ('sent', 'delivered', 'read')
             and (last.round_id is null or prev.round_id is null or last.round_id = prev.round_id)
            then extract(epoch from last.at - prev.at) end as latency_s
  from last
  left join lateral (
    select p.direction::text as direction, p.round_id, coalesce(p.wa_ts, p.sent_at, p.created_at) as at
      from public.t_messages p
     where last.direction = 'out'
       and p.created_at <= last.created_at and p.id <> last.id
       and ((p.direction = 'in' and p.to_number_id = last.from_number_id
             and coalesce(p.contact_id::text, p.from_number_id::text, p.from_jid)
               = coalesce(last.contact_id::text, last.to_number_id::text, last.to_jid))
         or (p.direction = 'out' and p.from_number_id = last.from_number_id
             and coalesce(p.contact_id::text, p.to_number_id::text, p.to_jid)
               = coalesce(last.contact_id::text, last.to_number_id::text, last.to_jid)
             and p.status in ('sent', 'delivered', 'read')))
     order by p.created_at desc
     limit 1
  ) prev on true
 order by last.created_at desc, last.id desc
"""


async def messages(
    conn: AConn,
    *,
    start: datetime,
    end: datetime,
    number: UUID | None = None,
    conversation: UUID | None = None,
    limit: int = 100,
) -> list[Row]:
    params = {"start": start, "end": end, "number": number, "conversation": conversation, "limit": limit}
    return await _all(conn, _MESSAGES, params)


async def qr_sessions(conn: AConn) -> list[Row]:
    """Sessions of numbers that are not connected, with their sealed QR and pairing code. t_sessions is
    sensitive: row level security returns rows only to a live member with aal2."""
    return await _all(
        conn,
        "select s.id, s.number_id, s.instance_name, s.state, s.last_qr_enc, s.pairing_code_enc, s.last_qr_at,"
        " s.qr_count from public.t_sessions s join public.t_numbers n on n.tenant_id = s.tenant_id"
        " and n.id = s.number_id where s.deprovisioned_at is null and n.status::text <> 'open'"
        " order by n.label, n.key",
    )
