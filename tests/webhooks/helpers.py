"""Rows a webhook needs (tenant, number, contacts, an Evolution session with encrypted secrets) and request helpers.

Seeding runs as the connection's login role (the owner bypasses row level security) and commits, like the
reconciler and the provision job will. Secrets are encrypted with the real keyring, bound to their row.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg

from mirage.crypto import keyring, secret_hash
from tests.conftest import SHARED_FIXTURES

SHARED = SHARED_FIXTURES / "evolution"
LOCAL = Path(__file__).parent / "fixtures"
WEBHOOK = "/api/webhooks/evolution"

# The shared fixtures' own values: instance, connected number, the contact writing to it and the token.
INSTANCE = "acme-support"
OWN_NUMBER = "+5511912345678"
CONTACT_NUMBER = "+5521998765432"
TOKEN = "B6D711FC-DE4D-4FD5-9365-44120E713976"

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Seeded:
    """One tenant with one number, its live Evolution session and its secrets in clear (for the tests only)."""

    tenant_id: uuid.UUID
    number_id: uuid.UUID
    session_id: uuid.UUID
    instance: str
    token: str
    secret: str
    jwt_key: str

    def headers(self) -> dict[str, str]:
        return {"x-webhook-secret": self.secret, "content-type": "application/json"}


def seed_tenant(conn: Conn, slug: str) -> uuid.UUID:
    row = conn.execute("insert into t_tenants (slug, name) values (%s, %s) returning id", (slug, slug.title()))
    return row.fetchone()["id"]  # type: ignore[index]


def seed_number(conn: Conn, tenant_id: uuid.UUID, key: str, wa_number: str) -> uuid.UUID:
    row = conn.execute(
        "insert into t_numbers (tenant_id, key, label, wa_number) values (%s, %s, %s, %s) returning id",
        (tenant_id, key, key.title(), wa_number),
    )
    return row.fetchone()["id"]  # type: ignore[index]


def seed_contact(conn: Conn, tenant_id: uuid.UUID, wa_number: str, name: str = "", lid: str | None = None) -> uuid.UUID:
    row = conn.execute(
        "insert into t_contacts (tenant_id, wa_number, display_name, lid) values (%s, %s, %s, %s) returning id",
        (tenant_id, wa_number, name, lid),
    )
    conn.commit()
    return row.fetchone()["id"]  # type: ignore[index]


def seed_instance(
    conn: Conn,
    slug: str = "acme",
    *,
    instance: str = INSTANCE,
    number: str = OWN_NUMBER,
    token: str | None = None,
    secret: str | None = None,
    jwt_key: str | None = None,
) -> Seeded:
    """A tenant, its number and the number's session (secrets encrypted exactly as the provision job does).

    The shared fixtures' instance gets their token (the `apikey` in their bodies); others get a fresh one.
    """
    token = token or (TOKEN if instance == INSTANCE else str(uuid.uuid4()).upper())
    secret = secret or f"whsec-{uuid.uuid4().hex}"
    jwt_key = jwt_key or f"jwtkey-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    tenant_id = seed_tenant(conn, slug)
    number_id = seed_number(conn, tenant_id, "main", number)
    session_id = uuid.uuid4()
    ring = keyring()

    def enc(value: str, field: str) -> bytes:
        return ring.encrypt(value, table="t_sessions", row_id=session_id, field=field)

    conn.execute(
        """insert into t_sessions (id, tenant_id, number_id, instance_name, base_url, token_enc, token_hash,
                                   webhook_secret_enc, jwt_key_enc, state)
           values (%s, %s, %s, %s, 'http://127.0.0.1:8090', %s, %s, %s, %s, 'connecting')""",
        (
            session_id,
            tenant_id,
            number_id,
            instance,
            enc(token, "token"),
            secret_hash(token),
            enc(secret, "webhook_secret"),
            enc(jwt_key, "jwt_key"),
        ),
    )
    conn.execute("update t_numbers set session_id = %s, status = 'qr' where id = %s", (session_id, number_id))
    conn.commit()
    return Seeded(tenant_id, number_id, session_id, instance, token, secret, jwt_key)


def fixture_files() -> list[Path]:
    """Every shared webhook fixture (the REST samples under api/ are not webhooks)."""
    return sorted(SHARED.glob("*.json"))


def local_fixture(name: str) -> bytes:
    return (LOCAL / name).read_bytes()


def envelope(event: str, data: Any, *, instance: str = INSTANCE, **extra: Any) -> bytes:
    """A webhook body shaped like Evolution's (contract §4.2)."""
    body = {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": "https://app.example.com/webhooks/evolution",
        "date_time": "2025-10-21T14:40:39.512Z",
        "sender": "5511912345678@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": TOKEN,
        **extra,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def incoming_text(
    text: str, msg_id: str | None = None, *, remote: str = "5521998765432@s.whatsapp.net", instance: str = INSTANCE
) -> bytes:
    return envelope(
        "messages.upsert",
        {
            "key": {"remoteJid": remote, "fromMe": False, "id": msg_id or uuid.uuid4().hex.upper()},
            "pushName": "Maria Souza",
            "status": "DELIVERY_ACK",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": 1761057639,
            "instanceId": "8f1c2d3e-4b5a-4c6d-9e8f-0a1b2c3d4e5f",
            "source": "android",
        },
        instance=instance,
    )


def make_jwt(key: str, *, iat: float | None = None, ttl: int = 600, **claims: Any) -> str:
    """Evolution's webhook JWT (contract §5): HS256, {iat, exp: iat+600, app: evolution, action: webhook}."""
    now = int(time.time() if iat is None else iat)
    payload = {"iat": now, "exp": now + ttl, "app": "evolution", "action": "webhook", **claims}
    return jwt.encode(payload, key, algorithm="HS256")


def hmac_hex(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def events(conn: Conn) -> list[dict[str, Any]]:
    conn.commit()  # see what other connections committed
    return conn.execute("select * from t_webhook_events order by received_at, id").fetchall()


def messages(conn: Conn) -> list[dict[str, Any]]:
    conn.commit()
    return conn.execute("select * from t_messages order by created_at, id").fetchall()


def one(conn: Conn, sql: str, *args: Any) -> dict[str, Any]:
    conn.commit()
    row = conn.execute(sql, args).fetchone()
    assert row is not None, sql
    return row


class SilentRedis:
    """A TCP server that accepts connections and never answers: a Redis that hangs (paused, or cut off by a
    network partition) rather than one that refuses connections."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._server.getsockname()[1]}/0"
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.set()

    def first_still_open(self) -> bool:
        """Whether the first client is still waiting for an answer (it has not given up and hung up)."""
        conn = self._conns[0]
        conn.setblocking(False)
        try:
            while conn.recv(65536):  # drain what it sent; b"" means it hung up
                pass
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which then ends
        self._server.close()
        for conn in self._conns:
            conn.close()
