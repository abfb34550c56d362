"""Webhook authentication per instance: the secret header, Evolution's JWT, or an HMAC of the body.

Evolution does not sign bodies (contract §5). Mirage configures every instance with `x-webhook-secret` and a
`jwt_key` (Evolution turns it into `Authorization: Bearer <HS256 JWT>`); a signing proxy may instead send
`x-signature: <hex HMAC-SHA256 of the raw body>` keyed with the webhook secret. Any one of them is enough.
Comparisons are constant-time on bytes, so a header that is not ASCII is simply a wrong value.

Authentication comes before parsing (`identify`): the secret header finds its session by digest, the others are
checked against the instance the raw body claims. An unknown instance and a wrong credential take the same path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

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
    return _verify_signed(auth, _header(headers, SIGNATURE_HEADER), _header(headers, b"authorization"), body)


def _verify_signed(auth: SessionAuth, signature: bytes | None, bearer: bytes | None, body: bytes) -> str | None:
    """The credentials that need to know the instance first: an HMAC of the body, Evolution's JWT."""
    secret = auth.webhook_secret
    if secret and signature is not None:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
        if hmac.compare_digest(signature.strip().lower().removeprefix(b"sha256="), expected):
            return "hmac"
    if auth.jwt_key and bearer is not None and bearer[:7].lower() == b"bearer " and jwt_valid(bearer[7:], auth.jwt_key):
        return "jwt"
    return None


def secret_digest(secret: bytes) -> bytes:
    """What the directory indexes a webhook secret by (never the secret itself)."""
    return hashlib.sha256(secret).digest()


# The instance names a body claims, found without parsing it: `"instance": "<name>"` anywhere (real bodies have
# one, at the top). Only used to pick whose credentials to check; the parsed body must then name the same one.
_INSTANCE_CLAIM = re.compile(rb'"instance"\s*:\s*"([^"\\\x00-\x1f]{1,128})"')
MAX_CLAIMS = 4

# Checked when a body names no known instance, so an unknown name costs the same work as a wrong credential.
_DECOY = SessionAuth(
    session_id=uuid.UUID(int=0),
    tenant_id=uuid.UUID(int=0),
    number_id=None,
    instance_name="",
    own_number=None,
    webhook_secret=secrets.token_urlsafe(32).encode(),
    jwt_key=secrets.token_urlsafe(32).encode(),
)


def claimed_instances(body: bytes) -> list[str]:
    """Up to MAX_CLAIMS distinct instance names the raw body claims, in order."""
    names: list[str] = []
    for m in _INSTANCE_CLAIM.finditer(body):
        name = m.group(1).decode("utf-8", "replace")
        if name not in names:
            names.append(name)
            if len(names) == MAX_CLAIMS:
                break
    return names


@dataclass(frozen=True)
class Directory:
    """Every session's auth material, by instance name and by the digest of its webhook secret."""

    by_name: Mapping[str, SessionAuth]
    by_secret: Mapping[bytes, SessionAuth]
    unreadable: frozenset[str] = frozenset()  # sessions whose secrets could not be decrypted (a key is missing)

    @classmethod
    def of(cls, sessions: Sequence[SessionAuth], unreadable: Sequence[str] = ()) -> Directory:
        by_secret = {secret_digest(a.webhook_secret): a for a in sessions if a.webhook_secret}
        return cls({a.instance_name: a for a in sessions}, by_secret, frozenset(unreadable))


EMPTY = Directory({}, {})


def presents_credentials(headers: Headers) -> bool:
    """Whether the request carries anything that could authenticate it (else: 401 without looking further)."""
    return any(key.lower() in _CREDENTIAL_HEADERS for key, _ in headers)


_CREDENTIAL_HEADERS = frozenset((SECRET_HEADER, SIGNATURE_HEADER, b"authorization"))


def identify(directory: Directory, headers: Headers, body: bytes) -> tuple[SessionAuth, str] | None:
    """Whose Evolution sent this, and how it proved it, before the body is parsed; None for anyone else.

    The secret header names its session on its own (looked up by digest): an unknown instance and a wrong
    secret are then the same miss, and the body is never read. An HMAC or a JWT is checked against the
    session the raw body claims (or a decoy, for a name nobody has: the same work either way).
    """
    given = _header(headers, SECRET_HEADER)
    if given is not None:
        auth = directory.by_secret.get(secret_digest(given))
        if auth is not None and auth.webhook_secret and hmac.compare_digest(given, auth.webhook_secret):
            return auth, "header"
    signature, bearer = _header(headers, SIGNATURE_HEADER), _header(headers, b"authorization")
    if signature is None and bearer is None:
        return None
    for name in claimed_instances(body) or [""]:
        auth = directory.by_name.get(name)
        method = _verify_signed(auth or _DECOY, signature, bearer, body)
        if auth is not None and method is not None:
            return auth, method
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
    """Every instance's decrypted auth material, in process, as one `Directory` loaded by one query.

    The directory is replaced after `ttl` seconds, at once after `invalidate()`, and early when a request's
    credential matches nothing (`refresh()`), at most once per `refresh_after` seconds whatever the requests:
    a miss sooner than that waits for the next allowed load instead of being refused, so a new session's first
    webhooks (Evolution does not retry a 401) or a rotated secret are accepted within a second, and unknown
    names cost no query each (only a slower 401). Concurrent loads share one.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[Directory]],
        ttl: float = 30.0,
        refresh_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.refresh_after = refresh_after
        self._clock = clock
        self._sleep = sleep
        self._directory = EMPTY
        self._loaded_at = -math.inf
        self._loading: asyncio.Task[Directory] | None = None

    def age(self) -> float:
        return self._clock() - self._loaded_at

    async def directory(self) -> Directory:
        """The current directory, loaded first when missing or older than `ttl`."""
        if self.age() < self.ttl:
            return self._directory
        return await self._reload()

    async def refresh(self) -> None:
        """After a miss: a directory loaded from a query started after the miss, waiting first when the last load
        is younger than `refresh_after` (the misses of that second all wake together and share one load)."""
        missed_at = self._clock()
        wait = self.refresh_after - self.age()
        if wait > 0:
            await self._sleep(wait)
        for _ in range(2):  # a load already running may have started before the miss: then one more
            if self._loaded_at >= missed_at:
                return
            await self._reload()

    async def _reload(self) -> Directory:
        loop = asyncio.get_running_loop()
        task = self._loading
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._loading = loop.create_task(self._fetch())
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)  # a waiter that goes away does not cancel the others' load

    async def _fetch(self) -> Directory:
        started = self._clock()  # the directory is as old as its query: what was committed before it started
        directory = await self._load()
        self._directory, self._loaded_at = directory, started
        return directory

    def invalidate(self) -> None:
        """Load again on next use (a stored event failed: a session deleted and recreated is the usual cause)."""
        self._loaded_at = -math.inf


def _retrieve(task: asyncio.Task[Directory]) -> None:
    """Mark a failed load's error as seen, should every request waiting for it have gone away."""
    if not task.cancelled():
        task.exception()
