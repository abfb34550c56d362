"""A complete, valid tenant graph: one row in every tenant-scoped table, for any number of tenants.

Reusable by every area's tests::

    from tests.db.factories import make_tenant_graph

    graph = make_tenant_graph(conn)            # a fresh tenant with a random slug
    graph.rows["t_messages"]                   # id of its one message
    graph.admin_auth_id                        # `sub` of its linked admin (t_users.auth_user_id)

Insert as the connection's login role (the owner bypasses row level security) or inside
`mirage.db.sessions.service_session`, never inside a tenant session. Every value that must be unique
across tenants (slug, instance name, token hash, idempotency key) is derived from a fresh uuid, so
several graphs coexist in one database. Ciphertext columns hold placeholder bytes, not real Fernet
tokens: decrypt them and you get an error, by design.

When a migration adds a tenant-scoped table, add its row here: tests/db/test_rls_catalog.py fails until
every tenant-scoped table in the catalog has one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

# In foreign-key order; each has exactly one row per graph (the tenant itself for t_tenants).
TENANT_TABLES: tuple[str, ...] = (
    "t_tenants",
    "t_users",
    "t_settings_tenant",
    "t_tenant_secrets",
    "t_personas",
    "t_numbers",
    "t_sessions",
    "t_contacts",
    "t_optouts",
    "t_optout_reviews",
    "t_conversations",
    "t_settings_conversation",
    "t_conversation_participants",
    "t_pairings",
    "t_conversation_schedule",
    "t_topics",
    "t_outreach_policies",
    "t_outreach_targets",
    "t_rounds",
    "t_messages",
    "t_webhook_events",
    "t_applies",
    "t_viewer_links",
    "t_viewer_sessions",
)


@dataclass(frozen=True)
class TenantGraph:
    """The ids of one tenant's rows: `rows[table]` is the id of its row in `table`."""

    tenant_id: uuid.UUID
    slug: str
    admin_auth_id: uuid.UUID  # t_users.auth_user_id of the admin: the `sub` of its JWTs
    rows: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def admin_user_id(self) -> uuid.UUID:
        return self.rows["t_users"]


def tenant_column(table: str) -> str:
    """The column that holds a table's tenant (t_tenants is scoped by its own id)."""
    return "id" if table == "t_tenants" else "tenant_id"


def _insert(conn: psycopg.Connection[Any], table: str, values: dict[str, Any]) -> uuid.UUID:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(f"insert into {table} ({cols}) values ({marks}) returning id", list(values.values())).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"] if isinstance(row, dict) else row[0]))


