"""Which Postgres and Redis this process uses: the URLs from the environment, or the embedded servers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mirage.settings import Settings, get_settings


@dataclass(frozen=True)
class Backend:
    """A resolved backing service: its URL (secret-bearing) and whether Mirage embeds it."""

    url: str
    embedded: bool

    @property
    def masked(self) -> str:
        return mask_url(self.url)


_PASSWORD = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|sslpassword)=)[^&]+")


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***` (user, host, port and database stay readable)."""
    url = _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}" if m["pw"] else m[0], url)
    return _QUERY_SECRET.sub(r"\1***", url)


def postgres_backend(settings: Settings | None = None) -> Backend:
    """DATABASE_URL when set; otherwise start or reuse the embedded Postgres of the state folder."""
    s = settings or get_settings()
    if s.database_url is not None:
        return Backend(s.database_url.get_secret_value(), embedded=False)
    return _embedded_postgres(str(s.state_dir.resolve()))


def redis_backend(settings: Settings | None = None) -> Backend:
    """REDIS_URL when set; otherwise start or reuse the embedded Redis of the state folder."""
    s = settings or get_settings()
    if s.redis_url is not None:
        return Backend(s.redis_url.get_secret_value(), embedded=False)
    return _embedded_redis(str(s.state_dir.resolve()))


@lru_cache(maxsize=8)
def _embedded_postgres(state_dir: str) -> Backend:
    from pathlib import Path

    from mirage.embedded import ensure_postgres

    return Backend(ensure_postgres(Path(state_dir)), embedded=True)


@lru_cache(maxsize=8)
def _embedded_redis(state_dir: str) -> Backend:
    from pathlib import Path

    from mirage.embedded import ensure_redis

    return Backend(ensure_redis(Path(state_dir)), embedded=True)


def forget_embedded() -> None:
    """Drop cached embedded URLs (after `mirage down`, or in tests that restart servers)."""
    _embedded_postgres.cache_clear()
    _embedded_redis.cache_clear()


# redis-py before 8.0 waits forever by default: a Redis that hangs (paused, partitioned) would hang the webhook
# or job that enqueues. RQ workers raise the read timeout of their own connection above their blocking dequeue.
REDIS_TIMEOUT_S = 5.0


def redis_client(settings: Settings | None = None, *, decode_responses: bool = False):  # type: ignore[no-untyped-def]
    """A redis-py client for this process's Redis (REDIS_URL or the embedded one), with connect and read timeouts."""
    import redis

    return redis.Redis.from_url(
        redis_backend(settings).url,
        decode_responses=decode_responses,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
