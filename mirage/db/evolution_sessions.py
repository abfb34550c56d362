"""The Evolution session aggregate in Postgres: numbers to provision, per-tenant Evolution access, t_sessions rows.

All SQL on t_sessions lives here, and so does the one decryption of its secret columns (`_decrypt_secrets`):
the lifecycle reads a whole `Session`, the webhook ingest a `SessionAuth` (who an instance is and the
secrets its webhooks must prove), both from the same code.

Every secret column of t_sessions is a MultiFernet ciphertext bound to (t_sessions, session id, field) with
field in token | webhook_secret | jwt_key | last_qr | pairing_code (last_qr is the raw QR string, `2@…`, which
any renderer turns into an image); `token_hash` finds a session by token without decrypting. Runs on the
service (owner) connection, which RLS does not restrict.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg

from mirage.crypto import Keyring, keyring, secret_hash
from mirage.errors import PermanentError, TemporaryError
from mirage.settings import Settings, get_settings

Conn = psycopg.Connection[dict[str, Any]]
SESSIONS = "t_sessions"


@dataclass(frozen=True)
class NumberRow:
    """A declared number and where its session stands."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    key: str
    wa_number: str
    active: bool
    status: str
    session_id: uuid.UUID | None

    @property
    def target(self) -> str:
        return f"{self.tenant_slug}/{self.key}"


@dataclass(frozen=True, repr=False)
class EvolutionAccess:
    """Which Evolution server a tenant uses and its global key (never printed)."""

    base_url: str
    api_key: str | None

    def __repr__(self) -> str:
        return f"EvolutionAccess({self.base_url!r})"


@dataclass(repr=False)
class Session:
    """A t_sessions row with its secrets decrypted."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    number_id: uuid.UUID | None
    instance_name: str
    instance_id: str | None
    base_url: str
    token: str | None
    webhook_secret: str | None
    jwt_key: str | None
    state: str
    qr_count: int
    deprovisioned_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Session({self.instance_name!r}, state={self.state!r})"


class QrLike(Protocol):
    """A QR as Evolution shows it (`mirage.integrations.evolution.models.QrCode` is one)."""

    @property
    def code(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def pairing_code(self) -> str | None: ...


@dataclass(frozen=True, repr=False)
class SessionAuth:
    """Who an instance belongs to and the secrets its webhooks must prove; repr never shows the secrets."""

    session_id: uuid.UUID
    tenant_id: uuid.UUID
    number_id: uuid.UUID | None
    instance_name: str
    own_number: str | None  # E.164 of the session's number, when it has one
    webhook_secret: bytes | None
    jwt_key: bytes | None

    def __repr__(self) -> str:
        return f"SessionAuth(instance={self.instance_name!r}, session={self.session_id}, tenant={self.tenant_id})"


def new_secret() -> str:
    """A random secret for the webhook header, the JWT key or an instance token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


_NUMBER_SQL = """
    select n.id, n.tenant_id, t.slug as tenant_slug, n.key, n.wa_number, n.active, n.status::text as status,
           n.session_id
    from t_numbers n join t_tenants t on t.id = n.tenant_id
"""


@contextlib.contextmanager
def number_lock(conn: Conn, number_id: uuid.UUID, *, wait_s: float = 0.0) -> Iterator[None]:
    """A session-level advisory lock per number; TemporaryError if another provisioner holds it past `wait_s`."""
    key = f"mirage:provision:{number_id}"
    deadline = time.monotonic() + wait_s
    while True:
        row = conn.execute("select pg_try_advisory_lock(hashtextextended(%s, 0)) as ok", (key,)).fetchone()
        conn.commit()
        if row and row["ok"]:
            break
        if time.monotonic() >= deadline:
            raise TemporaryError(f"number {number_id} is being provisioned by another process", delay=5)
        time.sleep(0.2)
    try:
        yield
    finally:
        conn.rollback()
        conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        conn.commit()


def load_number(conn: Conn, number_id: str | uuid.UUID) -> NumberRow | None:
    row = conn.execute(_NUMBER_SQL + " where n.id = %s", (str(number_id),)).fetchone()
    return NumberRow(**row) if row else None


