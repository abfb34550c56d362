"""Webhook authentication per instance: the secret header, Evolution's JWT, or an HMAC of the body.

Evolution does not sign bodies (contract §5). Mirage configures every instance with `x-webhook-secret` and a
`jwt_key` (Evolution turns it into `Authorization: Bearer <HS256 JWT>`); a signing proxy may instead send
`x-signature: <hex HMAC-SHA256 of the raw body>` keyed with the webhook secret. Any one of them is enough.
Comparisons are constant-time on bytes, so a header that is not ASCII is simply a wrong value.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence

import jwt
from jwt.types import Options

from mirage.db.evolution_sessions import SessionAuth

SECRET_HEADER = b"x-webhook-secret"
SIGNATURE_HEADER = b"x-signature"
JWT_LEEWAY_S = 30  # clock skew between Evolution's host and ours
JWT_OPTIONS: Options = {"require": ["exp", "iat"], "enforce_minimum_key_length": True}

Headers = Sequence[tuple[bytes, bytes]]


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def verify(auth: SessionAuth, headers: Headers, body: bytes) -> str | None:
    """How the request proved it comes from this instance's Evolution (`header`, `hmac`, `jwt`), or None."""
    secret = auth.webhook_secret
    given = _header(headers, SECRET_HEADER)
    if secret and given is not None and hmac.compare_digest(given, secret):
        return "header"
    signature = _header(headers, SIGNATURE_HEADER)
    if secret and signature is not None:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
        if hmac.compare_digest(signature.strip().lower().removeprefix(b"sha256="), expected):
            return "hmac"
    bearer = _header(headers, b"authorization")
    if auth.jwt_key and bearer is not None and bearer[:7].lower() == b"bearer " and jwt_valid(bearer[7:], auth.jwt_key):
        return "jwt"
    return None


def jwt_valid(token: bytes, key: bytes) -> bool:
    """Evolution's webhook JWT: HS256 only, signed with `key`, not expired, `app: evolution`, `action: webhook`.

    Keys shorter than 32 bytes are refused (RFC 7518 §3.2), so a weak jwt_key can never authenticate.
    """
    try:
        claims = jwt.decode(
            token.strip().decode("ascii"), key, algorithms=["HS256"], options=JWT_OPTIONS, leeway=JWT_LEEWAY_S
        )
    except (jwt.PyJWTError, UnicodeDecodeError, ValueError, TypeError):
        return False
    return isinstance(claims, dict) and claims.get("app") == "evolution" and claims.get("action") == "webhook"


class AuthCache:
    """Each instance's decrypted auth material, kept for `ttl` seconds so a request neither queries nor decrypts.

    Entries are replaced after `ttl`, dropped by `invalidate()`, and reloaded early (at most once per
    `refresh_after` seconds) when a request fails to authenticate, so a rotated secret works at once.
    Concurrent misses for one instance share one load.
    """

    def __init__(
        self,
        load: Callable[[str], Awaitable[SessionAuth | None]],
        ttl: float = 30.0,
        refresh_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.refresh_after = refresh_after
        self._clock = clock
        self._entries: dict[str, tuple[float, SessionAuth]] = {}
        self._loading: dict[str, asyncio.Task[SessionAuth | None]] = {}

    def peek(self, instance: str) -> SessionAuth | None:
        """A fresh cached entry, without loading."""
        hit = self._entries.get(instance)
        if hit is not None and self._clock() - hit[0] < self.ttl:
            return hit[1]
        return None

    async def get(self, instance: str, max_age: float | None = None) -> SessionAuth | None:
        """The entry, loaded when missing or older than `max_age` (default ttl)."""
        limit = self.ttl if max_age is None else min(self.ttl, max_age)
        hit = self._entries.get(instance)
        if hit is not None and self._clock() - hit[0] < limit:
            return hit[1]
        loop = asyncio.get_running_loop()
        task = self._loading.get(instance)
        if task is None or task.get_loop() is not loop:
            task = self._loading[instance] = loop.create_task(self._fetch(instance))
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)  # a waiter that goes away does not cancel the others' load

    async def _fetch(self, instance: str) -> SessionAuth | None:
        try:
            auth = await self._load(instance)
        finally:
            if self._loading.get(instance) is asyncio.current_task():
                del self._loading[instance]
        if auth is None:
            self._entries.pop(instance, None)
        else:
            self._entries[instance] = (self._clock(), auth)
        return auth

    def age(self, instance: str) -> float:
        hit = self._entries.get(instance)
        return float("inf") if hit is None else self._clock() - hit[0]

    def invalidate(self, instance: str | None = None) -> None:
        if instance is None:
            self._entries.clear()
        else:
            self._entries.pop(instance, None)


def _retrieve(task: asyncio.Task[SessionAuth | None]) -> None:
    """Mark a failed load's error as seen, should every request waiting for it have gone away."""
    if not task.cancelled():
        task.exception()
