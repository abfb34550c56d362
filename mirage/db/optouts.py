"""SQL of opt-outs (t_optouts, t_optout_reviews): who may be contacted, recording an opt-out or a pause, reviews.

The one rule (issue 13 item 5, docs/outreach.md "Opt-out"): a contact may be messaged unless it opted out or a
review of a possible opt-out is pending. It lives in SQL (`public.may_contact(tenant, number)`), so the outbox
claim, the outreach picker and `may_contact()` below all ask the same question. Opt-outs are matched by
`public.contact_hash(tenant, number)`, which outlives `mirage contacts forget` (ADR 0036).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mirage.db.message_text import UnknownTenant
from mirage.errors import MirageError

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

# What a sender puts in its SQL to skip contacts it may not message (`number` is an E.164 text expression).
MAY_CONTACT_SQL = "public.may_contact({tenant}, {number})"


def tenant_id_of(conn: Conn, slug: str) -> str:
    """The id of the tenant `slug`; raises UnknownTenant."""
    row = conn.execute("select id::text from t_tenants where slug = %s", (slug,)).fetchone()
    if row is None:
        raise UnknownTenant(slug)
    return str(row["id"])


def may_contact(conn: Conn, tenant_id: str, wa_number: str) -> bool:
    """Whether `wa_number` (E.164) may be messaged by any conversation or policy of the tenant: not opted out and
    no pending opt-out review. The outbox claim re-checks the same rule at the instant of sending."""
    row = conn.execute("select public.may_contact(%s, %s) as ok", (tenant_id, wa_number)).fetchone()
    return bool(row and (row["ok"] if isinstance(row, dict) else row[0]))


def blocked_numbers(conn: Conn, tenant_id: str, wa_numbers: Iterable[str]) -> set[str]:
    """The numbers of `wa_numbers` that may NOT be messaged (one query for a batch of candidates)."""
    numbers = sorted(set(wa_numbers))
    if not numbers:
        return set()
    rows = conn.execute(
        "select n from unnest(%s::text[]) n where not public.may_contact(%s, n)", (numbers, tenant_id)
    ).fetchall()
    return {str(r["n"] if isinstance(r, dict) else r[0]) for r in rows}


def jid_of(wa_number: str) -> str:
    """The JID Mirage addresses a contact by: `+5511…` -> `5511…@s.whatsapp.net`; a JID (`NNN@lid`) as it is."""
    return wa_number if "@" in wa_number else f"{wa_number.lstrip('+')}@s.whatsapp.net"


@dataclass(frozen=True)
class Stopped:
    """What one opt-out (or pause) changed, in the transaction that recorded it."""

    created: bool  # a new t_optouts row (False: the contact had opted out already) / a new pending review
    cancelled: int  # queued messages to the contact, now `cancelled`
    targets: int  # outreach targets set to `optout` (or `paused`)
    rounds: int  # live outreach rounds with the contact, aborted


# The contact's outgoing messages still waiting in the outbox (queued now or scheduled for later: both `queued`),
# by contact row or, for rows without one, by the phone JID.
_CANCEL = """
update t_messages m set status = 'cancelled', error = %(reason)s, updated_at = %(now)s
 where m.tenant_id = %(tenant)s and m.direction = 'out' and m.status = 'queued'
   and (m.contact_id in (select id from t_contacts where tenant_id = %(tenant)s and wa_number = %(number)s)
        or (m.to_number_id is null and m.to_jid = %(jid)s))
"""

_ABORT_ROUNDS = """
update t_rounds r set status = 'aborted', abort_reason = %(reason)s, finished_at = %(now)s, updated_at = %(now)s
  from t_outreach_targets t, t_contacts c
 where r.target_id = t.id and t.contact_id = c.id and c.tenant_id = %(tenant)s and c.wa_number = %(number)s
   and r.status in ('planned', 'active')
