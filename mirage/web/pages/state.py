"""What the pages keep per process: templates, and per event loop a small database pool and a Redis client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import jinja2
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from mirage.backends import REDIS_TIMEOUT_S, redis_backend
from mirage.crypto import Keyring, keyring
from mirage.db.connect import CONNECT_TIMEOUT_S, database_url
from mirage.settings import Settings
from mirage.web.pages.cache import PageCache

POOL_MAX = 8


@dataclass
class _Loop:
    pool: AsyncConnectionPool[Any]
    redis: aioredis.Redis
    cache: PageCache


class PageState:
    """Lazily opened per event loop (uvicorn runs one per process; tests may run several in turn)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("mirage.web.pages", "templates"),
            autoescape=True,  # every {{ }} is HTML-escaped; nothing in the templates marks user text safe
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._ring: Keyring | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _Loop] = {}
        self._lock = asyncio.Lock()

    def ring(self) -> Keyring:
        if self._ring is None:
            self._ring = keyring(self.settings)
        return self._ring

    async def _get(self) -> _Loop:
        loop = asyncio.get_running_loop()
        ready = self._loops.get(loop)
        if ready is not None:
            return ready
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url(self.settings),
            connection_class=psycopg.AsyncConnection[dict[str, Any]],
            min_size=1,
            max_size=POOL_MAX,
            kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True},
            open=False,
        )
        await pool.open()
        client = aioredis.Redis.from_url(
            redis_backend(self.settings).url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        ready = self._loops.setdefault(loop, _Loop(pool, client, PageCache(self.settings.page_cache_s)))
        if ready.pool is not pool:  # another request of this loop opened one first
            await pool.close()
            await client.aclose()
        return ready

    async def pool(self) -> AsyncConnectionPool[Any]:
        return (await self._get()).pool

    async def redis(self) -> aioredis.Redis:
        return (await self._get()).redis

    async def cache(self) -> PageCache:
        """This process's (event loop's) cache of rendered pages; TTL MIRAGE_PAGE_CACHE_S, 0 = off."""
        return (await self._get()).cache

    async def aclose(self) -> None:
        ready = self._loops.pop(asyncio.get_running_loop(), None)
        if ready is not None:
            await ready.pool.close()
            await ready.redis.aclose()
