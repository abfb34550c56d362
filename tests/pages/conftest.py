"""Metrics page fixtures. Real: Postgres (the session database, every migration), Redis (sign-in rate limits),
the keyring, the Starlette app (in process through TestClient, or uvicorn on loopback for the browser tests).
Viewers sign in the two real ways: a `mirage viewers link` token exchanged at /signin, or a Supabase-style
access token signed with SUPABASE_JWT_SECRET."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mirage.db.sessions import service_session
from mirage.db.viewers import create_link
from mirage.settings import Settings
from mirage.web.app import create_app
from tests.pages.helpers import Fleet

SECRET_KEYS = Fernet.generate_key().decode()
JWT_SECRET = "test-jwt-secret-" + "x" * 32


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    from mirage.settings import get_settings

    monkeypatch.setenv("MIRAGE_SECRET_KEYS", SECRET_KEYS)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    get_settings.cache_clear()


@pytest.fixture
def db(database_url: str, redis_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A root connection; afterwards every row these tests made goes (history first, then the tenants cascade)."""
    conn = psycopg.connect(database_url, row_factory=dict_row)
    try:
        yield conn
    finally:
        with conn:
            conn.rollback()
            for table in ("t_messages", "t_webhook_events", "t_applies", "t_rounds", "t_tenants"):
                conn.execute(f"delete from {table}")
            conn.commit()
        import redis

        redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def page_cache_s() -> float | None:
    """MIRAGE_PAGE_CACHE_S for the app (None: the setting's default, cache on); parametrise to change it."""
    return None


@pytest.fixture
def app(database_url: str, page_cache_s: float | None) -> Starlette:
    settings = Settings.from_env()
    if page_cache_s is not None:
        settings = settings.model_copy(update={"page_cache_s": page_cache_s})
    return create_app(settings)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://mirage.test", raise_server_exceptions=True, follow_redirects=False) as c:
        yield c


def link_token(
    db: psycopg.Connection[Any], fleet: Fleet, role: str = "viewer", ttl: timedelta = timedelta(days=1)
) -> str:
    with service_session(db) as c:
        link = create_link(c, fleet.slug, fleet.emails[role], ttl, created_by="tests", now=datetime.now(UTC))
    return link.token


def sign_in(client: TestClient, token: str) -> httpx.Response:
    client.cookies.clear()
    return client.post("/signin", data={"token": token})


def access_token(fleet: Fleet, role: str = "admin", aal: str = "aal2", **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "sub": str(fleet.auth_ids[role]),
        "aud": "authenticated",
        "role": "authenticated",
        "exp": int(time.time()) + 3600,
        "iat": int(time.time()),
        "aal": aal,
        "app.tenant_id": str(fleet.tenant_id),
        "app.role": role,
        "email": fleet.emails[role],
    }
    claims.update(overrides)
    secret = claims.pop("_secret", JWT_SECRET)
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_viewer(db: psycopg.Connection[Any], client: TestClient) -> Callable[[Fleet, str], TestClient]:
    """Sign `client` in as a fleet's member of `role` through a sign-in link."""

    def go(fleet: Fleet, role: str = "viewer") -> TestClient:
        response = sign_in(client, link_token(db, fleet, role))
        assert response.status_code == 303, response.text
        return client

    return go


def unknown_id() -> str:
    return str(uuid.uuid4())
