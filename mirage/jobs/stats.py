"""Jobs per queue and state, read from RQ's registries in Redis at scrape time (every worker writes them there)."""

from __future__ import annotations

from redis import Redis, RedisError
from rq import Queue

from mirage.errors import ServiceError
from mirage.jobs.queues import ALL_QUEUES

STATES = ("queued", "started", "scheduled", "deferred", "finished", "failed", "canceled")


def job_counts(conn: Redis) -> list[tuple[str, str, int]]:
    """(queue, state, jobs) for every Mirage queue and every state, zeros included (a series never vanishes)."""
    try:
        return _counts(conn)
    except (RedisError, OSError) as e:
        raise ServiceError("redis", f"job counts: {e}") from e


def _counts(conn: Redis) -> list[tuple[str, str, int]]:
    out = []
    for name in ALL_QUEUES:
        q = Queue(name, connection=conn)
        counts = {
            "queued": q.count,
            "started": q.started_job_registry.count,
            "scheduled": q.scheduled_job_registry.count,
            "deferred": q.deferred_job_registry.count,
            "finished": q.finished_job_registry.count,
            "failed": q.failed_job_registry.count,
            "canceled": q.canceled_job_registry.count,
        }
        out += [(name.removeprefix("mirage-"), state, int(counts[state])) for state in STATES]
    return out
