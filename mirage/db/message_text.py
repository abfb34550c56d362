"""SQL of message text: a conversation's last messages (what compose() reads as history) and the tokens each
tenant spent per local day (the public.text_usage view, docs/generation.md "Cost: tokens per day")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from mirage.db.openai_access import CONVERSATION_MODEL
from mirage.engine.calendar import local_date
from mirage.errors import MirageError

Conn = psycopg.Connection[Any]


class UnknownTenant(MirageError):
    """No tenant has this slug."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(f"no tenant {slug!r}")


_HISTORY = """
select body, from_number_id::text
  from t_messages
 where tenant_id = %s and conversation_id = %s and direction = 'out' and body is not null and status <> 'cancelled'
 order by created_at desc
 limit %s
"""


def conversation_history(conn: Conn, tenant_id: str, conversation_id: str, limit: int) -> list[tuple[str, str | None]]:
    """The conversation's last `limit` texts, oldest first, as (body, the bot number that sent it).

    Our own sends only (both bots of a pair write outgoing rows; their inbound copies would repeat them). The
    tenant leads so t_messages_conversation_time_idx serves it as a top-N index scan.
    """
    rows = conn.execute(_HISTORY, (tenant_id, conversation_id, limit)).fetchall()
    return [(str(r["body"]), r["from_number_id"]) for r in reversed(rows)]


# What one step's text reads (jobs/text.py prepare_text), in one statement: the conversation's history (as
# `_HISTORY`, newest first), its texts since the no-repeat window opened, the round's message of the previous
# step (the one this step answers), and the conversation's model with its tenant's endpoint and key. Every read
# by conversation names its tenant too: t_messages is indexed by (tenant_id, conversation_id, created_at), and
# without the tenant Postgres scans that whole index, a cost that grows with every message ever stored.
_TEXT_INPUTS = f"""
select array(select jsonb_build_array(m.body, m.from_number_id::text) from t_messages m
              where m.tenant_id = %(tenant)s and m.conversation_id = %(conversation)s and m.direction = 'out'
                and m.body is not null and m.status <> 'cancelled'
              order by m.created_at desc limit %(limit)s) as history,
       array(select m.body from t_messages m
              where m.tenant_id = %(tenant)s and m.conversation_id = %(conversation)s and m.direction = 'out'
                and m.body is not null and m.created_at >= %(since)s and m.status <> 'cancelled') as recent,
       (select m.body from t_messages m
         where m.round_id = %(round)s and m.direction = 'out' and (m.meta->>'step')::int = %(step)s
         order by m.created_at limit 1) as previous,
       model.*
  from ({CONVERSATION_MODEL}) model
"""


@dataclass(frozen=True)
class TextInputs:
    history: list[tuple[str, str | None]]  # the conversation's last texts, oldest first, with the bot that sent each
    recent: list[str]  # what the conversation sent since `since`
    previous: str | None  # the round's text of the step before (None for its first step)
    model: dict[str, Any]  # a row of openai_access.CONVERSATION_MODEL (for conversation_llm_config_of)


def text_inputs(
    conn: Conn,
    *,
    tenant_id: str,
    conversation_id: str,
    round_id: str,
    step: int,
    since: datetime,
    limit: int,
) -> TextInputs:
    """What the text of step `step` of a round reads, in one statement: `conversation_history(…, limit)`, the
    conversation's texts since `since` (the no-repeat window), the body of the round's message of `step - 1`
    (outbox.round_messages), and the conversation's model row."""
    row = conn.execute(
        _TEXT_INPUTS,
        {
            "tenant": tenant_id,
            "conversation": conversation_id,
            "round": round_id,
            "step": step - 1,
            "since": since,
            "limit": limit,
        },
    ).fetchone()
    assert row is not None  # one row, whatever matched
    model = {k: v for k, v in row.items() if k not in ("history", "recent", "previous")}
    return TextInputs(
        history=[(str(body), who) for body, who in reversed(row["history"])],
        recent=[str(b) for b in row["recent"]],
        previous=row["previous"],
        model=model,
    )


@dataclass(frozen=True)
class UsageDay:
    """One local day of a tenant's message text: how many texts, from where, and the tokens they used."""

    day: date
    messages: int
    openai_messages: int
    offline_messages: int
    fallbacks: int
    tokens: int


@dataclass(frozen=True)
class TenantUsage:
    """A tenant's usage report: its slug, the zone its days are counted in, and the days, oldest first."""

    tenant: str
    timezone: str
    days: list[UsageDay]

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.days)


def tenant_usage(conn: Conn, slug: str, now: datetime, days: int) -> TenantUsage:
    """Tokens and texts of tenant `slug` for its last `days` local days up to today (in its zone) inclusive."""
    row = conn.execute("select id::text, timezone from t_tenants where slug = %s", (slug,)).fetchone()
    if row is None:
        raise UnknownTenant(slug)
    timezone = str(row["timezone"])
    return TenantUsage(slug, timezone, token_usage(conn, str(row["id"]), local_date(now, timezone), days))


def token_usage(conn: Conn, tenant_id: str, today: date, days: int) -> list[UsageDay]:
    """The tenant's last `days` local days up to `today` (inclusive), oldest first, days without text as zeros."""
    first = today - timedelta(days=days - 1)
    rows = conn.execute(
        "select day, messages, openai_messages, offline_messages, fallbacks, tokens from public.text_usage "
        "where tenant_id = %s and day between %s and %s",
        (tenant_id, first, today),
    ).fetchall()
    found = {r["day"]: r for r in rows}
    out: list[UsageDay] = []
    for i in range(days):
        day = first + timedelta(days=i)
        r = found.get(day)
        out.append(
            UsageDay(
                day,
                *(
                    int(r[k]) if r else 0
                    for k in ("messages", "openai_messages", "offline_messages", "fallbacks", "tokens")
                ),
            )
        )
    return out
