# mypy: disable-error-code="no-untyped-call"
# (rq's scheduler methods carry no annotations; MirageScheduler calls them as rq's own loop does)
"""RQ workers for Mirage's queues; each job runs inside the log context of whatever enqueued it.

`mirage.jobs.queues.enqueue_unique` stores the producer's context (correlation id, tenant, ...) in
`job.meta["log_context"]`; the job wrapper every job function wears (`mirage.jobs.wrapper.job`) binds it again,
plus the job's name and id, so a job logs the same way under any worker, `rq worker` included.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Iterable, Sequence

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
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


# rq's scheduler (the one a worker starts with `with_scheduler`) moves due jobs to their queues once a second; a
# scheduled send then waits up to a second more than its whole-second score. Polling every SCHEDULER_POLL_S bounds
# that part of a send's lateness (issue 11: p99 <= 2 s) at a few Redis reads per poll, in one process per queue set.
SCHEDULER_POLL_S = 0.2


class _SubSecondRegistry(ScheduledJobRegistry):
    """A scheduled registry read with the current time to the microsecond: `enqueue_unique` stores exact scores
    (ADR 0050), which rq's own whole-second reading would move up to a second late."""

    def get_jobs_to_schedule(self, timestamp: int | None = None, chunk_size: int = 1000) -> list[str]:
        return super().get_jobs_to_schedule(time.time(), chunk_size)  # type: ignore[arg-type]


class MirageScheduler(RQScheduler):
    """rq's scheduler, polling every SCHEDULER_POLL_S and reading scores to the microsecond; its heartbeat (and lock
    refresh) stays once a second."""

    def prepare_registries(self, queue_names: Iterable[str] | None = None) -> None:
        names = queue_names or self._acquired_locks
        self._scheduled_job_registries = [
            _SubSecondRegistry(name, connection=self.connection, serializer=self.serializer) for name in names
        ]

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        beat = 0.0
        while not self._stop_requested:
            if self.should_reacquire_locks:
                self.acquire_locks()
            if time.monotonic() - beat >= self.interval:
                self.heartbeat()
                beat = time.monotonic()
            self.enqueue_scheduled_jobs()
            time.sleep(SCHEDULER_POLL_S)
        self.stop()


class _PromptScheduler:
    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """rq's own `_start_scheduler`, with MirageScheduler instead of RQScheduler."""
        worker: BaseWorker = self  # type: ignore[assignment]
        worker.scheduler = scheduler = MirageScheduler(
            worker.queues,
            connection=worker.connection,
            logging_level=logging_level if logging_level is not None else worker.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=worker.serializer,
        )
        scheduler.acquire_locks()
        if not scheduler.acquired_locks:
            return
        if not burst:
            scheduler.start()
            return
        try:
            scheduler.register_birth()
            scheduler.enqueue_scheduled_jobs()
        finally:
            scheduler.release_locks()
            scheduler.register_death()


# rq 3.0 listens for commands (shutdown, stop-job) on a pub/sub thread that sleeps up to 60 s per poll and, on
# teardown, calls the thread's stop(), which redis-py 8 turned into a join without a timeout: a worker could take a
# minute to exit (SIGTERM from docker/systemd, every `--burst` run, every test). Polling every PUBSUB_POLL_S bounds
# that wait; the cost is one idle read per worker per poll.
PUBSUB_POLL_S = 0.5


class _PromptExit(_PromptScheduler):
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
    """A worker over `names` (default all); `simple` runs jobs in the worker process, else each in a forked child.

    Either way a job's timeout is enforced: rq's `perform_job` wraps the job in the death penalty (SIGALRM) in
    whichever process runs it, the worker itself for the simple worker (ADR 0048)."""
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
    simple: bool = True,
    scheduler: bool = True,
    connection: Redis | None = None,
) -> bool:
    """Work until stopped (or, with `burst`, until the queues are empty); True if any job was run.

    `simple` (the default, ADR 0048) runs the jobs in this process, keeping one Postgres connection and one Redis
    client between them; `simple=False` forks a child per job (isolation, at a fork and fresh connections a job).
    An unreachable Redis is a one-line ServiceError naming the (masked) URL, not a traceback.
    """
    preload()
    try:
        worker = make_worker(names, simple=simple, connection=connection)
        if not simple:
            return bool(worker.work(burst=burst, with_scheduler=scheduler))
        with q.kept_connections():
            return bool(worker.work(burst=burst, with_scheduler=scheduler))
    except (RedisConnectionError, RedisTimeoutError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ServiceError(
            "redis", f"cannot connect to {redis_backend().masked}: {reason}; start Redis or fix REDIS_URL"
        ) from e
