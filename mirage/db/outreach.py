"""SQL of outreach (ADR 0037): the tick's snapshot of policies and targets, the writes its decisions make, the
re-check inside the outbox claim, and the `mirage status --outreach` figures.

Every instant comes from the caller (the clock's `now`); nothing here reads SQL `now()` to decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mirage.db import optouts
from mirage.engine.outreach import PolicyState, Reply, TargetState, new_contact_cap, spans
from mirage.engine.outreach import claim_refusal as claim_refusal_of
from mirage.engine.quotas import COUNTED_STATUSES
from mirage.engine.view import parse_hhmm

Conn = psycopg.Connection[Any]
Row = dict[str, Any]
PENDING_PER_POLICY = 20  # pending targets the tick looks at per policy (by priority, then age)

# Where outreach asks about opt-outs (ADR 0036; both need `ct`, t_contacts, in scope): opted out for good (the
# target ends `optout`), and the one rule every sender obeys, false also while a possible opt-out awaits review.
OPTED_OUT = (
    "exists (select 1 from t_optouts o where o.tenant_id = ct.tenant_id "
    "and o.wa_hash = public.contact_hash(ct.tenant_id, ct.wa_number))"
)
MAY_CONTACT = "public.may_contact(ct.tenant_id, ct.wa_number)"

_POLICIES = """
select p.id::text, p.tenant_id::text, p.key, p.number_id::text, p.active, p.daily_limit, p.hourly_limit,
       p.max_rounds_per_contact, p.min_gap_minutes, p.reply_wait_hours, p.dayparts, p.allow_days::text[] as allow_days,
       p.optout_keywords, coalesce(p.persona_id, n.persona_id)::text as persona_id,
       n.key as number_key, n.wa_number as number_wa, n.warmup_started_on, n.paused_reason,
       (n.active and n.status = 'open' and n.paused_at is null and n.session_id is not null) as can_send,
       t.slug as tenant_slug, t.timezone, s.quiet_hours,
       p.key = (select min(o.key) from t_outreach_policies o where o.number_id = p.number_id and o.active) as runs
  from t_outreach_policies p
  join t_numbers n on n.id = p.number_id
  join t_tenants t on t.id = p.tenant_id
  join t_settings_tenant s on s.tenant_id = p.tenant_id
 where {where}
 order by t.slug, p.key
"""

_USED = """
select
  (select count(*) from t_messages m where m.direction = 'out' and m.from_number_id = %(number)s::uuid
      and m.meta->>'policy_id' = %(policy)s::text and m.status = any(%(counted)s::msg_status[])
      and m.sent_at >= %(h0)s and m.sent_at < %(h1)s)
  + (select count(*) from t_outreach_targets x where x.policy_id = %(policy)s::uuid
      and x.checked_at >= %(h0)s and x.checked_at < %(h1)s) as used_hour,
  (select count(*) from t_messages m where m.direction = 'out' and m.from_number_id = %(number)s::uuid
      and m.meta->>'policy_id' = %(policy)s::text and m.status = any(%(counted)s::msg_status[])
      and m.sent_at >= %(d0)s and m.sent_at < %(d1)s)
  + (select count(*) from t_outreach_targets x where x.policy_id = %(policy)s::uuid
      and x.checked_at >= %(d0)s and x.checked_at < %(d1)s) as used_day,
  (select count(*) from t_outreach_targets x join t_outreach_policies xp on xp.id = x.policy_id
    where xp.number_id = %(number)s::uuid and x.id is distinct from %(exclude)s::uuid
      and (x.first_contact_day = %(today)s::date
           or (%(in_flight)s::boolean and x.status = 'in_progress' and x.next_kind = 'opening'))) as new_today,
  (select max(x.first_contact_at) from t_outreach_targets x join t_outreach_policies xp on xp.id = x.policy_id
    where xp.number_id = %(number)s::uuid) as last_start_at
