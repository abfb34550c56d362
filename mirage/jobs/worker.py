# mypy: disable-error-code="no-untyped-call"
# (rq's scheduler methods carry no annotations; MirageScheduler calls them as rq's own loop does)
"""RQ workers for Mirage's queues; each job runs inside the log context of whatever enqueued it.

`mirage.jobs.queues.enqueue_unique` stores the producer's context (correlation id, tenant, ...) in
`job.meta["log_context"]`; the job wrapper every job function wears (`mirage.jobs.wrapper.job`) binds it again,
plus the job's name and id, so a job logs the same way under any worker, `rq worker` included.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import importlib
import itertools
import logging
import os
import pkgutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from queue import Empty, SimpleQueue
from types import FrameType
from typing import Any

from redis import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.connections import parse_connection
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.logutils import setup_loghandlers
from rq.rate_limit import release_slot
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.timeouts import BaseDeathPenalty, JobTimeoutException
from rq.utils import now
from rq.worker import BaseWorker, WorkerStatus

from mirage.backends import redis_backend, redis_client
from mirage.errors import ServiceError
from mirage.jobs import queues as q

log = logging.getLogger(__name__)


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


# rq's worker loop sends its heartbeat (a field and two expiries, three round trips) three times per job and its
# state ("idle") twice, unpipelined: 11 of the 21 Redis round trips a short job costs. The heartbeat only has to
# come before the worker's key expires (a job's timeout + 60 s while it runs, rq's worker_ttl + 60 s otherwise), so
# an unpipelined heartbeat within HEARTBEAT_EVERY_S of the last one, while that one keeps the key alive
# KEY_LEFT_S more, is not sent; the others go in one round trip. A state equal to the last one written is not
# written again. Heartbeats that rq pipelines with a job's start are always sent (ADR 0062).
HEARTBEAT_EVERY_S = 5.0
KEY_LEFT_S = 30.0


class _LeanBookkeeping:
    _beat_at: float = float("-inf")  # monotonic time of the last heartbeat sent, and the TTL it set
    _beat_ttl: int = 0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        worker: BaseWorker = self  # type: ignore[assignment]
        ttl = timeout or worker.worker_ttl + 60
        at = time.monotonic()
        if pipeline is not None:
            BaseWorker.heartbeat(worker, ttl, pipeline=pipeline)
        elif at - self._beat_at < HEARTBEAT_EVERY_S and self._beat_ttl - (at - self._beat_at) >= KEY_LEFT_S:
            return
        else:
            with worker.connection.pipeline(transaction=False) as p:
                BaseWorker.heartbeat(worker, ttl, pipeline=p)
                p.execute()
        self._beat_at, self._beat_ttl = at, ttl

    def set_state(self, state: str, pipeline: Any = None) -> None:
        worker: BaseWorker = self  # type: ignore[assignment]
        if pipeline is None and state == worker.get_state():
            return
        BaseWorker.set_state(worker, state, pipeline=pipeline)


# rq's worker loop asks Redis whether workers are suspended (`rq suspend`) before every job: a round trip of six
# commands (a heartbeat rides along). Asked at most every SUSPENSION_CHECK_S, a suspension still stops every worker
# from taking a job within that long (ADR 0066).
SUSPENSION_CHECK_S = 1.0


class _RareSuspensionCheck:
    _suspension_checked_at: float = float("-inf")  # monotonic

    def check_for_suspension(self, burst: bool) -> None:
        at = time.monotonic()
        if at - self._suspension_checked_at < SUSPENSION_CHECK_S:
            return
        BaseWorker.check_for_suspension(self, burst)  # type: ignore[arg-type]
        self._suspension_checked_at = time.monotonic()


class _OneTripJobStart:
    """An in-process job's start in one round trip and its end without extra ones (ADR 0066).

    rq's SimpleWorker starts a job in two transactions (the execution and the worker's busy state, then the job's
    started status, heartbeats and persistence), writes the job's `last_heartbeat` on its own when the job returns
    and the worker's `idle` state on its own after the result: here the start is one transaction of the same
    commands, the job's `last_heartbeat` goes with the result (rq saves the whole job hash there: success, failure,
    retry) unless the job has a callback to run first, and `idle` goes with the result's transaction."""

    _started_job: str | None = None
    _idle_sent = False
    _state: str

    def execute_job(self, job: Job, queue: Queue) -> None:
        worker: BaseWorker = self  # type: ignore[assignment]
        with worker.connection.pipeline() as pipeline:
            ttl = worker.get_heartbeat_ttl(job)
            execution = Execution.create(job, ttl, pipeline=pipeline, worker_name=worker.name)
            worker.executions[execution.id] = execution
            worker.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            # rq's prepare_job_execution, which perform_job then skips for this job
            worker.heartbeat(ttl, pipeline=pipeline)
            job.heartbeat(now(), ttl, pipeline=pipeline)
            job.prepare_for_execution(worker.name, pipeline=pipeline)
            pipeline.persist(job.key)
            if len(worker.queues) == 1:  # rq's own condition: the job came through the intermediate queue
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self._started_job, self._idle_sent = job.id, False
        try:
            worker.perform_job(job, queue, execution)
        finally:
            self._started_job = None
        worker.set_state(WorkerStatus.IDLE)  # already written with the result: not sent again

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if job.id != self._started_job:
            BaseWorker.prepare_job_execution(self, job, remove_from_intermediate_queue)  # type: ignore[arg-type]

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if job.success_callback is not None or job.failure_callback is not None:
            BaseWorker.handle_execution_ended(self, job, queue, heartbeat_ttl)  # type: ignore[arg-type]
            return
        job.ended_at = job.last_heartbeat = now()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        """rq's success handling in one transaction: rq watches the job's dependents and reads them first (two
        round trips) so it can move them in the same transaction; here they are read inside it, atomically with
        the FINISHED status, and any there are enqueued after it as rq's failure handling does. A repeating job
        keeps rq's own handling."""
        worker: BaseWorker = self  # type: ignore[assignment]
        if job.repeats_left is not None and job.repeats_left > 0:
            BaseWorker.handle_job_success(worker, job, queue, started_job_registry, execution)
            return
        assert job.started_at is not None and job.ended_at is not None  # set by perform_job
        with worker.connection.pipeline() as pipeline:
            pipeline.smembers(job.dependents_key)
            worker.increment_successful_job_count(pipeline=pipeline)
            worker.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            result_ttl = job.get_result_ttl(worker.default_result_ttl)
            if result_ttl != 0:
                job._handle_success(
                    result_ttl,
                    pipeline=pipeline,
                    worker_name=worker.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            worker.cleanup_execution(job, pipeline=pipeline, execution=execution)
            dependents = pipeline.execute()[0]
        if dependents:
            queue.enqueue_dependents(job)
        release_slot(job)
        worker.log.info(
            "Successfully completed %s job in %ss on worker %s", job.id, job.ended_at - job.started_at, worker.name
        )

    def cleanup_execution(self, job: Job, pipeline: Any, execution: Execution | None = None) -> None:
        worker: BaseWorker = self  # type: ignore[assignment]
        BaseWorker.cleanup_execution(worker, job, pipeline, execution)
        if not worker.executions:
            # Written with the outcome, but the worker stays BUSY for itself until the job is wholly handled:
            # a warm stop (rq's request_stop) seen as idle would stop the loop mid-way through the outcome.
            pipeline.hset(worker.key, "state", WorkerStatus.IDLE)
            self._idle_sent = True

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == WorkerStatus.IDLE and self._idle_sent:
            self._idle_sent = False
            self._state = state  # already written with the job's outcome
            return
        super().set_state(state, pipeline)  # type: ignore[misc]


class MirageWorker(_RareSuspensionCheck, _LeanBookkeeping, _PromptExit, Worker):
    """rq's forking Worker whose command listener lets it exit promptly."""


class MirageSimpleWorker(_OneTripJobStart, _RareSuspensionCheck, _LeanBookkeeping, _PromptExit, SimpleWorker):
    """rq's in-process SimpleWorker whose command listener lets it exit promptly, with fewer round trips a job."""


# `mirage worker --threads N` (ADR 0059): N of rq's worker loops in one process, each a registered rq worker in its
# own thread with its own Redis client and kept Postgres connection. A job spends most of its time waiting on
# Postgres, Redis and HTTP (about 11% of a core per job stream), so several in flight use the process's core.
# An idle job thread blocks on the queues at most this long at a time, then looks for a stop request: a signal
# interrupts the main thread only, so a thread's BLPOP would otherwise hold a warm shutdown for rq's 405 s.
DEQUEUE_POLL_S = 1


class _Watchdog:
    """One thread per process that stops the job threads' overdue jobs (ADR 0066): each job registers its deadline
    here instead of starting a timer thread of its own (rq's TimerDeathPenalty: a thread start and a join a job).

    A job thread may receive its timeout at any Python instruction, even inside `arm`/`disarm`: they hold only a C
    lock in a `with` statement (released by any exception raised inside it) and wake the watchdog through a C
    queue, never a Python-level lock such as `threading.Condition`, which an exception arriving between its
    acquire and its `with` would leave held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake: SimpleQueue[None] = SimpleQueue()
        self._deadlines: list[tuple[float, int]] = []  # heap of (monotonic deadline, token)
        self._armed: dict[int, tuple[int, type[BaseException]]] = {}  # token -> (thread id, exception)
        self._tokens = itertools.count()
        self._pid = 0

    def arm(self, seconds: float, exception: type[BaseException]) -> int:
        """Raise `exception` in the calling thread once it has run `seconds` without `disarm`; a token for it."""
        thread = threading.get_ident()
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (the thread did not follow)
                self._pid = os.getpid()
                self._deadlines, self._armed = [], {}
                threading.Thread(target=self._run, name="mirage-job-watchdog", daemon=True).start()
            token = next(self._tokens)
            self._armed[token] = (thread, exception)
            heapq.heappush(self._deadlines, (time.monotonic() + seconds, token))
            first = self._deadlines[0][1] == token
        if first:
            self._wake.put(None)
        return token

    def disarm(self, token: int) -> bool:
        """Forget the deadline; False if it had already fired (its exception is raised or about to be)."""
        with self._lock:
            return self._armed.pop(token, None) is not None

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._deadlines and self._deadlines[0][1] not in self._armed:
                    heapq.heappop(self._deadlines)  # disarmed in time
                left = self._deadlines[0][0] - time.monotonic() if self._deadlines else None
                if left is not None and left <= 0:
                    _, token = heapq.heappop(self._deadlines)
                    _raise_in(*self._armed.pop(token))
                    continue
            with contextlib.suppress(Empty):
                self._wake.get(timeout=left)


def _raise_in(thread: int, exception: type[BaseException]) -> None:
    """rq's TimerDeathPenalty.handle_death_penalty: raise `exception` in `thread` at its next Python instruction."""
    ret = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exception))
    if ret > 1:  # never: thread ids are unique; undo as rq does, and keep the watchdog running
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), None)
        log.error("could not stop an overdue job in thread %d", thread)