def make_tenant_graph(conn: psycopg.Connection[Any], slug: str | None = None) -> TenantGraph:
    """Insert one tenant with one row in every tenant-scoped table, all linked to each other."""
    u = uuid.uuid4().hex
    slug = slug or f"t-{u[:12]}"
    admin_auth_id = uuid.uuid4()
    rows: dict[str, uuid.UUID] = {}
    tid = rows["t_tenants"] = _insert(conn, "t_tenants", {"slug": slug, "name": f"Tenant {slug}"})
    rows["t_users"] = _insert(
        conn,
        "t_users",
        {
            "tenant_id": tid,
            "email": f"admin@{slug}.example",
            "role": "admin",
            "mfa_enabled": True,
            "auth_user_id": admin_auth_id,
        },
    )
    rows["t_settings_tenant"] = _insert(conn, "t_settings_tenant", {"tenant_id": tid})
    rows["t_tenant_secrets"] = _insert(
        conn,
        "t_tenant_secrets",
        {"tenant_id": tid, "name": "evolution_api_key", "value_enc": b"placeholder", "fingerprint": f"fp-{u}"},
    )
    persona = rows["t_personas"] = _insert(conn, "t_personas", {"tenant_id": tid, "key": "tio", "name": "Tio Zé"})
    number = rows["t_numbers"] = _insert(
        conn,
        "t_numbers",
        {"tenant_id": tid, "key": "n1", "label": "Number 1", "wa_number": "+5511999990001", "persona_id": persona},
    )
    session = rows["t_sessions"] = _insert(
        conn,
        "t_sessions",
        {
            "tenant_id": tid,
            "number_id": number,
            "instance_name": f"{slug}-n1",
            "base_url": "http://evolution.invalid",
            "token_enc": b"placeholder",
            "token_hash": f"th-{u}",
            "state": "open",
        },
    )
    conn.execute("update t_numbers set session_id = %s, status = 'open' where id = %s", (session, number))
    contact = rows["t_contacts"] = _insert(
        conn,
        "t_contacts",
        {"tenant_id": tid, "wa_number": "+5511988880001", "display_name": "Maria", "tags": ["vip"]},
    )
    rows["t_optouts"] = _insert(conn, "t_optouts", {"tenant_id": tid, "wa_number": "+5511977770001", "keyword": "sair"})
    rows["t_optout_reviews"] = _insert(
        conn,
        "t_optout_reviews",
        {
            "tenant_id": tid,
            "wa_hash": f"h-{u}",
            "wa_number": "+5511966660001",
            "phrase": "nao",
            "status": "cleared",
            "decided_at": datetime.now(UTC),
        },
    )
    conversation = rows["t_conversations"] = _insert(
        conn, "t_conversations", {"tenant_id": tid, "key": "c1", "name": "Conversation 1"}
    )
    rows["t_settings_conversation"] = _insert(
        conn, "t_settings_conversation", {"tenant_id": tid, "conversation_id": conversation}
    )
    rows["t_conversation_participants"] = _insert(
        conn,
        "t_conversation_participants",
        {"tenant_id": tid, "conversation_id": conversation, "participant_kind": "bot", "number_id": number},
    )
    pairing = rows["t_pairings"] = _insert(
        conn,
        "t_pairings",
        {"tenant_id": tid, "conversation_id": conversation, "number_a_id": number, "contact_b_id": contact},
    )
    rows["t_conversation_schedule"] = _insert(
        conn,
        "t_conversation_schedule",
        {
            "tenant_id": tid,
            "conversation_id": conversation,
            "day": "mon",
            "morning_enabled": True,
            "morning_window": json.dumps({"start": "08:00", "end": "11:30"}),
        },
    )
    rows["t_topics"] = _insert(
        conn, "t_topics", {"tenant_id": tid, "conversation_id": conversation, "key": "tempo", "seed": "o tempo"}
    )
    policy = rows["t_outreach_policies"] = _insert(
        conn, "t_outreach_policies", {"tenant_id": tid, "key": "p1", "number_id": number}
    )
    rows["t_outreach_targets"] = _insert(
        conn, "t_outreach_targets", {"tenant_id": tid, "policy_id": policy, "contact_id": contact}
    )
    round_id = rows["t_rounds"] = _insert(
        conn,
        "t_rounds",
        {"tenant_id": tid, "conversation_id": conversation, "pairing_id": pairing, "status": "active"},
    )
    rows["t_messages"] = _insert(
        conn,
        "t_messages",
        {
            "tenant_id": tid,
            "conversation_id": conversation,
            "round_id": round_id,
            "session_id": session,
            "from_number_id": number,
            "contact_id": contact,
            "wa_msg_id": f"WA{u[:16].upper()}",
            "direction": "out",
            "body": "Bom dia! Tudo bem?",
            "status": "sent",
            "idempotency_key": f"idem-{u}",
        },
    )
    rows["t_webhook_events"] = _insert(
        conn,
        "t_webhook_events",
        {
            "tenant_id": tid,
            "session_id": session,
            "instance_name": f"{slug}-n1",
            "event_type": "messages.upsert",
            "idem_key": f"{slug}-n1:WA{u[:16].upper()}",
            "payload": json.dumps({"event": "messages.upsert", "data": {"message": {"conversation": "oi"}}}),
        },
    )
    rows["t_applies"] = _insert(
        conn,
        "t_applies",
        {
            "tenant_id": tid,
            "apply_id": uuid.uuid4(),
            "plan_hash": f"plan-{u}",
            "actor": "tests",
            "summary": json.dumps({"add": 1, "change": 0, "destroy": 0}),
            "changes": json.dumps([]),
        },
    )
    link = rows["t_viewer_links"] = _insert(
        conn,
        "t_viewer_links",
        {
            "tenant_id": tid,
            "user_id": rows["t_users"],
            "token_hash": f"link-{u}",
            "expires_at": datetime.now(UTC) + timedelta(days=1),
        },
    )
    rows["t_viewer_sessions"] = _insert(
        conn,
        "t_viewer_sessions",
        {
            "tenant_id": tid,
            "user_id": rows["t_users"],
            "link_id": link,
            "session_hash": f"session-{u}",
            "expires_at": datetime.now(UTC) + timedelta(days=1),
        },
    )
    missing = set(TENANT_TABLES) - set(rows)
    if missing:
        raise RuntimeError(f"make_tenant_graph forgot {sorted(missing)}")
    return TenantGraph(tenant_id=tid, slug=slug, admin_auth_id=admin_auth_id, rows=rows)