"""


def _params(tenant_id: str, wa_number: str, now: datetime, reason: str) -> dict[str, Any]:
    return {"tenant": tenant_id, "number": wa_number, "jid": jid_of(wa_number), "now": now, "reason": reason}


def record_optout(
    conn: Conn,
    tenant_id: str,
    wa_number: str,
    now: datetime,
    *,
    keyword: str | None,
    source: str = "keyword",
    message_id: str | None = None,
) -> Stopped:
    """Opt the contact out for good, tenant-wide: t_optouts, every target `optout`, every queued or scheduled
    message to it `cancelled`, live outreach rounds aborted, a pending review confirmed. Call it inside the
    caller's transaction: all of it commits together, and a claim racing it waits for the cancelled rows."""
    p = _params(tenant_id, wa_number, now, "opt-out")
    created = conn.execute(
        "insert into t_optouts (tenant_id, wa_number, contact_id, keyword, source, message_id, created_at) "
        "select %(tenant)s, %(number)s, (select id from t_contacts where tenant_id = %(tenant)s "
        "and wa_number = %(number)s), %(keyword)s, %(source)s, %(message)s, %(now)s "
        "on conflict (tenant_id, wa_hash) do nothing returning id",
        {**p, "keyword": keyword, "source": source, "message": message_id},
    ).fetchone()
    cancelled = conn.execute(_CANCEL, p).rowcount
    targets = conn.execute(
        "update t_outreach_targets t set status = 'optout', next_action_at = null, updated_at = %(now)s "
        "from t_contacts c where t.contact_id = c.id and c.tenant_id = %(tenant)s and c.wa_number = %(number)s "
        "and t.status <> 'optout'",
        p,
    ).rowcount
    rounds = conn.execute(_ABORT_ROUNDS, p).rowcount
    conn.execute(
        "update t_optout_reviews set status = 'confirmed', decided_at = %(now)s, "
        "decided_by = coalesce(decided_by, %(by)s) where tenant_id = %(tenant)s "
        "and wa_hash = public.contact_hash(%(tenant)s, %(number)s) and status = 'pending'",
        {**p, "by": f"opt-out:{source}"},
    )
    return Stopped(created is not None, cancelled, targets, rounds)


def pause_for_review(
    conn: Conn, tenant_id: str, wa_number: str, now: datetime, *, phrase: str, message_id: str | None
) -> Stopped:
    """A reply that might be an opt-out: nothing more goes to the contact until a person decides. One pending
    review per contact; its live targets become `paused` (their previous status kept to restore on clear)."""
    p = _params(tenant_id, wa_number, now, "opt-out review")
    if not may_contact(conn, tenant_id, wa_number):  # opted out already, or a review is pending
        return Stopped(False, conn.execute(_CANCEL, p).rowcount, 0, 0)
    paused = conn.execute(
        "with t as (select t.id, t.status from t_outreach_targets t join t_contacts c on c.id = t.contact_id "
        "where c.tenant_id = %(tenant)s and c.wa_number = %(number)s and t.status in ('pending', 'in_progress') "
        "for update of t) "
        "update t_outreach_targets u set status = 'paused', updated_at = %(now)s from t where u.id = t.id "
        "returning u.id::text, t.status::text as previous",
        p,
    ).fetchall()
    created = conn.execute(
        "insert into t_optout_reviews (tenant_id, wa_hash, wa_number, contact_id, message_id, phrase, "
        "paused_targets, created_at) select %(tenant)s, public.contact_hash(%(tenant)s, %(number)s), %(number)s, "
        "(select id from t_contacts where tenant_id = %(tenant)s and wa_number = %(number)s), %(message)s, "
        "%(phrase)s, %(paused)s, %(now)s on conflict (tenant_id, wa_hash) where status = 'pending' do nothing "
        "returning id",
        {**p, "message": message_id, "phrase": phrase, "paused": Jsonb({r["id"]: r["previous"] for r in paused})},
    ).fetchone()
    cancelled = conn.execute(_CANCEL, p).rowcount
    rounds = conn.execute(_ABORT_ROUNDS, p).rowcount
    return Stopped(created is not None, cancelled, len(paused), rounds)


_PENDING = """
select r.id::text, r.wa_number, r.phrase, r.created_at, r.message_id::text, m.body, c.display_name
  from t_optout_reviews r
  left join t_messages m on m.id = r.message_id
  left join t_contacts c on c.id = r.contact_id
 where r.tenant_id = %s and r.status = 'pending'
 order by r.created_at
"""


def pending_reviews(conn: Conn, tenant_id: str) -> list[Row]:
    """Pending reviews, oldest first, with the message that raised each (what the person reads to decide)."""
    return conn.execute(_PENDING, (tenant_id,)).fetchall()


class ReviewGone(MirageError):
    """The review does not exist in this tenant or was decided already."""

    def __init__(self, review_id: str) -> None:
        self.review_id = review_id
        super().__init__(f"no pending review {review_id!r} in this tenant (`mirage optouts review TENANT` lists them)")