"""
_COUNTED = list(COUNTED_STATUSES)

_TARGET_COLUMNS = f"""
tg.id::text, tg.policy_id::text, tg.contact_id::text, tg.status::text, tg.priority, tg.created_at, tg.rounds_done,
tg.unanswered, tg.next_kind, tg.next_action_at, tg.last_contact_at, tg.checked_at, tg.replies, tg.tenant_id::text,
ct.wa_number as contact_wa, {OPTED_OUT} as opted_out, {MAY_CONTACT} as may_contact,
(select op.key from t_outreach_targets o join t_outreach_policies op on op.id = o.policy_id
  where o.tenant_id = tg.tenant_id and o.contact_id = tg.contact_id and o.id <> tg.id
    and (o.status = 'in_progress' or o.first_contact_day is not null or o.checked_at is not null)
  order by o.first_contact_at nulls last, op.key limit 1) as taken_by,
(select r.id::text from t_rounds r where r.target_id = tg.id and r.status in ('planned', 'active')) as round_id
"""

# In progress first, then pending; each by priority, then age, then the contact's number (its configuration key:
# targets of one apply share created_at, and ids are random, ADR 0060).
_TARGETS = f"""
select * from (
select {_TARGET_COLUMNS},
       exists (select 1 from t_messages m join t_rounds r on r.id = m.round_id
                where r.target_id = tg.id and m.direction = 'out' and m.status in ('queued', 'sending')) as live_message
  from t_outreach_targets tg join t_contacts ct on ct.id = tg.contact_id
 where tg.policy_id = %(policy)s and tg.status = 'in_progress'
union all
select * from (
  select {_TARGET_COLUMNS}, false as live_message
    from t_outreach_targets tg join t_contacts ct on ct.id = tg.contact_id
   where tg.policy_id = %(policy)s and tg.status = 'pending'
   order by tg.priority desc, tg.created_at, ct.wa_number
   limit %(limit)s
) pending
) targets
order by status <> 'in_progress', priority desc, created_at, contact_wa
"""

_REPLIES = """
select m.id::text, m.contact_id::text, coalesce(m.body, '') as body, m.meta->>'optout' as verdict
  from t_messages m
 where m.direction = 'in' and m.to_number_id = %(number)s and m.contact_id = any(%(contacts)s::uuid[])
   and m.round_id is null and not m.meta ? 'ignored_reason'
 order by m.created_at, m.wa_ts, m.wa_msg_id, m.id
"""


@dataclass
class PolicyRows:
    """One policy's rows as the tick loaded them."""

    row: Row
    state: PolicyState
    targets: list[TargetState] = field(default_factory=list)
    by_id: dict[str, Row] = field(default_factory=dict)


def one(cur: psycopg.Cursor[Any]) -> Row:
    """The one row a statement that always returns one returned."""
    row: Row | None = cur.fetchone()
    if row is None:  # pragma: no cover - the statements given here always return a row
        raise RuntimeError("expected one row")
    return row


def policy_state(c: Conn, p: Row, now: datetime, *, exclude: str | None = None, in_flight: bool = True) -> PolicyState:
    """The policy's rules and what it spent at `now` (hour, tenant-local day, the number's new contacts)."""
    (h0, h1), (d0, d1), today = spans(now, p["timezone"])
    used = one(
        c.execute(
            _USED,
            {
                "number": p["number_id"],
                "policy": p["id"],
                "counted": _COUNTED,
                "h0": h0,
                "h1": h1,
                "d0": d0,
                "d1": d1,
                "today": today,
                "exclude": exclude,
                "in_flight": in_flight,
            },
        )
    )
    quiet = p["quiet_hours"] or {"start": "22:00", "end": "07:00"}
    return PolicyState(
        id=p["id"],
        tenant_id=p["tenant_id"],
        key=p["key"],
        number_id=p["number_id"],
        number_key=p["number_key"],
        number_can_send=bool(p["can_send"]),
        number_paused=p["paused_reason"],
        warmup_started_on=p["warmup_started_on"],
        timezone=p["timezone"],
        quiet=(parse_hhmm(quiet["start"]), parse_hhmm(quiet["end"])),
        dayparts=tuple(p["dayparts"] or ()),
        allow_days=tuple(p["allow_days"] or ()),
        daily_limit=int(p["daily_limit"]),
        hourly_limit=int(p["hourly_limit"]),
        max_rounds=int(p["max_rounds_per_contact"]),
        min_gap_minutes=int(p["min_gap_minutes"]),
        reply_wait_hours=int(p["reply_wait_hours"]),
        keywords=tuple(p["optout_keywords"] or ()),
        used_hour=int(used["used_hour"]),
        used_day=int(used["used_day"]),
        new_today=int(used["new_today"]),
        last_start_at=used["last_start_at"],
        runs=bool(p["runs"]),
    )


