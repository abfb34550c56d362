"""SQL of `mirage status`: each tenant's numbers with their health and today's counts, and its live rounds.

Counts come from `t_messages` (Postgres is the truth the Redis quota counters are rebuilt from), over the
tenant-local day and the clock hour the caller passes in: no SQL `now()` (ADR 0025). A fixed number of
queries whatever the number of tenants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mirage.engine.quotas import COUNTED_STATUSES
from mirage.errors import MirageError

Conn = psycopg.Connection[Any]
Row = dict[str, Any]


class UnknownTenant(MirageError):
    """No live tenant has this slug."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(f"unknown tenant {slug!r}: no live tenant has this slug (see `mirage plan`)")


@dataclass(frozen=True)
class Span:
    """A tenant's counting spans: its local day and the current clock hour, both half-open, in UTC."""

    tenant_id: str
    day_start: datetime
    day_end: datetime
    hour_start: datetime
    hour_end: datetime


_TENANTS = """
select t.id::text, t.slug, t.name, t.timezone, s.hourly_burst_limit, s.daily_limit
  from t_tenants t join t_settings_tenant s on s.tenant_id = t.id
 where t.archived_at is null and (%(slug)s::text is null or t.slug = %(slug)s)
 order by t.slug
"""


def tenants(conn: Conn, slug: str | None) -> list[Row]:
    """The tenants shown (one by slug, or every live one), with their quota settings; UnknownTenant if none."""
    rows = conn.execute(_TENANTS, {"slug": slug}).fetchall()
    if slug is not None and not rows:
        raise UnknownTenant(slug)
    return rows


_NUMBERS = """
with span as (
  select * from unnest(%(tenants)s::uuid[], %(day_start)s::timestamptz[], %(day_end)s::timestamptz[],
                       %(hour_start)s::timestamptz[], %(hour_end)s::timestamptz[])
         as s(tenant_id, day_start, day_end, hour_start, hour_end)
)
select n.id::text, n.tenant_id::text, n.key, n.wa_number, n.status::text, n.status_reason, n.active,
       n.paused_at, n.paused_reason, n.send_failures, n.warmup_started_on,
       (select count(*) from t_messages m
         where m.direction = 'out' and m.from_number_id = n.id and m.status in ('sent', 'delivered', 'read')
           and m.sent_at >= s.day_start and m.sent_at < s.day_end) as sent_today,
       (select count(*) from t_messages m
         where m.direction = 'in' and m.to_number_id = n.id
           and coalesce(m.wa_ts, m.created_at) >= s.day_start and coalesce(m.wa_ts, m.created_at) < s.day_end)
         as received_today,
       (select count(*) from t_messages m
         where m.direction = 'out' and m.from_number_id = n.id and m.status = any(%(counted)s::msg_status[])
           and m.sent_at >= s.day_start and m.sent_at < s.day_end) as day_used,
       (select count(*) from t_messages m
         where m.direction = 'out' and m.from_number_id = n.id and m.status = any(%(counted)s::msg_status[])
           and m.sent_at >= s.hour_start and m.sent_at < s.hour_end) as hour_used
  from t_numbers n join span s on s.tenant_id = n.tenant_id
 order by n.key
"""


def numbers(conn: Conn, spans: Sequence[Span]) -> list[Row]:
    """Every number of the given tenants: state, pause, and today's sent / received / quota-counted messages."""
    if not spans:
        return []
    params = {
        "tenants": [s.tenant_id for s in spans],
        "day_start": [s.day_start for s in spans],
        "day_end": [s.day_end for s in spans],
        "hour_start": [s.hour_start for s in spans],
        "hour_end": [s.hour_end for s in spans],
        "counted": list(COUNTED_STATUSES),
    }
    return conn.execute(_NUMBERS, params).fetchall()


_ROUNDS = """
select r.id::text, r.tenant_id::text, c.key as conversation, r.status::text, r.daypart, r.window_date, r.seq,
       r.exchanges_done, jsonb_array_length(r.script) as steps, a.key as starter, b.key as responder,
       tn.key as turn, tp.key as topic, r.created_at, r.started_at, r.deadline_at
  from t_rounds r
  left join t_conversations c on c.id = r.conversation_id
  left join t_numbers a on a.id = r.number_a_id
  left join t_numbers b on b.id = r.number_b_id
  left join t_numbers tn on tn.id = r.turn_number_id
  left join t_topics tp on tp.id = r.topic_id
 where r.status in ('planned', 'active') and r.tenant_id = any(%(tenants)s::uuid[])
 order by r.created_at
"""


def live_rounds(conn: Conn, tenant_ids: Sequence[str]) -> list[Row]:
    """The planned and active rounds of the given tenants, with the keys of their conversation and numbers."""
    return conn.execute(_ROUNDS, {"tenants": list(tenant_ids)}).fetchall()
