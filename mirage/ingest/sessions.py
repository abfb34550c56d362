"""The authentication material of one Evolution instance: its t_sessions row with the secrets decrypted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from mirage.crypto import Keyring

_SESSION_SQL = """
select s.id, s.tenant_id, s.number_id, s.instance_name, s.webhook_secret_enc, s.jwt_key_enc, n.wa_number
  from t_sessions s
  left join t_numbers n on n.tenant_id = s.tenant_id and n.id = s.number_id
 where s.instance_name = %s
"""


@dataclass(frozen=True, repr=False)
class SessionAuth:
    """Who an instance belongs to and the secrets its webhooks must prove; repr never shows the secrets."""

    session_id: UUID
    tenant_id: UUID
    number_id: UUID | None
    instance_name: str
    own_number: str | None  # E.164 of the session's number, when it has one
    webhook_secret: bytes | None
    jwt_key: bytes | None

    def __repr__(self) -> str:
        return f"SessionAuth(instance={self.instance_name!r}, session={self.session_id}, tenant={self.tenant_id})"


def load_session(conn: psycopg.Connection[Any], instance_name: str, ring: Keyring) -> SessionAuth | None:
    """The session for `instance_name`, secrets decrypted (CryptoError if a key is missing), or None."""
    row = conn.execute(_SESSION_SQL, (instance_name,)).fetchone()
    return None if row is None else _session(row, ring)


async def load_session_async(
    conn: psycopg.AsyncConnection[Any], instance_name: str, ring: Keyring
) -> SessionAuth | None:
    """`load_session` on an async connection (the web service's event loop)."""
    row = await (await conn.execute(_SESSION_SQL, (instance_name,))).fetchone()
    return None if row is None else _session(row, ring)


def _session(row: dict[str, Any], ring: Keyring) -> SessionAuth:
    sid = row["id"]

    def secret(field: str) -> bytes | None:
        blob = row[f"{field}_enc"]
        if blob is None:
            return None
        return ring.decrypt(blob, table="t_sessions", row_id=sid, field=field).encode("utf-8")

    return SessionAuth(
        session_id=sid,
        tenant_id=row["tenant_id"],
        number_id=row["number_id"],
        instance_name=row["instance_name"],
        own_number=row["wa_number"],
        webhook_secret=secret("webhook_secret"),
        jwt_key=secret("jwt_key"),
    )