def target_state(r: Row, replies: Iterable[Reply] = ()) -> TargetState:
    return TargetState(
        id=r["id"],
        policy_id=r["policy_id"],
        contact_id=r["contact_id"],
        status=r["status"],
        priority=int(r["priority"]),
        created_at=r["created_at"],
        rounds_done=int(r["rounds_done"]),
        unanswered=int(r["unanswered"]),
        next_kind=r["next_kind"],
        next_action_at=r["next_action_at"],
        last_contact_at=r["last_contact_at"],
        checked_at=r["checked_at"],
        opted_out=bool(r["opted_out"]),
        blocked=not r["may_contact"],
        taken_by=r["taken_by"],
        live_message=bool(r.get("live_message")),
        replies=tuple(replies),
    )


def load_policies(c: Conn, now: datetime, *, policy_id: str | None = None) -> list[PolicyRows]:
    """Active policies (or one) with their in-progress targets, the first pending ones, and unread replies."""
    where = "p.active" if policy_id is None else "p.id = %(id)s"
    out = []
    for p in c.execute(_POLICIES.format(where=where), {"id": policy_id}).fetchall():
        state = policy_state(c, p, now)
        rows = c.execute(_TARGETS, {"policy": p["id"], "limit": PENDING_PER_POLICY}).fetchall()
        live = [r["contact_id"] for r in rows if r["status"] == "in_progress"]
        replies: dict[str, list[Reply]] = {}
        if live:
            for m in c.execute(_REPLIES, {"number": p["number_id"], "contacts": live}).fetchall():
                replies.setdefault(m["contact_id"], []).append(Reply(m["id"], m["body"], m["verdict"]))
        targets = [
            target_state(r, replies.get(r["contact_id"], ()) if r["status"] == "in_progress" else ()) for r in rows
        ]
        out.append(PolicyRows(p, state, targets, {r["id"]: r for r in rows}))
    return out


TICK_LOCK = 0x6F757472  # 'outr': two schedulers' ticks never decide at once


def try_tick_lock(c: Conn) -> bool:
    """Hold the outreach tick's lock for this transaction, or say another tick holds it."""
    return bool(one(c.execute("select pg_try_advisory_xact_lock(%s) as ok", (TICK_LOCK,)))["ok"])


def tenant_limits(c: Conn, tenant_id: str) -> Row:
    """The tenant's number quotas (hourly_burst_limit, daily_limit), which a WhatsApp check also spends."""
    return one(
        c.execute("select hourly_burst_limit, daily_limit from t_settings_tenant where tenant_id = %s", (tenant_id,))
    )


# --- writes of the tick's decisions ------------------------------------------------------------------------------


def start(c: Conn, target_id: str, now: datetime) -> bool:
    """pending -> in_progress owing the opening, unless another policy took the contact meanwhile. What the person
    wrote to the number before is not a reply to us: it is marked so."""
    row = c.execute(
        """
        update t_outreach_targets t set status = 'in_progress', next_kind = 'opening', reason = null,
               first_contact_at = %(now)s, next_action_at = %(now)s, updated_at = %(now)s
         where t.id = %(id)s and t.status = 'pending'
           and not exists (select 1 from t_outreach_targets o where o.tenant_id = t.tenant_id
                            and o.contact_id = t.contact_id and o.id <> t.id
                            and (o.status = 'in_progress' or o.first_contact_day is not null
                                 or o.checked_at is not null))
        returning t.contact_id::text, (select number_id::text from t_outreach_policies where id = t.policy_id)
        """,
        {"id": target_id, "now": now},
    ).fetchone()
    if row is None:
        return False
    c.execute(
        "update t_messages set meta = meta || '{\"ignored_reason\": \"before outreach\"}' where direction = 'in' "
        "and to_number_id = %s and contact_id = %s and round_id is null and not meta ? 'ignored_reason'",
        (row["number_id"], row["contact_id"]),
    )
    return True


