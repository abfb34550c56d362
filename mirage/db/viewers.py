"""Metrics page sign-in: links (`mirage viewers link`), the sessions they open, revocation. Tokens are random
and only their SHA-256 is stored, so a database dump signs nobody in (docs/adr/0033-viewer-sign-in.md).

Looking a session up happens before the tenant is known, so it runs as the service; everything a page then
reads runs in the viewer's tenant session (mirage/db/page.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from mirage.errors import MirageError

TOKEN_BYTES = 32  # 256 bits from the OS's CSPRNG, url-safe base64 (43 characters)


class ViewerError(MirageError):
    """A sign-in link cannot be made or revoked (unknown tenant or member)."""

    exit_code = 2


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: their tenant, their membership, and how strongly they signed in."""

    tenant_id: UUID
    user_id: UUID  # t_users.id
    sub: UUID  # the JWT subject the tenant session carries (auth user when linked, else t_users.id)
    email: str
    role: str  # admin | member | viewer
    aal: str  # aal1 | aal2
    session_id: UUID | None = None  # the cookie session (None: a bearer access token)

    @property
    def sees_bodies(self) -> bool:
        return self.aal == "aal2"

    @property
    def operator(self) -> bool:
        return self.aal == "aal2" and self.role == "admin"


@dataclass(frozen=True)
class Link:
    token: str  # shown once, never stored
    link_id: UUID
    expires_at: datetime


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]


def _member(conn: Conn, slug: str, email: str) -> dict[str, Any]:
    tenant = conn.execute("select id from t_tenants where slug = %s and archived_at is null", (slug,)).fetchone()
    if tenant is None:
        raise ViewerError(f"unknown tenant {slug!r}")
    row = conn.execute(
        "select id, tenant_id from t_users where tenant_id = %s and email = %s", (tenant["id"], email.strip().lower())
    ).fetchone()
    if row is None:
        raise ViewerError(f"{email} is not a member or viewer of {slug}: add them to tenant.yaml and apply")
    return dict(row)


def create_link(conn: Conn, slug: str, email: str, ttl: timedelta, *, created_by: str, now: datetime) -> Link:
    """A new sign-in link for a member of `slug` (service session: t_viewer_links is service-only)."""
    user = _member(conn, slug, email)
    token = new_token()
    expires = now + ttl
    row = conn.execute(
        "insert into t_viewer_links (tenant_id, user_id, token_hash, created_by, expires_at)"
        " values (%s, %s, %s, %s, %s) returning id",
        (user["tenant_id"], user["id"], token_hash(token), created_by, expires),
    ).fetchone()
    if row is None:  # insert ... returning always returns the row; a policy would raise instead
        raise ViewerError(f"could not store a link for {email}")
    return Link(token=token, link_id=row["id"], expires_at=expires)


def revoke(conn: Conn, slug: str, email: str, *, now: datetime) -> tuple[int, int]:
    """Revoke every link and session of a member; (links, sessions) revoked."""
    user = _member(conn, slug, email)
    links = conn.execute(
        "update t_viewer_links set revoked_at = %s where tenant_id = %s and user_id = %s and revoked_at is null",
        (now, user["tenant_id"], user["id"]),
    ).rowcount
    sessions = conn.execute(
        "update t_viewer_sessions set revoked_at = %s where tenant_id = %s and user_id = %s and revoked_at is null",
        (now, user["tenant_id"], user["id"]),
    ).rowcount
    return links, sessions


_LINK_SQL = """
select l.id as link_id, l.tenant_id, l.user_id, l.expires_at
  from t_viewer_links l
  join t_tenants t on t.id = l.tenant_id and t.archived_at is null
 where l.token_hash = %s and l.revoked_at is null and l.expires_at > %s
"""


async def open_session(conn: AConn, token: str, ttl: timedelta, now: datetime) -> str | None:
    """Exchange a link token for a new session; the session's cookie value, or None (unknown, expired, revoked).

    The session ends with the link at the latest. Service session: the caller opened it.
    """
    cur = await conn.execute(_LINK_SQL, (token_hash(token), now))
    link = await cur.fetchone()
    if link is None:
        return None
    cookie = new_token()
    expires = min(now + ttl, link["expires_at"])
    await conn.execute(
        "insert into t_viewer_sessions (tenant_id, user_id, link_id, session_hash, aal, expires_at)"
        " values (%s, %s, %s, %s, 'aal1', %s)",
        (link["tenant_id"], link["user_id"], link["link_id"], token_hash(cookie), expires),
    )
    await conn.execute("update t_viewer_links set last_used_at = %s where id = %s", (now, link["link_id"]))
    return cookie


_SESSION_SQL = """
select s.id as session_id, s.tenant_id, s.user_id, s.aal, u.email, u.role, u.auth_user_id
  from t_viewer_sessions s
  join t_users u on u.tenant_id = s.tenant_id and u.id = s.user_id
  join t_tenants t on t.id = s.tenant_id and t.archived_at is null
  left join t_viewer_links l on l.tenant_id = s.tenant_id and l.id = s.link_id
 where s.session_hash = %s and s.revoked_at is null and s.expires_at > %s
   and (s.link_id is null or (l.revoked_at is null and l.expires_at > %s))
"""


async def session_viewer(conn: AConn, cookie: str, now: datetime) -> Viewer | None:
    """The viewer of a live session cookie, or None. Service session (the tenant is not known yet)."""
    cur = await conn.execute(_SESSION_SQL, (token_hash(cookie), now, now))
    row = await cur.fetchone()
    if row is None:
        return None
    return Viewer(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        sub=row["auth_user_id"] or row["user_id"],
        email=row["email"],
        role=row["role"],
        aal=row["aal"],
        session_id=row["session_id"],
    )


async def end_session(conn: AConn, cookie: str, now: datetime) -> None:
    await conn.execute(
        "update t_viewer_sessions set revoked_at = %s where session_hash = %s and revoked_at is null",
        (now, token_hash(cookie)),
    )


async def member_by_auth_user(conn: AConn, tenant_id: UUID, auth_user_id: UUID) -> dict[str, Any] | None:
    """The live membership a Supabase access token names (its tenant claim and subject), or None."""
    cur = await conn.execute(
        "select u.id, u.email, u.role from t_users u join t_tenants t on t.id = u.tenant_id and t.archived_at is null"
        " where u.tenant_id = %s and u.auth_user_id = %s",
        (tenant_id, auth_user_id),
    )
    row = await cur.fetchone()
    return dict(row) if row else None
