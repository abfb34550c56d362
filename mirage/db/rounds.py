"""SQL of the rounds aggregate: what the tick loads (a fixed number of queries for every tenant), round inserts
with their deterministic identity, turns, ends, and number health. Run-time instants come in as parameters:
no SQL `now()` decides anything here (ADR 0025)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
Row = dict[str, Any]


@dataclass
class TenantRows:
    tenant: Row
    settings: Row
    numbers: dict[str, Row] = field(default_factory=dict)
    personas: dict[str, Row] = field(default_factory=dict)
    config_version: str | None = None  # changes with any configuration row of the tenant (ADR 0045)


@dataclass
class ConversationRows:
    conversation: Row
    settings: Row | None = None
    schedule: str = "[]"  # its schedule rows (by day name) as one JSON array: mirage.engine.view.week_view reads it
    participants: list[Row] = field(default_factory=list)
    pairings: list[Row] = field(default_factory=list)
    topics: list[Row] = field(default_factory=list)
    rounds: list[Row] = field(default_factory=list)
    total_rounds: int = 0


@dataclass
class Snapshot:
    """Everything one tick needs, for every tenant (or one conversation). `conversations` holds the configuration
    rows of the tenants asked for (`config_of`); `rounds` / `total_rounds` are every conversation's, always."""

    tenants: dict[str, TenantRows]
    conversations: dict[str, ConversationRows]
    busy_numbers: frozenset[str]
    queries: int = 0
    rounds: dict[str, list[Row]] = field(default_factory=dict)  # conversation id -> recent rounds
    total_rounds: dict[str, int] = field(default_factory=dict)  # conversation id -> all its rounds ever


_TENANT_COLUMNS = """
t.id::text, t.slug, t.timezone, t.config_version::text, s.min_delay_ms, s.max_delay_ms,
       s.hourly_burst_limit, s.daily_limit, s.quiet_hours, s.humanize, s.allow_bot_to_bot"""
_TENANTS = f"""
select {_TENANT_COLUMNS}
  from t_tenants t join t_settings_tenant s on s.tenant_id = t.id
 where t.archived_at is null {{tenant_filter}}
 order by t.slug
"""
_NUMBER_COLUMNS = (
    "id::text",
    "tenant_id::text",
    "key",
    "wa_number",
    "status::text",
    "active",
    "paused_reason",
    "warmup_started_on",
    "persona_id::text",
    "session_id::text",
)
_NUMBERS = f"""
select {", ".join(_NUMBER_COLUMNS)}
  from t_numbers where active {{tenant_filter}}
 order by tenant_id, key
"""
_PERSONAS = """
select id::text, tenant_id::text, key, name, style, greeting_morning, greeting_afternoon, greeting_evening, phrases,
       emoji_rate::float
  from t_personas where true {tenant_filter}
 order by tenant_id, key
"""
_CONVERSATIONS = """
select id::text, tenant_id::text, key, mode::text, exchanges_min, exchanges_max, topic_strategy,
       topic_refresh_minutes, openai_model, temperature::float
  from t_conversations c where active {tenant_filter} {conversation_filter}
 order by (select t.slug from t_tenants t where t.id = c.tenant_id), key
"""
_CHILDREN = {
    "settings": "select conversation_id::text, min_delay_ms, max_delay_ms, hourly_burst_limit, humanize, "
    "allow_bot_to_bot, guard_no_echo from t_settings_conversation where true {tenant_filter}",
    # A conversation's schedule rows as one JSON array (one row, not seven, per conversation): equal schedules
    # are equal text, which the view builder reads once (mirage.engine.view.TenantViews, ADR 0058).
    "schedule": "select conversation_id::text, json_agg(json_build_object('day', day::text, 'morning_enabled', "
    "morning_enabled, 'morning_window', morning_window, 'afternoon_enabled', afternoon_enabled, 'afternoon_window', "
    "afternoon_window, 'evening_enabled', evening_enabled, 'evening_window', evening_window, 'max_rounds_per_window', "
    "max_rounds_per_window, 'pause_between_rounds_min', pause_between_rounds_min, 'pause_between_rounds_max', "
    "pause_between_rounds_max) order by day::text)::text as schedule from t_conversation_schedule where true "
    "{tenant_filter} group by conversation_id",
    "participants": "select conversation_id::text, participant_kind::text, number_id::text, contact_id::text, role, "
    "start_order from t_conversation_participants p where true {tenant_filter} order by conversation_id, start_order, "
    "coalesce((select n.key from t_numbers n where n.id = p.number_id), "
    "(select ct.wa_number from t_contacts ct where ct.id = p.contact_id))",
    "pairings": "select id::text, conversation_id::text, number_a_id::text, number_b_id::text, contact_b_id::text, "
    "starts from t_pairings where true {tenant_filter} order by conversation_id, position nulls last, created_at, id",
    "topics": "select id::text, conversation_id::text, key, seed, system_prompt, active_from, active_to, weight "
    "from t_topics where true {tenant_filter} order by conversation_id, key",
}
# Recent rounds (today's windows and the last one before them) and the all-time count per conversation.
_ROUNDS = """
select r.conversation_id::text, r.window_date, r.daypart, coalesce(r.seq, 0) as seq, r.status::text, r.created_at,
       r.finished_at, r.topic_id::text, r.number_a_id::text, r.number_b_id::text, c.n as total
  from (select conversation_id, count(*) as n, max(created_at) as last_at from t_rounds
         where conversation_id is not null {tenant_filter} group by conversation_id) c
  join t_rounds r on r.conversation_id = c.conversation_id
 where r.window_date >= %(since)s or r.created_at = c.last_at or r.status in ('planned', 'active')
 order by r.created_at, r.window_date, r.daypart, r.seq
"""
_BUSY = """
select distinct unnest(array[number_a_id, number_b_id])::text as id from t_rounds
 where status in ('planned', 'active') {tenant_filter}
"""