def find_number(conn: Conn, tenant_slug: str, number_key: str) -> NumberRow | None:
    row = conn.execute(_NUMBER_SQL + " where t.slug = %s and n.key = %s", (tenant_slug, number_key)).fetchone()
    return NumberRow(**row) if row else None


def evolution_access(conn: Conn, tenant_id: uuid.UUID, settings: Settings | None = None) -> EvolutionAccess:
    """The tenant's evolution.base_url / api_key, else EVOLUTION_BASE_URL / EVOLUTION_API_KEY."""
    s = settings or get_settings()
    row = conn.execute(
        """
        select st.evolution_base_url, ts.id as secret_id, ts.value_enc
        from t_tenants t
        left join t_settings_tenant st on st.tenant_id = t.id
        left join t_tenant_secrets ts on ts.tenant_id = t.id and ts.name = 'evolution_api_key'
        where t.id = %s
        """,
        (str(tenant_id),),
    ).fetchone()
    base_url = (row or {}).get("evolution_base_url") or s.evolution_base_url
    if not base_url:
        raise PermanentError("no Evolution URL: set evolution.base_url in tenant.yaml or EVOLUTION_BASE_URL")
    api_key: str | None = None
    if row and row.get("value_enc") is not None:
        api_key = keyring().decrypt(row["value_enc"], table="t_tenant_secrets", row_id=row["secret_id"], field="value")
    elif s.evolution_api_key is not None:
        api_key = s.evolution_api_key.get_secret_value()
    return EvolutionAccess(str(base_url), api_key)


_SESSION_COLUMNS = """
    id, tenant_id, number_id, instance_name, instance_id, base_url, token_enc, webhook_secret_enc, jwt_key_enc,
    state, qr_count, deprovisioned_at
"""


def _decrypt_secrets(row: dict[str, Any], ring: Keyring, *fields: str) -> dict[str, str | None]:
    """The t_sessions row's `<field>_enc` columns decrypted, bound to (t_sessions, row id, field)."""
    sid = row["id"]
    return {
        f: None if row[f"{f}_enc"] is None else ring.decrypt(row[f"{f}_enc"], table=SESSIONS, row_id=sid, field=f)
        for f in fields
    }


def _session(row: dict[str, Any]) -> Session:
    secrets_ = _decrypt_secrets(row, keyring(), "token", "webhook_secret", "jwt_key")
    return Session(
        id=row["id"],
        tenant_id=row["tenant_id"],
        number_id=row["number_id"],
        instance_name=row["instance_name"],
        instance_id=row["instance_id"],
        base_url=row["base_url"],
        token=secrets_["token"],
        webhook_secret=secrets_["webhook_secret"],
        jwt_key=secrets_["jwt_key"],
        state=row["state"],
        qr_count=row["qr_count"],
        deprovisioned_at=row["deprovisioned_at"],
    )


def load_session(conn: Conn, session_id: str | uuid.UUID) -> Session | None:
    row = conn.execute(f"select {_SESSION_COLUMNS} from t_sessions where id = %s", (str(session_id),)).fetchone()
    return _session(row) if row else None


def live_session(conn: Conn, number_id: uuid.UUID) -> Session | None:
    """The number's current session (not deprovisioned), if any."""
    row = conn.execute(
        f"select {_SESSION_COLUMNS} from t_sessions where number_id = %s and deprovisioned_at is null",
        (str(number_id),),
    ).fetchone()
    return _session(row) if row else None


# The number's live session as columns of a larger query (the send job's context, the outbox claim), so sending
# needs no query of its own: `live_session_join(number)` joins it as `ls`, LIVE_SESSION_COLUMNS selects what
# `send_access` reads and decrypts. The same rows as `live_session` (t_sessions_live_number_idx: one per number).
LIVE_SESSION_COLUMNS = "ls.id as ls_id, ls.instance_name as ls_instance_name, ls.base_url as ls_base_url, ls.token_enc"


def live_session_join(number: str) -> str:
    """`left join` of the live session of the number whose id is the SQL expression `number`, as `ls`."""
    return f"left join t_sessions ls on ls.number_id = {number} and ls.deprovisioned_at is null"


