"""RQ workers for Mirage's queues; each job runs inside the log context of whatever enqueued it.

`mirage.jobs.queues.enqueue_unique` stores the producer's context (correlation id, tenant, ...) in
`job.meta["log_context"]`; the job wrapper every job function wears (`mirage.jobs.wrapper.job`) binds it again,
plus the job's name and id, so a job logs the same way under any worker, `rq worker` included.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.worker import BaseWorker

from mirage.backends import redis_backend
from mirage.errors import ServiceError
from mirage.jobs import queues as q


def queue_names(names: Sequence[str]) -> tuple[str, ...]:
    """`events` or `mirage-events` -> `mirage-events`; none -> every queue in priority order."""
    if not names:
        return q.ALL_QUEUES
    out = []
    for name in names:
        full = name if name.startswith("mirage-") else f"mirage-{name}"
        if full not in q.ALL_QUEUES:
            raise ValueError(f"unknown queue {name!r}: use one of {', '.join(q.ALL_QUEUES)}")
        out.append(full)
    return tuple(dict.fromkeys(out))


# rq 3.0 listens for commands (shutdown, stop-job) on a pub/sub thread that sleeps up to 60 s per poll and, on
# teardown, calls the thread's stop(), which redis-py 8 turned into a join without a timeout: a worker could take a
# minute to exit (SIGTERM from docker/systemd, every `--burst` run, every test). Polling every PUBSUB_POLL_S bounds
# that wait; the cost is one idle read per worker per poll.
PUBSUB_POLL_S = 0.5


class _PromptExit:
    def subscribe(self) -> None:
        worker: BaseWorker = self  # type: ignore[assignment]
        worker.pubsub = worker.connection.pubsub()
        worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
        worker.pubsub_thread = worker.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_POLL_S, daemon=True, exception_handler=worker._pubsub_exception_handler
        )


class MirageWorker(_PromptExit, Worker):
    """rq's forking Worker whose command listener lets it exit promptly."""


class MirageSimpleWorker(_PromptExit, SimpleWorker):
    """rq's in-process SimpleWorker whose command listener lets it exit promptly."""


def make_worker(names: Sequence[str] = (), *, simple: bool = False, connection: Redis | None = None) -> BaseWorker:
    """A worker over `names` (default all); `simple` runs jobs in-process (no fork, no job timeouts)."""
    conn = connection or q.connection()
    queues = [Queue(name, connection=conn) for name in queue_names(names)]
    cls: type[BaseWorker] = MirageSimpleWorker if simple else MirageWorker
    return cls(queues, connection=conn)


def preload() -> None:
    """Import every job module (and so what the jobs use) once, in the worker, before it forks: each job's work
    horse then inherits them instead of importing them again, which costs seconds per job on a busy machine."""
    import mirage.jobs

    for module in pkgutil.iter_modules(mirage.jobs.__path__):
        importlib.import_module(f"mirage.jobs.{module.name}")


def run_worker(
    names: Sequence[str] = (),
    *,
    burst: bool = False,
    simple: bool = False,
    scheduler: bool = True,
    connection: Redis | None = None,
) -> bool:
    """Work until stopped (or, with `burst`, until the queues are empty); True if any job was run.

    An unreachable Redis is a one-line ServiceError naming the (masked) URL, not a traceback.
    """
    preload()
    try:
        worker = make_worker(names, simple=simple, connection=connection)
        return bool(worker.work(burst=burst, with_scheduler=scheduler))
    except (RedisConnectionError, RedisTimeoutError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ServiceError(
            "redis", f"cannot connect to {redis_backend().masked}: {reason}; start Redis or fix REDIS_URL"
        ) from e