def _tenant_rows(r: Row) -> TenantRows:
    return TenantRows(
        tenant={"id": r["id"], "slug": r["slug"], "timezone": r["timezone"]},
        settings={k: r[k] for k in r if k not in ("id", "slug", "timezone", "config_version")},
        config_version=r["config_version"],
    )


# One conversation's tenant with its settings and version, and the active numbers the conversation's participants
# and pairings name (all its view reads), in one statement: a row per number (the tenant's columns repeated), or
# one row with null number columns when it names none. Its cost does not grow with the tenant's numbers.
_N = "n__"
_TENANT_WITH_NUMBERS = f"""
select {_TENANT_COLUMNS},
       {", ".join(f"n.{col} as {_N}{col.split('::')[0]}" for col in _NUMBER_COLUMNS)}
  from t_tenants t join t_settings_tenant s on s.tenant_id = t.id
  left join t_numbers n on n.tenant_id = t.id and n.active and n.id in (
      select number_id from t_conversation_participants where conversation_id = %(conversation)s
      union all select number_a_id from t_pairings where conversation_id = %(conversation)s
      union all select number_b_id from t_pairings where conversation_id = %(conversation)s)
 where t.id = %(tenant)s and t.archived_at is null
"""


def tenant_rows(conn: Conn, tenant_id: str, conversation_id: str) -> TenantRows | None:
    """A live tenant's row, settings and configuration version, and of its active numbers those the conversation's
    participants and pairings name (rows equal to those `load_snapshot` reads), in one statement; None when the
    tenant is archived or gone. No personas."""
    rows = conn.execute(_TENANT_WITH_NUMBERS, {"tenant": tenant_id, "conversation": conversation_id}).fetchall()
    if not rows:
        return None
    t = _tenant_rows({k: v for k, v in rows[0].items() if not k.startswith(_N)})
    for r in rows:
        if r[f"{_N}id"] is not None:
            t.numbers[r[f"{_N}id"]] = {k[len(_N) :]: v for k, v in r.items() if k.startswith(_N)}
    return t