@dataclass(frozen=True, repr=False)
class SendAccess:
    """What a request as a number needs: its live session's Evolution server, instance and token (never printed)."""

    session_id: uuid.UUID
    base_url: str
    instance_name: str
    token: str | None

    def __repr__(self) -> str:
        return f"SendAccess({self.instance_name!r}, {self.base_url!r})"


def send_access(row: dict[str, Any]) -> SendAccess | None:
    """The live session read through LIVE_SESSION_COLUMNS, its token decrypted; None when the number has none."""
    if row.get("ls_id") is None:
        return None
    token_enc = row.get("token_enc")
    token = None
    if token_enc is not None:
        token = keyring().decrypt(token_enc, table=SESSIONS, row_id=row["ls_id"], field="token")
    return SendAccess(row["ls_id"], str(row["ls_base_url"]), str(row["ls_instance_name"]), token)


_AUTH_SQL = """
select s.id, s.tenant_id, s.number_id, s.instance_name, s.webhook_secret_enc, s.jwt_key_enc, n.wa_number
  from t_sessions s
  left join t_numbers n on n.tenant_id = s.tenant_id and n.id = s.number_id
 where s.instance_name = %s
"""


def load_auth(conn: psycopg.Connection[Any], instance_name: str, ring: Keyring) -> SessionAuth | None:
    """The webhook credentials of `instance_name`, secrets decrypted (CryptoError if a key is missing), or None."""
    row = conn.execute(_AUTH_SQL, (instance_name,)).fetchone()
    return None if row is None else _auth(row, ring)


