"""Webhook test fixtures. Real: Postgres (the session database), the keyring, the Starlette app, and for
`live_server` uvicorn on a loopback port. Requests go through httpx: ASGI transport in process, or real HTTP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import uvicorn
from cryptography.fernet import Fernet
from psycopg.rows import dict_row
from starlette.applications import Starlette

from mirage.settings import Settings
from mirage.web.app import create_app
from tests.webhooks.helpers import WEBHOOK, Seeded, seed_instance

T = TypeVar("T")
SECRET_KEYS = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"


@pytest.fixture(autouse=True)
def _secret_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Fernet keys, as MIRAGE_SECRET_KEYS in production (the first encrypts)."""
    from mirage.settings import get_settings

    monkeypatch.setenv("MIRAGE_SECRET_KEYS", SECRET_KEYS)
    get_settings.cache_clear()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The root `db` connection, cleaned with three DELETEs instead of truncating every table (0.7 s a test).

    Every row these tests create hangs off a tenant: events and messages (ON DELETE RESTRICT) go first, then
    the tenants cascade to numbers, sessions and contacts.
    """
    conn = psycopg.connect(database_url, row_factory=dict_row)
    try:
        yield conn
    finally:
        with conn:  # closed even if a cleanup statement fails
            conn.rollback()
            for table in ("t_webhook_events", "t_messages", "t_applies", "t_tenants"):
                conn.execute(f"delete from {table}")


@pytest.fixture
def app(database_url: str) -> Starlette:
    """A fresh app (and so a fresh auth cache) per test."""
    return create_app(Settings.from_env())


@pytest.fixture
def client(app: Starlette) -> Iterator[httpx.Client]:
    """Requests through the ASGI app in process (no socket), with Starlette's TestClient transport."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://mirage.test", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def acme(db: psycopg.Connection[Any]) -> Seeded:
    """Tenant `acme` with number +5511912345678 on instance `acme-support` (the shared fixtures' instance)."""
    return seed_instance(db)


def in_app_loop(app: Starlette, work: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run `work` with an ASGI-transport client in a fresh event loop, inside the app's lifespan (which opens and
    closes that loop's database pool, as uvicorn's does)."""

    async def run() -> T:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mirage.test") as c:
                return await work(c)

    return asyncio.run(run())


def post_many(app: Starlette, requests: list[tuple[bytes, dict[str, str]]]) -> list[httpx.Response]:
    """Send the requests concurrently through the ASGI app (one event loop)."""

    async def send(c: httpx.AsyncClient) -> list[httpx.Response]:
        return list(await asyncio.gather(*(c.post(WEBHOOK, content=b, headers=h) for b, h in requests)))

    return in_app_loop(app, send)


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread."""

    def __init__(self, app: Starlette) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app: Starlette) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server
