"""SQL of a contact's personal data: `mirage contacts forget` (LGPD erasure that keeps the opt-out, ADR 0036)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mirage.db import optouts
from mirage.errors import MirageError

Conn = psycopg.Connection[Any]

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


class BadNumber(MirageError):
    """A phone number that is not E.164 (`+` and 8 to 15 digits)."""

    def __init__(self, number: str) -> None:
        self.number = number
        super().__init__(f"{number!r} is not an E.164 number: write it as +5511987654321")


def e164(number: str) -> str:
    """`number` without spaces, dashes, dots or brackets, checked to be E.164; raises BadNumber."""
    n = re.sub(r"[\s().-]", "", number)
    if not E164.match(n):
        raise BadNumber(number)
    return n


@dataclass(frozen=True)
class Forgotten:
    """What `forget` erased, row counts by kind."""

    contact: bool  # a t_contacts row was deleted (its targets, pairings and participations with it)
    messages: int  # messages whose body and addresses were erased
    events: int  # raw webhook payloads replaced by a marker
    optout_created: bool  # the opt-out was recorded by forgetting (the contact had not opted out)


def forget(conn: Conn, tenant_id: str, wa_number: str, now: datetime) -> Forgotten:
    """Erase a contact's personal data in the caller's transaction: message bodies, addresses and push names,
    raw webhook payloads that carry the number, review texts, outreach round scripts, the contact row itself.
    Keeps (or records) the opt-out under its hash only, so the person is never messaged again."""
    stopped = optouts.record_optout(conn, tenant_id, wa_number, now, keyword=None, source="manual")
    contact = conn.execute(
        "select id::text, lid from t_contacts where tenant_id = %s and wa_number = %s", (tenant_id, wa_number)
    ).fetchone()
    jids = [optouts.jid_of(wa_number)] + ([contact["lid"]] if contact and contact["lid"] else [])
    p = {"tenant": tenant_id, "contact": contact["id"] if contact else None, "jids": jids, "now": now}
    messages = conn.execute(
        "update t_messages set body = null, from_jid = case when from_jid = any(%(jids)s) then null else from_jid end,"
        " to_jid = case when to_jid = any(%(jids)s) then null else to_jid end,"
        " meta = (meta - 'push_name' - 'peer_lid' - 'optout_phrase') || jsonb_build_object('forgotten', true),"
        " updated_at = %(now)s"
        " where tenant_id = %(tenant)s and (contact_id = %(contact)s or from_jid = any(%(jids)s)"
        " or to_jid = any(%(jids)s))",
        p,
    ).rowcount
    # Raw payloads: any event of the tenant that mentions the number's digits (or its @lid) anywhere.
    needles = [wa_number.lstrip("+"), *jids[1:]]
    events = conn.execute(
        "update t_webhook_events set payload = jsonb_build_object('event', payload->'event', 'forgotten', true)"
        " where tenant_id = %s and exists (select 1 from unnest(%s::text[]) n where strpos(payload::text, n) > 0)",
        (tenant_id, needles),
    ).rowcount
    conn.execute(
        "update t_rounds r set script = '[]', meta = '{}', updated_at = %(now)s from t_outreach_targets t"
        " where r.target_id = t.id and t.contact_id = %(contact)s",
        p,
    )
    conn.execute(
        "update t_optout_reviews set wa_number = null, phrase = null, contact_id = null"
        " where tenant_id = %s and wa_hash = public.contact_hash(%s, %s)",
        (tenant_id, tenant_id, wa_number),
    )
    conn.execute(
        "update t_optouts set wa_number = null, keyword = null, contact_id = null, forgotten_at = %s"
        " where tenant_id = %s and wa_hash = public.contact_hash(%s, %s)",
        (now, tenant_id, tenant_id, wa_number),
    )
    deleted = conn.execute("delete from t_contacts where id = %s", (p["contact"],)).rowcount if contact else 0
    return Forgotten(bool(deleted), messages, events, stopped.created)