def load_snapshot(
    conn: Conn,
    since: date,
    *,
    tenant_id: str | None = None,
    conversation_id: str | None = None,
    config_of: Collection[str] | None = None,
) -> Snapshot:
    """Every active conversation with its configuration and recent rounds: 11 queries, whatever the fleet size.

    `config_of`: load configuration rows (personas, conversations and their children) only for these tenants;
    empty -> none (4 queries: tenants with their settings and config_version, numbers, rounds, busy numbers)."""
    tf = "and tenant_id = %(tenant)s" if tenant_id else ""
    params = {"tenant": tenant_id, "since": since}
    queries = 0

    def run(sql: str, **fmt: str) -> list[Row]:
        nonlocal queries
        queries += 1
        return conn.execute(sql.format(**{"tenant_filter": tf, **fmt}), params).fetchall()

    tenants = {
        r["id"]: _tenant_rows(r) for r in run(_TENANTS, tenant_filter="and t.id = %(tenant)s" if tenant_id else "")
    }
    for r in run(_NUMBERS):
        if r["tenant_id"] in tenants:
            tenants[r["tenant_id"]].numbers[r["id"]] = r
    conversations: dict[str, ConversationRows] = {}
    if config_of is None or config_of:
        conversations, n = load_configuration(
            conn, tenants, tenant_ids=config_of, tenant_id=tenant_id, conversation_id=conversation_id
        )
        queries += n
    rounds: dict[str, list[Row]] = {}
    totals: dict[str, int] = {}
    for r in run(_ROUNDS):
        rounds.setdefault(r["conversation_id"], []).append(r)
        totals[r["conversation_id"]] = int(r["total"])
        c = conversations.get(r["conversation_id"])
        if c is not None:
            c.rounds.append(r)
            c.total_rounds = int(r["total"])
    busy = frozenset(r["id"] for r in run(_BUSY) if r["id"])
    return Snapshot(tenants, conversations, busy, queries, rounds, totals)


def load_configuration(
    conn: Conn,
    tenants: dict[str, TenantRows],
    *,
    tenant_ids: Collection[str] | None = None,
    tenant_id: str | None = None,
    conversation_id: str | None = None,
) -> tuple[dict[str, ConversationRows], int]:
    """The configuration rows of `tenant_ids` (None: every tenant) in 7 queries: each tenant's personas (into
    `tenants`) and its active conversations with their children; and the number of queries sent."""
    tf = ("and tenant_id = %(tenant)s" if tenant_id else "") + (
        " and tenant_id = any(%(tenant_ids)s::uuid[])" if tenant_ids is not None else ""
    )
    params = {"tenant": tenant_id, "tenant_ids": list(tenant_ids or ()), "conversation": conversation_id}
    queries = 0

    def run(sql: str, **fmt: str) -> list[Row]:
        nonlocal queries
        queries += 1
        return conn.execute(sql.format(**{"tenant_filter": tf, **fmt}), params).fetchall()

    for r in run(_PERSONAS):
        if r["tenant_id"] in tenants:
            tenants[r["tenant_id"]].personas[r["id"]] = r
    cf = "and id = %(conversation)s" if conversation_id else ""
    conversations = {
        r["id"]: ConversationRows(conversation=r)
        for r in run(_CONVERSATIONS, conversation_filter=cf)
        if r["tenant_id"] in tenants
    }
    # one conversation: its own children only, not every conversation's of the tenant
    children_filter = tf + (" and conversation_id = %(conversation)s" if conversation_id else "")
    for name, sql in _CHILDREN.items():
        for r in run(sql, tenant_filter=children_filter):
            c = conversations.get(r["conversation_id"])
            if c is None:
                continue
            if name == "settings":
                c.settings = r
            elif name == "schedule":
                c.schedule = r["schedule"]
            else:
                getattr(c, name).append(r)
    return conversations, queries