def decide_review(conn: Conn, tenant_id: str, review_id: str, *, optout: bool, by: str, now: datetime) -> Stopped:
    """Confirm a pending review as an opt-out (recorded, source `review`) or clear it (paused targets resume
    with the status they had). Raises ReviewGone when there is no such pending review."""
    # The id as listed, or any prefix of it that names one pending review (`mirage optouts review` shows 8 chars).
    prefix = review_id.strip().lower()
    found = conn.execute(
        "select id from t_optout_reviews where tenant_id = %s and status = 'pending' and id::text like %s limit 2",
        (tenant_id, prefix.replace("%", "").replace("_", "") + "%"),
    ).fetchall()
    if len(found) != 1 or not prefix:
        raise ReviewGone(review_id)
    r = conn.execute(
        "update t_optout_reviews set status = %s, decided_by = %s, decided_at = %s "
        "where id = %s and status = 'pending' "
        "returning wa_number, phrase, message_id::text, paused_targets",
        ("confirmed" if optout else "cleared", by, now, found[0]["id"]),
    ).fetchone()
    if r is None:  # decided by someone else since the lookup
        raise ReviewGone(review_id)
    if optout:
        if r["wa_number"] is None:  # forgotten meanwhile: forgetting recorded the opt-out already
            return Stopped(False, 0, 0, 0)
        return record_optout(
            conn, tenant_id, r["wa_number"], now, keyword=r["phrase"], source="review", message_id=r["message_id"]
        )
    resumed = 0
    for target_id, previous in (r["paused_targets"] or {}).items():
        resumed += conn.execute(
            "update t_outreach_targets set status = %s::target_status, updated_at = %s "
            "where id = %s and tenant_id = %s and status = 'paused'",
            (previous, now, target_id, tenant_id),
        ).rowcount
    return Stopped(False, 0, resumed, 0)


_EXPORT = """
select o.created_at, o.wa_number, o.wa_hash, o.source, o.keyword, o.message_id::text, o.forgotten_at
  from t_optouts o where o.tenant_id = %s order by o.created_at, o.wa_hash
"""
EXPORT_COLUMNS = ("created_at", "wa_number", "wa_hash", "source", "keyword", "message_id", "forgotten_at")


def export_csv(conn: Conn, tenant_id: str) -> str:
    """Every opt-out of the tenant as CSV (a forgotten contact's row has its hash and no number)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for r in conn.execute(_EXPORT, (tenant_id,)).fetchall():
        w.writerow([_cell(r[c]) for c in EXPORT_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


# --- detection after ingest (mirage.jobs.optouts) ------------------------------------------------------------

# A stored incoming message from a person (not from one of the tenant's numbers) not checked yet, marked checked
# (`meta.optout` = 'none') in the same statement that reads it: the common case costs one statement. With it, the
# sender's number (the contact's, else the phone JID's: an @lid sender without a contact row has none we could
# block) and every opt-out keyword of the tenant's policies (an opt-out is tenant-wide: any policy's word counts).
_TAKE_INBOUND = """
update t_messages m set meta = m.meta || '{"optout": "none"}'
 where m.id = %s and m.direction = 'in' and m.from_number_id is null
   and not m.meta ? 'optout' and not m.meta ? 'placeholder'
returning m.id::text, m.tenant_id::text, m.body, m.from_jid,
       coalesce((select c.wa_number from t_contacts c where c.id = m.contact_id),
                case when m.from_jid like '%%@s.whatsapp.net' then '+' || split_part(m.from_jid, '@', 1) end)
         as wa_number,
       array(select distinct k from t_outreach_policies p, unnest(p.optout_keywords) k
              where p.tenant_id = m.tenant_id order by k) as keywords
"""


def take_inbound(conn: Conn, message_id: str) -> Row | None:
    """A person's message to check, marked checked (verdict `none` until `mark_scanned` says otherwise), or None:
    not from a person, checked already, or its text not here yet (a receipt came first; the sweeper comes back)."""
    row: Row | None = conn.execute(_TAKE_INBOUND, (message_id,)).fetchone()
    return row


def mark_scanned(conn: Conn, message_id: str, verdict: str, phrase: str | None) -> None:
    """Record the verdict on the message (`meta.optout`): audit, and the sweeper's sign that it was checked."""
    conn.execute(
        "update t_messages set meta = meta || jsonb_build_object('optout', %s::text, 'optout_phrase', %s::text) "
        "where id = %s",
        (verdict, phrase, message_id),
    )


# --- the optional one-time confirmation (MIRAGE_OPTOUT_CONFIRMATION) ---------------------------------------------

_CLAIM_CONFIRMATION = """
update t_optouts o set confirmation_sent_at = %(now)s
  from t_messages m, t_tenants t
 where m.id = %(message)s and o.message_id = m.id and o.tenant_id = m.tenant_id and t.id = m.tenant_id
   and o.source = 'keyword' and o.confirmation_sent_at is null and o.wa_number is not null
returning o.tenant_id::text, o.wa_number, m.to_number_id::text as number_id, t.locale
"""


def claim_confirmation(conn: Conn, message_id: str, now: datetime) -> Row | None:
    """Take the right to send the one confirmation of the opt-out this message recorded (at most once, ever):
    (tenant, number, the bot number the person wrote to, the tenant's locale), or None."""
    row: Row | None = conn.execute(_CLAIM_CONFIRMATION, {"message": message_id, "now": now}).fetchone()
    return row


def verdict_of(conn: Conn, message_id: str) -> str | None:
    """The opt-out verdict stored on a message (`meta.optout`), None while it is not checked (or not committed)."""
    row = conn.execute("select meta->>'optout' as v from t_messages where id = %s", (message_id,)).fetchone()
    return None if row is None else row["v"]
