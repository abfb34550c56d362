"""Connections to Postgres: one-off connections for the CLI, a pool for long-running processes, an async pool for
the web service's event loop."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from mirage.backends import postgres_backend
from mirage.errors import ServiceError
from mirage.settings import Settings

CONNECT_TIMEOUT_S = 5


def database_url(settings: Settings | None = None) -> str:
    return postgres_backend(settings).url


def connect(url: str | None = None, *, autocommit: bool = False) -> psycopg.Connection[dict[str, object]]:
    """Open a connection (dict rows); a connection failure becomes a one-line ServiceError."""
    url = url or database_url()
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ServiceError("postgres", f"cannot connect: {reason}") from e


@lru_cache(maxsize=4)
def get_pool(url: str | None = None, min_size: int = 1, max_size: int = 10) -> ConnectionPool:
    """The process-wide pool (serve, worker); connections are reset to a clean state when returned."""
    url = url or database_url()

    def reset(conn: psycopg.Connection) -> None:
        # Belt and braces: claims and role are transaction-local, but a pooled connection must never
        # carry session state from one user of the pool to the next. In autocommit this is one round trip
        # (no BEGIN / COMMIT around it), which matters at webhook rates.
        conn.autocommit = True
        try:
            conn.execute("reset role; reset all")
        finally:
            conn.autocommit = False

    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S},
        reset=reset,
        open=True,
    )
    return pool


AsyncPool = AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]]


async def open_async_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncPool:
    """A pool bound to the running event loop (the web service's); the caller closes it on that loop.

    Its connections are in autocommit mode, so a transaction is whatever its user opens with BEGIN (psycopg's
    own `transaction()` works too): pipelined, BEGIN, the statements and COMMIT then go in one round trip. It
    has no reset on return, unlike `get_pool`: its users keep every setting transaction-local (`set local`,
    `set_config(..., true)`), which COMMIT or ROLLBACK clear. That saves a round trip per checkout.
    """
    pool: AsyncPool = AsyncConnectionPool(
        url,
        connection_class=psycopg.AsyncConnection[dict[str, Any]],
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True},
        open=False,
    )
    await pool.open()  # connects in the background: a Postgres that is down shows up as a checkout timeout
    return pool