_watchdog = _Watchdog()
_timeouts: dict[tuple[type[BaseException], int], type[BaseException]] = {}


def _timeout_exception(exception: type[BaseException], seconds: int) -> type[BaseException]:
    """`exception` (a class: an asynchronous exception is raised from its class) whose message names `seconds`."""
    key = (exception, seconds)
    if key not in _timeouts:
        message = f"Task exceeded maximum timeout value ({seconds} seconds)"

        def __init__(self: BaseException, *args: object) -> None:
            BaseException.__init__(self, *(args or (message,)))

        named = type(exception.__name__, (exception,), {"__init__": __init__, "__module__": exception.__module__})
        named.__qualname__ = exception.__qualname__
        _timeouts[key] = named
    return _timeouts[key]


class WatchdogDeathPenalty(BaseDeathPenalty):
    """rq's death penalty for a job thread: the process's one watchdog thread raises the timeout exception in the
    job's thread (as rq's TimerDeathPenalty does from a timer thread of its own, started for every job)."""

    def __init__(self, timeout: int, exception: type[BaseException] = JobTimeoutException, **kwargs: Any) -> None:
        super().__init__(timeout, exception, **kwargs)
        self._token: int | None = None

    def setup_death_penalty(self) -> None:
        if self._timeout > 0:
            self._token = _watchdog.arm(self._timeout, _timeout_exception(self._exception, self._timeout))

    def cancel_death_penalty(self) -> None:
        if self._token is None:
            return
        token, self._token = self._token, None
        if not _watchdog.disarm(token):
            # It fired as the job ended: the exception is raised here (BaseDeathPenalty.__exit__ takes it, as for
            # rq's timer), or cleared now if it is still pending, so it cannot surface after the job.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)