_INSERT_ROUNDS = """
insert into t_rounds (tenant_id, conversation_id, pairing_id, status, daypart, window_date, seq, exchanges_planned,
                      exchanges_done, turn_number_id, number_a_id, number_b_id, topic_id, script, deadline_at,
                      created_at, updated_at)
select r.tenant_id, r.conversation_id, r.pairing_id, 'planned', r.daypart, r.window_date, r.seq, r.exchanges, 0,
       r.starter, r.starter, r.responder, r.topic_id, r.script, r.deadline_at, r.created_at, r.created_at
  from jsonb_to_recordset(%(rounds)s) as r(tenant_id uuid, conversation_id uuid, pairing_id uuid, daypart text,
       window_date date, seq int, exchanges int, starter uuid, responder uuid, topic_id uuid, script jsonb,
       deadline_at timestamptz, created_at timestamptz)
on conflict (conversation_id, window_date, daypart, seq) where conversation_id is not null and seq is not null
do nothing
returning id::text, conversation_id::text, created_at
"""


def insert_rounds(conn: Conn, rounds: Sequence[dict[str, Any]]) -> list[Row]:
    """Insert planned rounds in one statement; a round whose identity exists already is skipped, not doubled."""
    if not rounds:
        return []
    return conn.execute(_INSERT_ROUNDS, {"rounds": Jsonb(list(rounds))}).fetchall()


_ROUND_COLUMNS = """
r.id::text, r.tenant_id::text, r.conversation_id::text, r.status::text, r.script, r.exchanges_planned,
r.exchanges_done, r.turn_number_id::text, r.number_a_id::text, r.number_b_id::text, r.topic_id::text, r.daypart,
r.deadline_at, r.started_at, r.window_date
"""


def load_round(conn: Conn, round_id: str, *, lock: bool = False) -> Row | None:
    sql = f"select {_ROUND_COLUMNS} from t_rounds r where r.id = %s" + (" for update" if lock else "")
    row: Row | None = conn.execute(sql, (round_id,)).fetchone()
    return row


def rounds_between(conn: Conn, a: str, b: str) -> list[Row]:
    """The live (planned / active) rounds of a pair of numbers, either way round."""
    return conn.execute(
        f"select {_ROUND_COLUMNS} from t_rounds r where r.status in ('planned', 'active') "
        "and ((r.number_a_id = %(a)s and r.number_b_id = %(b)s) or (r.number_a_id = %(b)s and r.number_b_id = %(a)s))"
        " for update",
        {"a": a, "b": b},
    ).fetchall()


def start_round(conn: Conn, round_id: str, now: datetime) -> bool:
    cur = conn.execute(
        "update t_rounds set status = 'active', started_at = %(now)s, updated_at = %(now)s "
        "where id = %(id)s and status = 'planned'",
        {"id": round_id, "now": now},
    )
    return cur.rowcount == 1


_TURN_TAKEN = """
with attached as (
  update t_messages set round_id = %(round)s, conversation_id = %(conversation)s,
         meta = meta || jsonb_build_object('round_id', %(round_text)s::text, 'step', %(step_int)s::int)
   where id = %(message)s
)
update t_rounds set exchanges_done = %(step)s + 1, turn_number_id = %(turn)s, updated_at = %(now)s
 where id = %(round)s and status = 'active' and exchanges_done = %(step)s
"""


def attach_and_pass_turn(
    conn: Conn, message_id: str, round_id: str, conversation_id: str | None, step: int, next_turn: str, now: datetime
) -> bool:
    """Step `step` reached the other bot, in one statement: file the inbound message `message_id` under its round
    and step, count the step and give the turn to `next_turn` (once, whatever the retries: True when this call
    passed it)."""
    cur = conn.execute(
        _TURN_TAKEN,
        {
            "message": message_id,
            "round": round_id,
            "round_text": round_id,
            "conversation": conversation_id,
            "step": step,
            "step_int": step,
            "turn": next_turn,
            "now": now,
        },
    )
    return cur.rowcount == 1


def finish_round(conn: Conn, round_id: str, now: datetime) -> bool:
    cur = conn.execute(
        "update t_rounds set status = 'done', finished_at = %(now)s, turn_number_id = null, updated_at = %(now)s "
        "where id = %(id)s and status = 'active'",
        {"id": round_id, "now": now},
    )
    return cur.rowcount == 1


_CANCEL_QUEUED = """
update t_messages set status = 'cancelled', error = %(reason)s, updated_at = %(now)s
 where round_id = any(%(ids)s::uuid[]) and status = 'queued'
"""


