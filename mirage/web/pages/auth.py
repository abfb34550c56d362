"""Who is asking: a session cookie (opened by a sign-in link or an exchanged access token) or a Supabase Auth
access token in `Authorization: Bearer`. Tokens are never logged, never put in a URL the server sees, and the
sign-in route is rate limited in Redis (docs/adr/0033-viewer-sign-in.md)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import jwt
from starlette.requests import Request
from starlette.responses import Response

from mirage.db import viewers
from mirage.db.page import service_block
from mirage.db.viewers import Viewer
from mirage.web.pages.state import PageState

log = logging.getLogger(__name__)

COOKIE = "mirage_session"
SESSION_TTL = timedelta(days=7)  # a session never outlives its link either
SIGNIN_LIMIT = 10  # attempts per client address per window
SIGNIN_WINDOW_S = 60
JWT_LEEWAY_S = 30


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value))
    except (TypeError, ValueError):
        return None


def access_token_claims(token: str, secret: str, audience: str) -> dict[str, Any] | None:
    """The claims of a Supabase Auth access token: HS256 with the project's JWT secret, `exp` and `aud` checked."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience,
            options={"require": ["exp", "sub", "aud"]},
            leeway=JWT_LEEWAY_S,
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


async def _token_viewer(state: PageState, token: str) -> tuple[Viewer, datetime] | None:
    secret = state.settings.supabase_jwt_secret
    if secret is None:
        return None
    claims = access_token_claims(token, secret.get_secret_value(), state.settings.supabase_jwt_audience)
    if claims is None:
        return None
    tenant, sub = _uuid(claims.get("app.tenant_id")), _uuid(claims.get("sub"))
    if tenant is None or sub is None:
        return None
    async with service_block(await state.pool()) as conn:
        member = await viewers.member_by_auth_user(conn, tenant, sub)
    if member is None:  # removed from the tenant since the token was issued
        return None
    aal = "aal2" if claims.get("aal") in ("aal2", "aal3") else "aal1"
    viewer = Viewer(tenant, member["id"], sub, member["email"], member["role"], aal)
    return viewer, datetime.fromtimestamp(int(claims["exp"]), UTC)


async def current_viewer(request: Request, state: PageState, now: datetime) -> Viewer | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        found = await _token_viewer(state, header[7:].strip())
        return found[0] if found else None
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    async with service_block(await state.pool()) as conn:
        return await viewers.session_viewer(conn, cookie, now)


async def sign_in(state: PageState, token: str, now: datetime) -> str | None:
    """A session cookie value for a link token or a Supabase access token, or None."""
    token = token.strip()
    if not token or len(token) > 8192:
        return None
    if token.count(".") == 2:  # a JWT: a Supabase access token
        found = await _token_viewer(state, token)
        if found is None:
            return None
        viewer, expires = found
        cookie = viewers.new_token()
        async with service_block(await state.pool()) as conn:
            await conn.execute(
                "insert into t_viewer_sessions (tenant_id, user_id, session_hash, aal, expires_at)"
                " values (%s, %s, %s, %s, %s)",
                (
                    viewer.tenant_id,
                    viewer.user_id,
                    viewers.token_hash(cookie),
                    viewer.aal,
                    min(expires, now + SESSION_TTL),
                ),
            )
        return cookie
    async with service_block(await state.pool()) as conn:
        return await viewers.open_session(conn, token, SESSION_TTL, now)


async def sign_out(state: PageState, request: Request, now: datetime) -> None:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        async with service_block(await state.pool()) as conn:
            await viewers.end_session(conn, cookie, now)


def set_cookie(response: Response, value: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure)


async def allow_attempt(state: PageState, client: str) -> bool:
    """At most SIGNIN_LIMIT sign-in attempts per client address per minute (a fixed window in Redis)."""
    key = f"mirage:page:signin:{client}"
    redis = await state.redis()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=SIGNIN_WINDOW_S, nx=True)  # opens the window (Redis 6 has no EXPIRE ... NX)
        pipe.incr(key)
        _, count = await pipe.execute()
    if int(count) > SIGNIN_LIMIT:
        log.warning("sign-in rate limited", extra={"attempts": int(count)})
        return False
    return True


FORM_MAX = 16_384


async def form_token(request: Request) -> str:
    """The `token` field of the sign-in form (application/x-www-form-urlencoded, at most 16 KiB)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX:
            return ""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        return ""
    values = fields.get("token") or [""]
    return values[0]


def same_origin(request: Request) -> bool:
    """A form POST must come from our own pages: Sec-Fetch-Site, else the Origin header, when the browser sends one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