class MirageThreadWorker(MirageSimpleWorker):
    """One job thread of a `--threads` worker: rq's in-process worker, registered under its own name, with the
    process's watchdog as death penalty (SIGALRM reaches the main thread only) and no signal handlers of its own
    (only the main thread may install them; it asks every thread to stop, `request_warm_stop`)."""

    death_penalty_class = WatchdogDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """rq's dequeue (heartbeats, maintenance), blocking DEQUEUE_POLL_S at a time until a job, a stop request
        or `max_idle_time`."""
        if timeout is None:  # burst: one look, no wait
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        idle = 0
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(DEQUEUE_POLL_S, DEQUEUE_POLL_S)
            if result is not None:
                return result
            idle += DEQUEUE_POLL_S
            if max_idle_time is not None and idle >= max_idle_time:
                break
        return None

    def request_warm_stop(self) -> None:
        """Finish the job in hand, take no other: rq's warm shutdown, asked from the main thread."""
        self._shutdown_requested_date = now()
        self._stop_requested = True
        if self.get_state() == WorkerStatus.BUSY:
            with contextlib.suppress(RedisError):  # what `rq info` shows; the stop holds without it
                self.set_shutdown_requested_date()


def make_worker(names: Sequence[str] = (), *, simple: bool = False, connection: Redis | None = None) -> BaseWorker:
    """A worker over `names` (default all); `simple` runs jobs in the worker process, else each in a forked child.

    Either way a job's timeout is enforced: rq's `perform_job` wraps the job in the death penalty (SIGALRM) in
    whichever process runs it, the worker itself for the simple worker (ADR 0048); a job thread's worker
    (`MirageThreadWorker`) uses the process's watchdog thread instead (ADR 0059, ADR 0066)."""
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
    threads: int = 1,
) -> bool:
    """Work until stopped (or, with `burst`, until the queues are empty); True if any job was run.

    `simple` (the default, ADR 0048) runs the jobs in this process, keeping one Postgres connection and one Redis
    client between them; `threads` > 1 runs that many jobs at once, one per thread (ADR 0059); `simple=False`
    forks a child per job (isolation, at a fork and fresh connections a job; one at a time).
    An unreachable Redis is a one-line ServiceError naming the (masked) URL, not a traceback.
    """
    if threads < 1 or (threads > 1 and not simple):
        raise ValueError(f"threads={threads}: one or more, and only for in-process workers (not forking)")
    preload()
    try:
        if threads > 1:
            return run_threads(names, threads, burst=burst, scheduler=scheduler, connection=connection)
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