def end(
    c: Conn,
    target_id: str,
    status: str,
    reason: str,
    now: datetime,
    *,
    keyword: str | None = None,
    message_id: str | None = None,
) -> bool:
    """Leave pending / in_progress / paused for done, paused or optout; the live round ends with it (queued
    messages cancelled). An opt-out word the person wrote is recorded tenant-wide."""
    row = c.execute(
        "update t_outreach_targets set status = %(status)s::target_status, reason = %(reason)s, next_kind = null, "
        "updated_at = %(now)s where id = %(id)s and status in ('pending', 'in_progress', 'paused') "
        "returning tenant_id::text, (select wa_number from t_contacts where id = contact_id) as wa_number",
        {"id": target_id, "status": status, "reason": reason[:300], "now": now},
    ).fetchone()
    if row is None:
        return False
    if keyword is not None:  # the person wrote an opt-out word: tenant-wide and for good (ADR 0036)
        optouts.record_optout(c, row["tenant_id"], row["wa_number"], now, keyword=keyword, message_id=message_id)
    close_round(c, target_id, reason, now, done=status == "done")
    return True


def close_round(c: Conn, target_id: str, reason: str, now: datetime, *, done: bool) -> None:
    rounds = c.execute(
        "select id::text from t_rounds where target_id = %s and status in ('planned', 'active') for update",
        (target_id,),
    ).fetchall()
    for r in rounds:
        c.execute(
            "update t_messages set status = 'cancelled', error = %s, updated_at = %s where round_id = %s "
            "and status = 'queued'",
            (f"outreach ended: {reason}"[:500], now, r["id"]),
        )
        c.execute(
            "update t_rounds set status = %s::round_status, abort_reason = %s, finished_at = %s, turn_number_id = null,"
            " updated_at = %s where id = %s",
            ("done" if done else "aborted", None if done else reason[:300], now, now, r["id"]),
        )


def live_round(c: Conn, target: Row, number_id: str, daypart: str, day: Any, now: datetime) -> str:
    """The target's live round (the vehicle its messages are claimed through), created when there is none."""
    found = c.execute(
        "select id::text from t_rounds where target_id = %s and status in ('planned', 'active') for update",
        (target["id"],),
    ).fetchone()
    if found is not None:
        return str(found["id"])
    row = c.execute(
        "insert into t_rounds (tenant_id, target_id, status, daypart, window_date, exchanges_planned, exchanges_done,"
        " turn_number_id, number_a_id, started_at, created_at, updated_at, meta) "
        "values (%(tenant)s, %(target)s, 'active', %(daypart)s, %(day)s, 1, 0, %(number)s, %(number)s, %(now)s, "
        "%(now)s, %(now)s, %(meta)s) returning id::text",
        {
            "tenant": target["tenant_id"],
            "target": target["id"],
            "daypart": daypart,
            "day": day,
            "number": number_id,
            "now": now,
            "meta": Jsonb({"outreach": True}),
        },
    )
    return str(one(row)["id"])


def persona(c: Conn, persona_id: str) -> Row | None:
    row: Row | None = c.execute("select * from t_personas where id = %s", (persona_id,)).fetchone()
    return row


def sent_bodies(c: Conn, target_id: str) -> list[str]:
    """What the bot already wrote to this target (texts never repeat to one person)."""
    rows = c.execute(
        "select m.body from t_messages m join t_rounds r on r.id = m.round_id where r.target_id = %s "
        "and m.direction = 'out' and m.body is not null and m.status <> 'cancelled' order by m.created_at",
        (target_id,),
    ).fetchall()
    return [str(r["body"]) for r in rows]


