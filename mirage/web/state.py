"""What the web service keeps per process: settings, the keyring, the auth cache, and per event loop the
database pool and the group-commit writer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from mirage.crypto import CryptoError, Keyring, keyring
from mirage.db.connect import AsyncPool, database_url, open_async_pool
from mirage.db.evolution_sessions import SessionAuth, auth_from_row, load_all_auth_async
from mirage.db.sessions import async_service_session
from mirage.ingest.pipeline import POOL_TIMEOUT_S, StorageUnavailable, first_line
from mirage.ingest.store import Outcome
from mirage.ingest.writer import BatchWriter, WriterStats
from mirage.integrations.evolution.envelope import Envelope
from mirage.settings import Settings
from mirage.web.auth import AuthCache, Directory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _LoopResources:
    pool: AsyncPool
    writer: BatchWriter


class WebState:
    """Lazily built process resources, so creating the app never touches Postgres or the keys.

    An async pool belongs to the event loop that opened it: uvicorn runs one loop per process, tests may run
    several in turn (each closes its own with `aclose()`, as the app's lifespan does).
    """

    def __init__(self, settings: Settings, auth_ttl: float = 30.0) -> None:
        self.settings = settings
        self.auth = AuthCache(self._load_directory, ttl=auth_ttl)
        self.stats = WriterStats()
        self._ring: Keyring | None = None
        self._ready: dict[asyncio.AbstractEventLoop, _LoopResources] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Task[_LoopResources]] = {}

    def ring(self) -> Keyring:
        if self._ring is None:
            self._ring = keyring(self.settings)
        return self._ring

    async def resources(self) -> _LoopResources:
        """This loop's pool and writer, opened on first use (concurrent first uses share one opening)."""
        loop = asyncio.get_running_loop()
        ready = self._ready.get(loop)
        if ready is not None:
            return ready
        opening = self._opening.get(loop)
        if opening is None:
            opening = self._opening[loop] = loop.create_task(self._open(loop))
        return await asyncio.shield(opening)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _LoopResources:
        try:
            pool = await open_async_pool(database_url(self.settings))
        except psycopg.Error as e:
            raise StorageUnavailable(first_line(e)) from e
        finally:
            self._opening.pop(loop, None)
        ready = self._ready[loop] = _LoopResources(pool, BatchWriter(pool, self.ring, stats=self.stats))
        return ready

    async def aclose(self) -> None:
        """Finish this loop's pending writes and close its pool."""
        ready = self._ready.pop(asyncio.get_running_loop(), None)
        if ready is not None:
            await ready.writer.drain()
            await ready.pool.close()

    async def _load_directory(self) -> Directory:
        """Every session's auth material: one query, decrypted off the event loop.

        A session whose secrets cannot be decrypted is listed as unreadable (its requests then get a 503, which
        Evolution retries, rather than a final 401); CryptoError when there are no keys at all.
        """
        pool = (await self.resources()).pool
        try:
            async with pool.connection(timeout=POOL_TIMEOUT_S) as conn, async_service_session(conn):
                rows = await load_all_auth_async(conn)
        except psycopg.Error as e:
            raise StorageUnavailable(first_line(e)) from e
        return await asyncio.to_thread(self._decrypt_directory, rows)

    def _decrypt_directory(self, rows: list[dict[str, Any]]) -> Directory:
        ring = self.ring()
        sessions: list[SessionAuth] = []
        unreadable: list[str] = []
        failure: CryptoError | None = None
        for row in rows:
            try:
                sessions.append(auth_from_row(row, ring))
            except CryptoError as e:
                unreadable.append(row["instance_name"])
                failure = e
        if failure is not None:
            log.error("webhook secrets of %d session(s) cannot be decrypted: %s", len(unreadable), failure)
        return Directory.of(sessions, unreadable)

    async def ingest(self, auth: SessionAuth, env: Envelope, method: str) -> Outcome:
        """Store and normalise one authenticated event, group-committed with whatever else is waiting."""
        ready = self._ready.get(asyncio.get_running_loop()) or await self.resources()
        return await ready.writer.submit(auth, env, method)

    async def check_database(self) -> None:
        """Raise unless Postgres answers and the schema is there."""
        pool = (await self.resources()).pool
        async with pool.connection(timeout=POOL_TIMEOUT_S) as conn:
            await conn.execute("select 1 from t_webhook_events limit 0")
