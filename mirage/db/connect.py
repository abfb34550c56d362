"""Connections to Postgres: one-off connections for the CLI and a pool for long-running processes."""

from __future__ import annotations

from functools import lru_cache

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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