def queue_message(
    c: Conn,
    *,
    target: Row,
    policy: Row,
    round_id: str,
    kind: str,
    step: int,
    body: str,
    when: datetime,
    now: datetime,
) -> str:
    """Queue the owed message in the outbox (idempotency key `round:<round>:<step>`, what the sweeper knows) and
    make `step` the round's due exchange, so the claim's round rule holds for it."""
    c.execute(
        "update t_rounds set exchanges_done = %s, exchanges_planned = greatest(exchanges_planned, %s + 1), "
        "turn_number_id = %s, updated_at = %s where id = %s",
        (step, step, policy["number_id"], now, round_id),
    )
    meta = {
        "app_origin": "outreach",
        "policy_id": policy["id"],
        "target_id": target["id"],
        "kind": kind,
        "step": step,
        "planned_at": when.isoformat(),
    }
    key = f"round:{round_id}:{step}"
    row = c.execute(
        "insert into t_messages (tenant_id, round_id, from_number_id, contact_id, to_jid, direction, body, meta, "
        "status, idempotency_key, created_at, updated_at) values (%s, %s, %s, %s, %s, 'out', %s, %s, 'queued', %s, "
        "%s, %s) on conflict (idempotency_key) do nothing returning id::text",
        (
            target["tenant_id"],
            round_id,
            policy["number_id"],
            target["contact_id"],
            f"{str(target['contact_wa']).lstrip('+')}@s.whatsapp.net",
            body,
            Jsonb(meta),
            key,
            now,
            now,
        ),
    ).fetchone()
    if row is None:  # a retry of the same decision: the message is queued already
        row = one(c.execute("select id::text from t_messages where idempotency_key = %s", (key,)))
    message_id = str(row["id"])
    c.execute(
        "update t_outreach_targets set next_action_at = %s, updated_at = %s where id = %s", (when, now, target["id"])
    )
    return message_id


def answered(
    c: Conn,
    target: Row,
    round_id: str,
    messages: Iterable[str],
    next_kind: str,
    next_action_at: datetime,
    now: datetime,
) -> None:
    """The person wrote: their messages join the round (as the answer to our last exchange, so the send marks them
    read), the streak of unanswered messages resets, and the target owes `next_kind`."""
    ids = list(messages)
    c.execute(
        "update t_messages set round_id = %s, meta = meta || jsonb_build_object('round_id', %s::text, 'step', %s::int)"
        " where id = any(%s::uuid[]) and round_id is null",
        (round_id, round_id, int(target["rounds_done"]) - 1, ids),
    )
    c.execute(
        "update t_outreach_targets set unanswered = 0, replies = replies + %s, next_kind = %s, next_action_at = %s, "
        "updated_at = %s where id = %s and status = 'in_progress'",
        (len(ids), next_kind, next_action_at, now, target["id"]),
    )


def record_check(c: Conn, target_id: str, now: datetime) -> None:
    c.execute("update t_outreach_targets set checked_at = %s, updated_at = %s where id = %s", (now, now, target_id))


def load_target(c: Conn, target_id: str, *, lock: bool = False) -> Row | None:
    row: Row | None = c.execute(
        f"select {_TARGET_COLUMNS}, false as live_message from t_outreach_targets tg "
        "join t_contacts ct on ct.id = tg.contact_id where tg.id = %s" + (" for update of tg" if lock else ""),
        (target_id,),
    ).fetchone()
    return row


def load_policy(c: Conn, policy_id: str, *, lock: bool = False) -> Row | None:
    if lock:  # the claim's re-check: two sends of one policy never both see the last unit of its budget
        c.execute("select 1 from t_outreach_policies where id = %s for update", (policy_id,))
    row: Row | None = c.execute(_POLICIES.format(where="p.id = %(id)s"), {"id": policy_id}).fetchone()
    return row


# --- the claim's re-check ------------------------------------------------------------------------------------------


def claim_context(meta: dict[str, Any] | None) -> Row | None:
    """An outreach message's policy, target, kind and step from its `meta` (None for any other message): written
    once when it is queued, so the send job's context already holds it and the claim asks nothing more."""
    if not meta or meta.get("app_origin") != "outreach":
        return None
    step = meta.get("step")
    return {
        "policy_id": meta.get("policy_id"),
        "target_id": meta.get("target_id"),
        "kind": meta.get("kind"),
        "step": None if step is None else int(step),
    }


def claim_refusal(c: Conn, ctx: Row, now: datetime) -> tuple[str | None, Row | None]:
    """Inside the claim's transaction, holding the policy and the target: why this outreach message may not leave
    now (policy caps, dayparts, days, quiet hours, new contacts, opt-out, the unanswered streak), or None."""
    policy = load_policy(c, ctx["policy_id"], lock=True) if ctx["policy_id"] else None
    target = load_target(c, ctx["target_id"], lock=True) if ctx["target_id"] else None
    if policy is None or target is None:
        return "policy or target deleted", None
    state = policy_state(c, policy, now, exclude=target["id"], in_flight=False)
    why = claim_refusal_of(
        state, target_state(target), ctx["kind"], int(ctx["step"]), now, policy_active=policy["active"]
    )
    return why, policy