async def load_all_auth_async(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every session's webhook credentials, still encrypted (`auth_from_row` decrypts one): the web directory.

    Deprovisioned sessions are included: their late message events still authenticate.
    """
    cur = await conn.execute(_AUTH_SQL.replace(" where s.instance_name = %s", ""))
    return await cur.fetchall()


def auth_from_row(row: dict[str, Any], ring: Keyring) -> SessionAuth:
    """A SessionAuth from a row of `load_all_auth_async` (CryptoError if a key is missing)."""
    return _auth(row, ring)


def _auth(row: dict[str, Any], ring: Keyring) -> SessionAuth:
    secrets_ = _decrypt_secrets(row, ring, "webhook_secret", "jwt_key")

    def as_bytes(value: str | None) -> bytes | None:
        return None if value is None else value.encode("utf-8")

    return SessionAuth(
        session_id=row["id"],
        tenant_id=row["tenant_id"],
        number_id=row["number_id"],
        instance_name=row["instance_name"],
        own_number=row["wa_number"],
        webhook_secret=as_bytes(secrets_["webhook_secret"]),
        jwt_key=as_bytes(secrets_["jwt_key"]),
    )


def insert_session(conn: Conn, number: NumberRow, *, instance_name: str, base_url: str) -> Session:
    """A new session row with fresh token, webhook secret and JWT key (encrypted), linked to the number.

    Mirage chooses the instance token itself and passes it to `create`, so it is stored before Evolution
    knows it: a crash between the two calls leaves a session that the next run completes.
    """
    ring = keyring()
    sid = uuid.uuid4()
    token, secret, jwt_key = new_secret(), new_secret(), new_secret()

    def enc(value: str, name: str) -> bytes:
        return ring.encrypt(value, table=SESSIONS, row_id=sid, field=name)

    # instance_name is unique: a deprovisioned session of the same number gives its name up (history keeps it
    # under a suffixed name) so the number can be linked again.
    conn.execute(
        "update t_sessions set instance_name = instance_name || '~' || left(id::text, 8), updated_at = now()"
        " where instance_name = %s and deprovisioned_at is not null",
        (instance_name,),
    )
    conn.execute(
        """
        insert into t_sessions (id, tenant_id, number_id, instance_name, base_url, token_enc, token_hash,
                                webhook_secret_enc, jwt_key_enc, state)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'close')
        """,
        (
            str(sid),
            str(number.tenant_id),
            str(number.id),
            instance_name,
            base_url,
            enc(token, "token"),
            secret_hash(token),
            enc(secret, "webhook_secret"),
            enc(jwt_key, "jwt_key"),
        ),
    )
    conn.execute(
        "update t_numbers set session_id = %s, status = 'provisioning', status_reason = null, updated_at = now()"
        " where id = %s",
        (str(sid), str(number.id)),
    )
    conn.commit()
    return Session(
        id=sid,
        tenant_id=number.tenant_id,
        number_id=number.id,
        instance_name=instance_name,
        instance_id=None,
        base_url=base_url,
        token=token,
        webhook_secret=secret,
        jwt_key=jwt_key,
        state="close",
        qr_count=0,
        deprovisioned_at=None,
    )


def set_token(conn: Conn, session: Session, token: str) -> None:
    """Replace the instance token (adopting an instance Evolution already had under this name)."""
    enc = keyring().encrypt(token, table=SESSIONS, row_id=session.id, field="token")
    conn.execute(
        "update t_sessions set token_enc = %s, token_hash = %s, updated_at = now() where id = %s",
        (enc, secret_hash(token), str(session.id)),
    )
    conn.commit()
    session.token = token


def number_status(state: str, *, has_qr: bool) -> str:
    """Evolution connection state -> t_numbers.status."""
    if state == "connecting":
        return "qr" if has_qr else "connecting"
    return state if state in ("open", "close", "refused") else "error"


def record_state(
    conn: Conn,
    session: Session,
    state: str,
    *,
    instance_id: str | None = None,
    qr: QrLike | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> None:
    """Store what Evolution said: session state / last_seen (and the latest QR, encrypted); the number's status."""
    ring = keyring()
    params: dict[str, Any] = {"id": str(session.id), "state": state, "instance_id": instance_id}
    qr_sql = ""
    if qr is not None:
        qr_sql = ", last_qr_enc = %(qr)s, last_qr_at = now(), qr_count = %(count)s, pairing_code_enc = %(pairing)s"
        params |= {
            "qr": ring.encrypt(qr.code, table=SESSIONS, row_id=session.id, field="last_qr"),
            "count": qr.count,
            "pairing": (
                ring.encrypt(qr.pairing_code, table=SESSIONS, row_id=session.id, field="pairing_code")
                if qr.pairing_code
                else None
            ),
        }
    elif state in ("open", "close", "refused"):
        # A QR is only worth keeping while someone can scan it.
        qr_sql = ", last_qr_enc = null, pairing_code_enc = null, qr_count = 0"
    conn.execute(
        f"""
        update t_sessions set state = %(state)s, last_seen = now(), updated_at = now(),
               instance_id = coalesce(%(instance_id)s, instance_id){qr_sql}
        where id = %(id)s
        """,
        params,
    )
    session.state = state
    if session.number_id is not None:
        new_status = status or number_status(state, has_qr=qr is not None or session.qr_count > 0)
        conn.execute(
            """
            update t_numbers set status = %(status)s::number_status, status_reason = %(reason)s,
                   connected_at = case when %(status)s = 'open' and status <> 'open' then now()
                                       when %(status)s = 'open' then connected_at end,
                   updated_at = now()
            where id = %(number)s and session_id = %(session)s
            """,
            {"status": new_status, "reason": reason, "number": str(session.number_id), "session": str(session.id)},
        )
    if qr is not None:
        session.qr_count = qr.count
    conn.commit()


def mark_deprovisioned(conn: Conn, session: Session, *, status: str = "removed") -> None:
    """The instance is gone: forget its token and QR; webhook secrets stay so late events still authenticate."""
    conn.execute(
        """
        update t_sessions set deprovisioned_at = now(), state = 'close', token_enc = null, token_hash = null,
               last_qr_enc = null, pairing_code_enc = null, qr_count = 0, updated_at = now()
        where id = %s
        """,
        (str(session.id),),
    )
    conn.execute(
        "update t_numbers set session_id = null, status = %s::number_status, connected_at = null, updated_at = now()"
        " where session_id = %s",
        (status, str(session.id)),
    )
    conn.commit()
    session.token = None