def _client_like(connection: Redis | None) -> Callable[[], Redis]:
    """Fresh clients (own connection pools) to `connection`'s Redis, or to this process's Redis."""
    if connection is None:
        return lambda: redis_client()
    cls, connection_class, kwargs = parse_connection(connection)
    return lambda: cls(connection_pool=ConnectionPool(connection_class=connection_class, **kwargs))


def run_threads(
    names: Sequence[str], threads: int, *, burst: bool, scheduler: bool, connection: Redis | None = None
) -> bool:
    """`threads` rq worker loops in this process (ADR 0059), each in its thread with its own Redis client and kept
    Postgres connection; rq's scheduler (a child process, as for one worker) is started by the main thread first.

    SIGTERM or SIGINT (or `rq shutdown`) asks every loop for a warm stop: jobs in flight finish, none is taken;
    a second one (a second later or more) is a cold stop: the process exits and the jobs in flight are lost as
    with SIGKILL (the outbox and the sweeper handle that). Without `burst`, one loop ending (Redis gone, an
    unhandled error) stops the others too, so a supervisor restarts the whole process."""
    client = _client_like(connection)
    workers = [MirageThreadWorker(queue_names(names), connection=client()) for _ in range(threads)]
    for name in ("rq.worker", "rq.job"):  # once here: the threads' own bootstrap would race to add handlers
        setup_loghandlers(None, DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT, name=name)
    if scheduler:
        workers[0]._start_scheduler(burst, None)
    ran = [False] * threads
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            with q.kept_connections():
                ran[i] = bool(workers[i].work(burst=burst, with_scheduler=False))
        except BaseException as e:  # re-raised by the main thread
            errors.append(e)

    stop = threading.Event()
    signalled: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signalled and time.monotonic() - signalled[0] >= 1:  # a second signal, not the same one twice
            log.warning("cold shut down: %d job thread(s) stop now, their jobs are lost", threads)
            raise SystemExit(1)
        if not signalled:
            signalled.append(time.monotonic())
            log.info("warm shut down requested: jobs in flight finish first (again for a cold shut down)")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    pool = [threading.Thread(target=loop, args=(i,), name=f"mirage-job-{i + 1}", daemon=True) for i in range(threads)]
    try:
        for t in pool:
            t.start()
        stopping = False
        while alive := [t for t in pool if t.is_alive()]:
            if not stopping and (stop.is_set() or errors or (not burst and len(alive) < threads)):
                stopping = True
                for w in workers:
                    w.request_warm_stop()
            alive[0].join(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for w in workers:
        w.connection.close()
    if errors:
        raise errors[0]
    return any(ran)
