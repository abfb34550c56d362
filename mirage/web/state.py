"""What the web service keeps per process: settings, the keyring, the database pool and the auth cache."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from mirage.crypto import Keyring, keyring
from mirage.db.connect import database_url, get_pool
from mirage.db.sessions import service_session
from mirage.ingest.pipeline import POOL_TIMEOUT_S, StorageUnavailable
from mirage.ingest.sessions import SessionAuth, load_session
from mirage.ingest.store import Outcome
from mirage.ingest.writer import BatchWriter
from mirage.integrations.evolution.events import Envelope
from mirage.settings import Settings
from mirage.web.auth import AuthCache

log = logging.getLogger(__name__)


class WebState:
    """Lazily built process resources, so creating the app never touches Postgres or the keys."""

    def __init__(self, settings: Settings, auth_ttl: float = 30.0) -> None:
        self.settings = settings
        self.auth = AuthCache(self._load_session, ttl=auth_ttl)
        self._ring: Keyring | None = None
        self._pool: ConnectionPool[Any] | None = None
        self.writer = BatchWriter(self.pool, self.ring)

    def ring(self) -> Keyring:
        if self._ring is None:
            self._ring = keyring(self.settings)
        return self._ring

    def pool(self) -> ConnectionPool[Any]:
        if self._pool is None:
            self._pool = get_pool(database_url(self.settings))
        return self._pool

    def _load_session(self, instance: str) -> SessionAuth | None:
        try:
            with self.pool().connection(timeout=POOL_TIMEOUT_S) as conn, service_session(conn):
                return load_session(conn, instance, self.ring())
        except psycopg.Error as e:
            raise StorageUnavailable(str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)) from e

    async def load_auth(self, instance: str, max_age: float | None = None) -> SessionAuth | None:
        return await run_in_threadpool(self.auth.get, instance, max_age)

    async def ingest(self, auth: SessionAuth, env: Envelope, method: str) -> Outcome:
        """Store and normalise one authenticated event, group-committed with whatever else is waiting."""
        return await self.writer.submit(auth, env, method)

    def check_database(self) -> None:
        """Raise unless Postgres answers and the schema is there (blocking)."""
        with self.pool().connection(timeout=POOL_TIMEOUT_S) as conn:
            conn.execute("select 1 from t_webhook_events limit 0")
