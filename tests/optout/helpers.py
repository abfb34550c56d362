"""A tenant with one bot number mid-round and a human contact, and outbox rows addressed to that contact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mirage.db.optouts import jid_of
from tests.db.factories import TenantGraph, make_tenant_graph

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
HUMAN = "+5511988880001"  # the graph's contact (Maria)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Scene:
    graph: TenantGraph

    @property
    def tenant(self) -> str:
        return str(self.graph.tenant_id)

    @property
    def contact(self) -> str:
        return str(self.graph.rows["t_contacts"])


def make_scene(conn: Conn) -> Scene:
    """A committed tenant graph whose round is active with its bot's turn at step 0 (so a step-0 message from the
    bot is claimable by the outbox) and whose outreach target is in progress."""
    g = make_tenant_graph(conn)
    conn.execute(
        "update t_rounds set turn_number_id = %s, exchanges_done = 0, status = 'active' where id = %s",
        (g.rows["t_numbers"], g.rows["t_rounds"]),
    )
    conn.execute("update t_outreach_targets set status = 'in_progress' where id = %s", (g.rows["t_outreach_targets"],))
    conn.commit()
    return Scene(g)


def queue_to_human(
    conn: Conn, scene: Scene, *, by: str = "contact", planned_at: datetime | None = None, number: str = HUMAN
) -> str:
    """One queued outgoing message from the bot to the human, addressed by contact row or (by="jid") by JID only."""
    g = scene.graph
    meta: dict[str, Any] = {"step": 0, "app_origin": "outreach"}
    if planned_at is not None:
        meta["planned_at"] = planned_at.isoformat()
    row = conn.execute(
        "insert into t_messages (tenant_id, round_id, from_number_id, contact_id, to_jid, direction, body, meta, "
        "status, idempotency_key, created_at, updated_at) values (%s, %s, %s, %s, %s, 'out', 'Oi, tudo bem?', %s, "
        "'queued', %s, %s, %s) returning id::text",
        (
            g.tenant_id,
            g.rows["t_rounds"],
            g.rows["t_numbers"],
            g.rows["t_contacts"] if by == "contact" else None,
            jid_of(number),
            Jsonb(meta),
            f"test:{uuid.uuid4()}",
            NOW,
            NOW,
        ),
    ).fetchone()
    conn.commit()
    assert row is not None
    return str(row["id"])


def status_of(conn: Conn, message_id: str) -> str:
    row = conn.execute("select status::text from t_messages where id = %s", (message_id,)).fetchone()
    conn.commit()
    assert row is not None
    return str(row["status"])


def person_says(conn: Conn, scene: Scene, text: str, number: str = HUMAN, *, lid: str | None = None) -> str:
    """An incoming message from the person, stored as the ingest stores one (before its follow-up job runs).
    With `lid`, as Evolution 2.3.6 may deliver it: `remoteJid=NNN@lid` and no phone, so no contact is matched
    unless one already holds that LID."""
    g = scene.graph
    row = conn.execute(
        "insert into t_messages (tenant_id, session_id, to_number_id, contact_id, from_jid, to_jid, wa_msg_id, "
        "direction, body, meta, status) values (%s, %s, %s, (select id from t_contacts where tenant_id = %s "
        "and (wa_number = %s or lid = %s)), %s, '5511999990001@s.whatsapp.net', %s, 'in', %s, '{}', 'received') "
        "returning id::text",
        (
            g.tenant_id,
            g.rows["t_sessions"],
            g.rows["t_numbers"],
            g.tenant_id,
            None if lid else number,
            lid,
            lid or f"{number.lstrip('+')}@s.whatsapp.net",
            f"IN{uuid.uuid4().hex[:16].upper()}",
            text,
        ),
    ).fetchone()
    conn.commit()
    assert row is not None
    return str(row["id"])