def record_claim(c: Conn, ctx: Row, policy: Row, now: datetime) -> None:
    """The message is leaving: count the exchange, the unanswered streak, the first contact; a goodbye ends it."""
    _, _, today = spans(now, policy["timezone"])
    c.execute(
        """
        update t_outreach_targets set
               rounds_done = rounds_done + case when %(kind)s = 'goodbye' then 0 else 1 end,
               unanswered = unanswered + 1, last_contact_at = %(now)s, next_kind = null, next_action_at = null,
               first_contact_at = case when %(kind)s = 'opening' then %(now)s else first_contact_at end,
               first_contact_day = case when %(kind)s = 'opening' then %(today)s else first_contact_day end,
               status = case when %(kind)s = 'goodbye' then 'done'::target_status else status end,
               reason = case when %(kind)s = 'goodbye' then 'finished' else reason end,
               updated_at = %(now)s
         where id = %(id)s
        """,
        {"id": ctx["target_id"], "kind": ctx["kind"], "now": now, "today": today},
    )


def finish_ended_rounds(c: Conn, now: datetime) -> int:
    """Rounds of targets that ended (a goodbye that left, an end written elsewhere) stop being live."""
    rows = c.execute(
        """
        update t_rounds r set status = case when tg.status = 'done' then 'done'::round_status
                                            else 'aborted'::round_status end,
               abort_reason = case when tg.status = 'done' then null else 'target ' || tg.status::text end,
               finished_at = %(now)s, turn_number_id = null, updated_at = %(now)s
          from t_outreach_targets tg
         where r.target_id = tg.id and r.status in ('planned', 'active') and tg.status <> 'in_progress'
           and not exists (select 1 from t_messages m where m.round_id = r.id and m.status in ('queued', 'sending'))
        returning r.id
        """,
        {"now": now},
    ).fetchall()
    return len(rows)


# --- `mirage status --outreach` ------------------------------------------------------------------------------------

_STATUS = """
select p.id::text,
       count(tg.id) filter (where tg.status = 'pending') as pending,
       count(tg.id) filter (where tg.status = 'in_progress') as in_progress,
       count(tg.id) filter (where tg.status = 'done') as done,
       count(tg.id) filter (where tg.status = 'paused') as paused,
       count(tg.id) filter (where tg.status = 'optout') as optout,
       count(tg.id) filter (where tg.first_contact_day = %(today)s::date) as new_today,
       coalesce(sum(tg.replies), 0) as replies
  from t_outreach_policies p left join t_outreach_targets tg on tg.policy_id = p.id
 where p.id = %(policy)s::uuid
 group by p.id
"""


def status_rows(c: Conn, tenant_ids: list[str], now: datetime) -> list[Row]:
    """Per policy of these tenants: its targets by state, today's new contacts (the policy's, and the number's
    against the ramp's cap), what it spent this hour and day against its limits, replies and opt-outs."""
    out = []
    rows = c.execute(_POLICIES.format(where="p.tenant_id = any(%(tenants)s::uuid[])"), {"tenants": tenant_ids})
    for p in rows.fetchall():
        state = policy_state(c, p, now, in_flight=False)
        _, _, today = spans(now, p["timezone"])
        counts = one(c.execute(_STATUS, {"policy": p["id"], "today": today}))
        out.append(
            {
                "tenant_id": p["tenant_id"],
                "policy": p["key"],
                "number": p["number_key"],
                "active": bool(p["active"]),
                "runs": bool(p["active"] and p["runs"]),
                "targets": {k: int(counts[k]) for k in ("pending", "in_progress", "done", "paused", "optout")},
                "new_today": int(counts["new_today"]),
                "number_new_today": state.new_today,
                "new_cap": new_contact_cap(state, now),
                "hour_used": state.used_hour,
                "hourly_limit": state.hourly_limit,
                "day_used": state.used_day,
                "daily_limit": state.daily_limit,
                "replies": int(counts["replies"]),
                "optouts": int(counts["optout"]),
            }
        )
    return out