def abort_rounds(conn: Conn, round_ids: Iterable[str], reason: str, now: datetime) -> list[str]:
    """Abort live rounds with a reason and cancel their queued messages; returns the ids it aborted."""
    ids = list(round_ids)
    if not ids:
        return []
    rows = conn.execute(
        "update t_rounds set status = 'aborted', abort_reason = %(reason)s, finished_at = %(now)s, "
        "turn_number_id = null, updated_at = %(now)s "
        "where id = any(%(ids)s::uuid[]) and status in ('planned', 'active') returning id::text",
        {"ids": ids, "reason": reason, "now": now},
    ).fetchall()
    aborted = [r["id"] for r in rows]
    if aborted:
        conn.execute(_CANCEL_QUEUED, {"ids": aborted, "reason": f"round aborted: {reason}", "now": now})
    return aborted


def overdue_rounds(conn: Conn, now: datetime) -> list[str]:
    rows = conn.execute(
        "select id::text from t_rounds where status in ('planned', 'active') and deadline_at <= %s", (now,)
    ).fetchall()
    return [r["id"] for r in rows]


def rounds_of_unhealthy_numbers(conn: Conn) -> dict[str, str]:
    """Live rounds whose numbers cannot send now (not open, inactive or paused) -> the reason."""
    rows = conn.execute(
        """
        select r.id::text, n.key, n.status::text, n.status_reason, n.paused_reason, n.active
          from t_rounds r join t_numbers n on n.id in (r.number_a_id, r.number_b_id)
         where r.status in ('planned', 'active')
           and (n.status <> 'open' or not n.active or n.paused_at is not null)
        """
    ).fetchall()
    out: dict[str, str] = {}
    for r in rows:
        why = r["paused_reason"] and f"paused: {r['paused_reason']}"
        why = (
            why
            or (not r["active"] and "inactive")
            or f"{r['status']}" + (f" ({r['status_reason']})" if r["status_reason"] else "")
        )
        out.setdefault(r["id"], f"number {r['key']} {why}")
    return out


BAN_LIKE_REASONS = ("401", "403", "463")


def pause_banned_numbers(conn: Conn, now: datetime) -> list[Row]:
    """Pause numbers whose connection closed with a ban-like reason (401/403/463) or was refused."""
    return conn.execute(
        """
        update t_numbers set paused_at = %(now)s,
               paused_reason = 'connection ' || status::text || coalesce(' (' || status_reason || ')', '')
         where paused_at is null
           and ((status in ('close', 'logged_out') and status_reason = any(%(codes)s)) or status = 'refused')
        returning id::text, tenant_id::text, key, paused_reason
        """,
        {"now": now, "codes": list(BAN_LIKE_REASONS)},
    ).fetchall()


def pause_number(conn: Conn, number_id: str, reason: str, now: datetime) -> bool:
    cur = conn.execute(
        "update t_numbers set paused_at = %s, paused_reason = %s where id = %s and paused_at is null",
        (now, reason, number_id),
    )
    return cur.rowcount == 1


def resume_number(conn: Conn, number_id: str) -> Row | None:
    """Clear a pause; refused unless the number is `open` again (returns its row either way)."""
    row: Row | None = conn.execute(
        "update t_numbers set paused_at = case when status = 'open' then null else paused_at end, "
        "paused_reason = case when status = 'open' then null else paused_reason end, "
        "send_failures = case when status = 'open' then 0 else send_failures end "
        "where id = %s returning id::text, key, status::text, paused_reason",
        (number_id,),
    ).fetchone()
    return row


def number_by_key(conn: Conn, tenant_slug: str, key: str) -> Row | None:
    """A number by its tenant's slug and its key, with its health."""
    row: Row | None = conn.execute(
        "select n.id::text, n.key, n.status::text, n.status_reason, n.paused_at, n.paused_reason, n.send_failures "
        "from t_numbers n join t_tenants t on t.id = n.tenant_id where t.slug = %s and n.key = %s",
        (tenant_slug, key),
    ).fetchone()
    return row
